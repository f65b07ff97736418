/**
 * Environment overrides, parsed strictly (an unknown value is an error, not a silent default):
 *   FLASHATTN_CONFORMANCE_MATRIX = full | ci | smoke   overrides the matrix a suite asks for
 *   FLASHATTN_CONFORMANCE_SEED   = <uint32>            replays a failing run's inputs
 *   FLASHATTN_CONFORMANCE_FILTER = <substring>         keeps cases whose id contains it
 */
import { MATRIX_NAMES, type MatrixName } from './cases.js';

export interface ConformanceEnv {
  matrix?: MatrixName;
  seed?: number;
  filter?: string;
}

/** `process.env` where there is one (Node); empty in a browser test runner without it. */
function defaultEnv(): Record<string, string | undefined> {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env ?? {};
}

export function readConformanceEnv(
  env: Record<string, string | undefined> = defaultEnv(),
): ConformanceEnv {
  const out: ConformanceEnv = {};
  const m = env.FLASHATTN_CONFORMANCE_MATRIX;
  if (m !== undefined && m !== '') {
    if (!(MATRIX_NAMES as readonly string[]).includes(m)) {
      throw new RangeError(
        `FLASHATTN_CONFORMANCE_MATRIX: expected one of ${MATRIX_NAMES.join(', ')}, got '${m}'`,
      );
    }
    out.matrix = m as MatrixName;
  }
  const s = env.FLASHATTN_CONFORMANCE_SEED;
  if (s !== undefined && s !== '') {
    const n = Number(s);
    if (!/^\d+$/.test(s.trim()) || !Number.isSafeInteger(n) || n > 0xffffffff) {
      throw new RangeError(
        `FLASHATTN_CONFORMANCE_SEED: expected an unsigned 32-bit integer, got '${s}'`,
      );
    }
    out.seed = n;
  }
  const f = env.FLASHATTN_CONFORMANCE_FILTER;
  if (f !== undefined && f !== '') out.filter = f;
  return out;
}

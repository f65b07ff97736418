/**
 * NaN / Infinity propagation. core's device-attention contract: NaN or Infinity in q, k or v propagates
 * to out and the gradients as in exact arithmetic (flash-attn's behaviour), nothing checked per element.
 * A tiled kernel cannot promise more than this, and the suite checks exactly it:
 *
 *  1. PROPAGATION: every element that depends on the poisoned value in exact arithmetic is NaN (or, for
 *     the +Infinity query, non-finite): a kernel must never scrub it (nan_to_num, fmax in an epilogue).
 *  2. ISOLATION where no product with the poisoned value exists in any evaluation order: other head-dim
 *     columns of out for a NaN in v; other query rows for an Infinity in q; the forward of every row
 *     that masks a NaN key (the mask REPLACES the score, as flash-attn's select does; a mask added as a
 *     -inf bias leaks, -inf + NaN = NaN); every lse but the poisoned rows'; dv for a NaN in v (dv does
 *     not read v); dk and dv for a NaN key no query sees, which stay exactly 0.
 *
 * Elements a tiled kernel may reach through a masked zero times the poisoned value (0 * NaN = NaN: a NaN
 * v row in the same key tile as a masked entry, dq through a masked dS times a NaN k row, P = exp(-inf -
 * NaN) of a poisoned row's masked entries) are NOT checked: exact arithmetic would keep them finite, but
 * flash-attn's GEMM tiles do not (nor WGSL, which lets implementations assume no NaN at all). With
 * `exact: true` (a backend that masks inside its tiles, like @flashattn/cpu's SIMD kernel) they must be
 * finite too: the contract's "as in exact arithmetic" in full.
 *
 * Scenarios (D = 32, H = 2, N(0, 1) inputs, masks from core's keyRange):
 *  - `nan-key`:   k row 7 all NaN, window [2, 0] (rows 7..9 see it): out and lse NaN on rows 7..9 and
 *                 finite elsewhere; dq NaN on rows 7..9, dk and dv NaN on the keys those rows see.
 *  - `nan-value`: v[7, d = 5] NaN, window [2, 0]: out[rows 7..9, d 5] NaN, every other column finite,
 *                 every lse finite; dq NaN on rows 7..9, dk NaN on the keys they see, dv finite.
 *  - `inf-query`: q[4, 0] = +Infinity: out row 4 non-finite, every other row finite (forward only: that
 *                 row's scores are +-Infinity, whose softmax exact arithmetic leaves undefined).
 *  - `nan-unseen-key`: k row 3 NaN, window [8, 0] with Nq 17 < Nk 40 (keys 0..14 unseen): out, lse, dk,
 *                 dv finite, and dk, dv of key 3 exactly 0.
 *
 * Run from `describeConformance` for every backend (option `nonFinite`, default on) and by
 * `runNonFiniteChecks(backend)`. A backend that throws fails the scenario; nothing here crashes.
 */
import {
  createRng,
  freshSeed,
  fromFloat32,
  keyRange,
  resolveOptions,
  toFloat32,
  type AttentionBackend,
  type AttentionOptions,
  type DType,
} from '@flashattn/core';
import { caseSeedOf } from './inputs.js';

export type NonFiniteScenario = 'nan-key' | 'nan-value' | 'inf-query' | 'nan-unseen-key';
export const NON_FINITE_SCENARIOS: readonly NonFiniteScenario[] = [
  'nan-key',
  'nan-value',
  'inf-query',
  'nan-unseen-key',
];

export interface NonFiniteResult {
  readonly id: string;
  readonly backend: string;
  readonly seed: number;
  readonly status: 'pass' | 'fail' | 'skip';
  readonly problems: readonly string[];
  readonly message: string;
}

const D = 32;
const H = 2;
const TAG: Record<DType, string> = { float32: 'f32', float16: 'f16', bfloat16: 'bf16' };

interface Setup {
  Nq: number;
  Nk: number;
  opts: AttentionOptions;
  /** Where the non-finite value goes. */
  poison: { tensor: 'q' | 'k' | 'v'; row: number; d?: number; value: number };
  backward: boolean;
}

const SETUPS: Record<NonFiniteScenario, Setup> = {
  'nan-key': {
    Nq: 17,
    Nk: 17,
    opts: { windowSize: [2, 0] },
    poison: { tensor: 'k', row: 7, value: NaN },
    backward: true,
  },
  'nan-value': {
    Nq: 17,
    Nk: 17,
    opts: { windowSize: [2, 0] },
    poison: { tensor: 'v', row: 7, d: 5, value: NaN },
    backward: true,
  },
  'inf-query': {
    Nq: 9,
    Nk: 13,
    opts: {},
    poison: { tensor: 'q', row: 4, d: 0, value: Infinity },
    backward: false,
  },
  'nan-unseen-key': {
    Nq: 17,
    Nk: 40,
    opts: { windowSize: [8, 0] },
    poison: { tensor: 'k', row: 3, value: NaN },
    backward: true,
  },
};

export function nonFiniteId(s: NonFiniteScenario, dtype: DType): string {
  return `nonfinite ${s} ${TAG[dtype]}`;
}

/** Run one scenario in one dtype. Never throws. */
export async function runNonFiniteCase(
  backend: AttentionBackend,
  scenario: NonFiniteScenario,
  dtype: DType,
  seed: number = freshSeed(),
  opts: { exact?: boolean } = {},
): Promise<NonFiniteResult> {
  const id = nonFiniteId(scenario, dtype);
  const problems: string[] = [];
  const done = (status: NonFiniteResult['status'], reason?: string): NonFiniteResult => ({
    id,
    backend: backend.name,
    seed,
    status,
    problems,
    message: [
      `nonfinite ${status === 'fail' ? 'FAILED' : status === 'skip' ? 'skipped' : 'passed'}: backend=${backend.name} case="${id}" seed=${seed}${reason ? `: ${reason}` : ''}`,
      ...problems.map((p) => `  FAIL ${p}`),
      ...(status === 'fail'
        ? [`  reproduce: runNonFiniteCase(backend, '${scenario}', '${dtype}', ${seed})`]
        : []),
    ].join('\n'),
  });
  if (!backend.capabilities.dtypes.includes(dtype))
    return done('skip', `${backend.name} does not support ${dtype}`);
  const s = SETUPS[scenario];
  const rng = createRng(caseSeedOf(seed, id));
  const normal = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal());
  const host = { q: normal(s.Nq * H * D), k: normal(s.Nk * H * D), v: normal(s.Nk * H * D) };
  const p = s.poison;
  for (let h = 0; h < H; h++) {
    const o = (p.row * H + h) * D;
    if (p.d === undefined) host[p.tensor].fill(p.value, o, o + D);
    else host[p.tensor][o + p.d] = p.value;
  }
  const q = fromFloat32(host.q, [1, s.Nq, H, D], dtype);
  const k = fromFloat32(host.k, [1, s.Nk, H, D], dtype);
  const v = fromFloat32(host.v, [1, s.Nk, H, D], dtype);
  const dout = fromFloat32(normal(s.Nq * H * D), [1, s.Nq, H, D], dtype);
  const o = resolveOptions(s.opts, D);
  const ranges = Array.from({ length: s.Nq }, (_, i) => keyRange(i, s.Nq, s.Nk, o));
  const sees = (i: number, j: number): boolean => ranges[i]![0] <= j && j < ranges[i]![1];
  const j0 = p.row;

  /** Check a (1, N, H, D) output against an expected "non-finite?" predicate per (row, d). */
  const expectPattern = (
    name: string,
    data: Float32Array,
    rows: number,
    nonFinite: (row: number, d: number) => boolean | null,
    exact: 'nan' | 'non-finite',
  ): void => {
    let bad = 0;
    for (let r = 0; r < rows; r++) {
      for (let h = 0; h < H; h++) {
        for (let d = 0; d < D; d++) {
          const x = data[(r * H + h) * D + d]!;
          const want = nonFinite(r, d);
          if (want === null) continue;
          const ok = want
            ? exact === 'nan'
              ? Number.isNaN(x)
              : !Number.isFinite(x)
            : Number.isFinite(x);
          if (!ok && bad++ < 3) {
            problems.push(
              `${name}[row ${r}, h ${h}, d ${d}] = ${x}: expected ${want ? (exact === 'nan' ? 'NaN' : 'non-finite') : 'a finite number'}`,
            );
          }
        }
      }
    }
    if (bad > 3) problems.push(`${name}: ... ${bad - 3} more`);
  };

  let fwd;
  try {
    fwd = await backend.forward(q, k, v, s.opts);
  } catch (e) {
    problems.push(`forward threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    return done('fail');
  }
  const out = toFloat32(fwd.out);
  // An element a tiled kernel may reach through 0 * NaN (see the header): unchecked, or finite with `exact`.
  const TILED = opts.exact ? false : null;
  const UNCHECKED = null;
  type Want = boolean | null; // true: NaN (non-finite), false: finite, null: not checked
  if (scenario === 'nan-value') {
    expectPattern(
      'out',
      out,
      s.Nq,
      (i, d) => (d !== p.d ? false : sees(i, j0) ? true : TILED),
      'nan',
    );
  } else if (scenario === 'inf-query') {
    expectPattern('out', out, s.Nq, (i) => i === j0, 'non-finite');
  } else {
    expectPattern('out', out, s.Nq, (i) => scenario === 'nan-key' && sees(i, j0), 'nan');
  }
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < s.Nq; i++) {
      const x = fwd.lse[h * s.Nq + i]!;
      const want: Want =
        scenario === 'nan-key'
          ? sees(i, j0)
          : scenario === 'inf-query' && i === j0
            ? UNCHECKED
            : false;
      const ok = want === null || (want ? Number.isNaN(x) : Number.isFinite(x));
      if (!ok)
        problems.push(`lse[h ${h}, row ${i}] = ${x}: expected ${want ? 'NaN' : 'a finite number'}`);
    }
  }
  if (!s.backward) return done(problems.length ? 'fail' : 'pass');

  let g;
  try {
    g = await backend.backward(dout, q, k, v, fwd.out, fwd.lse, s.opts);
  } catch (e) {
    problems.push(`backward threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    return done('fail');
  }
  const dq = toFloat32(g.dq);
  const dk = toFloat32(g.dk);
  const dv = toFloat32(g.dv);
  if (scenario === 'nan-unseen-key') {
    // dq may meet the NaN key through a masked dS = 0 times k (checked only with `exact`); dk and dv
    // never read k.
    expectPattern('dq', dq, s.Nq, () => TILED, 'nan');
    expectPattern('dk', dk, s.Nk, () => false, 'nan');
    expectPattern('dv', dv, s.Nk, () => false, 'nan');
    for (const [name, t] of [
      ['dk', dk],
      ['dv', dv],
    ] as const) {
      for (let x = j0 * H * D; x < (j0 + 1) * H * D; x++) {
        if (t[x] !== 0) {
          problems.push(`${name} of key ${j0} (seen by no query) = ${t[x]}: expected exactly 0`);
          break;
        }
      }
    }
  } else {
    // Exact arithmetic: dS is NaN on the rows that see j0, so dq of those rows and dk of every key they
    // see are NaN (and dv too for a NaN key, whose P row is NaN). dv does not read v: finite for nan-value.
    const keyHit = (j: number): boolean => ranges.some((_, i) => sees(i, j0) && sees(i, j));
    expectPattern('dq', dq, s.Nq, (i) => (sees(i, j0) ? true : TILED), 'nan');
    expectPattern('dk', dk, s.Nk, (j) => (keyHit(j) ? true : TILED), 'nan');
    expectPattern(
      'dv',
      dv,
      s.Nk,
      (j) => (scenario === 'nan-value' ? false : keyHit(j) ? true : TILED),
      'nan',
    );
  }
  return done(problems.length ? 'fail' : 'pass');
}

/** Every scenario in every dtype the backend supports. */
export async function runNonFiniteChecks(
  backend: AttentionBackend,
  opts: { seed?: number; exact?: boolean } = {},
): Promise<NonFiniteResult[]> {
  const seed = (opts.seed ?? freshSeed()) >>> 0;
  const out: NonFiniteResult[] = [];
  for (const dt of backend.capabilities.dtypes) {
    for (const s of NON_FINITE_SCENARIOS)
      out.push(await runNonFiniteCase(backend, s, dt, seed, { exact: opts.exact }));
  }
  return out;
}

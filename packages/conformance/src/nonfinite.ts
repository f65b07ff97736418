/**
 * NaN / Infinity propagation (core's device-attention contract: NaN or Infinity in q, k or v
 * propagates to out and the gradients as it would in exact arithmetic; nothing is checked per element).
 * Each scenario puts one non-finite value into otherwise N(0, 1) inputs and checks the exact pattern of
 * non-finite outputs that follows from the mask (core's keyRange, bottom-right aligned):
 *
 *  - `nan-key`:  k row j0 all NaN, window [2, 0]: out and lse rows that see j0 are all NaN, every other
 *                row finite (a NaN key masked out of a row must not leak into it, e.g. through a
 *                `-inf + NaN` mask bias); dq rows that see j0 NaN, others finite; dk, dv rows of keys
 *                sharing a query row with j0 NaN (dS of that row is NaN), others finite.
 *  - `nan-value`: v[j0, d0] = NaN: out[i, d0] NaN exactly for rows that see j0, every other element and
 *                every lse finite; dv is finite everywhere (it does not depend on v); dq rows seeing j0
 *                NaN (dP = dO . v is).
 *  - `inf-query`: q[i0, 0] = +Infinity: row i0 of out non-finite, every other row finite (forward only:
 *                the scores of that row are +-Infinity, whose softmax exact arithmetic leaves undefined).
 *  - `nan-unseen-key`: k row j0 NaN where no query sees key j0 (window [8, 0], Nq 17 < Nk 40): nothing
 *                is non-finite, and dk, dv of key j0 are exactly 0.
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
  const N = p.tensor === 'q' ? s.Nq : s.Nk;
  void N;
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
    nonFinite: (row: number, d: number) => boolean,
    exact: 'nan' | 'non-finite',
  ): void => {
    let bad = 0;
    for (let r = 0; r < rows; r++) {
      for (let h = 0; h < H; h++) {
        for (let d = 0; d < D; d++) {
          const x = data[(r * H + h) * D + d]!;
          const want = nonFinite(r, d);
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
  const rowPoisoned = (i: number): boolean =>
    scenario === 'inf-query' ? i === j0 : scenario === 'nan-unseen-key' ? false : sees(i, j0);
  if (scenario === 'nan-value') {
    expectPattern('out', out, s.Nq, (i, d) => sees(i, j0) && d === p.d, 'nan');
  } else {
    expectPattern(
      'out',
      out,
      s.Nq,
      (i) => rowPoisoned(i),
      scenario === 'inf-query' ? 'non-finite' : 'nan',
    );
  }
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < s.Nq; i++) {
      const x = fwd.lse[h * s.Nq + i]!;
      const poisoned = scenario === 'nan-key' && sees(i, j0);
      const ok = poisoned
        ? Number.isNaN(x)
        : scenario === 'inf-query' && i === j0
          ? true
          : Number.isFinite(x);
      if (!ok)
        problems.push(
          `lse[h ${h}, row ${i}] = ${x}: expected ${poisoned ? 'NaN' : 'a finite number'}`,
        );
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
    expectPattern('dq', dq, s.Nq, () => false, 'nan');
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
    // Rows whose dS is NaN: those that see j0. A key gets NaN in dk (and, for nan-key, dv) when a
    // poisoned row sees it.
    const keyHit = (j: number): boolean => ranges.some((_, i) => sees(i, j0) && sees(i, j));
    expectPattern('dq', dq, s.Nq, (i) => sees(i, j0), 'nan');
    expectPattern('dk', dk, s.Nk, (j) => keyHit(j), 'nan');
    expectPattern('dv', dv, s.Nk, (j) => scenario === 'nan-key' && keyHit(j), 'nan');
  }
  return done(problems.length ? 'fail' : 'pass');
}

/** Every scenario in every dtype the backend supports. */
export async function runNonFiniteChecks(
  backend: AttentionBackend,
  opts: { seed?: number } = {},
): Promise<NonFiniteResult[]> {
  const seed = (opts.seed ?? freshSeed()) >>> 0;
  const out: NonFiniteResult[] = [];
  for (const dt of backend.capabilities.dtypes) {
    for (const s of NON_FINITE_SCENARIOS) out.push(await runNonFiniteCase(backend, s, dt, seed));
  }
  return out;
}

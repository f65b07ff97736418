/**
 * The conformance cases, as data. A case fixes the problem (dtype, shapes, mask, logit range); the
 * inputs themselves are drawn fresh from a seed at run time (see inputs.ts).
 *
 * Three named matrices:
 *  - `full`:  every head dim x every dtype x every scenario (shapes, masks, GQA/MQA, huge logits,
 *             fully masked rows). For real GPUs; the float64 oracle makes it take minutes on a CPU.
 *  - `ci`:    a reduced list that still touches every feature at least once (each head dim, each
 *             dtype, causal, window, GQA, MQA, N = 1, N = 1000, ragged lengths, Nq > Nk, Nq < Nk,
 *             huge logits, fully masked rows, keys no query sees). Small enough for CPU backends and
 *             software GPU adapters on a 2-core CI machine.
 *  - `smoke`: three quick cases to see that a backend is wired up at all.
 */
import type { AttentionOptions, DType } from '@flashattn/core';

/** Head dims every backend is asked about (flash-attn's supported set up to 256). */
export const HEAD_DIMS = [32, 64, 80, 96, 128, 256] as const;
/** Sequence lengths: 1, tile-ragged (17, 127, 129), a tile multiple (128), and a long one (1000). */
export const SEQLENS = [1, 17, 127, 128, 129, 1000] as const;

/**
 * How the logits S = scale * q.k are distributed.
 *  - 'normal':      q, k ~ N(0, 1), so S ~ N(0, 1) with the default scale 1/sqrt(D).
 *  - 'huge-spread': q and k scaled so that std(S) = 1e4: exp(S) overflows float32 (and float64)
 *                   unless the row max is subtracted; P is nearly one-hot.
 *  - 'huge-pos' / 'huge-neg': every score of a row sits near +1e4 / -1e4 with an O(1) spread, so the
 *                   softmax is not degenerate but a naive exp(S) overflows to Inf / underflows to 0.
 */
export type LogitProfile = 'normal' | 'huge-spread' | 'huge-pos' | 'huge-neg';

/** The magnitude used by the huge-logit profiles. */
export const HUGE_LOGIT = 1e4;

/** Features a case exercises; `ci` must cover each at least once (checked by a test). */
export type CaseFeature =
  | 'causal'
  | 'window'
  | 'gqa'
  | 'mqa'
  | 'batch>1'
  | 'n=1'
  | 'n=1000'
  | 'ragged'
  | 'nq>nk'
  | 'nq<nk'
  | 'huge-logits'
  | 'fully-masked-rows'
  | 'unseen-keys';

export interface ConformanceCase {
  /** Unique, human-readable, stable: used in test names, filters and failure messages. */
  readonly id: string;
  readonly dtype: DType;
  readonly batch: number;
  readonly nheadsQ: number;
  readonly nheadsK: number;
  readonly seqlenQ: number;
  readonly seqlenK: number;
  readonly headDim: number;
  readonly causal: boolean;
  /** flash-attn sliding window [left, right], -1 = unbounded; absent = no window. */
  readonly windowSize?: readonly [number, number];
  readonly logits: LogitProfile;
  /** Derived from the fields above (see `featuresOf`). */
  readonly features: readonly CaseFeature[];
}

/** The case's attention options, exactly as passed to backend.forward / backward. */
export function optionsOf(c: ConformanceCase): AttentionOptions {
  const opts: { causal?: boolean; windowSize?: readonly [number, number] } = {};
  if (c.causal) opts.causal = true;
  if (c.windowSize) opts.windowSize = c.windowSize;
  return opts;
}

/** Everything of a case but its id and features: what a matrix is written in. */
export type CaseSpec = Omit<ConformanceCase, 'id' | 'features'>;

const DTYPE_TAG: Record<DType, string> = { float32: 'f32', float16: 'f16', bfloat16: 'bf16' };

/** Stable id, e.g. `f16 d64 b1 h4/1 q129 k127 causal` or `bf16 d32 b1 h2/2 q129 k17 win4,2 huge-pos`. */
export function caseId(s: CaseSpec): string {
  const parts = [
    DTYPE_TAG[s.dtype],
    `d${s.headDim}`,
    `b${s.batch}`,
    `h${s.nheadsQ}/${s.nheadsK}`,
    `q${s.seqlenQ}`,
    `k${s.seqlenK}`,
  ];
  if (s.causal) parts.push('causal');
  if (s.windowSize) parts.push(`win${s.windowSize[0]},${s.windowSize[1]}`);
  if (s.logits !== 'normal') parts.push(s.logits);
  return parts.join(' ');
}

/** Which keys row i may see, mirroring core's keyRange (bottom-right aligned diagonal). */
function visibleRange(s: CaseSpec, i: number): [number, number] {
  const left = s.windowSize ? s.windowSize[0] : -1;
  const right = s.causal ? 0 : s.windowSize ? s.windowSize[1] : -1;
  const diag = i + s.seqlenK - s.seqlenQ;
  const lo = left < 0 ? 0 : Math.max(0, diag - left);
  const hi = right < 0 ? s.seqlenK : Math.min(s.seqlenK, diag + right + 1);
  return [lo, Math.max(lo, hi)];
}

/** The features a spec exercises, computed from its fields (never hand-written). */
export function featuresOf(s: CaseSpec): CaseFeature[] {
  const f: CaseFeature[] = [];
  if (s.causal) f.push('causal');
  if (s.windowSize) f.push('window');
  if (s.nheadsK === 1 && s.nheadsQ > 1) f.push('mqa');
  else if (s.nheadsK < s.nheadsQ) f.push('gqa');
  if (s.batch > 1) f.push('batch>1');
  if (s.seqlenQ === 1 || s.seqlenK === 1) f.push('n=1');
  if (s.seqlenQ >= 1000 || s.seqlenK >= 1000) f.push('n=1000');
  const ragged = (n: number): boolean => n > 1 && n % 16 !== 0;
  if (ragged(s.seqlenQ) || ragged(s.seqlenK)) f.push('ragged');
  if (s.seqlenQ > s.seqlenK) f.push('nq>nk');
  if (s.seqlenQ < s.seqlenK) f.push('nq<nk');
  if (s.logits !== 'normal') f.push('huge-logits');
  let masked = false;
  const seen = new Uint8Array(s.seqlenK);
  for (let i = 0; i < s.seqlenQ; i++) {
    const [lo, hi] = visibleRange(s, i);
    if (lo >= hi) masked = true;
    seen.fill(1, lo, hi);
  }
  if (masked) f.push('fully-masked-rows');
  if (seen.includes(0)) f.push('unseen-keys');
  return f;
}

/** Turn a spec into a case (id and features filled in). */
export function makeCase(s: CaseSpec): ConformanceCase {
  return { ...s, id: caseId(s), features: featuresOf(s) };
}

/**
 * A scenario is a case without dtype and head dim; `full` crosses every scenario with every dtype
 * and head dim.
 */
type Scenario = Omit<CaseSpec, 'dtype' | 'headDim'>;

const base = { batch: 1, nheadsQ: 2, nheadsK: 2, causal: false, logits: 'normal' } as const;

/** Each scenario names what it is there for. */
const SCENARIOS: readonly Scenario[] = [
  { ...base, seqlenQ: 1, seqlenK: 1 }, // N = 1: P = 1, out = v
  { ...base, seqlenQ: 17, seqlenK: 17, causal: true }, // ragged, causal
  { ...base, nheadsQ: 4, nheadsK: 2, seqlenQ: 127, seqlenK: 129 }, // GQA, Nq < Nk, ragged
  { ...base, nheadsQ: 4, nheadsK: 1, seqlenQ: 128, seqlenK: 128, causal: true }, // MQA, tile multiple
  { ...base, batch: 2, seqlenQ: 129, seqlenK: 127, causal: true }, // Nq > Nk causal: 2 fully masked rows
  { ...base, nheadsQ: 1, nheadsK: 1, seqlenQ: 1000, seqlenK: 1000, causal: true }, // long, causal
  { ...base, nheadsQ: 1, nheadsK: 1, seqlenQ: 1000, seqlenK: 17 }, // Nq >> Nk
  { ...base, nheadsQ: 1, nheadsK: 1, seqlenQ: 17, seqlenK: 1000, causal: true }, // Nq << Nk causal
  { ...base, nheadsQ: 1, nheadsK: 1, seqlenQ: 1, seqlenK: 1000, causal: true }, // one query, many keys
  { ...base, nheadsQ: 1, nheadsK: 1, seqlenQ: 1000, seqlenK: 1, causal: true }, // 999 fully masked rows
  { ...base, seqlenQ: 129, seqlenK: 17, windowSize: [4, 2] }, // window empties the top rows
  { ...base, seqlenQ: 17, seqlenK: 129, windowSize: [8, 0] }, // keys 0..103 seen by no query
  { ...base, batch: 2, seqlenQ: 128, seqlenK: 128, windowSize: [32, 32] }, // symmetric local window
  { ...base, seqlenQ: 127, seqlenK: 127, logits: 'huge-spread' }, // std(S) = 1e4
  { ...base, seqlenQ: 128, seqlenK: 128, causal: true, logits: 'huge-pos' }, // S ~ +1e4
  { ...base, seqlenQ: 129, seqlenK: 129, logits: 'huge-neg' }, // S ~ -1e4
];

const DTYPES_ALL: readonly DType[] = ['float32', 'float16', 'bfloat16'];

function fullMatrix(): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  for (const dtype of DTYPES_ALL) {
    for (const headDim of HEAD_DIMS) {
      for (const sc of SCENARIOS) out.push(makeCase({ ...sc, dtype, headDim }));
    }
  }
  return out;
}

/**
 * `ci`: one case per line, each feature at least once, sizes kept small where the feature allows.
 * The big ones (N = 1000) use D = 32 or 64 and one head: the float64 oracle costs O(Nq Nk D) per head.
 */
function ciMatrix(): ConformanceCase[] {
  const c = (
    s: Partial<CaseSpec> & Pick<CaseSpec, 'dtype' | 'headDim' | 'seqlenQ' | 'seqlenK'>,
  ): ConformanceCase => makeCase({ ...base, ...s });
  return [
    c({ dtype: 'float32', headDim: 32, seqlenQ: 1, seqlenK: 1, nheadsQ: 1, nheadsK: 1 }),
    c({ dtype: 'float32', headDim: 64, seqlenQ: 17, seqlenK: 17, causal: true }),
    c({ dtype: 'float16', headDim: 80, seqlenQ: 127, seqlenK: 129, nheadsQ: 4, nheadsK: 2 }),
    c({
      dtype: 'bfloat16',
      headDim: 96,
      seqlenQ: 129,
      seqlenK: 127,
      nheadsQ: 3,
      nheadsK: 1,
      causal: true,
    }),
    c({
      dtype: 'float32',
      headDim: 128,
      seqlenQ: 128,
      seqlenK: 128,
      batch: 2,
      nheadsQ: 1,
      nheadsK: 1,
      windowSize: [16, 8],
    }),
    c({
      dtype: 'float16',
      headDim: 256,
      seqlenQ: 17,
      seqlenK: 128,
      nheadsQ: 1,
      nheadsK: 1,
      causal: true,
    }),
    c({ dtype: 'float32', headDim: 256, seqlenQ: 129, seqlenK: 17, nheadsQ: 1, nheadsK: 1 }),
    c({
      dtype: 'float32',
      headDim: 32,
      seqlenQ: 1000,
      seqlenK: 1000,
      nheadsQ: 1,
      nheadsK: 1,
      causal: true,
    }),
    c({ dtype: 'float16', headDim: 64, seqlenQ: 1000, seqlenK: 17, nheadsQ: 1, nheadsK: 1 }),
    c({
      dtype: 'bfloat16',
      headDim: 32,
      seqlenQ: 17,
      seqlenK: 1000,
      nheadsQ: 1,
      nheadsK: 1,
      causal: true,
    }),
    c({
      dtype: 'float32',
      headDim: 64,
      seqlenQ: 1000,
      seqlenK: 1,
      nheadsQ: 1,
      nheadsK: 1,
      causal: true,
    }),
    c({ dtype: 'bfloat16', headDim: 128, seqlenQ: 1, seqlenK: 1000, nheadsQ: 2, nheadsK: 1 }),
    c({ dtype: 'float32', headDim: 64, seqlenQ: 129, seqlenK: 17, windowSize: [4, 2] }),
    c({ dtype: 'bfloat16', headDim: 64, seqlenQ: 17, seqlenK: 129, windowSize: [8, 0] }),
    c({ dtype: 'float32', headDim: 64, seqlenQ: 127, seqlenK: 127, logits: 'huge-spread' }),
    c({
      dtype: 'float16',
      headDim: 64,
      seqlenQ: 128,
      seqlenK: 128,
      causal: true,
      logits: 'huge-pos',
    }),
    c({ dtype: 'float32', headDim: 32, seqlenQ: 129, seqlenK: 129, logits: 'huge-neg' }),
  ];
}

function smokeMatrix(): ConformanceCase[] {
  return [
    makeCase({ ...base, dtype: 'float32', headDim: 64, seqlenQ: 17, seqlenK: 17, causal: true }),
    makeCase({
      ...base,
      dtype: 'float16',
      headDim: 32,
      seqlenQ: 129,
      seqlenK: 17,
      nheadsQ: 2,
      nheadsK: 1,
      windowSize: [4, 2],
    }),
    makeCase({
      ...base,
      dtype: 'float32',
      headDim: 128,
      seqlenQ: 1,
      seqlenK: 128,
      nheadsQ: 1,
      nheadsK: 1,
    }),
  ];
}

export type MatrixName = 'full' | 'ci' | 'smoke';
export const MATRIX_NAMES: readonly MatrixName[] = ['full', 'ci', 'smoke'];

/** The named case lists. Frozen: a backend package must never edit them, only filter. */
export const CASE_MATRICES: Readonly<Record<MatrixName, readonly ConformanceCase[]>> =
  Object.freeze({
    full: Object.freeze(fullMatrix()),
    ci: Object.freeze(ciMatrix()),
    smoke: Object.freeze(smokeMatrix()),
  });

/** The cases of a named matrix. Throws a clear error for an unknown name. */
export function casesFor(matrix: MatrixName): readonly ConformanceCase[] {
  const cases = (CASE_MATRICES as Record<string, readonly ConformanceCase[]>)[matrix];
  if (!cases) {
    throw new RangeError(
      `Unknown conformance matrix '${String(matrix)}': expected one of ${MATRIX_NAMES.join(', ')}`,
    );
  }
  return cases;
}

/**
 * A user filter: a substring of the case id, a RegExp tested against the id, or a predicate.
 */
export type CaseFilter = string | RegExp | ((c: ConformanceCase) => boolean);

export function matchesFilter(c: ConformanceCase, filter: CaseFilter | undefined): boolean {
  if (filter === undefined) return true;
  if (typeof filter === 'string') return c.id.includes(filter);
  if (filter instanceof RegExp) return filter.test(c.id);
  return filter(c);
}

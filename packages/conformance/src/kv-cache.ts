/**
 * Conformance of the inference contracts, part 1: attention with a KV cache (decode, prefill into a
 * cache, paged and contiguous caches, appends, split-KV) and the lse combine, on any device backend
 * implementing core's `DeviceMemory<Buf> & DeviceKvCacheAttention<Buf>` (contracts/kv-cache.ts).
 *
 * Each scenario uploads fresh random inputs (seeded from the run seed and the scenario id), calls the
 * backend, downloads everything and checks:
 *  - out and lse of every sequence against core's float64 oracle (kvCacheReference64) under the one
 *    tolerance rule of `@flashattn/core/testing` (err <= 2 err_naive + floor), with the naive baseline
 *    run on the same sequence's keys in the backend's compute dtype; rows that see no key exactly
 *    (out = 0, lse = -Infinity), and sequences with no key at all too;
 *  - the whole cache buffers exactly: appended rows equal k_new / v_new bit for bit, every other
 *    element (other sequences' rows, unused pages, spare pages, rows past each length) unchanged;
 *  - nothing written outside the out view (NaN guard elements around it).
 * `runKvCacheRejections` checks that bad input is an AttentionInputError naming the argument and that a
 * rejected call writes nothing (cache and out unchanged).
 */
import {
  AttentionInputError,
  bfloat16BitsToFloat32,
  cacheRowOffset,
  combineByLse64,
  contiguousView,
  createRng,
  float16BitsToFloat32,
  fromFloat32,
  kvCacheReference64,
  packedQkvViews,
  attentionReference64,
  tensor,
  validateKvCacheArgs,
  type AttentionOptions,
  type DType,
  type DeviceKvCacheAttention,
  type DeviceMemory,
  type HostArray,
  type KvCacheAttentionArgs,
  type KvCacheOptions,
  type Rng,
  type StridedView,
} from '@flashattn/core';
import {
  allowedError,
  maskInfo,
  maxDeviation,
  naiveAttention,
  toleranceFor,
  type ComputeDType,
} from '@flashattn/core/testing';
import { caseSeedOf } from './inputs.js';

export type KvCacheDevice<Buf> = DeviceMemory<Buf> &
  DeviceKvCacheAttention<Buf> & { readonly name?: string };

// ---------------------------------------------------------------------------------------------------
// Shared by the inference scenarios (kv-cache.ts, varlen.ts)
// ---------------------------------------------------------------------------------------------------

/** One output of one sequence under the rule. */
export interface InferenceCheck {
  output: 'out' | 'lse' | 'dq' | 'dk' | 'dv' | 'combined out' | 'combined lse';
  /** Sequence index (-1 for a whole-problem check). */
  seq: number;
  err: number;
  errNaive: number;
  allowed: number;
  pass: boolean;
}

export interface InferenceResult {
  id: string;
  backend: string;
  seed: number;
  pass: boolean;
  checks: InferenceCheck[];
  /** Exact-check failures and exceptions, one line each. */
  problems: string[];
  /** Report text: the worst check per output, then the problems, with the seed to reproduce. */
  message: string;
}

/** err <= 2 err_naive + floor for one output (elements where skip(x) is true left out). */
export function ruleCheck(
  output: InferenceCheck['output'],
  seq: number,
  actual: ArrayLike<number>,
  oracle: ArrayLike<number>,
  naive: ArrayLike<number>,
  abs: number,
  recompute: number,
  c: ComputeDType,
  skip: (x: number) => boolean = () => false,
): InferenceCheck {
  let maxOracle = 0;
  for (let x = 0; x < oracle.length; x++)
    if (!skip(x)) maxOracle = Math.max(maxOracle, Math.abs(oracle[x]!));
  const tol = toleranceFor(c, { output: maxOracle, abs, recompute });
  const err = maxDeviation(actual, oracle, skip).maxErr;
  const errNaive = maxDeviation(naive, oracle, skip).maxErr;
  const allowed = allowedError(tol, errNaive);
  return { output, seq, err, errNaive, allowed, pass: err <= allowed };
}

/** Summarise checks and problems into a result (message names the seed and the scenario). */
export function inferenceResult(
  id: string,
  backend: string,
  seed: number,
  checks: InferenceCheck[],
  problems: string[],
): InferenceResult {
  const pass = problems.length === 0 && checks.every((c) => c.pass);
  const worst = new Map<string, InferenceCheck>();
  for (const c of checks) {
    const w = worst.get(c.output);
    const r = (x: InferenceCheck) => (x.pass ? x.err / (x.allowed || 1) : Infinity);
    if (!w || r(c) > r(w)) worst.set(c.output, c);
  }
  const f = (x: number) => (x === 0 || !Number.isFinite(x) ? String(x) : x.toExponential(2));
  const lines = [
    `inference conformance ${pass ? 'passed' : 'FAILED'}: backend=${backend} scenario="${id}" seed=${seed}`,
    ...[...worst.values()].map(
      (c) =>
        `  ${c.pass ? 'ok  ' : 'FAIL'} ${c.output} (sequence ${c.seq}) err ${f(c.err)} ${c.pass ? '<=' : '>'} allowed ${f(c.allowed)} (naive ${f(c.errNaive)})`,
    ),
    ...problems.map((p) => `  FAIL ${p}`),
  ];
  if (!pass) lines.push(`  reproduce: FLASHATTN_CONFORMANCE_SEED=${seed} vitest run -t '${id}'`);
  return { id, backend, seed, pass, checks, problems, message: lines.join('\n') };
}

/** Values of raw device data (16-bit dtypes as bits). */
export function decodeRaw(dtype: DType, raw: HostArray): Float32Array {
  if (dtype === 'float32') return Float32Array.from(raw as Float32Array);
  const conv = dtype === 'float16' ? float16BitsToFloat32 : bfloat16BitsToFloat32;
  const out = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = conv(raw[i]!);
  return out;
}

/** Random values representable in dtype: raw data to upload and the decoded values. */
export function randomData(
  rng: Rng,
  n: number,
  dtype: DType,
): { raw: Float32Array | Uint16Array; values: Float32Array } {
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) f[i] = rng.normal();
  const t = fromFloat32(f, [n], dtype);
  return { raw: t.data, values: decodeRaw(dtype, t.data) };
}

/** Raw NaN data of a dtype. */
export function nanRaw(dtype: DType | 'float32', n: number): Float32Array | Uint16Array {
  if (dtype === 'float32') return new Float32Array(n).fill(NaN);
  return new Uint16Array(n).fill(dtype === 'float16' ? 0x7e00 : 0x7fc0);
}

/** Guard elements before and after an output region: a write outside it shows up as a non-NaN. */
export const GUARD = 5;

/** A device buffer of GUARD + n + GUARD elements holding raw data at [GUARD, GUARD + n). */
export async function placeGuarded<Buf>(
  dev: DeviceMemory<Buf>,
  dtype: DType | 'float32',
  data: Float32Array | Uint16Array,
): Promise<{ root: Buf; buf: Buf }> {
  const n = data.length;
  const host = nanRaw(dtype, n + 2 * GUARD);
  host.set(data, GUARD);
  const root = dev.alloc(n + 2 * GUARD, dtype);
  await dev.upload(root, host);
  return { root, buf: dev.view(root, GUARD, n) };
}

/** Problems if a guarded buffer's guard elements changed. */
export async function guardProblems<Buf>(
  dev: DeviceMemory<Buf>,
  root: Buf,
  dtype: DType | 'float32',
  name: string,
): Promise<string[]> {
  const v = decodeRaw(dtype === 'float32' ? 'float32' : dtype, await dev.download(root));
  const bad: number[] = [];
  for (let i = 0; i < v.length; i++)
    if ((i < GUARD || i >= v.length - GUARD) && !Number.isNaN(v[i]!)) bad.push(i);
  return bad.length
    ? [
        `${name}: wrote ${bad.length} element(s) outside its view (buffer elements ${bad.slice(0, 4).join(', ')})`,
      ]
    : [];
}

/** (B, N, H, D) values of a view, gathered contiguously. */
export function gatherView(
  values: ArrayLike<number>,
  v: Omit<StridedView<unknown>, 'buffer'>,
): Float32Array {
  const [B, N, H, D] = v.shape;
  const out = new Float32Array(B * N * H * D);
  for (let b = 0, o = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++, o += D) {
        const at = v.offset + b * v.strides[0] + n * v.strides[1] + h * v.strides[2];
        for (let d = 0; d < D; d++) out[o + d] = values[at + d]!;
      }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// KV-cache scenarios
// ---------------------------------------------------------------------------------------------------

export interface KvCacheScenario {
  id: string;
  B: number;
  /** New queries per sequence (1 = decode). */
  Nq: number;
  Hq: number;
  Hk: number;
  D: number;
  /** Keys already cached per sequence (B entries). */
  lens: readonly number[];
  /** Keys appended per sequence before attending (0 = none). */
  Nnew: number;
  /** Page size of a paged cache; 0 = contiguous cache. */
  pageSize: number;
  /** Contiguous cache: sequences use a permutation of the cache rows (cache_batch_idx). */
  batchIdx?: boolean;
  opts: KvCacheOptions;
  dtype: DType;
}

const kv = (
  s: Omit<KvCacheScenario, 'id' | 'dtype'> & { dtype?: DType },
  name: string,
): KvCacheScenario => ({
  dtype: 'float32',
  ...s,
  id: `kv ${name} B${s.B} q${s.Nq} h${s.Hq}/${s.Hk} d${s.D} lens[${s.lens.join(',')}] +${s.Nnew} ${s.pageSize ? `page${s.pageSize}` : 'contiguous'}${s.batchIdx ? ' batch-idx' : ''}${s.opts.causal ? ' causal' : ''}${s.opts.windowSize ? ` window${s.opts.windowSize.join(':')}` : ''}${s.opts.numSplits !== undefined ? ` splits${s.opts.numSplits}` : ''}${s.opts.softmaxScale !== undefined ? ` scale${s.opts.softmaxScale}` : ''}`,
});

/**
 * The scenarios: decode (Nq = 1) with and without an append, ragged lengths including 0 and 1, pages
 * not full, paged and contiguous caches, cache_batch_idx, GQA and MQA, windows, causal chunked prefill
 * (Nq > 1 appended), split-KV forced to 1, 3 and more splits than keys, and the heuristic.
 */
export const KV_CACHE_SCENARIOS: readonly KvCacheScenario[] = [
  kv(
    {
      B: 4,
      Nq: 1,
      Hq: 4,
      Hk: 4,
      D: 16,
      lens: [0, 1, 5, 37],
      Nnew: 1,
      pageSize: 0,
      opts: { causal: true },
    },
    'decode-append',
  ),
  kv(
    {
      B: 4,
      Nq: 1,
      Hq: 8,
      Hk: 2,
      D: 32,
      lens: [1, 0, 17, 70],
      Nnew: 1,
      pageSize: 16,
      opts: { causal: true },
    },
    'decode-paged-gqa',
  ),
  kv(
    { B: 3, Nq: 1, Hq: 4, Hk: 1, D: 8, lens: [3, 9, 0], Nnew: 0, pageSize: 4, opts: {} },
    'decode-paged-mqa-no-append',
  ),
  kv(
    {
      B: 3,
      Nq: 1,
      Hq: 4,
      Hk: 2,
      D: 16,
      lens: [2, 40, 11],
      Nnew: 1,
      pageSize: 0,
      batchIdx: true,
      opts: { causal: true },
    },
    'decode-batch-idx',
  ),
  kv(
    {
      B: 2,
      Nq: 1,
      Hq: 4,
      Hk: 2,
      D: 16,
      lens: [50, 7],
      Nnew: 1,
      pageSize: 8,
      opts: { causal: true, windowSize: [9, 0] },
    },
    'decode-window',
  ),
  kv(
    {
      B: 2,
      Nq: 2,
      Hq: 4,
      Hk: 2,
      D: 16,
      lens: [11, 4],
      Nnew: 2,
      pageSize: 4,
      opts: { causal: true, softmaxScale: 0.6 },
    },
    'softmax-scale',
  ),
  // every sequence the same length in a plain contiguous cache: a backend may run this as ordinary
  // strided attention over the cache view (the CPU does); decode and chunked prefill
  kv(
    {
      B: 2,
      Nq: 1,
      Hq: 4,
      Hk: 2,
      D: 16,
      lens: [9, 9],
      Nnew: 1,
      pageSize: 0,
      opts: { causal: true },
    },
    'uniform-decode',
  ),
  kv(
    {
      B: 2,
      Nq: 16,
      Hq: 2,
      Hk: 1,
      D: 16,
      lens: [6, 6],
      Nnew: 16,
      pageSize: 0,
      opts: { causal: true },
    },
    'uniform-prefill-chunk',
  ),
  kv(
    {
      B: 3,
      Nq: 5,
      Hq: 2,
      Hk: 2,
      D: 16,
      lens: [0, 3, 20],
      Nnew: 5,
      pageSize: 0,
      opts: { causal: true },
    },
    'prefill-chunk-append',
  ),
  kv(
    {
      B: 2,
      Nq: 6,
      Hq: 4,
      Hk: 2,
      D: 8,
      lens: [2, 13],
      Nnew: 6,
      pageSize: 4,
      opts: { causal: true, windowSize: [4, 0] },
    },
    'prefill-chunk-paged-window',
  ),
  kv(
    { B: 2, Nq: 4, Hq: 2, Hk: 1, D: 8, lens: [1, 9], Nnew: 0, pageSize: 0, opts: { causal: true } },
    'queries-beyond-cache',
  ),
  kv(
    {
      B: 2,
      Nq: 1,
      Hq: 4,
      Hk: 2,
      D: 32,
      lens: [200, 63],
      Nnew: 1,
      pageSize: 32,
      opts: { causal: true, numSplits: 3 },
    },
    'split3-paged',
  ),
  kv(
    {
      B: 3,
      Nq: 2,
      Hq: 2,
      Hk: 2,
      D: 16,
      lens: [0, 2, 30],
      Nnew: 1,
      pageSize: 0,
      opts: { numSplits: 8 },
    },
    'split-more-than-keys',
  ),
  kv(
    {
      B: 1,
      Nq: 1,
      Hq: 2,
      Hk: 1,
      D: 64,
      lens: [700],
      Nnew: 1,
      pageSize: 64,
      opts: { causal: true, numSplits: 0 },
    },
    'split-heuristic-long',
  ),
  kv(
    {
      B: 2,
      Nq: 1,
      Hq: 2,
      Hk: 2,
      D: 16,
      lens: [5, 12],
      Nnew: 1,
      pageSize: 4,
      opts: { causal: true, numSplits: 1 },
      dtype: 'float16',
    },
    'decode-paged-f16',
  ),
  kv(
    {
      B: 2,
      Nq: 1,
      Hq: 4,
      Hk: 2,
      D: 16,
      lens: [5, 33],
      Nnew: 1,
      pageSize: 0,
      opts: { causal: true },
      dtype: 'bfloat16',
    },
    'decode-bf16',
  ),
];

/** Fresh inputs of a scenario, host side: the raw data and the views (same geometry on host and device). */
function kvInputs(s: KvCacheScenario, caseSeed: number) {
  const rng = createRng(caseSeed);
  const { B, Nq, Hq, Hk, D, Nnew, pageSize: ps, dtype } = s;
  const maxLen = Math.max(0, ...s.lens) + Nnew;
  const packed = Nnew > 0 && Nq === Nnew && Hq === Hk; // q, k_new, v_new in one (B, Nq, 3, H, D) buffer
  const qkvLen = packed ? B * Nq * 3 * Hq * D : B * Nq * Hq * D;
  const qkv = randomData(rng, qkvLen, dtype);
  const qv = packed ? packedQkvViews(null, B, Nq, Hq, D) : null;
  const qView = qv ? qv.q : contiguousView(null, [B, Nq, Hq, D]);
  const newData =
    !packed && Nnew > 0
      ? [randomData(rng, B * Nnew * Hk * D, dtype), randomData(rng, B * Nnew * Hk * D, dtype)]
      : null;
  let cacheShape: [number, number, number, number];
  let blockTable: Int32Array | undefined;
  let cacheBatchIdx: Int32Array | undefined;
  const shuffle = (n: number) => {
    const a = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  };
  if (ps > 0) {
    const maxBlocks = Math.ceil(maxLen / ps) + 1; // one spare entry per sequence (set to -1: never read)
    const numBlocks = B * maxBlocks + 2; // two spare pages
    cacheShape = [numBlocks, ps, Hk, D];
    const order = shuffle(numBlocks);
    blockTable = new Int32Array(B * maxBlocks);
    for (let b = 0; b < B; b++)
      for (let j = 0; j < maxBlocks; j++) {
        const used = j < Math.ceil((s.lens[b]! + Nnew) / ps);
        blockTable[b * maxBlocks + j] = used ? order[b * maxBlocks + j]! : -1;
      }
  } else {
    const rows = B + (s.batchIdx ? 1 : 0);
    cacheShape = [rows, maxLen + 3, Hk, D];
    if (s.batchIdx) cacheBatchIdx = Int32Array.from(shuffle(rows).slice(0, B));
  }
  const cacheLen = cacheShape.reduce((a, b) => a * b, 1);
  const kc = randomData(rng, cacheLen, dtype);
  const vc = randomData(rng, cacheLen, dtype);
  return {
    packed,
    qkv,
    qView,
    kNewView: qv ? qv.k : newData ? contiguousView(null, [B, Nnew, Hk, D]) : undefined,
    vNewView: qv ? qv.v : newData ? contiguousView(null, [B, Nnew, Hk, D]) : undefined,
    newData,
    cacheShape,
    kc,
    vc,
    blockTable,
    cacheBatchIdx,
    cacheSeqlens: Int32Array.from(s.lens),
  };
}

type Inputs = ReturnType<typeof kvInputs>;

/** Host args over decoded values (for the oracle), same views as the device's. */
function hostArgs(s: KvCacheScenario, x: Inputs): KvCacheAttentionArgs<Float32Array> {
  const { B, Nq, Hq, D } = s;
  const withBuf = <T>(v: Omit<StridedView<unknown>, 'buffer'>, buffer: T): StridedView<T> => ({
    ...v,
    buffer,
  });
  return {
    q: withBuf(x.qView, x.qkv.values),
    kCache: contiguousView(x.kc.values, x.cacheShape),
    vCache: contiguousView(x.vc.values, x.cacheShape),
    cacheSeqlens: x.cacheSeqlens,
    ...(x.kNewView
      ? {
          kNew: withBuf(x.kNewView, x.packed ? x.qkv.values : x.newData![0]!.values),
          vNew: withBuf(x.vNewView!, x.packed ? x.qkv.values : x.newData![1]!.values),
        }
      : {}),
    ...(x.blockTable ? { blockTable: x.blockTable } : {}),
    ...(x.cacheBatchIdx ? { cacheBatchIdx: x.cacheBatchIdx } : {}),
    out: contiguousView(new Float32Array(B * Nq * Hq * D), [B, Nq, Hq, D]),
  };
}

/** Upload a scenario's inputs to the device (caches at a view offset, out and lse guarded, NaN). */
async function deviceArgs<Buf>(dev: KvCacheDevice<Buf>, s: KvCacheScenario, x: Inputs) {
  const { B, Nq, Hq, D, dtype } = s;
  const up = async (raw: Float32Array | Uint16Array) => {
    const b = dev.alloc(raw.length, dtype);
    await dev.upload(b, raw);
    return b;
  };
  const qkv = await up(x.qkv.raw);
  // The caches sit behind 3 leading elements of their buffer (a view offset the backend must honour).
  const cacheView = (buf: Buf): StridedView<Buf> => ({
    ...contiguousView(buf, x.cacheShape),
    offset: 3,
  });
  const kRoot = await up(concatRaw(dtype, x.kc.raw));
  const vRoot = await up(concatRaw(dtype, x.vc.raw));
  const newBufs = x.newData ? [await up(x.newData[0]!.raw), await up(x.newData[1]!.raw)] : null;
  const out = await placeGuarded(dev, dtype, nanRaw(dtype, B * Nq * Hq * D));
  const lse = await placeGuarded(dev, 'float32', nanRaw('float32', B * Hq * Nq));
  const args: KvCacheAttentionArgs<Buf> = {
    q: { ...x.qView, buffer: qkv },
    kCache: cacheView(kRoot),
    vCache: cacheView(vRoot),
    cacheSeqlens: x.cacheSeqlens.slice(),
    ...(x.kNewView
      ? {
          kNew: { ...x.kNewView, buffer: x.packed ? qkv : newBufs![0]! },
          vNew: { ...x.vNewView!, buffer: x.packed ? qkv : newBufs![1]! },
        }
      : {}),
    ...(x.blockTable ? { blockTable: x.blockTable.slice() } : {}),
    ...(x.cacheBatchIdx ? { cacheBatchIdx: x.cacheBatchIdx.slice() } : {}),
    out: contiguousView(out.buf, [B, Nq, Hq, D]),
    lse: lse.buf,
  };
  return { args, kRoot, vRoot, outRoot: out.root, lseRoot: lse.root };
}

/** Three leading guard values (the cache view's offset) then the cache's raw data. */
function concatRaw(dtype: DType, raw: Float32Array | Uint16Array): Float32Array | Uint16Array {
  const out = nanRaw(dtype, raw.length + 3);
  out.set(raw, 3);
  return out;
}

function attnOpts(o: KvCacheOptions): AttentionOptions {
  const { numSplits: _n, ...rest } = o;
  return rest;
}

/** Run one KV-cache scenario. Never throws for a wrong result or a backend exception. */
export async function runKvCacheScenario<Buf>(
  dev: KvCacheDevice<Buf>,
  s: KvCacheScenario,
  seed: number,
): Promise<InferenceResult> {
  const name = dev.name ?? 'device';
  const caseSeed = caseSeedOf(seed, s.id);
  const checks: InferenceCheck[] = [];
  const problems: string[] = [];
  try {
    const x = kvInputs(s, caseSeed);
    const host = hostArgs(s, x);
    const ref = kvCacheReference64(host, s.opts);
    const d = await deviceArgs(dev, s, x);
    await dev.attentionWithKvCache(d.args, s.opts);
    // The caches: exact, everywhere.
    for (const [nm, root, want] of [
      ['kCache', d.kRoot, ref.kCache],
      ['vCache', d.vRoot, ref.vCache],
    ] as const) {
      const got = decodeRaw(s.dtype, await dev.download(root));
      let bad = 0;
      let first = -1;
      for (let i = 0; i < want.length; i++) {
        if (!Object.is(got[i + 3], want[i])) {
          bad++;
          if (first < 0) first = i;
        }
      }
      if (bad > 0)
        problems.push(
          `${nm}: ${bad} element(s) differ from the expected cache (appended rows exact, all else untouched); first at element ${first}`,
        );
      if (!Number.isNaN(got[0]!) || !Number.isNaN(got[1]!) || !Number.isNaN(got[2]!))
        problems.push(`${nm}: wrote before the cache view's offset`);
    }
    problems.push(
      ...(await guardProblems(dev, d.outRoot, s.dtype, 'out')),
      ...(await guardProblems(dev, d.lseRoot, 'float32', 'lse')),
    );
    const outAll = decodeRaw(s.dtype, await dev.download(d.outRoot)).subarray(GUARD, -GUARD);
    const lseAll = decodeRaw('float32', await dev.download(d.lseRoot)).subarray(GUARD, -GUARD);
    const c = dev.kvCacheCapabilities.computeDType(s.dtype);
    const p = validateKvCacheArgs(host, s.opts, (b) => b.length, {
      pageSizeMultiple: 1,
      maxHeadDim: Infinity,
    });
    const { B, Nq, Hq, Hk, D } = s;
    const o = attnOpts(s.opts);
    for (let b = 0; b < B; b++) {
      const Lk = ref.seqlensK[b]!;
      const out = outAll.subarray(b * Nq * Hq * D, (b + 1) * Nq * Hq * D);
      const lse = lseAll.subarray(b * Hq * Nq, (b + 1) * Hq * Nq);
      const refOut = ref.out.subarray(b * Nq * Hq * D, (b + 1) * Nq * Hq * D);
      const refLse = ref.lse.subarray(b * Hq * Nq, (b + 1) * Hq * Nq);
      const mask = maskInfo(Nq, Math.max(Lk, 1), D, o);
      const rowMasked = (i: number) => Lk === 0 || mask.maskedRows[i] === 1;
      // Exact: rows that see no key.
      for (let i = 0; i < Nq; i++) {
        if (!rowMasked(i)) continue;
        for (let h = 0; h < Hq; h++) {
          if (lse[h * Nq + i] !== -Infinity)
            problems.push(
              `sequence ${b} row ${i} head ${h} sees no key: lse must be -Infinity, got ${lse[h * Nq + i]}`,
            );
          const oo = (i * Hq + h) * D;
          if (out.subarray(oo, oo + D).some((y) => y !== 0))
            problems.push(`sequence ${b} row ${i} head ${h} sees no key: out must be exactly 0`);
        }
      }
      if (Lk === 0) continue;
      // The rule, against the naive attention over this sequence's keys (gathered from the oracle's cache).
      const kb = new Float32Array(Lk * Hk * D);
      const vb = new Float32Array(Lk * Hk * D);
      for (let j = 0; j < Lk; j++)
        for (let hk = 0; hk < Hk; hk++) {
          const ka = cacheRowOffset(host.kCache, p, host.blockTable, b, j, hk);
          for (let dd = 0; dd < D; dd++) {
            kb[(j * Hk + hk) * D + dd] = ref.kCache[ka + dd]!;
            vb[(j * Hk + hk) * D + dd] = ref.vCache[ka + dd]!;
          }
        }
      const qb = gatherView(host.q.buffer, host.q).subarray(b * Nq * Hq * D, (b + 1) * Nq * Hq * D);
      const n = naiveAttention(
        tensor(qb, [1, Nq, Hq, D]),
        tensor(kb, [1, Lk, Hk, D]),
        tensor(vb, [1, Lk, Hk, D]),
        o,
        c,
      );
      const outSkip = (e: number) => rowMasked(Math.floor(e / (Hq * D)));
      const lseSkip = (e: number) => rowMasked(e % Nq);
      checks.push(
        ruleCheck(
          'out',
          b,
          out,
          refOut,
          n.forward.out,
          n.forward.outAbs,
          n.forward.outRescore,
          c,
          outSkip,
        ),
        ruleCheck(
          'lse',
          b,
          lse,
          refLse,
          n.forward.lse,
          n.forward.lseAbs,
          n.forward.lseRescore,
          c,
          lseSkip,
        ),
      );
    }
  } catch (e) {
    problems.push(
      `attentionWithKvCache threw ${(e as Error)?.name}: ${(e as Error)?.message ?? String(e)}`,
    );
  }
  return inferenceResult(s.id, name, seed, checks, problems);
}

// ---------------------------------------------------------------------------------------------------
// The combine on its own
// ---------------------------------------------------------------------------------------------------

export interface CombineScenario {
  id: string;
  B: number;
  Nq: number;
  Hq: number;
  D: number;
  Nk: number;
  /** Number of disjoint key ranges (some may be empty). */
  S: number;
}

export const COMBINE_SCENARIOS: readonly CombineScenario[] = [
  { id: 'combine S2 B2 q3 h2 d16 k40', B: 2, Nq: 3, Hq: 2, D: 16, Nk: 40, S: 2 },
  { id: 'combine S5 (empty ranges) B1 q1 h4 d32 k9', B: 1, Nq: 1, Hq: 4, D: 32, Nk: 9, S: 5 },
];

/**
 * Split the keys of a random float32 attention problem into S contiguous ranges at random cut points
 * (empty ranges allowed), compute each range's attention with the float64 oracle, round the partials
 * to float32, and check the backend's attentionCombine against the oracle over all keys (rule, float32).
 */
export async function runCombineScenario<Buf>(
  dev: KvCacheDevice<Buf>,
  s: CombineScenario,
  seed: number,
): Promise<InferenceResult> {
  const name = dev.name ?? 'device';
  const checks: InferenceCheck[] = [];
  const problems: string[] = [];
  try {
    const rng = createRng(caseSeedOf(seed, s.id));
    const { B, Nq, Hq, D, Nk, S } = s;
    const q = randomData(rng, B * Nq * Hq * D, 'float32').values;
    const k = randomData(rng, B * Nk * Hq * D, 'float32').values;
    const v = randomData(rng, B * Nk * Hq * D, 'float32').values;
    const cuts = [
      0,
      ...Array.from({ length: S - 1 }, () => rng.int(Nk + 1)).sort((a, b) => a - b),
      Nk,
    ];
    const n = B * Nq * Hq * D;
    const nl = B * Hq * Nq;
    const outP = new Float32Array(S * n);
    const lseP = new Float32Array(S * nl).fill(-Infinity);
    const slice = (x: Float32Array, b: number, j0: number, j1: number) =>
      x.slice((b * Nk + j0) * Hq * D, (b * Nk + j1) * Hq * D);
    for (let si = 0; si < S; si++) {
      const [j0, j1] = [cuts[si]!, cuts[si + 1]!];
      if (j1 === j0) continue;
      for (let b = 0; b < B; b++) {
        const r = attentionReference64(
          tensor(q.slice(b * Nq * Hq * D, (b + 1) * Nq * Hq * D), [1, Nq, Hq, D]),
          tensor(slice(k, b, j0, j1), [1, j1 - j0, Hq, D]),
          tensor(slice(v, b, j0, j1), [1, j1 - j0, Hq, D]),
        );
        outP.set(r.out, si * n + b * Nq * Hq * D);
        lseP.set(r.lse, si * nl + b * Hq * Nq);
      }
    }
    const T = (x: Float32Array, N: number) => tensor(x, [B, N, Hq, D]);
    const whole = attentionReference64(T(q, Nq), T(k, Nk), T(v, Nk));
    // The oracle of the combine itself, from the same float32 partials (what an exact combine returns).
    const exact = combineByLse64(outP, lseP, S, B, Nq, Hq, D);
    const naive = naiveAttention(T(q, Nq), T(k, Nk), T(v, Nk), {}, 'float32');
    const upload = async (x: Float32Array) => {
      const buf = dev.alloc(x.length, 'float32');
      await dev.upload(buf, x);
      return buf;
    };
    const out = await placeGuarded(dev, 'float32', nanRaw('float32', n));
    const lse = await placeGuarded(dev, 'float32', nanRaw('float32', nl));
    await dev.attentionCombine({
      outPartial: await upload(outP),
      lsePartial: await upload(lseP),
      numSplits: S,
      out: contiguousView(out.buf, [B, Nq, Hq, D]),
      lse: lse.buf,
    });
    problems.push(
      ...(await guardProblems(dev, out.root, 'float32', 'out')),
      ...(await guardProblems(dev, lse.root, 'float32', 'lse')),
    );
    const gotOut = (await dev.download(out.buf)) as Float32Array;
    const gotLse = (await dev.download(lse.buf)) as Float32Array;
    // Against attention over all keys: the partials' float32 rounding plus the combine, under the rule.
    checks.push(
      ruleCheck(
        'combined out',
        -1,
        gotOut,
        whole.out,
        naive.forward.out,
        naive.forward.outAbs,
        naive.forward.outRescore,
        'float32',
      ),
      ruleCheck(
        'combined lse',
        -1,
        gotLse,
        whole.lse,
        naive.forward.lse,
        naive.forward.lseAbs,
        naive.forward.lseRescore,
        'float32',
      ),
    );
    // And the combine alone: within a few float32 roundings of combining the same partials exactly.
    const dev2 = Math.max(
      maxDeviation(gotOut, exact.out).maxErr,
      maxDeviation(gotLse, exact.lse).maxErr,
    );
    const scale = Math.max(...Array.from(exact.out, Math.abs), ...Array.from(exact.lse, Math.abs));
    const bound = 2 * (S + 2) * 2 ** -24 * scale; // (S + 2) roundings (weights, sum, log), factor 2 as the rule
    if (!(dev2 <= bound))
      problems.push(`combine of the same partials is off the exact combine by ${dev2} > ${bound}`);
  } catch (e) {
    problems.push(
      `attentionCombine threw ${(e as Error)?.name}: ${(e as Error)?.message ?? String(e)}`,
    );
  }
  return inferenceResult(s.id, name, seed, checks, problems);
}

// ---------------------------------------------------------------------------------------------------
// Rejections: typed errors naming the argument, nothing written
// ---------------------------------------------------------------------------------------------------

/**
 * Bad KV-cache calls on a valid paged scenario with an append: each must throw AttentionInputError
 * naming the argument and leave the cache and out untouched.
 */
export async function runKvCacheRejections<Buf>(
  dev: KvCacheDevice<Buf>,
  seed: number,
): Promise<InferenceResult> {
  const name = dev.name ?? 'device';
  const problems: string[] = [];
  const ps = dev.kvCacheCapabilities.pageSizeMultiple;
  const s = kv(
    {
      B: 2,
      Nq: 1,
      Hq: 2,
      Hk: 2,
      D: 8,
      lens: [ps + 1, 2],
      Nnew: 1,
      pageSize: ps,
      opts: { causal: true },
    },
    'rejections',
  );
  const x = kvInputs(s, caseSeedOf(seed, s.id));
  const maxBlocks = x.blockTable!.length / s.B;
  const bad: Array<[string, (a: KvCacheAttentionArgs<Buf>) => KvCacheAttentionArgs<Buf>, string]> =
    [
      [
        'block table entry out of range',
        (a) => ({ ...a, blockTable: with1(a.blockTable!, maxBlocks * 0 + 1, x.cacheShape[0]) }),
        'blockTable[0, 1]',
      ],
      [
        'negative block table entry',
        (a) => ({ ...a, blockTable: with1(a.blockTable!, maxBlocks, -1) }),
        'blockTable[1, 0]',
      ],
      [
        'cache length above capacity',
        (a) => ({ ...a, cacheSeqlens: Int32Array.from([maxBlocks * ps, 2]) }),
        'cacheSeqlens[0]',
      ],
      [
        'negative cache length',
        (a) => ({ ...a, cacheSeqlens: Int32Array.from([1, -1]) }),
        'cacheSeqlens[1]',
      ],
      ['k_new without v_new', (a) => ({ ...a, vNew: undefined }), 'vNew'],
      [
        'cache batch index with a paged cache',
        (a) => ({ ...a, cacheBatchIdx: Int32Array.from([0, 1]) }),
        'cacheBatchIdx',
      ],
      [
        'k_new head count',
        (a) => ({ ...a, kNew: { ...a.kNew!, shape: [2, 1, 1, 8] } }),
        'kNew.shape',
      ],
    ];
  if (ps > 1)
    bad.push([
      'unsupported page size',
      (a) => ({
        ...a,
        kCache: { ...a.kCache, shape: [a.kCache.shape[0] * 2, ps / 2, 2, 8] },
        vCache: { ...a.vCache, shape: [a.vCache.shape[0] * 2, ps / 2, 2, 8] },
      }),
      'kCache.shape[1] (page_size)',
    ]);
  for (const [what, mutate, arg] of bad) {
    try {
      const d = await deviceArgs(dev, s, x);
      const before = [await dev.download(d.kRoot), await dev.download(d.vRoot)];
      let threw: unknown = null;
      try {
        await dev.attentionWithKvCache(mutate(d.args), s.opts);
      } catch (e) {
        threw = e;
      }
      if (!(threw instanceof AttentionInputError)) {
        problems.push(
          `${what}: expected AttentionInputError naming ${arg}, got ${threw === null ? 'no error' : String(threw)}`,
        );
      } else if (threw.argument !== arg) {
        problems.push(`${what}: the error names '${threw.argument}', expected '${arg}'`);
      }
      const after = [await dev.download(d.kRoot), await dev.download(d.vRoot)];
      for (let c = 0; c < 2; c++) {
        if (!before[c]!.every((y, i) => Object.is(y, after[c]![i])))
          problems.push(`${what}: the rejected call wrote into the ${c ? 'v' : 'k'} cache`);
      }
      const out = decodeRaw(s.dtype, await dev.download(d.outRoot));
      if (!out.every((y) => Number.isNaN(y))) problems.push(`${what}: the rejected call wrote out`);
    } catch (e) {
      problems.push(`${what}: setup failed: ${String(e)}`);
    }
  }
  return inferenceResult('kv rejections', name, seed, [], problems);
}

function with1(a: Int32Array, i: number, v: number): Int32Array {
  const c = a.slice();
  c[i] = v;
  return c;
}

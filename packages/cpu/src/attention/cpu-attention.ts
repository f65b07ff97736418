/**
 * FlashAttention-2 on the CPU over strided views (core's DeviceAttention contract for CpuOps): q, k, v
 * are read in place (e.g. from the packed (B, T, 3, H, D) qkv buffer) and out, lse, dq, dk, dv written
 * in place, with no split or merge copies.
 *
 * Two paths, same semantics:
 *   - wasm SIMD (flash-simd.ts): float32 buffers that all live in the ops' wasm memory. Work units of
 *     (batch, head, query block) in the forward and (batch, kv head, key block) + (batch, head, query
 *     block) in the backward, shared by every thread of the pool, so B = 1 uses every core.
 *   - scalar: core's Algorithm 1 and 2 kernels (the reference and fallback): float64 buffers (the
 *     gradient checks' exact twin), buffers outside the wasm memory, or CpuOps({ simd: false }). The
 *     forward splits the (batch, query head) pairs and the backward the (batch, kv head) groups over
 *     the pool's threads.
 * Every unit or pair is computed whole by one thread, so results do not depend on the thread count
 * (exact resume relies on this). Buffers that are not in shared memory run on this thread only.
 */
import {
  AttentionInputError,
  BackendOutOfMemoryError,
  checkStridedView,
  attentionReference,
  attentionReferenceBackward,
  DEFAULT_BLOCK_SIZE_K,
  DEFAULT_BLOCK_SIZE_Q,
  describe,
  deviceAttentionShape,
  flashBackwardKernel,
  flashForwardKernel,
  keyRange,
  resolveOptions,
  tensor,
  validateOptions,
  type AttentionOptions,
  type AttentionShape,
  type BackendCapabilities,
  type BackwardKernelIO,
  type DeviceAttentionBackwardArgs,
  type DeviceAttentionForwardArgs,
  type ForwardKernelIO,
  type KernelLayout,
  type StridedView,
} from '@flashattn/core';
import type { CpuBuffer, CpuFloatBuffer } from '../ops/buffers.js';
import type { ThreadPool } from '../ops/thread-pool.js';
import type { WasmArena } from '../ops/wasm-arena.js';
import type { CpuAddon } from './flash-native.js';
import {
  flashScratchFloats,
  flashUnits,
  type ByteLayout,
  type FlashJob,
  type FlashSimdExports,
} from './flash-simd.js';

export const CPU_ATTENTION_CAPABILITIES: BackendCapabilities = {
  dtypes: ['float32'],
  maxHeadDim: 1024,
  computeDType: (d) => d,
};

type Job = { op: 'forward'; args: ForwardJob } | { op: 'backward'; args: BackwardJob };

interface ForwardJob {
  q: CpuFloatBuffer;
  k: CpuFloatBuffer;
  v: CpuFloatBuffer;
  io: ForwardKernelIO;
  shape: AttentionShape;
  opts: AttentionOptions | undefined;
}

interface BackwardJob {
  dO: CpuFloatBuffer;
  q: CpuFloatBuffer;
  k: CpuFloatBuffer;
  v: CpuFloatBuffer;
  O: CpuFloatBuffer;
  L: CpuFloatBuffer;
  io: BackwardKernelIO;
  shape: AttentionShape;
  opts: AttentionOptions | undefined;
}

/** Run one job on this thread (the worker runs the same function on its share). */
function runJob(j: Job): void {
  const precision = j.args.q instanceof Float64Array ? 'float64' : 'float32';
  const o = resolveOptions(j.args.opts, j.args.shape.headDim);
  if (j.op === 'forward') {
    const a = j.args;
    flashForwardKernel(
      a.q,
      a.k,
      a.v,
      a.shape,
      o,
      DEFAULT_BLOCK_SIZE_Q,
      DEFAULT_BLOCK_SIZE_K,
      precision,
      a.io,
    );
  } else {
    const a = j.args;
    flashBackwardKernel(
      a.dO,
      a.q,
      a.k,
      a.v,
      a.O,
      a.L,
      a.shape,
      o,
      DEFAULT_BLOCK_SIZE_Q,
      DEFAULT_BLOCK_SIZE_K,
      precision,
      a.io,
    );
  }
}

const shared = (x: ArrayBufferView): boolean => x.buffer instanceof SharedArrayBuffer;

function layout(v: StridedView<CpuBuffer>): KernelLayout {
  return { offset: v.offset, sB: v.strides[0], sN: v.strides[1], sH: v.strides[2] };
}

/** A float buffer of the attention call: float32 or float64 like q, every view inside its buffer. */
function viewBuffer(
  name: string,
  v: StridedView<CpuBuffer>,
  dtype: 'float32' | 'float64',
): CpuFloatBuffer {
  if (v === null || typeof v !== 'object') {
    throw new AttentionInputError(
      name,
      'a StridedView { buffer, offset, shape, strides }',
      describe(v),
    );
  }
  const b = v.buffer;
  const ok = dtype === 'float32' ? b instanceof Float32Array : b instanceof Float64Array;
  if (!ok)
    throw new AttentionInputError(`${name}.buffer`, `a ${dtype} CPU buffer like q's`, describe(b));
  checkStridedView(name, v, b.length);
  return b as CpuFloatBuffer;
}

function lseBuffer(
  lse: CpuBuffer,
  B: number,
  Hq: number,
  Nq: number,
  dtype: 'float32' | 'float64',
): CpuFloatBuffer {
  const ok = dtype === 'float32' ? lse instanceof Float32Array : lse instanceof Float64Array;
  if (!ok)
    throw new AttentionInputError(
      'lse',
      `a ${dtype} CPU buffer of B * Hq * Nq = ${B * Hq * Nq} elements`,
      describe(lse),
    );
  if (lse.length !== B * Hq * Nq)
    throw new AttentionInputError('lse.length', `B * Hq * Nq = ${B * Hq * Nq}`, lse.length);
  return lse as CpuFloatBuffer;
}

function sameShape(name: string, v: StridedView<unknown>, want: readonly number[]): void {
  if (v.shape.some((x, i) => x !== want[i])) {
    throw new AttentionInputError(
      `${name}.shape`,
      `[${want.join(', ')}]`,
      `[${v.shape.join(', ')}]`,
    );
  }
}

function problem(
  q: StridedView<CpuBuffer>,
  k: StridedView<CpuBuffer>,
  v: StridedView<CpuBuffer>,
  opts: AttentionOptions | undefined,
) {
  if (
    q === null ||
    typeof q !== 'object' ||
    !(q.buffer instanceof Float32Array || q.buffer instanceof Float64Array)
  ) {
    throw new AttentionInputError(
      'q.buffer',
      'a float32 CPU buffer (float64 for gradient checks)',
      describe(q?.buffer),
    );
  }
  const dtype = q.buffer instanceof Float64Array ? 'float64' : 'float32';
  const bufs = {
    q: viewBuffer('q', q, dtype),
    k: viewBuffer('k', k, dtype),
    v: viewBuffer('v', v, dtype),
  };
  const s = deviceAttentionShape({ q, k, v });
  validateOptions(opts);
  const shape: AttentionShape = {
    batch: s.B,
    seqlenQ: s.Nq,
    seqlenK: s.Nk,
    nheadsQ: s.Hq,
    nheadsK: s.Hk,
    headDim: s.D,
  };
  return { dtype, bufs, s, shape } as const;
}

/** (B, N, H, D) elements of a strided view, gathered into a contiguous Float32Array. */
function gather(buf: Float32Array, v: StridedView<CpuBuffer>): Float32Array {
  const [B, N, H, D] = v.shape;
  const out = new Float32Array(B * N * H * D);
  for (let b = 0, o = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++, o += D) {
        const at = v.offset + b * v.strides[0] + n * v.strides[1] + h * v.strides[2];
        out.set(buf.subarray(at, at + D), o);
      }
  return out;
}

/** The inverse of gather: contiguous (B, N, H, D) values into a strided view. */
function scatter(buf: CpuFloatBuffer, v: StridedView<CpuBuffer>, src: Float32Array): void {
  const [B, N, H, D] = v.shape;
  for (let b = 0, o = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++, o += D) {
        buf.set(
          src.subarray(o, o + D),
          v.offset + b * v.strides[0] + n * v.strides[1] + h * v.strides[2],
        );
      }
}

/**
 * 'flash': FlashAttention-2 (Algorithms 1 and 2) in place on the strided views, over worker threads.
 * 'standard': the materialised baseline (core's reference: S and P in float64, results rounded to
 * float32), through contiguous copies of the views; float32 only. It exists to compare training with
 * and without FlashAttention, not for speed.
 */
export type CpuAttentionKind = 'flash' | 'standard';

/** The wasm SIMD kernels and the memory they run on (CpuOps passes its arena's). */
export interface CpuAttentionSimd {
  arena: WasmArena;
  exports: FlashSimdExports;
}

/**
 * Tile sizes of the SIMD path (see flash-simd.ts), forward and backward. Swept 2026-12-07 on the 2-core
 * EPYC (Zen 3, L1d 32 KiB, L2 512 KiB), N = 1024, B = 1, H = 8, one thread, FMA variant, both tiles in
 * one process alternating (median CPU time, load 4-6; apps/bench/src/cpu/attention-tiles.ts):
 *   forward, causal, D = 64, against 64 x 64: 48x64 1.00, 60x64 1.01, 96x64 0.95-0.99, 128x64 1.07,
 *     64x32 1.09, 64x128 0.96-0.98, 96x128 0.96, 48x48 1.01, 96x96 0.94-0.96 (time ratios);
 *   96x96 against 64x64 elsewhere: D = 128 causal 0.95, D = 64 full 0.95, N = 4096 causal 0.89,
 *     D = 128 causal on 2 threads 0.93, N = 256 causal 1.03.
 *   backward, 96x96 against 64x64: D = 64 causal 0.94, D = 128 full 1.10: the backward keeps 64 x 64.
 */
export const SIMD_TILES = {
  forward: { Br: 96, Bc: 96 },
  backward: { Br: 64, Bc: 64 },
} as const;

/**
 * Tile sizes of the native AVX2 forward (native/flash_forward_avx2.cc): Br query rows (a multiple of
 * its 6-row register tile), Bc keys (a multiple of its 16-key panels). Swept 2026-12-07 on the 2-core
 * EPYC (Zen 3), B = 1, H = 8, all tiles in one process alternating, medians of 7-11 (time ratios
 * against 48 x 128; the host moves single runs by 5-10%):
 *   N = 1024 causal, one thread, D = 64: 96x64 1.09, 36x128 1.00, 24x128 1.07, 48x256 1.00, 60x128 1.05,
 *     48x192 1.09; D = 128: 96x64 1.00, 36x128 0.96, 24x128 0.98, 48x256 1.02, 48x192 0.94;
 *   N = 1024 full, one thread, D = 64: 96x64 1.07, 24x128 0.99, 48x256 1.08, 60x128 1.13;
 *   N = 4096 causal, two threads, D = 64: 96x64 0.99, 48x256 0.93, 60x128 0.92, 48x192 0.91;
 *   an earlier run against 96 x 64: 48x128 0.87-0.98, 72x96 0.95-1.03, 48x32 1.01-1.09.
 */
export const NATIVE_TILES = { Br: 48, Bc: 128 } as const;

/** The native forward (CpuOps passes the addon when it loaded and the CPU has AVX2 + FMA). */
export interface CpuAttentionNative {
  addon: CpuAddon;
  /** Testing only: 1 = mask off by one, 2 = no rescale of acc (broken variants conformance must reject). */
  variant?: 0 | 1 | 2;
}

/**
 * The path a call took: the native AVX2 forward, wasm SIMD tiles, core's scalar kernels, or the
 * materialised baseline.
 */
export type CpuAttentionPath = 'native' | 'simd' | 'scalar' | 'standard';

export class CpuAttention {
  readonly capabilities = CPU_ATTENTION_CAPABILITIES;
  /** The path of the last forward or backward call (tests and benchmarks check it). */
  lastPath: CpuAttentionPath | null = null;
  /** Arena scratch of the SIMD path: counter, masks, packs and per-thread tiles (grown, never freed). */
  private region: Float32Array | null = null;

  /**
   * `pool`: the ops' thread pool (null: this thread only). `simd`: the wasm kernels and memory (null:
   * core's scalar kernels only).
   */
  constructor(
    private readonly pool: ThreadPool | null,
    private readonly simd: CpuAttentionSimd | null,
    readonly kind: CpuAttentionKind = 'flash',
    /** Both passes' tiles (CpuOpsOptions.attentionTiles, for tuning runs); default SIMD_TILES. */
    private readonly tiles?: { Br: number; Bc: number },
    /** The native AVX2 forward (null: the wasm or scalar forward). */
    private readonly native: CpuAttentionNative | null = null,
  ) {}

  private get threads(): number {
    return this.pool?.threads ?? 1;
  }

  /** [lo, hi) shares of n units over this thread and the workers (one share when memory is not shared). */
  private split(n: number, bufs: ArrayBufferView[]): Array<[number, number]> {
    const parts = bufs.every(shared) ? Math.min(n, this.threads) : 1;
    const per = Math.ceil(n / Math.max(parts, 1));
    const out: Array<[number, number]> = [];
    for (let lo = 0; lo < n; lo += per) out.push([lo, Math.min(n, lo + per)]);
    return out;
  }

  /** Scalar path: share 0 here, shares 1.. on the pool's helpers. */
  private async fanOut(
    shares: Array<[number, number]>,
    make: (lo: number, hi: number) => Job,
  ): Promise<void> {
    const here = (): void => {
      if (shares.length > 0) runJob(make(shares[0]![0], shares[0]![1]));
    };
    if (this.pool === null || shares.length <= 1) {
      here();
      return;
    }
    const jobs = shares.slice(1).map(([lo, hi]) => {
      const j = make(lo, hi);
      return { core: j.op, args: j.args };
    });
    await this.pool.fanOut(jobs, here);
  }

  // ---- the wasm SIMD path ----

  /** Byte layout of a view whose buffer is in the arena, or null. */
  private byteLayout(v: StridedView<CpuBuffer>): ByteLayout | null {
    const at = this.simd!.arena.ptr(v.buffer as Float32Array);
    if (at < 0) return null;
    return { at: at + v.offset * 4, sB: v.strides[0], sN: v.strides[1], sH: v.strides[2] };
  }

  /** A region of at least `bytes` bytes in the arena, or null when the memory cannot grow. */
  private scratch(bytes: number): number | null {
    const floats = Math.ceil(bytes / 4);
    if (this.region === null || this.region.length < floats) {
      const next = this.simd!.arena.allocF32(
        Math.max(floats, Math.ceil((this.region?.length ?? 0) * 1.5)),
      );
      if (next === null) return null;
      this.region = next;
    }
    return this.region.byteOffset;
  }

  /**
   * The common part of a SIMD job: sizes, masks, and the scratch layout; null when the call cannot take
   * the SIMD path (a buffer outside the wasm memory, an empty dimension, no memory left).
   */
  private simdJob(
    s: { B: number; Nq: number; Nk: number; Hq: number; Hk: number; D: number },
    views: {
      q: StridedView<CpuBuffer>;
      k: StridedView<CpuBuffer>;
      v: StridedView<CpuBuffer>;
      out: StridedView<CpuBuffer>;
    },
    lse: CpuFloatBuffer,
    opts: AttentionOptions | undefined,
    packs: Array<'kt' | 'vp' | 'kp' | 'vt' | 'qp' | 'qt' | 'dop' | 'dot' | 'Lp' | 'Dvec'>,
    pass: 'forward' | 'backward',
  ): FlashJob | null {
    if (this.simd === null || this.kind !== 'flash' || !(lse instanceof Float32Array)) return null;
    const { B, Nq, Nk, Hq, Hk, D } = s;
    if (B * Nq * Nk * Hq * D === 0) return null;
    const lseAt = this.simd.arena.ptr(lse);
    const q = this.byteLayout(views.q);
    const k = this.byteLayout(views.k);
    const v = this.byteLayout(views.v);
    const out = this.byteLayout(views.out);
    if (lseAt < 0 || !q || !k || !v || !out) return null;
    const { Br, Bc } = this.tiles ?? SIMD_TILES[pass];
    const Dp = Math.ceil(D / 4) * 4;
    const NqPad = Math.ceil(Nq / Br) * Br;
    const NkPad = Math.ceil(Nk / Bc) * Bc;
    const r16 = (n: number): number => Math.ceil(n / 16) * 16;
    const sizes: Record<string, number> = {
      kt: B * Hk * NkPad * Dp,
      vp: B * Hk * NkPad * Dp,
      kp: B * Hk * NkPad * Dp,
      vt: B * Hk * NkPad * Dp,
      qp: B * Hq * NqPad * Dp,
      qt: B * Hq * NqPad * Dp,
      dop: B * Hq * NqPad * Dp,
      dot: B * Hq * NqPad * Dp,
      Lp: B * Hq * NqPad,
      Dvec: B * Hq * NqPad,
    };
    const scratchBytes = r16(flashScratchFloats(Br, Bc, Dp) * 4);
    const nfInts = 2 * B * Hk * (NkPad / Bc);
    let bytes = 16 + 2 * r16(NqPad * 4) + r16(nfInts * 4) + this.threads * scratchBytes;
    for (const p of packs) bytes += r16(sizes[p]! * 4);
    const base = this.scratch(bytes);
    if (base === null) return null;
    let at = base;
    const take = (n: number): number => {
      const here = at;
      at += r16(n);
      return here;
    };
    const ctr = take(16);
    const loAt = take(NqPad * 4);
    const hiAt = take(NqPad * 4);
    const nf = take(nfInts * 4);
    const where: Record<string, number> = {};
    for (const p of packs) where[p] = take(sizes[p]! * 4);
    const scratch = take(this.threads * scratchBytes);
    // The mask: visible keys [lo, hi) of each query row (core's keyRange), padding rows see none.
    const f = new Int32Array(this.simd.arena.memory.buffer);
    const o = resolveOptions(opts, D);
    for (let i = 0; i < NqPad; i++) {
      const [l, h] = i < Nq ? keyRange(i, Nq, Nk, o) : [0, 0];
      f[loAt / 4 + i] = l;
      f[hiAt / 4 + i] = h;
    }
    return {
      pass: 'fwd',
      ctr,
      units: 0,
      B,
      Nq,
      Nk,
      Hq,
      Hk,
      D,
      Dp,
      Br,
      Bc,
      NqPad,
      NkPad,
      scale: o.softmaxScale,
      lo: loAt,
      hi: hiAt,
      q,
      k,
      v,
      out,
      lse: lseAt,
      kt: where['kt'] ?? 0,
      vp: where['vp'] ?? 0,
      kp: where['kp'] ?? 0,
      vt: where['vt'] ?? 0,
      qp: where['qp'] ?? 0,
      qt: where['qt'] ?? 0,
      dop: where['dop'] ?? 0,
      dot: where['dot'] ?? 0,
      Lp: where['Lp'] ?? 0,
      Dvec: where['Dvec'] ?? 0,
      nf,
      scratch,
      scratchBytes,
    };
  }

  /** Run the phases one after the other, each over every thread (units from a zeroed counter). */
  private async runPhases(job: FlashJob, phases: Array<[FlashJob['pass'], number]>): Promise<void> {
    const i32 = new Int32Array(this.simd!.arena.memory.buffer);
    for (const [pass, units] of phases) {
      const j = { ...job, pass, units };
      Atomics.store(i32, job.ctr / 4, 0);
      if (this.pool === null) flashUnits(this.simd!.exports, this.simd!.arena.memory, j, 0);
      else await this.pool.runFlash(j);
    }
  }

  async forward(a: DeviceAttentionForwardArgs<CpuBuffer>, opts?: AttentionOptions): Promise<void> {
    const { dtype, bufs, s, shape } = problem(a.q, a.k, a.v, opts);
    const out = viewBuffer('out', a.out, dtype);
    sameShape('out', a.out, a.q.shape);
    const lse = lseBuffer(a.lse, s.B, s.Hq, s.Nq, dtype);
    if (this.kind === 'standard') {
      const t = (v: StridedView<CpuBuffer>, name: string) =>
        tensor(gather(this.f32(v.buffer), v), v.shape, 'float32', name);
      this.lastPath = 'standard';
      const r = attentionReference(t(a.q, 'q'), t(a.k, 'k'), t(a.v, 'v'), opts);
      scatter(out, a.out, r.out.data as Float32Array);
      lse.set(r.lse);
      return;
    }
    if (
      this.native !== null &&
      dtype === 'float32' &&
      s.B * s.Nq * s.Nk * s.Hq * s.D > 0 &&
      [bufs.q, bufs.k, bufs.v, out, lse].every(shared)
    ) {
      this.lastPath = 'native';
      await this.nativeForward(a, s, lse as Float32Array, opts);
      return;
    }
    const job = this.simdJob(
      s,
      { q: a.q, k: a.k, v: a.v, out: a.out },
      lse,
      opts,
      ['kt', 'vp'],
      'forward',
    );
    if (job) {
      this.lastPath = 'simd';
      const Tr = job.NqPad / job.Br;
      await this.runPhases(job, [
        ['fwd-pack', s.B * s.Hk],
        ['fwd', s.B * s.Hq * Tr],
      ]);
      return;
    }
    this.lastPath = 'scalar';
    const shares = this.split(s.B * s.Hq, [bufs.q, bufs.k, bufs.v, out, lse]);
    await this.fanOut(shares, (bhLo, bhHi) => ({
      op: 'forward',
      args: {
        ...bufs,
        shape,
        opts,
        io: {
          q: layout(a.q),
          k: layout(a.k),
          v: layout(a.v),
          out,
          outLayout: layout(a.out),
          lse,
          bhLo,
          bhHi,
        },
      },
    }));
  }

  /**
   * The native AVX2 forward on the pool's thread count (native threads, off the event loop). Only
   * buffers in shared memory come here: the addon reads them while JS runs on, and a SharedArrayBuffer
   * cannot be detached under it.
   */
  private async nativeForward(
    a: DeviceAttentionForwardArgs<CpuBuffer>,
    s: { B: number; Nq: number; Nk: number; Hq: number; Hk: number; D: number },
    lse: Float32Array,
    opts: AttentionOptions | undefined,
  ): Promise<void> {
    const o = resolveOptions(opts, s.D);
    const lo = new Int32Array(s.Nq);
    const hi = new Int32Array(s.Nq);
    for (let i = 0; i < s.Nq; i++) [lo[i], hi[i]] = keyRange(i, s.Nq, s.Nk, o);
    const lay = (v: StridedView<CpuBuffer>) =>
      [v.offset, v.strides[0], v.strides[1], v.strides[2]] as const;
    try {
      await this.native!.addon.forward({
        ...s,
        scale: o.softmaxScale,
        // attentionTiles (tuning runs) where the native kernel takes them: Bc a multiple of 16
        ...(this.tiles && this.tiles.Bc % 16 === 0 ? this.tiles : NATIVE_TILES),
        threads: this.threads,
        variant: this.native!.variant ?? 0,
        q: a.q.buffer as Float32Array,
        qLayout: lay(a.q),
        k: a.k.buffer as Float32Array,
        kLayout: lay(a.k),
        v: a.v.buffer as Float32Array,
        vLayout: lay(a.v),
        out: a.out.buffer as Float32Array,
        outLayout: lay(a.out),
        lse,
        lo,
        hi,
      });
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOMEM')
        throw new BackendOutOfMemoryError('cpu', `attention forward: ${(e as Error).message}`, {
          cause: e,
        });
      throw e;
    }
  }

  async backward(
    a: DeviceAttentionBackwardArgs<CpuBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    const { dtype, bufs, s, shape } = problem(a.q, a.k, a.v, opts);
    const dO = viewBuffer('dout', a.dout, dtype);
    const O = viewBuffer('out', a.out, dtype);
    const dq = viewBuffer('dq', a.dq, dtype);
    const dk = viewBuffer('dk', a.dk, dtype);
    const dv = viewBuffer('dv', a.dv, dtype);
    for (const [n, v] of [
      ['dout', a.dout],
      ['out', a.out],
      ['dq', a.dq],
    ] as const)
      sameShape(n, v, a.q.shape);
    sameShape('dk', a.dk, a.k.shape);
    sameShape('dv', a.dv, a.k.shape);
    const L = lseBuffer(a.lse, s.B, s.Hq, s.Nq, dtype);
    if (this.kind === 'standard') {
      const t = (v: StridedView<CpuBuffer>, name: string) =>
        tensor(gather(this.f32(v.buffer), v), v.shape, 'float32', name);
      this.lastPath = 'standard';
      const g = attentionReferenceBackward(
        t(a.dout, 'dout'),
        t(a.q, 'q'),
        t(a.k, 'k'),
        t(a.v, 'v'),
        t(a.out, 'out'),
        L as Float32Array,
        opts,
      );
      scatter(dq, a.dq, g.dq.data as Float32Array);
      scatter(dk, a.dk, g.dk.data as Float32Array);
      scatter(dv, a.dv, g.dv.data as Float32Array);
      return;
    }
    const job = this.simdJob(
      s,
      { q: a.q, k: a.k, v: a.v, out: a.out },
      L,
      opts,
      ['kt', 'vp', 'kp', 'vt', 'qp', 'qt', 'dop', 'dot', 'Lp', 'Dvec'],
      'backward',
    );
    const grads = job && [a.dout, a.dq, a.dk, a.dv].map((x) => this.byteLayout(x));
    if (job && grads && grads.every((x) => x !== null)) {
      this.lastPath = 'simd';
      const [dout, dqL, dkL, dvL] = grads as ByteLayout[];
      const Tr = job.NqPad / job.Br;
      const Tc = job.NkPad / job.Bc;
      await this.runPhases({ ...job, dout, dq: dqL, dk: dkL, dv: dvL }, [
        ['bwd-pack', s.B * s.Hq + s.B * s.Hk],
        ['bwd', s.B * s.Hk * Tc + s.B * s.Hq * Tr],
      ]);
      return;
    }
    this.lastPath = 'scalar';
    const shares = this.split(s.B * s.Hk, [dO, bufs.q, bufs.k, bufs.v, O, L, dq, dk, dv]);
    await this.fanOut(shares, (bhkLo, bhkHi) => ({
      op: 'backward',
      args: {
        dO,
        ...bufs,
        O,
        L,
        shape,
        opts,
        io: {
          dO: layout(a.dout),
          q: layout(a.q),
          k: layout(a.k),
          v: layout(a.v),
          O: layout(a.out),
          dq,
          dqLayout: layout(a.dq),
          dk,
          dkLayout: layout(a.dk),
          dv,
          dvLayout: layout(a.dv),
          bhkLo,
          bhkHi,
        },
      },
    }));
  }

  private f32(b: CpuBuffer): Float32Array {
    if (!(b instanceof Float32Array)) {
      throw new AttentionInputError(
        'q.buffer',
        "float32 buffers for the 'standard' CPU attention",
        describe(b),
      );
    }
    return b;
  }

  /** Nothing to release: the pool and the arena belong to the ops. */
  async dispose(): Promise<void> {
    this.region = null;
  }
}

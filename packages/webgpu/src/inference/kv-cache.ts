/**
 * core's `DeviceKvCacheAttention<WebGPUBuffer>`: attention with a KV cache (contiguous or paged, with
 * cache_batch_idx, k_new / v_new appended in place before attending), split-KV (flash-decoding) and
 * the lse combine on its own. One call records, in one command buffer:
 *   kv-cache-append (k, then v: each cache is its own writable binding, so k and v may share a
 *   GPUBuffer), kv-cache-attention (one workgroup per (split, query-row block, kv head, sequence)),
 *   combine-by-lse when S > 1, and the 16-bit conversion of out when out is not float32.
 * Every argument is validated first (core's validateKvCacheArgs plus the dtype and binding rules
 * here), so a rejected call writes nothing. The metadata (cache_seqlens, the block table or
 * cache_batch_idx) is uploaded with the call as one small int32 buffer.
 */
import {
  AttentionInputError,
  checkStridedView,
  kvSplitHeuristic,
  resolveOptions,
  validateCombineArgs,
  validateKvCacheArgs,
  type AttentionCombineArgs,
  type DType,
  type DeviceKvCacheAttention,
  type KvCacheAttentionArgs,
  type KvCacheCapabilities,
  type KvCacheOptions,
  type StridedView,
} from '@flashattn/core';
import type { ConvertKind } from '../kernels/convert-to-view.wgsl.js';
import { COMBINE_WG, combineByLseProgram } from '../kernels/inference/combine-by-lse.wgsl.js';
import {
  kvCacheAttentionProgram,
  kvRowsPerGroup,
  kvStageChunk,
} from '../kernels/inference/kv-cache-attention.wgsl.js';
import { APPEND_WG, kvCacheAppendProgram } from '../kernels/inference/kv-cache-append.wgsl.js';
import { dtypeCode, type StorageKind } from '../kernels/storage.wgsl.js';
import type { WebGPUBuffer, WebGPUMemory } from '../memory.js';
import type { Runtime } from '../runtime.js';

type View4 = readonly [number, number, number, number];

export const KV_DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];

/** Most splits per call (flash-attn's bound). */
export const KV_MAX_SPLITS = 128;

export interface InferenceDeps {
  rt: Runtime;
  mem: WebGPUMemory;
  kindOf: (dtype: DType) => StorageKind;
  maxHeadDim: number;
  /**
   * Workgroups the device runs at once, for the split heuristic. WebGPU exposes no core count: the
   * backend passes an estimate (see backend.ts).
   */
  parallelism: number;
  /** Stage K tiles through workgroup memory (kv-cache-attention.wgsl.ts `stageK`; tuning). */
  stageK?: boolean;
}

/** A checked view with its absolute offset and strides for the uniforms. */
interface Bound {
  name: string;
  buf: WebGPUBuffer;
  view: StridedView<WebGPUBuffer>;
  u: View4;
}

/** Where a kernel writes f32 (B, N, H, D): the view itself, or a scratch converted afterwards. */
interface Target {
  gpu: GPUBuffer;
  u: View4;
  scratch?: GPUBuffer;
}

/**
 * Workgroups assumed to run at once, for kvSplitHeuristic. WebGPU reports no core count. Hardware
 * adapters: 264 = 132 SMs x 2 resident kv-cache-attention workgroups (H100 SXM; a larger GPU is
 * under-split, a smaller one over-split, and a caller can force opts.numSplits). Software adapters
 * (compact): the host's threads.
 */
export function kvParallelism(software: boolean): number {
  if (!software) return 264;
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  return Math.max(1, nav?.hardwareConcurrency ?? 4);
}

export class WebGPUKvCacheAttention implements DeviceKvCacheAttention<WebGPUBuffer> {
  readonly kvCacheCapabilities: KvCacheCapabilities;

  constructor(private readonly deps: InferenceDeps) {
    this.kvCacheCapabilities = {
      dtypes: KV_DTYPES,
      maxHeadDim: deps.maxHeadDim,
      computeDType: (d) => d,
      pageSizeMultiple: 1,
      maxSplits: KV_MAX_SPLITS,
      parallelism: deps.parallelism,
    };
  }

  /** The WebGPUBuffer behind `b`, or an AttentionInputError naming `name`. */
  buffer(name: string, b: unknown): WebGPUBuffer {
    try {
      return this.deps.mem.check(name, b);
    } catch (e) {
      const err = e as { expected?: string; actual?: string };
      throw new AttentionInputError(name, err.expected ?? 'a WebGPUBuffer', err.actual ?? b);
    }
  }

  private bound(name: string, view: StridedView<WebGPUBuffer>): Bound {
    const buf = this.buffer(`${name}.buffer`, view.buffer);
    const [sB, sN, sH] = view.strides;
    return { name, buf, view, u: [buf.offset + view.offset, sB, sN, sH] };
  }

  /** f32 output straight into `out` when it is float32 and not bound read-only, else a scratch. */
  private target(out: Bound, readOnly: readonly GPUBuffer[]): Target {
    if (out.buf.dtype === 'float32' && !readOnly.includes(out.buf.gpuBuffer))
      return { gpu: out.buf.gpuBuffer, u: out.u };
    const [B, N, H, D] = out.view.shape;
    const scratch = this.deps.rt.acquire(B * N * H * D * 4);
    return { gpu: scratch, u: [0, N * H * D, H * D, D], scratch };
  }

  private recordConvertOut(pass: GPUComputePassEncoder, t: Target, out: Bound): void {
    if (!t.scratch) return;
    const dstKind: ConvertKind =
      out.buf.dtype === 'float16' ? 'f16x2' : out.buf.dtype === 'bfloat16' ? 'bf16x2' : 'f32';
    this.deps.mem.recordConvert(pass, t.scratch, 0, 'f32', out.buf.gpuBuffer, dstKind, {
      shape: out.view.shape,
      offset: out.u[0],
      strides: out.view.strides,
    });
  }

  /** 2-D dispatch of `count` invocations in workgroups of `wg`. */
  private grid(count: number, wg: number): [number, number, number] {
    const groups = Math.ceil(count / wg);
    const gx = Math.min(groups, this.deps.rt.device.limits.maxComputeWorkgroupsPerDimension);
    return [gx, gx === 0 ? 0 : Math.ceil(groups / gx), 1];
  }

  async attentionWithKvCache(
    args: KvCacheAttentionArgs<WebGPUBuffer>,
    opts?: KvCacheOptions,
  ): Promise<void> {
    const { rt } = this.deps;
    rt.check();
    // Buffers first, so a foreign handle is named (`q.buffer`) before core's checks read its length.
    if (args !== null && typeof args === 'object') {
      for (const name of ['q', 'kCache', 'vCache', 'out', 'kNew', 'vNew'] as const) {
        const v = args[name];
        if (v !== null && typeof v === 'object') this.buffer(`${name}.buffer`, v.buffer);
      }
      if (args.lse !== undefined) this.buffer('lse', args.lse);
    }
    const pr = validateKvCacheArgs(
      args,
      opts,
      (b) => this.deps.mem.lengthOf(b),
      this.kvCacheCapabilities,
    );
    const q = this.bound('q', args.q);
    const kc = this.bound('kCache', args.kCache);
    const vc = this.bound('vCache', args.vCache);
    const out = this.bound('out', args.out);
    const news =
      args.kNew && args.vNew ? [this.bound('kNew', args.kNew), this.bound('vNew', args.vNew)] : [];
    const dtype = q.buf.dtype as DType;
    if (!KV_DTYPES.includes(dtype))
      throw new AttentionInputError('q.buffer.dtype', KV_DTYPES.join(', '), q.buf.dtype);
    for (const t of [kc, vc, out, ...news]) {
      if (t.buf.dtype !== dtype)
        throw new AttentionInputError(`${t.name}.buffer.dtype`, `${dtype} like q`, t.buf.dtype);
    }
    for (const t of [q, kc, vc, out, ...news]) {
      // WGSL indexes storage arrays with u32: a GPUBuffer of more elements cannot be addressed whole
      const elems = t.buf.gpuBuffer.size / (dtype === 'float32' ? 4 : 2);
      if (elems > 2 ** 32) {
        throw new AttentionInputError(
          `${t.name}.buffer`,
          'a GPUBuffer of at most 2^32 elements (u32 indices in WGSL)',
          `${elems} elements`,
        );
      }
    }
    const lse = args.lse !== undefined ? this.buffer('lse', args.lse) : undefined;
    if (lse && lse.dtype !== 'float32')
      throw new AttentionInputError('lse.dtype', 'float32', lse.dtype);
    const caches = [kc.buf.gpuBuffer, vc.buf.gpuBuffer];
    for (const t of news) {
      // WebGPU forbids one GPUBuffer bound read-only and writable in one dispatch
      if (caches.includes(t.buf.gpuBuffer)) {
        throw new AttentionInputError(
          `${t.name}.buffer`,
          'a GPUBuffer other than the caches (WebGPU binds the cache writable while appending)',
          'a view of a cache buffer',
        );
      }
    }
    const { B, Nq, Hq, Hk, D, Nnew } = pr;
    if (B === 0) return;

    // meta: [cache_seqlens (B) | table (B, mb)]; a contiguous cache is pages of N_max rows
    const table = pr.paged ? args.blockTable! : pr.batchIdx;
    const mb = pr.paged ? pr.maxBlocksPerSeq : 1;
    const meta = new Int32Array(B + B * mb);
    meta.set(args.cacheSeqlens, 0);
    meta.set(table, B);
    const ps = Math.max(1, pr.pageSize);

    const ns = opts?.numSplits ?? 0;
    const shape = { batch: B, seqlenQ: Nq, nheadsQ: Hq, nheadsK: Hk, seqlenK: pr.maxSeqlenK };
    const wanted = ns === 0 ? kvSplitHeuristic(shape, this.kvCacheCapabilities) : ns;
    const M = (Hq / Hk) * Nq; // query rows of one kv head (GQA group x new queries)
    const MR = kvRowsPerGroup(M);
    const blocks = Math.ceil(M / MR);
    // dispatch x = S * blocks must stay within the device's per-dimension workgroup limit
    const maxX = rt.device.limits.maxComputeWorkgroupsPerDimension;
    const S = Math.max(
      1,
      Math.min(wanted, pr.maxSeqlenK, KV_MAX_SPLITS, Math.floor(maxX / blocks)),
    );
    if (blocks > maxX) {
      throw new AttentionInputError(
        'q.shape[1] (Nq)',
        `(Hq / Hk) * Nq <= ${maxX * MR} query rows per kv head on this device`,
        Nq,
      );
    }
    const kps = Math.max(1, Math.ceil(pr.maxSeqlenK / S));
    const o = resolveOptions(opts, D);
    const kind = this.deps.kindOf(dtype);
    const n = B * Nq * Hq * D;
    const nl = B * Hq * Nq;

    const readOnly = [q.buf.gpuBuffer, ...caches];
    const owned: GPUBuffer[] = [];
    const take = (bytes: number) => {
      const g = rt.acquire(bytes);
      owned.push(g);
      return g;
    };
    try {
      const metaBuf = take(meta.byteLength);
      rt.upload(metaBuf, meta);
      const tOut = this.target(out, readOnly);
      if (tOut.scratch) owned.push(tOut.scratch);
      // lse: written directly unless absent or sharing a GPUBuffer with an input or out's target
      const lseDirect = lse && !readOnly.includes(lse.gpuBuffer) && lse.gpuBuffer !== tOut.gpu;
      const lseGpu = lseDirect ? lse.gpuBuffer : take(nl * 4);
      const lseOff = lseDirect ? lse.offset : 0;
      // S = 1: the attention writes out and lse; S > 1: partials, merged by the combine
      const outP = S > 1 ? take(S * n * 4) : undefined;
      const lseP = S > 1 ? take(S * nl * 4) : undefined;
      const stageK = !!this.deps.stageK && kvStageChunk(D, MR) > 0;
      const attn = kvCacheAttentionProgram({ headDim: D, kind, MR, stageK }, [S * blocks, Hk, B]);
      const attnUniforms = {
        B,
        Nq,
        Hq,
        Hk,
        scale: o.softmaxScale,
        wl: o.windowLeft,
        wr: o.windowRight,
        dt: dtypeCode(dtype),
        Nnew,
        S,
        kps,
        ps,
        mb,
        lseOff: outP ? 0 : lseOff,
        lseSplit: nl,
        oSplit: n,
        ninf: -Infinity,
        q: q.u,
        k: kc.u,
        v: vc.u,
        o: outP ? ([0, Nq * Hq * D, Hq * D, D] as View4) : tOut.u,
      };
      const half = dtype !== 'float32';
      const appendN = B * Nnew * Hk * D;
      await rt.submit((enc) => {
        const pass = enc.beginComputePass();
        for (const [src, dst] of news.length
          ? ([
              [news[0]!, kc],
              [news[1]!, vc],
            ] as const)
          : []) {
          rt.programs.run(
            pass,
            kvCacheAppendProgram(half, this.grid(appendN, APPEND_WG)),
            { n: appendN, B, Nnew, Hk, D, ps, mb, src: src.u, dst: dst.u },
            { src: src.buf.gpuBuffer, dst: dst.buf.gpuBuffer, cmeta: metaBuf },
          );
        }
        rt.programs.run(pass, attn, attnUniforms, {
          q: q.buf.gpuBuffer,
          kc: kc.buf.gpuBuffer,
          vc: vc.buf.gpuBuffer,
          cmeta: metaBuf,
          o: outP ?? tOut.gpu,
          lse: lseP ?? lseGpu,
        });
        if (outP && lseP)
          this.recordCombine(pass, outP, 0, lseP, 0, S, out.view.shape, tOut, lseGpu, lseOff, true);
        this.recordConvertOut(pass, tOut, out);
        pass.end();
        if (lse && !lseDirect)
          enc.copyBufferToBuffer(lseGpu, 0, lse.gpuBuffer, lse.offset * 4, nl * 4);
      });
    } finally {
      for (const g of owned) rt.release(g);
    }
  }

  private recordCombine(
    pass: GPUComputePassEncoder,
    outP: GPUBuffer,
    outPOff: number,
    lseP: GPUBuffer,
    lsePOff: number,
    S: number,
    shape: readonly number[],
    t: Target,
    lseGpu: GPUBuffer,
    lseOff: number,
    hasLse: boolean,
  ): void {
    const [B, Nq, Hq, D] = shape as [number, number, number, number];
    const n = B * Nq * Hq * D;
    this.deps.rt.programs.run(
      pass,
      combineByLseProgram(this.grid(n, COMBINE_WG)),
      {
        n,
        S,
        Nq,
        Hq,
        D,
        outPOff,
        lsePOff,
        lseOff,
        hasLse: hasLse ? 1 : 0,
        ninf: -Infinity,
        o: t.u,
      },
      { outP, lseP, o: t.gpu, lse: lseGpu },
    );
  }

  async attentionCombine(args: AttentionCombineArgs<WebGPUBuffer>): Promise<void> {
    const { rt } = this.deps;
    rt.check();
    if (args !== null && typeof args === 'object') {
      this.buffer('outPartial', args.outPartial);
      this.buffer('lsePartial', args.lsePartial);
      if (args.out !== null && typeof args.out === 'object')
        this.buffer('out.buffer', args.out.buffer);
      if (args.lse !== undefined) this.buffer('lse', args.lse);
    }
    const { S, B, Nq, Hq, D } = validateCombineArgs(args, (b) => this.deps.mem.lengthOf(b));
    checkStridedView('out', args.out, this.deps.mem.lengthOf(args.out.buffer));
    const outP = this.buffer('outPartial', args.outPartial);
    const lseP = this.buffer('lsePartial', args.lsePartial);
    for (const [name, b] of [
      ['outPartial.dtype', outP],
      ['lsePartial.dtype', lseP],
      ...(args.lse !== undefined ? [['lse.dtype', this.buffer('lse', args.lse)] as const] : []),
    ] as const) {
      if (b.dtype !== 'float32') throw new AttentionInputError(name, 'float32', b.dtype);
    }
    const out = this.bound('out', args.out);
    if (!KV_DTYPES.includes(out.buf.dtype as DType))
      throw new AttentionInputError('out.buffer.dtype', KV_DTYPES.join(', '), out.buf.dtype);
    const lse = args.lse !== undefined ? this.buffer('lse', args.lse) : undefined;
    const n = B * Nq * Hq * D;
    const nl = B * Hq * Nq;
    if (n === 0 && nl === 0) return;
    const readOnly = [outP.gpuBuffer, lseP.gpuBuffer];
    const owned: GPUBuffer[] = [];
    try {
      const t = this.target(out, readOnly);
      if (t.scratch) owned.push(t.scratch);
      const lseDirect = lse && !readOnly.includes(lse.gpuBuffer) && lse.gpuBuffer !== t.gpu;
      const lseGpu = lseDirect ? lse.gpuBuffer : rt.acquire(Math.max(nl, 1) * 4);
      if (!lseDirect) owned.push(lseGpu);
      await rt.submit((enc) => {
        const pass = enc.beginComputePass();
        this.recordCombine(
          pass,
          outP.gpuBuffer,
          outP.offset,
          lseP.gpuBuffer,
          lseP.offset,
          S,
          out.view.shape,
          t,
          lseGpu,
          lseDirect ? lse.offset : 0,
          lse !== undefined,
        );
        this.recordConvertOut(pass, t, out);
        pass.end();
        if (lse && !lseDirect)
          enc.copyBufferToBuffer(lseGpu, 0, lse.gpuBuffer, lse.offset * 4, nl * 4);
      });
    } finally {
      for (const g of owned) rt.release(g);
    }
  }
}

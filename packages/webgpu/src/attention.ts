/**
 * core's `DeviceAttention<WebGPUBuffer>`: FlashAttention-2 forward and backward on strided views of
 * device buffers. Every view's offset and (batch, row, head) strides reach the kernels as uniforms
 * (kernels/params.wgsl.ts), so q, k, v are read in place from a packed (B, T, 3, H, D) buffer and dq, dk,
 * dv written in place into the packed gradient: no split or merge copies.
 *
 * Outputs: the kernels compute and write f32. A float32 output view is written directly; a 16-bit one
 * (or one whose GPUBuffer is also bound read-only in the same dispatch, which WebGPU forbids) goes
 * through an f32 scratch and the convert-to-view kernel. lse follows core's convention: float32
 * (B, Hq, Nq), contiguous, -Infinity for a fully masked row.
 */
import {
  AttentionInputError,
  checkStridedView,
  deviceAttentionShape,
  resolveOptions,
  validateOptions,
  type AttentionOptions,
  type BackendCapabilities,
  type DeviceAttention,
  type DeviceAttentionBackwardArgs,
  type DeviceAttentionForwardArgs,
  type DType,
  type StridedView,
} from '@flashattn/core';
import { flashBackwardDkdvProgram } from './kernels/flash-backward-dkdv.wgsl.js';
import { flashBackwardDkdvScalarProgram } from './kernels/flash-backward-dkdv-scalar.wgsl.js';
import { flashBackwardDqProgram } from './kernels/flash-backward-dq.wgsl.js';
import { flashBackwardDqScalarProgram } from './kernels/flash-backward-dq-scalar.wgsl.js';
import {
  flashBackwardPreprocessProgram,
  PREPROCESS_WG,
} from './kernels/flash-backward-preprocess.wgsl.js';
import { flashForwardProgram } from './kernels/flash-forward.wgsl.js';
import { flashForwardScalarProgram } from './kernels/flash-forward-scalar.wgsl.js';
import { attentionUniforms, type AttentionViewName } from './kernels/params.wgsl.js';
import { dtypeCode, storageKind, type StorageKind } from './kernels/storage.wgsl.js';
import type { ConvertKind } from './kernels/convert-to-view.wgsl.js';
import { WebGPUBuffer, type WebGPUMemory } from './memory.js';
import type { Runtime } from './runtime.js';
import type { Variant } from './variants.js';

export const MAX_HEAD_DIM = 256;

const ATTENTION_DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];

type View4 = readonly [number, number, number, number];

/** A checked view: its buffer and its absolute offset (the buffer's own offset added). */
interface Bound {
  name: string;
  buf: WebGPUBuffer;
  view: StridedView<WebGPUBuffer>;
  /** [absolute element offset, sB, sN, sH] for the uniforms */
  u: View4;
}

export interface AttentionDeps {
  rt: Runtime;
  mem: WebGPUMemory;
  /** Storage kind of a dtype on this device. */
  kindOf: (dtype: DType) => StorageKind;
  /** Tiles for a head dim. */
  variant: (headDim: number) => Variant;
  /**
   * Records and submits one call's work (default: rt.submit, one command buffer per call and its
   * errors awaited). The ops backend passes its recorder's, which appends to the open batch.
   */
  submit?: (record: (enc: GPUCommandEncoder) => void) => Promise<void>;
}

/** Sizes, options and uniform values shared by the passes of one call. */
interface Call {
  B: number;
  Nq: number;
  Nk: number;
  Hq: number;
  Hk: number;
  D: number;
  dtype: DType;
  kind: StorageKind;
  uniforms: (
    views: Partial<Record<AttentionViewName, View4>>,
  ) => ReturnType<typeof attentionUniforms>;
}

export class WebGPUDeviceAttention implements DeviceAttention<WebGPUBuffer> {
  readonly attentionCapabilities: BackendCapabilities = {
    dtypes: ATTENTION_DTYPES,
    maxHeadDim: MAX_HEAD_DIM,
    computeDType: (d) => d,
  };

  constructor(private readonly deps: AttentionDeps) {}

  private submit(record: (enc: GPUCommandEncoder) => void): Promise<void> {
    return this.deps.submit ? this.deps.submit(record) : this.deps.rt.submit(record);
  }

  private bind(name: string, view: StridedView<WebGPUBuffer>): Bound {
    if (view === null || typeof view !== 'object') {
      throw new AttentionInputError(name, 'a StridedView { buffer, offset, shape, strides }', view);
    }
    const buf = this.checkBuffer(`${name}.buffer`, view.buffer);
    checkStridedView(name, view, buf.length);
    const [sB, sN, sH] = view.strides;
    return { name, buf, view, u: [buf.offset + view.offset, sB, sN, sH] };
  }

  private checkBuffer(name: string, b: unknown): WebGPUBuffer {
    try {
      return this.deps.mem.check(name, b);
    } catch (e) {
      const err = e as { expected?: string; actual?: string };
      throw new AttentionInputError(name, err.expected ?? 'a WebGPUBuffer', err.actual ?? b);
    }
  }

  /** Shape, dtype and option checks shared by both directions. */
  private prepare(
    q: Bound,
    k: Bound,
    v: Bound,
    sameAsQ: readonly Bound[],
    lse: WebGPUBuffer,
    opts: AttentionOptions | undefined,
  ): Call {
    const { B, Nq, Nk, Hq, Hk, D } = deviceAttentionShape({ q: q.view, k: k.view, v: v.view });
    const dtype = q.buf.dtype as DType;
    if (!ATTENTION_DTYPES.includes(dtype)) {
      throw new AttentionInputError('q.buffer.dtype', ATTENTION_DTYPES.join(', '), q.buf.dtype);
    }
    for (const t of [k, v, ...sameAsQ]) {
      if (t.buf.dtype !== dtype)
        throw new AttentionInputError(`${t.name}.buffer.dtype`, `${dtype} like q`, t.buf.dtype);
    }
    for (const t of sameAsQ) {
      if (t.view.shape.some((x, i) => x !== q.view.shape[i])) {
        throw new AttentionInputError(
          `${t.name}.shape`,
          `[${q.view.shape.join(', ')}] like q`,
          `[${t.view.shape.join(', ')}]`,
        );
      }
    }
    if (D < 1 || D > MAX_HEAD_DIM) {
      throw new AttentionInputError(
        'q.shape[3] (headdim)',
        `1 to ${MAX_HEAD_DIM} on the WebGPU backend`,
        D,
      );
    }
    if (lse.dtype !== 'float32') throw new AttentionInputError('lse.dtype', 'float32', lse.dtype);
    if (lse.length < B * Hq * Nq) {
      throw new AttentionInputError(
        'lse',
        `a float32 buffer of at least B * Hq * Nq = ${B * Hq * Nq} elements`,
        `${lse.length} elements`,
      );
    }
    validateOptions(opts);
    const o = resolveOptions(opts, D);
    const kind = this.deps.kindOf(dtype);
    const base = {
      B,
      Nq,
      Nk,
      Hq,
      Hk,
      scale: o.softmaxScale,
      windowLeft: o.windowLeft,
      windowRight: o.windowRight,
      dtype: dtypeCode(dtype),
      lseOff: lse.offset,
    };
    return {
      B,
      Nq,
      Nk,
      Hq,
      Hk,
      D,
      dtype,
      kind,
      uniforms: (views) => attentionUniforms({ ...base, views }),
    };
  }

  /**
   * Where a kernel writes an output: straight into its view (float32, GPUBuffer not among `readOnly`),
   * or into an f32 scratch (B, N, H, D) contiguous, converted into the view afterwards.
   */
  private target(
    out: Bound,
    readOnly: readonly GPUBuffer[],
  ): { gpu: GPUBuffer; u: View4; scratch?: GPUBuffer } {
    if (out.buf.dtype === 'float32' && !readOnly.includes(out.buf.gpuBuffer))
      return { gpu: out.buf.gpuBuffer, u: out.u };
    const [, N, H, D] = out.view.shape;
    const scratch = this.deps.rt.acquire(out.view.shape.reduce((a, b) => a * b, 1) * 4);
    return { gpu: scratch, u: [0, N * H * D, H * D, D], scratch };
  }

  private recordConvertOut(pass: GPUComputePassEncoder, scratch: GPUBuffer, out: Bound): void {
    const dstKind: ConvertKind =
      out.buf.dtype === 'float16' ? 'f16x2' : out.buf.dtype === 'bfloat16' ? 'bf16x2' : 'f32';
    this.deps.mem.recordConvert(pass, scratch, 0, 'f32', out.buf.gpuBuffer, dstKind, {
      shape: out.view.shape,
      offset: out.u[0],
      strides: out.view.strides,
    });
  }

  async attentionForward(
    args: DeviceAttentionForwardArgs<WebGPUBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    const { rt } = this.deps;
    rt.check();
    if (!args || typeof args !== 'object')
      throw new AttentionInputError('args', '{ q, k, v, out, lse }', args);
    const q = this.bind('q', args.q);
    const k = this.bind('k', args.k);
    const v = this.bind('v', args.v);
    const out = this.bind('out', args.out);
    const lse = this.checkBuffer('lse', args.lse);
    const c = this.prepare(q, k, v, [out], lse, opts);
    if (c.B === 0 || c.Nq === 0 || c.Hq === 0) return;
    const inputs = [q.buf.gpuBuffer, k.buf.gpuBuffer, v.buf.gpuBuffer];
    const o = this.target(out, inputs);
    // lse is written by the kernel: through a scratch if its GPUBuffer is also an input's
    // (or out's: WebGPU rejects two writable bindings of overlapping ranges in one dispatch)
    const lseScratch =
      inputs.includes(lse.gpuBuffer) || lse.gpuBuffer === o.gpu
        ? rt.acquire(c.B * c.Hq * c.Nq * 4)
        : undefined;
    const tiles = this.deps.variant(c.D).forward;
    const spec = { headDim: c.D, kind: c.kind, tiles };
    const groups = [Math.ceil(c.Nq / tiles.BR), c.Hq, c.B] as const;
    const program = tiles.V4
      ? flashForwardProgram(spec, groups)
      : flashForwardScalarProgram(spec, groups);
    const uniforms = c.uniforms({ q: q.u, k: k.u, v: v.u, o: o.u });
    if (lseScratch) uniforms.lseOff = 0;
    try {
      await this.submit((enc) => {
        const pass = enc.beginComputePass();
        rt.programs.run(pass, program, uniforms, {
          q: q.buf.gpuBuffer,
          k: k.buf.gpuBuffer,
          v: v.buf.gpuBuffer,
          o: o.gpu,
          lse: lseScratch ?? lse.gpuBuffer,
        });
        if (o.scratch) this.recordConvertOut(pass, o.scratch, out);
        pass.end();
        if (lseScratch)
          enc.copyBufferToBuffer(
            lseScratch,
            0,
            lse.gpuBuffer,
            lse.offset * 4,
            c.B * c.Hq * c.Nq * 4,
          );
      });
    } finally {
      if (o.scratch) rt.release(o.scratch);
      if (lseScratch) rt.release(lseScratch);
    }
  }

  async attentionBackward(
    args: DeviceAttentionBackwardArgs<WebGPUBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    const { rt } = this.deps;
    rt.check();
    if (!args || typeof args !== 'object') {
      throw new AttentionInputError('args', '{ dout, q, k, v, out, lse, dq, dk, dv }', args);
    }
    const q = this.bind('q', args.q);
    const k = this.bind('k', args.k);
    const v = this.bind('v', args.v);
    const dout = this.bind('dout', args.dout);
    const out = this.bind('out', args.out);
    const dq = this.bind('dq', args.dq);
    const dk = this.bind('dk', args.dk);
    const dv = this.bind('dv', args.dv);
    const lse = this.checkBuffer('lse', args.lse);
    const c = this.prepare(q, k, v, [dout, out, dq], lse, opts);
    for (const g of [dk, dv]) {
      if (g.buf.dtype !== c.dtype)
        throw new AttentionInputError(`${g.name}.buffer.dtype`, `${c.dtype} like q`, g.buf.dtype);
      if (g.view.shape.some((x, i) => x !== k.view.shape[i])) {
        throw new AttentionInputError(
          `${g.name}.shape`,
          `[${k.view.shape.join(', ')}] like k`,
          `[${g.view.shape.join(', ')}]`,
        );
      }
    }
    if (c.B === 0 || c.Hq === 0) return;
    const readOnly = [q, k, v, dout, out].map((t) => t.buf.gpuBuffer).concat(lse.gpuBuffer);
    const tq = this.target(dq, readOnly);
    const tk = this.target(dk, readOnly);
    const tv = this.target(dv, readOnly);
    const vr = this.deps.variant(c.D);
    const delta = rt.acquire(Math.max(c.B * c.Hq * c.Nq, 1) * 4); // (B, Hq, Nq)
    const uniforms = c.uniforms({
      q: q.u,
      k: k.u,
      v: v.u,
      o: out.u,
      dout: dout.u,
      dq: tq.u,
      dk: tk.u,
      dv: tv.u,
    });
    const pre = flashBackwardPreprocessProgram(c.D, c.kind, [
      Math.ceil(c.Nq / PREPROCESS_WG),
      c.Hq,
      c.B,
    ]);
    const kvGroups = [Math.ceil(c.Nk / vr.dkdv.BR), c.Hk, c.B] as const;
    const qGroups = [Math.ceil(c.Nq / vr.dq.BR), c.Hq, c.B] as const;
    // dk and dv in one GPUBuffer (the packed gradient): one writable binding for both
    const sharedKV = tk.gpu === tv.gpu;
    const kv = vr.dkdv.V4
      ? flashBackwardDkdvProgram(c.D, c.kind, vr.dkdv, kvGroups, sharedKV)
      : flashBackwardDkdvScalarProgram(c.D, c.kind, vr.dkdv, kvGroups, sharedKV);
    const dqp = vr.dq.V4
      ? flashBackwardDqProgram(c.D, c.kind, vr.dq, qGroups)
      : flashBackwardDqScalarProgram(c.D, c.kind, vr.dq, qGroups);
    const inputs = {
      q: q.buf.gpuBuffer,
      k: k.buf.gpuBuffer,
      v: v.buf.gpuBuffer,
      dout: dout.buf.gpuBuffer,
      lse: lse.gpuBuffer,
      delta,
    };
    try {
      await this.submit((enc) => {
        const pass = enc.beginComputePass();
        // Algorithm 2, line 4: D = rowsum(dO * O)
        rt.programs.run(pass, pre, uniforms, {
          dout: dout.buf.gpuBuffer,
          o: out.buf.gpuBuffer,
          delta,
        });
        rt.programs.run(
          pass,
          kv,
          uniforms,
          sharedKV ? { ...inputs, dk: tk.gpu } : { ...inputs, dk: tk.gpu, dv: tv.gpu },
        );
        rt.programs.run(pass, dqp, uniforms, { ...inputs, dq: tq.gpu });
        for (const [t, view] of [
          [tq, dq],
          [tk, dk],
          [tv, dv],
        ] as const) {
          if (t.scratch) this.recordConvertOut(pass, t.scratch, view);
        }
        pass.end();
      });
    } finally {
      rt.release(delta);
      for (const t of [tq, tk, tv]) if (t.scratch) rt.release(t.scratch);
    }
  }
}

/** Storage kind of a dtype: native f16 where the device has shader-f16, packed words otherwise. */
export function kindFor(nativeF16: boolean, compact: boolean): (dtype: DType) => StorageKind {
  return (dtype) => storageKind(dtype, nativeF16, compact);
}

/**
 * createWebGPUBackend: core's AttentionBackend on WebGPU, plus device-resident entry points.
 */
import {
  AttentionInputError,
  BackendExecutionError,
  bytesPerElement,
  numel,
  resolveOptions,
  validateBackward,
  validateForward,
  type AttentionBackend,
  type AttentionForwardResult,
  type AttentionGradients,
  type AttentionOptions,
  type AttentionShape,
  type BackendCapabilities,
  type DType,
  type Tensor,
} from '@flashattn/core';
import { LSE_MASKED, type GPUTensor } from './device-tensor.js';
import { acquireDevice, type AcquireOptions, type Acquired } from './gpu.js';
import { CAST_WG, castWGSL } from './kernels/cast.wgsl.js';
import { flashBackwardDkdvWGSL } from './kernels/flash-backward-dkdv.wgsl.js';
import { flashBackwardDqWGSL } from './kernels/flash-backward-dq.wgsl.js';
import { flashBackwardDkdvV4WGSL } from './kernels/flash-backward-dkdv-v4.wgsl.js';
import { flashBackwardDqV4WGSL } from './kernels/flash-backward-dq-v4.wgsl.js';
import { flashBackwardPreprocessWGSL, PREPROCESS_WG } from './kernels/flash-backward-preprocess.wgsl.js';
import { flashForwardWGSL } from './kernels/flash-forward.wgsl.js';
import { flashForwardV4WGSL } from './kernels/flash-forward-v4.wgsl.js';
import { flashForwardSgmatWGSL, sgmatRows, sgmatSupports, type SgmatSpec } from './kernels/flash-forward-sgmat.wgsl.js';

const SGMAT_FEATURE = 'chromium-experimental-subgroup-matrix';
import { packParams } from './kernels/params.wgsl.js';
import { dtypeCode, storageKind, type StorageKind } from './kernels/storage.wgsl.js';
import { Runtime } from './runtime.js';
import { chooseSgmat, chooseVariant, type Variant } from './variants.js';
import type { Tiles } from './kernels/tiles.js';

export interface WebGPUBackendOptions extends AcquireOptions {
  /**
   * Small tiles and one pipeline for all dtypes (dtype chosen at run time), for adapters where shader
   * compilation is slow. Default: on for software adapters (SwiftShader, llvmpipe), off otherwise.
   */
  compact?: boolean;
  /**
   * Run float16 forwards on tensor cores through WGSL subgroup matrices where the device offers
   * `chromium-experimental-subgroup-matrix` with subgroup size 32 (Dawn on NVIDIA with
   * allow_unsafe_apis). Experimental; default false.
   */
  subgroupMatrix?: boolean;
  /** Subgroup-matrix forward: force its shape per head dim (benchmarks and tuning). */
  sgmatSpec?: (headDim: number) => Partial<Omit<SgmatSpec, 'headDim' | 'ablate'>> | undefined;
  /** Force tile sizes (benchmarks and tuning), for all head dims or per head dim; each must fit the device. */
  tiles?: Partial<Variant> | ((headDim: number) => Partial<Variant> | undefined);
}

function tileKey(t: Tiles): string {
  return `${t.BR}x${t.BC}-${t.TM}x${t.TN}-${t.DK}-${t.JK}${t.V4 ? '-v4' : ''}${t.QR ? '-qr' : ''}`;
}

/** Software rasterisers, where compile time dominates and the compact variant is used. */
export function isSoftwareAdapter(info: GPUAdapterInfo | undefined): boolean {
  if (!info) return false;
  const text = [info.vendor, info.architecture, info.device, info.description].join(' ');
  return /swiftshader|llvmpipe|lavapipe|softpipe|software|basic render/i.test(text);
}

export const MAX_HEAD_DIM = 256;

export interface DeviceForwardResult {
  /** (B, Nq, Hq, D), dtype of q. */
  out: GPUTensor;
  /** (B, Hq, Nq) float32; -1e30 for a fully masked row. */
  lse: GPUTensor;
}

export interface DeviceGradients {
  dq: GPUTensor;
  dk: GPUTensor;
  dv: GPUTensor;
}

export interface WebGPUAttentionBackend extends AttentionBackend {
  readonly device: GPUDevice;
  readonly runtime: Runtime;
  /** Whether float16 tensors use native f16 (shader-f16) rather than packed u32 words. */
  readonly nativeF16: boolean;
  /** Small tiles and run-time dtype (software adapters); see WebGPUBackendOptions.compact. */
  readonly compact: boolean;
  /** Whether float16 forwards run on subgroup matrices (tensor cores). */
  readonly subgroupMatrix: boolean;
  upload(t: Tensor): GPUTensor;
  download(t: GPUTensor): Promise<Tensor>;
  /** Give a tensor's buffer back to the pool (it must not be used afterwards). */
  release(t: GPUTensor): void;
  forwardOnDevice(q: GPUTensor, k: GPUTensor, v: GPUTensor, opts?: AttentionOptions): Promise<DeviceForwardResult>;
  backwardOnDevice(
    dout: GPUTensor,
    q: GPUTensor,
    k: GPUTensor,
    v: GPUTensor,
    out: GPUTensor,
    lse: GPUTensor,
    opts?: AttentionOptions,
  ): Promise<DeviceGradients>;
  /** Tiles chosen for a head dimension on this device. */
  variant(headDim: number): Variant;
}

/** Shape checks for device tensors (host tensors go through core's validateForward). */
function shapeOf(q: GPUTensor, k: GPUTensor, v: GPUTensor, opts: AttentionOptions | undefined): AttentionShape {
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const) {
    if (!t || typeof t !== 'object' || !t.buffer) {
      throw new AttentionInputError(name, 'a GPUTensor { dtype, shape, buffer }', t);
    }
  }
  return validateForwardShapes(q as unknown as Tensor, k as unknown as Tensor, v as unknown as Tensor, opts);
}

function validateForwardShapes(q: Tensor, k: Tensor, v: Tensor, opts?: AttentionOptions): AttentionShape {
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const) {
    if (!Array.isArray(t.shape) || t.shape.length !== 4 || t.shape.some((s) => !Number.isInteger(s) || s < 1)) {
      throw new AttentionInputError(`${name}.shape`, 'rank 4 (batch, seqlen, nheads, headdim) of positive integers', t.shape);
    }
  }
  // Reuse core's checks on zero-filled host stand-ins with seqlen 1 (the seqlens need no cross-checks).
  const stub = (t: Tensor): Tensor => {
    const shape = t.shape;
    const data = t.dtype === 'float32' ? new Float32Array(numel(shape)) : new Uint16Array(numel(shape));
    return { dtype: t.dtype, shape, data } as Tensor;
  };
  const small = (t: Tensor): Tensor => stub({ ...t, shape: [t.shape[0]!, 1, t.shape[2]!, t.shape[3]!] } as Tensor);
  if (v.shape[1] !== k.shape[1]) {
    throw new AttentionInputError('v.shape[1] (seqlen)', `${k.shape[1]} to match k.shape[1]`, v.shape[1]);
  }
  const s = validateForward(small(q), small(k), small(v), opts);
  return { ...s, seqlenQ: q.shape[1]!, seqlenK: k.shape[1]! };
}

function checkSameShape(name: string, t: GPUTensor, ref: GPUTensor): void {
  if (t.dtype !== ref.dtype) throw new AttentionInputError(`${name}.dtype`, `${ref.dtype} to match q.dtype`, t.dtype);
  if (t.shape.length !== ref.shape.length || t.shape.some((s, i) => s !== ref.shape[i])) {
    throw new AttentionInputError(`${name}.shape`, `[${ref.shape.join(', ')}] like q`, `[${t.shape.join(', ')}]`);
  }
}

export async function createWebGPUBackend(options: WebGPUBackendOptions = {}): Promise<WebGPUAttentionBackend> {
  // `acquired.gpu` must stay referenced while the device lives (see Acquired.gpu); dispose() drops it.
  let acquired: Acquired | undefined = await acquireDevice(
    options.subgroupMatrix ? { ...options, extraFeatures: [...(options.extraFeatures ?? []), SGMAT_FEATURE] } : options,
  );
  const { device, owned } = acquired;
  const info = acquired.adapterInfo;
  const label = info ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ') : '';
  const name = `webgpu${options.subgroupMatrix ? '-sgmat' : ''}${label ? ` (${label})` : ''}`;
  const rt = new Runtime(device, name);
  const compact = options.compact ?? isSoftwareAdapter(info);
  const nativeF16 = device.features.has('shader-f16') && !compact;
  const variants = new Map<number, Variant>();
  // Subgroup matrices: the kernel is written for 32-wide subgroups (one subgroup per workgroup).
  const sgmat =
    !!options.subgroupMatrix &&
    nativeF16 &&
    device.features.has(SGMAT_FEATURE as GPUFeatureName) &&
    info?.subgroupMinSize === 32 &&
    info?.subgroupMaxSize === 32;

  const variant = (D: number): Variant => {
    let v = variants.get(D);
    if (!v) {
      const forced = typeof options.tiles === 'function' ? options.tiles(D) : options.tiles;
      v = { ...chooseVariant(D, device.limits, compact), ...forced };
      variants.set(D, v);
    }
    return v;
  };

  const kindOf = (dtype: DType): StorageKind => storageKind(dtype, nativeF16, compact);

  const checkHeadDim = (D: number): void => {
    if (D > MAX_HEAD_DIM) {
      throw new AttentionInputError('q.shape[3] (headdim)', `at most ${MAX_HEAD_DIM} on the WebGPU backend`, D);
    }
  };

  const paramsFor = (s: AttentionShape, opts: AttentionOptions | undefined, dtype: DType): ArrayBuffer => {
    const o = resolveOptions(opts, s.headDim);
    return packParams({
      B: s.batch,
      Nq: s.seqlenQ,
      Nk: s.seqlenK,
      Hq: s.nheadsQ,
      Hk: s.nheadsK,
      scale: o.softmaxScale,
      windowLeft: o.windowLeft,
      windowRight: o.windowRight,
      dtype: dtypeCode(dtype),
    });
  };

  const bytesOf = (dtype: DType, shape: readonly number[]): number => numel(shape) * bytesPerElement(dtype);

  /** Record f32 -> dtype rounding of n elements into `dst` (a no-op copy target for float32). */
  const recordCast = (pass: GPUComputePassEncoder, src: GPUBuffer, dst: GPUBuffer, n: number, dtype: DType): void => {
    if (dtype === 'float32') throw new Error('recordCast: float32 needs no cast');
    const target = dtype === 'bfloat16' ? 'bf16x2' : 'f16x2';
    const pl = rt.pipeline(`cast-${target}`, () => castWGSL(target));
    const u = rt.uniform(packParams({ B: n, Nq: 0, Nk: 0, Hq: 0, Hk: 0, scale: 0, windowLeft: 0, windowRight: 0 }));
    const words = Math.ceil(n / 2);
    const groups = Math.ceil(words / CAST_WG);
    const gx = Math.min(groups, device.limits.maxComputeWorkgroupsPerDimension);
    rt.dispatch(pass, pl, [u, src, dst], [gx, Math.ceil(groups / gx), 1]);
  };

  const upload = (t: Tensor): GPUTensor => {
    rt.check();
    const buffer = rt.acquire(t.data.byteLength);
    rt.upload(buffer, t.data);
    return { dtype: t.dtype, shape: [...t.shape], buffer };
  };

  const download = async (t: GPUTensor): Promise<Tensor> => {
    const n = numel(t.shape);
    const bytes = await rt.read(t.buffer, bytesOf(t.dtype, t.shape));
    const data = t.dtype === 'float32' ? new Float32Array(bytes, 0, n) : new Uint16Array(bytes, 0, n);
    return { dtype: t.dtype, shape: [...t.shape], data } as Tensor;
  };

  const release = (t: GPUTensor): void => rt.release(t.buffer);

  /** Allocate the output of a kernel that writes f32: the tensor itself for float32, else a scratch f32. */
  const outputs = (dtype: DType, shape: readonly number[]) => {
    const n = numel(shape);
    const f32 = rt.acquire(n * 4);
    const final = dtype === 'float32' ? f32 : rt.acquire(n * 2);
    return { n, f32, final };
  };

  const forwardOnDevice = async (
    q: GPUTensor,
    k: GPUTensor,
    v: GPUTensor,
    opts?: AttentionOptions,
  ): Promise<DeviceForwardResult> => {
    rt.check();
    const s = shapeOf(q, k, v, opts);
    checkHeadDim(s.headDim);
    const kind = kindOf(q.dtype);
    const tiles = variant(s.headDim).forward;
    const useSgmat = sgmat && q.dtype === 'float16' && sgmatSupports(s.headDim);
    const sgSpec: SgmatSpec = { ...chooseSgmat(s.headDim, device.limits), ...options.sgmatSpec?.(s.headDim), headDim: s.headDim };
    const pl = useSgmat
      ? rt.pipeline(`flash-forward-sgmat-d${s.headDim}-qt${sgSpec.QT}-bc${sgSpec.BC ?? 32}${sgSpec.QREG ? '-qreg' : ''}`, () =>
          flashForwardSgmatWGSL(sgSpec),
        )
      : rt.pipeline(`flash-forward-d${s.headDim}-${kind}-${tileKey(tiles)}`, () =>
          tiles.V4
            ? flashForwardV4WGSL({ headDim: s.headDim, kind, tiles })
            : flashForwardWGSL({ headDim: s.headDim, kind, tiles }),
        );
    const rowsPerGroup = useSgmat ? sgmatRows(sgSpec) : tiles.BR;
    const o = outputs(q.dtype, q.shape);
    const lse = rt.acquire(s.batch * s.nheadsQ * s.seqlenQ * 4);
    const u = rt.uniform(paramsFor(s, opts, q.dtype));
    try {
      await rt.submit((enc) => {
        const pass = enc.beginComputePass();
        rt.dispatch(pass, pl, [u, q.buffer, k.buffer, v.buffer, o.f32, lse], [
          Math.ceil(s.seqlenQ / rowsPerGroup),
          s.nheadsQ,
          s.batch,
        ]);
        if (o.final !== o.f32) recordCast(pass, o.f32, o.final, o.n, q.dtype);
        pass.end();
      });
    } catch (e) {
      rt.release(lse);
      rt.release(o.final);
      throw e;
    } finally {
      u.destroy();
      if (o.final !== o.f32) rt.release(o.f32);
    }
    return {
      out: { dtype: q.dtype, shape: [...q.shape], buffer: o.final },
      lse: { dtype: 'float32', shape: [s.batch, s.nheadsQ, s.seqlenQ], buffer: lse },
    };
  };

  const backwardOnDevice = async (
    dout: GPUTensor,
    q: GPUTensor,
    k: GPUTensor,
    v: GPUTensor,
    out: GPUTensor,
    lse: GPUTensor,
    opts?: AttentionOptions,
  ): Promise<DeviceGradients> => {
    rt.check();
    const s = shapeOf(q, k, v, opts);
    checkHeadDim(s.headDim);
    checkSameShape('dout', dout, q);
    checkSameShape('out', out, q);
    const want = [s.batch, s.nheadsQ, s.seqlenQ];
    if (lse.dtype !== 'float32' || lse.shape.length !== 3 || lse.shape.some((x, i) => x !== want[i])) {
      throw new AttentionInputError('lse', `a float32 GPUTensor of shape [${want.join(', ')}]`, `${lse.dtype} [${lse.shape.join(', ')}]`);
    }
    const kind = kindOf(q.dtype);
    const vr = variant(s.headDim);
    const D = s.headDim;
    const plPre = rt.pipeline(`flash-bwd-pre-d${D}-${kind}`, () => flashBackwardPreprocessWGSL(D, kind));
    const plDq = rt.pipeline(`flash-bwd-dq-d${D}-${kind}-${tileKey(vr.dq)}`, () =>
      vr.dq.V4 ? flashBackwardDqV4WGSL(D, kind, vr.dq) : flashBackwardDqWGSL(D, kind, vr.dq),
    );
    const plKv = rt.pipeline(`flash-bwd-dkdv-d${D}-${kind}-${tileKey(vr.dkdv)}`, () =>
      vr.dkdv.V4 ? flashBackwardDkdvV4WGSL(D, kind, vr.dkdv) : flashBackwardDkdvWGSL(D, kind, vr.dkdv),
    );
    const delta = rt.acquire(s.batch * s.nheadsQ * s.seqlenQ * 4); // (B, Hq, Nq)
    const dq = outputs(q.dtype, q.shape);
    const dk = outputs(k.dtype, k.shape);
    const dv = outputs(v.dtype, v.shape);
    const u = rt.uniform(paramsFor(s, opts, q.dtype));
    const scratch = [delta];
    for (const o of [dq, dk, dv]) if (o.final !== o.f32) scratch.push(o.f32);
    try {
      await rt.submit((enc) => {
        const pass = enc.beginComputePass();
        // Algorithm 2, line 4: D = rowsum(dO * O)
        rt.dispatch(pass, plPre, [u, dout.buffer, out.buffer, delta], [
          Math.ceil(s.seqlenQ / PREPROCESS_WG),
          s.nheadsQ,
          s.batch,
        ]);
        rt.dispatch(pass, plKv, [u, q.buffer, k.buffer, v.buffer, dout.buffer, lse.buffer, delta, dk.f32, dv.f32], [
          Math.ceil(s.seqlenK / vr.dkdv.BR),
          s.nheadsK,
          s.batch,
        ]);
        rt.dispatch(pass, plDq, [u, q.buffer, k.buffer, v.buffer, dout.buffer, lse.buffer, delta, dq.f32], [
          Math.ceil(s.seqlenQ / vr.dq.BR),
          s.nheadsQ,
          s.batch,
        ]);
        for (const [o, t] of [
          [dq, q],
          [dk, k],
          [dv, v],
        ] as const) {
          if (o.final !== o.f32) recordCast(pass, o.f32, o.final, o.n, t.dtype);
        }
        pass.end();
      });
    } catch (e) {
      for (const o of [dq, dk, dv]) rt.release(o.final);
      throw e;
    } finally {
      u.destroy();
      for (const b of scratch) rt.release(b);
    }
    return {
      dq: { dtype: q.dtype, shape: [...q.shape], buffer: dq.final },
      dk: { dtype: k.dtype, shape: [...k.shape], buffer: dk.final },
      dv: { dtype: v.dtype, shape: [...v.shape], buffer: dv.final },
    };
  };

  const capabilities: BackendCapabilities = {
    dtypes: ['float32', 'float16', 'bfloat16'],
    maxHeadDim: MAX_HEAD_DIM,
    computeDType: (d) => d,
  };

  const backend: WebGPUAttentionBackend = {
    name,
    capabilities,
    device,
    runtime: rt,
    nativeF16,
    compact,
    subgroupMatrix: sgmat,
    upload,
    download,
    release,
    forwardOnDevice,
    backwardOnDevice,
    variant,

    async forward(q, k, v, opts): Promise<AttentionForwardResult> {
      rt.check();
      validateForward(q, k, v, opts);
      checkHeadDim(q.shape[3]!);
      const ins = [upload(q), upload(k), upload(v)];
      try {
        const r = await forwardOnDevice(ins[0]!, ins[1]!, ins[2]!, opts);
        try {
          const out = await download(r.out);
          const lse = new Float32Array((await download(r.lse)).data as Float32Array);
          for (let i = 0; i < lse.length; i++) if (lse[i]! <= LSE_MASKED) lse[i] = -Infinity;
          return { out, lse };
        } finally {
          release(r.out);
          release(r.lse);
        }
      } finally {
        ins.forEach(release);
      }
    },

    async backward(dout, q, k, v, out, lse, opts): Promise<AttentionGradients> {
      rt.check();
      validateBackward(dout, q, k, v, out, lse, opts);
      checkHeadDim(q.shape[3]!);
      const lseDev = new Float32Array(lse.length);
      for (let i = 0; i < lse.length; i++) lseDev[i] = lse[i]! === -Infinity ? LSE_MASKED : lse[i]!;
      const ins = [
        upload(dout),
        upload(q),
        upload(k),
        upload(v),
        upload(out),
        upload({ dtype: 'float32', shape: [lse.length], data: lseDev } as Tensor),
      ];
      const lseT: GPUTensor = { dtype: 'float32', shape: [q.shape[0]!, q.shape[2]!, q.shape[1]!], buffer: ins[5]!.buffer };
      try {
        const g = await backwardOnDevice(ins[0]!, ins[1]!, ins[2]!, ins[3]!, ins[4]!, lseT, opts);
        try {
          return { dq: await download(g.dq), dk: await download(g.dk), dv: await download(g.dv) };
        } finally {
          release(g.dq);
          release(g.dk);
          release(g.dv);
        }
      } finally {
        ins.forEach(release);
      }
    },

    dispose(): void {
      rt.dispose(owned);
      acquired = undefined;
    },
  };
  return backend;
}

export { BackendExecutionError };

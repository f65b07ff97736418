/**
 * createWebGPUBackend: one object that is core's host-tensor `AttentionBackend`, `DeviceMemory<WebGPUBuffer>`
 * and `DeviceAttention<WebGPUBuffer>`. The host API is a thin layer over the device one: upload into
 * fresh buffers, call attentionForward / attentionBackward on contiguous views, download.
 */
import {
  AttentionInputError,
  BackendExecutionError,
  contiguousView,
  numel,
  validateBackward,
  validateForward,
  type AttentionBackend,
  type AttentionForwardResult,
  type AttentionGradients,
  type BackendCapabilities,
  type DeviceAttention,
  type DeviceKvCacheAttention,
  type DeviceMemory,
  type DeviceVarlenAttention,
  type Tensor,
} from '@flashattn/core';
import { kindFor, MAX_HEAD_DIM, WebGPUDeviceAttention } from './attention.js';
import { acquireDevice, releaseGPU, type AcquireOptions, type Acquired } from './gpu.js';
import { WebGPUMemory, type WebGPUBuffer } from './memory.js';
import { Runtime } from './runtime.js';
import { chooseVariant, type Variant } from './variants.js';
import { kvParallelism, WebGPUKvCacheAttention } from './inference/kv-cache.js';
import { WebGPUVarlenAttention } from './inference/varlen.js';

export { MAX_HEAD_DIM };

export interface WebGPUBackendOptions extends AcquireOptions {
  /**
   * Small tiles and one pipeline for all dtypes (dtype chosen at run time), for adapters where shader
   * compilation is slow. Default: on for software adapters (SwiftShader, llvmpipe), off otherwise.
   */
  compact?: boolean;
  /** Force tile sizes (benchmarks and tuning), for all head dims or per head dim; each must fit the device. */
  tiles?: Partial<Variant> | ((headDim: number) => Partial<Variant> | undefined);
  /** KV-cache attention: stage K tiles through workgroup memory (tuning runs; default off). */
  kvStageK?: boolean;
}

/** Software rasterisers, where compile time dominates and the compact variant is used. */
export function isSoftwareAdapter(info: GPUAdapterInfo | undefined): boolean {
  if (!info) return false;
  const text = [info.vendor, info.architecture, info.device, info.description].join(' ');
  return /swiftshader|llvmpipe|lavapipe|softpipe|software|basic render/i.test(text);
}

export interface WebGPUAttentionBackend
  extends
    AttentionBackend,
    DeviceMemory<WebGPUBuffer>,
    DeviceAttention<WebGPUBuffer>,
    DeviceKvCacheAttention<WebGPUBuffer>,
    DeviceVarlenAttention<WebGPUBuffer> {
  readonly device: GPUDevice;
  readonly runtime: Runtime;
  /** Whether float16 buffers are read as native f16 (shader-f16) rather than packed u32 words. */
  readonly nativeF16: boolean;
  /** Small tiles and run-time dtype (software adapters); see WebGPUBackendOptions.compact. */
  readonly compact: boolean;
  /** Tiles chosen for a head dimension on this device. */
  variant(headDim: number): Variant;
  /** A handle on a caller's GPUBuffer (usage STORAGE | COPY_SRC | COPY_DST); the caller keeps it (free() rejects it). */
  wrap(gpu: GPUBuffer, dtype: WebGPUBuffer['dtype'], length?: number): WebGPUBuffer;
}

export async function createWebGPUBackend(
  options: WebGPUBackendOptions = {},
): Promise<WebGPUAttentionBackend> {
  // `acquired.gpu` must stay referenced while the device lives (see Acquired.gpu); dispose() releases it.
  let acquired: Acquired | undefined = await acquireDevice(options);
  const { device, owned } = acquired;
  const info = acquired.adapterInfo;
  const label = info
    ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ')
    : '';
  const name = `webgpu${label ? ` (${label})` : ''}`;
  const rt = new Runtime(device, name);
  const compact = options.compact ?? isSoftwareAdapter(info);
  const nativeF16 = device.features.has('shader-f16') && !compact;
  const variants = new Map<number, Variant>();
  const variant = (D: number): Variant => {
    let v = variants.get(D);
    if (!v) {
      const forced = typeof options.tiles === 'function' ? options.tiles(D) : options.tiles;
      v = { ...chooseVariant(D, device.limits, compact), ...forced };
      variants.set(D, v);
    }
    return v;
  };
  const mem = new WebGPUMemory(rt);
  const att = new WebGPUDeviceAttention({ rt, mem, kindOf: kindFor(nativeF16, compact), variant });
  // Inference (inference/): KV cache, split-KV, combine; varlen through the flash programs per sequence
  const kv = new WebGPUKvCacheAttention({
    rt,
    mem,
    kindOf: kindFor(nativeF16, compact),
    maxHeadDim: MAX_HEAD_DIM,
    parallelism: kvParallelism(compact),
    stageK: options.kvStageK ?? false,
  });
  const varlen = new WebGPUVarlenAttention({ rt, mem, attention: att, maxHeadDim: MAX_HEAD_DIM });

  const checkHeadDim = (D: number): void => {
    if (D > MAX_HEAD_DIM) {
      throw new AttentionInputError(
        'q.shape[3] (headdim)',
        `at most ${MAX_HEAD_DIM} on the WebGPU backend`,
        D,
      );
    }
  };

  /** A device copy of a host tensor (the caller frees it). */
  const put = async (t: Tensor): Promise<WebGPUBuffer> => {
    const b = mem.alloc(numel(t.shape), t.dtype);
    try {
      await mem.upload(b, t.data);
    } catch (e) {
      mem.free(b);
      throw e;
    }
    return b;
  };
  const shape4 = (t: Tensor) => t.shape as unknown as readonly [number, number, number, number];

  const capabilities: BackendCapabilities = att.attentionCapabilities;

  const backend: WebGPUAttentionBackend = {
    name,
    capabilities,
    attentionCapabilities: capabilities,
    dtypes: mem.dtypes,
    device,
    runtime: rt,
    nativeF16,
    compact,
    variant,
    alloc: (n, dtype) => mem.alloc(n, dtype),
    view: (buf, offset, length) => mem.view(buf, offset, length),
    wrap: (gpu, dtype, length) => mem.wrap(gpu, dtype, length),
    lengthOf: (buf) => mem.lengthOf(buf),
    dtypeOf: (buf) => mem.dtypeOf(buf),
    zero: (buf) => mem.zero(buf),
    upload: (buf, data) => mem.upload(buf, data),
    download: (buf) => mem.download(buf),
    copy: (dst, src) => mem.copy(dst, src),
    free: (buf) => mem.free(buf),
    attentionForward: (args, opts) => att.attentionForward(args, opts),
    attentionBackward: (args, opts) => att.attentionBackward(args, opts),
    kvCacheCapabilities: kv.kvCacheCapabilities,
    attentionWithKvCache: (args, opts) => kv.attentionWithKvCache(args, opts),
    attentionCombine: (args) => kv.attentionCombine(args),
    varlenAttentionForward: (args, opts) => varlen.varlenAttentionForward(args, opts),
    varlenAttentionBackward: (args, opts) => varlen.varlenAttentionBackward(args, opts),

    async forward(q, k, v, opts): Promise<AttentionForwardResult> {
      rt.check();
      validateForward(q, k, v, opts);
      checkHeadDim(q.shape[3]!);
      const [B, Nq, Hq] = shape4(q);
      const owned: WebGPUBuffer[] = [];
      try {
        for (const t of [q, k, v]) owned.push(await put(t));
        const out = mem.alloc(numel(q.shape), q.dtype);
        const lse = mem.alloc(B * Hq * Nq, 'float32');
        owned.push(out, lse);
        await att.attentionForward(
          {
            q: contiguousView(owned[0]!, shape4(q)),
            k: contiguousView(owned[1]!, shape4(k)),
            v: contiguousView(owned[2]!, shape4(v)),
            out: contiguousView(out, shape4(q)),
            lse,
          },
          opts,
        );
        const outData = await mem.download(out);
        const lseData = (await mem.download(lse)) as Float32Array;
        return {
          out: { dtype: q.dtype, shape: [...q.shape], data: outData } as Tensor,
          lse: lseData,
        };
      } finally {
        owned.forEach((b) => mem.free(b));
      }
    },

    async backward(dout, q, k, v, out, lse, opts): Promise<AttentionGradients> {
      rt.check();
      validateBackward(dout, q, k, v, out, lse, opts);
      checkHeadDim(q.shape[3]!);
      const owned: WebGPUBuffer[] = [];
      try {
        for (const t of [dout, q, k, v, out]) owned.push(await put(t));
        const lseBuf = mem.alloc(lse.length, 'float32');
        owned.push(lseBuf);
        await mem.upload(lseBuf, lse);
        const grads = [q, k, v].map((t) => mem.alloc(numel(t.shape), t.dtype));
        owned.push(...grads);
        const [dq, dk, dv] = grads as [WebGPUBuffer, WebGPUBuffer, WebGPUBuffer];
        await att.attentionBackward(
          {
            dout: contiguousView(owned[0]!, shape4(dout)),
            q: contiguousView(owned[1]!, shape4(q)),
            k: contiguousView(owned[2]!, shape4(k)),
            v: contiguousView(owned[3]!, shape4(v)),
            out: contiguousView(owned[4]!, shape4(out)),
            lse: lseBuf,
            dq: contiguousView(dq, shape4(q)),
            dk: contiguousView(dk, shape4(k)),
            dv: contiguousView(dv, shape4(v)),
          },
          opts,
        );
        const get = async (b: WebGPUBuffer, t: Tensor): Promise<Tensor> =>
          ({ dtype: t.dtype, shape: [...t.shape], data: await mem.download(b) }) as Tensor;
        return { dq: await get(dq, q), dk: await get(dk, k), dv: await get(dv, v) };
      } finally {
        owned.forEach((b) => mem.free(b));
      }
    },

    dispose(): void {
      if (!acquired) return;
      rt.dispose(owned);
      releaseGPU(acquired.gpu);
      acquired = undefined;
    },
  };
  return backend;
}

export { BackendExecutionError };

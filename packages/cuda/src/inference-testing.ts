/**
 * A testing view of a CudaDevice for the inference suite (used by the package's GPU tests and by the device runner,
 * apps/bench/src/cuda/decode-run.ts, which has no vitest on the GPU machine); not production paths.
 *
 * withAlignedKvCaches: KV-cache calls on 16-byte aligned caches. The conformance scenarios place every cache 3
 * elements into its buffer (a view offset the backend must honour), which sends the decode kernel down its
 * scalar-load path. This wrapper copies each cache view into a fresh allocation (pool allocations are 256-byte
 * aligned), runs the call on the copies - the 16-byte-load path whenever D and the strides allow it - and copies
 * the caches back, so the suite's checks (oracle, exact appends, untouched pages, guards) judge the vector path on
 * the same data.
 *
 * (The deliberately broken KV-cache wrappers the GPU tests and the device runner also run are conformance's
 * BROKEN_KV_VARIANTS.)
 */
import type { KvCacheAttentionArgs, KvCacheOptions, StridedView } from '@flashattn/core';
import type { CudaBuffer } from './cuda-buffer.js';
import type { CudaDevice } from './device.js';

/** The extent [offset, offset + n) of a view's elements in its buffer (strides >= 0). */
function extent(v: StridedView<CudaBuffer>): number {
  const last = v.shape.reduce((a, n, i) => a + (n - 1) * (i < 3 ? v.strides[i]! : 1), 0);
  return v.shape.some((n) => n === 0) ? 0 : last + 1;
}

async function alignedCall(
  dev: CudaDevice,
  args: KvCacheAttentionArgs<CudaBuffer>,
  opts?: KvCacheOptions,
): Promise<void> {
  const copies: Array<{ src: CudaBuffer; tmp: CudaBuffer }> = [];
  const place = async (v: StridedView<CudaBuffer>): Promise<StridedView<CudaBuffer>> => {
    const n = extent(v);
    const src = dev.view(v.buffer, v.offset, n);
    const tmp = dev.alloc(n, dev.dtypeOf(v.buffer));
    await dev.copy(tmp, src);
    copies.push({ src, tmp });
    return { ...v, buffer: tmp, offset: 0 };
  };
  try {
    const kCache = await place(args.kCache);
    const vCache = await place(args.vCache);
    await dev.attentionWithKvCache({ ...args, kCache, vCache }, opts);
    for (const c of copies) await dev.copy(c.src, c.tmp);
  } finally {
    for (const c of copies) dev.free(c.tmp);
  }
}

/** `d` with some members replaced; every other one bound to `d` (its private fields need `this === d`). */
function override(d: CudaDevice, members: Record<PropertyKey, unknown>): CudaDevice {
  return new Proxy(d, {
    get(target, key) {
      if (key in members) return members[key];
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** `dev` with attentionWithKvCache running on 16-byte aligned copies of the caches (see above). */
export function withAlignedKvCaches(dev: CudaDevice): CudaDevice {
  return override(dev, {
    attentionWithKvCache: (a: KvCacheAttentionArgs<CudaBuffer>, o?: KvCacheOptions) =>
      alignedCall(dev, a, o),
    name: `${dev.name} [aligned caches]`,
  });
}

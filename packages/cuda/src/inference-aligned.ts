/**
 * A testing view of a CudaDevice whose KV-cache calls read 16-byte aligned caches: the conformance scenarios
 * place every cache 3 elements into its buffer (a view offset the backend must honour), which sends the decode
 * kernel down its scalar-load path. This wrapper copies each cache view into a fresh allocation (pool
 * allocations are 256-byte aligned), runs the call on the copies - the 16-byte-load path whenever D and the
 * strides allow it - and copies the caches back, so the suite's checks (oracle, exact appends, untouched pages,
 * guards) judge the vector path on the same data. Used by inference.conformance.test.ts and the device runner
 * (apps/bench/src/cuda/decode-run.ts); not a production path.
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

/** `dev` with attentionWithKvCache running on 16-byte aligned copies of the caches (see above). */
export function withAlignedKvCaches(dev: CudaDevice): CudaDevice {
  return new Proxy(dev, {
    get(target, key) {
      if (key === 'attentionWithKvCache')
        return (a: KvCacheAttentionArgs<CudaBuffer>, o?: KvCacheOptions) =>
          alignedCall(target, a, o);
      if (key === 'name') return `${target.name} [aligned caches]`;
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * Testing views of a CudaDevice for the inference suite (used by the package's GPU tests and by the device runner,
 * apps/bench/src/cuda/decode-run.ts, which has no vitest on the GPU machine); not production paths.
 *
 * withAlignedKvCaches: KV-cache calls on 16-byte aligned caches. The conformance scenarios place every cache 3
 * elements into its buffer (a view offset the backend must honour), which sends the decode kernel down its
 * scalar-load path. This wrapper copies each cache view into a fresh allocation (pool allocations are 256-byte
 * aligned), runs the call on the copies - the 16-byte-load path whenever D and the strides allow it - and copies
 * the caches back, so the suite's checks (oracle, exact appends, untouched pages, guards) judge the vector path on
 * the same data.
 *
 * BROKEN_KV_VARIANTS: deliberately wrong KV-cache backends the suite must fail (the append one row early, the
 * window dropped, attentionCombine ignoring the splits' lse), each with the scenario that exposes it.
 */
import type {
  AttentionCombineArgs,
  KvCacheAttentionArgs,
  KvCacheOptions,
  StridedView,
} from '@flashattn/core';
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

export interface BrokenKvVariant {
  what: string;
  /** A KV-cache scenario id fragment (KV_CACHE_SCENARIOS), or 'combine' for COMBINE_SCENARIOS[0]. */
  scenario: string;
  make(dev: CudaDevice): CudaDevice;
}

export const BROKEN_KV_VARIANTS: readonly BrokenKvVariant[] = [
  {
    what: 'append one row early',
    scenario: 'decode-append',
    make: (d) =>
      override(d, {
        attentionWithKvCache: (a: KvCacheAttentionArgs<CudaBuffer>, o?: KvCacheOptions) =>
          d.attentionWithKvCache(
            { ...a, cacheSeqlens: a.cacheSeqlens.map((x) => Math.max(0, x - 1)) },
            o,
          ),
      }),
  },
  {
    what: 'window dropped',
    scenario: 'decode-window',
    make: (d) =>
      override(d, {
        attentionWithKvCache: (a: KvCacheAttentionArgs<CudaBuffer>, o?: KvCacheOptions) => {
          const { windowSize: _dropped, ...rest } = o ?? {};
          return d.attentionWithKvCache(a, rest);
        },
      }),
  },
  {
    what: 'combine ignoring the split lse',
    scenario: 'combine',
    make: (d) =>
      override(d, {
        attentionCombine: async (a: AttentionCombineArgs<CudaBuffer>) => {
          // zero lse partials: every split weighs the same
          const zeros = d.alloc(d.lengthOf(a.lsePartial), 'float32');
          await d.zero(zeros);
          try {
            await d.attentionCombine({ ...a, lsePartial: zeros });
          } finally {
            d.free(zeros);
          }
        },
      }),
  },
];

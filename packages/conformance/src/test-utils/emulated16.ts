/**
 * A float16/bfloat16 backend emulated on top of a float64-capable one, to exercise the ops suite's
 * 16-bit path (raw-bit uploads and downloads, the 16-bit naive baselines and floors) without a GPU:
 * 16-bit buffers live in float64 buffers of the inner backend and every 16-bit buffer an op touches is
 * rounded to its dtype afterwards (inputs are representable already, so only outputs change). The
 * result is one float64 computation rounded once to 16 bits, what a good 16-bit kernel approaches.
 */
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBFloat16Bits,
  float32ToFloat16Bits,
  type BufferDType,
  type HostArray,
  type Ops,
} from '@flashattn/core';
import { roundToDType } from '../ops/dtypes.js';

/** A buffer of the emulated backend: the inner buffer and the dtype it pretends to have. */
export class Emulated<Buf> {
  constructor(
    readonly inner: Buf,
    readonly dtype: BufferDType,
  ) {}
}

const is16 = (dt: BufferDType): dt is 'float16' | 'bfloat16' =>
  dt === 'float16' || dt === 'bfloat16';

export function emulate16<Buf>(inner: Ops<Buf>): Ops<Emulated<Buf>> {
  const un = (x: unknown): unknown => {
    if (x instanceof Emulated) return x.inner;
    if (x && typeof x === 'object' && !ArrayBuffer.isView(x)) {
      // an options object (matmul's bias, geluPre, dgeluPre; adamwFrom's hyper and clip.normSq): unwrap the
      // buffers in it, at any depth
      return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, un(v)]));
    }
    return x;
  };
  const round16 = async (b: Emulated<Buf>): Promise<void> => {
    if (!is16(b.dtype) || inner.lengthOf(b.inner) === 0) return;
    const v = (await inner.download(b.inner)) as Float64Array;
    await inner.upload(
      b.inner,
      v.map((x) => roundToDType(x, b.dtype as 'float16')),
    );
  };
  /** Call inner's op on the unwrapped arguments, then round every 16-bit buffer argument. */
  const op =
    (name: keyof Ops<Buf>) =>
    async (...args: unknown[]): Promise<unknown> => {
      const f = inner[name] as (...a: unknown[]) => unknown;
      const r = await f.apply(inner, args.map(un));
      for (const a of args) {
        if (a instanceof Emulated) await round16(a);
        else if (a && typeof a === 'object' && !ArrayBuffer.isView(a))
          for (const v of Object.values(a)) if (v instanceof Emulated) await round16(v); // geluPre
      }
      return r;
    };
  const wrap = (b: Buf, dtype: BufferDType): Emulated<Buf> => new Emulated(b, dtype);
  const E = (x: Emulated<Buf>): Emulated<Buf> => x;
  const ops = {
    name: `emulated16(${inner.name})`,
    dtypes: [...inner.dtypes, 'float16', 'bfloat16'] as BufferDType[],
    attentionCapabilities: inner.attentionCapabilities,
    computeDType: (dt: BufferDType) => dt,
    alloc: (n: number, dt: BufferDType) => wrap(inner.alloc(n, is16(dt) ? 'float64' : dt), dt),
    view: (b: Emulated<Buf>, o: number, n: number) => wrap(inner.view(E(b).inner, o, n), b.dtype),
    lengthOf: (b: Emulated<Buf>) => inner.lengthOf(b.inner),
    dtypeOf: (b: Emulated<Buf>) => b.dtype,
    zero: (b: Emulated<Buf>) => inner.zero(b.inner),
    async upload(b: Emulated<Buf>, data: HostArray) {
      if (!is16(b.dtype)) return inner.upload(b.inner, data);
      const dec = b.dtype === 'float16' ? float16BitsToFloat32 : bfloat16BitsToFloat32;
      const v =
        data instanceof Uint16Array
          ? Float64Array.from(data, (x) => dec(x))
          : Float64Array.from(data, (x) => roundToDType(x, b.dtype as 'float16'));
      return inner.upload(b.inner, v);
    },
    async download(b: Emulated<Buf>) {
      const raw = await inner.download(b.inner);
      if (!is16(b.dtype)) return raw;
      const enc = b.dtype === 'float16' ? float32ToFloat16Bits : float32ToBFloat16Bits;
      return Uint16Array.from(raw, (x) => enc(x));
    },
    async copy(dst: Emulated<Buf>, src: Emulated<Buf>) {
      await inner.copy(dst.inner, src.inner);
      await round16(dst);
    },
    free: (b: Emulated<Buf>) => inner.free(b.inner),
    matmul: op('matmul'),
    biasBackward: op('biasBackward'),
    embeddingForward: op('embeddingForward'),
    embeddingBackward: op('embeddingBackward'),
    layernormForward: op('layernormForward'),
    layernormBackward: op('layernormBackward'),
    geluForward: op('geluForward'),
    geluBackward: op('geluBackward'),
    add: op('add'),
    softmaxCrossEntropy: op('softmaxCrossEntropy'),
    sum: op('sum'),
    sumSquares: op('sumSquares'),
    scale: op('scale'),
    adamw: op('adamw'),
    ...('sumTo' in inner ? { sumTo: op('sumTo' as keyof Ops<Buf>) } : {}),
    ...('adamwFrom' in inner ? { adamwFrom: op('adamwFrom' as keyof Ops<Buf>) } : {}),
    attentionForward: () => Promise.reject(new Error('emulated16: no attention')),
    attentionBackward: () => Promise.reject(new Error('emulated16: no attention')),
    dispose: () => inner.dispose(),
  };
  return ops as unknown as Ops<Emulated<Buf>>;
}

/**
 * Run the attention conformance suite on a device backend: `deviceAttentionBackend(dev, { layout })`
 * turns anything implementing `DeviceMemory<Buf> & DeviceAttention<Buf>` (core's contracts) into a
 * host-tensor `AttentionBackend`, so `runConformance` / `describeConformance` run unchanged on it.
 *
 * Each call uploads the case's host tensors into device buffers laid out as the chosen layout says,
 * calls `attentionForward` / `attentionBackward` on strided views of them, downloads the buffers and
 * gathers the views back into contiguous tensors. Layouts:
 *
 *  - 'contiguous': every tensor alone in its buffer, (B, N, H, D) row-major, offset 0;
 *  - 'padded':     every tensor alone in a buffer with gaps after each head row, sequence row and batch
 *                  (sH > D, sN > H sH, sB > N sN), reached through a `view` at a non-zero offset and a
 *                  non-zero view offset on top; lse a view at a non-zero offset of a larger buffer;
 *  - 'packed':     q, k, v inside one (B, N, 3, H, D) buffer (GPT-2's qkv projection output, core's
 *                  `packedQkvViews`) and dq, dk, dv inside one packed gradient buffer, when Nq = Nk and
 *                  Hq = Hk; other cases fall back to 'padded'. out and dout are padded.
 *
 * Every element of every buffer outside the views (padding) starts as NaN, and every output view too:
 * a backend that reads padding, accumulates into dq/dk/dv instead of overwriting them, skips writing a
 * fully masked row, or writes outside its view fails (the last is reported as a thrown error naming the
 * buffer and the element). The adapter does not dispose the device; its owner does.
 */
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  packedQkvViews,
  tensor,
  type AttentionBackend,
  type AttentionForwardResult,
  type AttentionGradients,
  type AttentionOptions,
  type BackendCapabilities,
  type DType,
  type DeviceAttention,
  type DeviceMemory,
  type HostArray,
  type StridedView,
  type Strides4,
  type Tensor,
} from '@flashattn/core';

/** What the adapter needs from a device backend (an `Ops<Buf>` is one). */
export type AttentionDevice<Buf> = DeviceMemory<Buf> &
  DeviceAttention<Buf> & { readonly name?: string };

export type DeviceLayout = 'contiguous' | 'padded' | 'packed';
export const DEVICE_LAYOUTS: readonly DeviceLayout[] = ['contiguous', 'padded', 'packed'];

export interface DeviceAttentionBackendOptions {
  /** How the tensors are laid out in device memory (default 'contiguous'). */
  layout?: DeviceLayout;
  /**
   * Round every padding gap and offset of the 'padded' and 'packed' layouts up to a multiple of this many
   * elements (default 1: odd gaps, so no gap is a multiple of a vector width). A backend whose kernels read
   * rows in place only when they are aligned (CUDA's cp.async needs 16-byte rows: align 8 for 16-bit
   * dtypes) runs with align > 1 too, so the in-place strided path is what the suite checks.
   */
  align?: number;
  /** Backend name in reports (default `${dev.name ?? 'device'} [layout]`). */
  name?: string;
}

type Shape4 = readonly [number, number, number, number];

/** Raw bits of a NaN of each storage dtype (16-bit dtypes upload raw bits). */
function nanFill(dtype: DType, n: number): Float32Array | Uint16Array {
  if (dtype === 'float32') return new Float32Array(n).fill(NaN);
  return new Uint16Array(n).fill(dtype === 'float16' ? 0x7e00 : 0x7fc0);
}

function decode(dtype: DType, raw: HostArray, i: number): number {
  const x = raw[i]!;
  return dtype === 'float16'
    ? float16BitsToFloat32(x)
    : dtype === 'bfloat16'
      ? bfloat16BitsToFloat32(x)
      : x;
}

/** Every element index (relative to the buffer) a view covers, in (b, n, h, d) order. */
function forEachElement(
  v: Omit<StridedView<unknown>, 'buffer'>,
  f: (at: number, x: number) => void,
): void {
  const [B, N, H, D] = v.shape;
  const [sB, sN, sH] = v.strides;
  let x = 0;
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++) {
        const o = v.offset + b * sB + n * sN + h * sH;
        for (let d = 0; d < D; d++) f(o + d, x++);
      }
}

/** One device allocation and the views the adapter placed in it. */
interface Placed<Buf> {
  root: Buf;
  /** The buffer the views index (root, or a view of it at `base`). */
  buf: Buf;
  base: number;
  length: number;
  dtype: DType;
  views: Record<string, StridedView<Buf>>;
  /** Names of the views that are outputs (checked for writes outside them). */
  outputs: string[];
}

/** x rounded up to a multiple of a. */
const roundUp = (x: number, a: number): number => Math.ceil(x / a) * a;

/**
 * Where a (B, N, H, D) tensor goes in a padded layout: gaps of 1 element after each head row, 3 after
 * each sequence row, 5 after each batch, and 7 elements before the view (odd, so no gap is a multiple
 * of a vector width), each rounded up to a multiple of `align`.
 */
function paddedGeometry(shape: Shape4, align: number): { strides: Strides4; extent: number } {
  const [B, N, H, D] = shape;
  const sH = roundUp(D + 1, align);
  const sN = roundUp(H * sH + 3, align);
  const sB = roundUp(N * sN + 5, align);
  return { strides: [sB, sN, sH, 1], extent: B * sB };
}
const PAD_VIEW_OFFSET = 7; // offset inside the device view (rounded up to `align`)
const PAD_BUFFER_OFFSET = 11; // offset of the device view inside its buffer (rounded up to `align`)

export function deviceAttentionBackend<Buf>(
  dev: AttentionDevice<Buf>,
  opts: DeviceAttentionBackendOptions = {},
): AttentionBackend {
  const layout = opts.layout ?? 'contiguous';
  const align = opts.align ?? 1;
  if (!Number.isInteger(align) || align < 1) {
    throw new RangeError(
      `deviceAttentionBackend: align must be a positive integer, got ${String(align)}`,
    );
  }
  const viewOffset = roundUp(PAD_VIEW_OFFSET, align);
  const bufferOffset = roundUp(PAD_BUFFER_OFFSET, align);
  if (!DEVICE_LAYOUTS.includes(layout)) {
    throw new RangeError(
      `deviceAttentionBackend: layout must be one of ${DEVICE_LAYOUTS.join(', ')}, got '${String(layout)}'`,
    );
  }
  const name =
    opts.name ?? `${dev.name ?? 'device'} [${layout}${align > 1 ? `, align ${align}` : ''}]`;
  const caps = dev.attentionCapabilities;
  const capabilities: BackendCapabilities = {
    dtypes: caps.dtypes.filter((d) => dev.dtypes.includes(d)),
    maxHeadDim: caps.maxHeadDim,
    computeDType: (d) => caps.computeDType(d),
  };
  let disposed = false;

  /** Allocate one buffer holding the named tensors (NaN everywhere), upload the inputs, return the views. */
  async function place(
    dtype: DType,
    tensors: Record<string, { shape: Shape4; data?: Float32Array | Uint16Array; output?: boolean }>,
    packed: boolean,
  ): Promise<Placed<Buf>> {
    const names = Object.keys(tensors);
    const views: Record<string, Omit<StridedView<Buf>, 'buffer'>> = {};
    let length: number;
    let base = 0;
    if (packed) {
      // q, k, v (or dq, dk, dv) of one (B, N, 3, H, D) buffer.
      const [B, N, H, D] = tensors[names[0]!]!.shape;
      base = layout === 'packed' ? bufferOffset : 0;
      const p = packedQkvViews(null, B, N, H, D, viewOffset);
      [views[names[0]!], views[names[1]!], views[names[2]!]] = [p.q, p.k, p.v];
      length = viewOffset + B * N * 3 * H * D;
    } else if (layout === 'contiguous') {
      const shape = tensors[names[0]!]!.shape;
      const [, N, H, D] = shape;
      views[names[0]!] = { offset: 0, shape, strides: [N * H * D, H * D, D, 1] };
      length = shape.reduce((a, b) => a * b, 1);
    } else {
      const shape = tensors[names[0]!]!.shape;
      const g = paddedGeometry(shape, align);
      base = bufferOffset;
      views[names[0]!] = { offset: viewOffset, shape, strides: g.strides };
      length = viewOffset + g.extent;
    }
    const host = nanFill(dtype, length);
    for (const n of names) {
      const t = tensors[n]!;
      if (t.data) {
        const src = t.data;
        forEachElement(views[n]!, (at, x) => (host[at] = src[x]!));
      }
    }
    const root = dev.alloc(base + length, dtype);
    const buf = base > 0 ? dev.view(root, base, length) : root;
    await dev.upload(buf, host);
    const full: Record<string, StridedView<Buf>> = {};
    for (const n of names) full[n] = { ...views[n]!, buffer: buf };
    return {
      root,
      buf,
      base,
      length,
      dtype,
      views: full,
      outputs: names.filter((n) => tensors[n]!.output),
    };
  }

  /** Download a placed buffer, check nothing outside the output views changed, gather the outputs. */
  async function collect(p: Placed<Buf>): Promise<Record<string, Tensor>> {
    const raw = await dev.download(p.buf);
    if (raw.length !== p.length) {
      throw new Error(
        `${name}: download returned ${raw.length} elements for a buffer of ${p.length}`,
      );
    }
    const covered = new Uint8Array(p.length);
    for (const v of Object.values(p.views)) forEachElement(v, (at) => (covered[at] = 1));
    for (let i = 0; i < p.length; i++) {
      if (!covered[i] && !Number.isNaN(decode(p.dtype, raw, i))) {
        throw new Error(
          `${name}: element ${i} of the buffer holding ${Object.keys(p.views).join(', ')} lies outside every view ` +
            `but was written (${decode(p.dtype, raw, i)}; padding starts as NaN): a kernel ignores a stride or an offset`,
        );
      }
    }
    const res: Record<string, Tensor> = {};
    for (const n of p.outputs) {
      const v = p.views[n]!;
      const numel = v.shape.reduce((a, b) => a * b, 1);
      const data = p.dtype === 'float32' ? new Float32Array(numel) : new Uint16Array(numel);
      forEachElement(v, (at, x) => (data[x] = raw[at]!));
      res[n] = tensor(data, v.shape, p.dtype, n);
    }
    return res;
  }

  async function placeLse(
    lse: Float32Array | undefined,
    n: number,
  ): Promise<{ root: Buf; buf: Buf }> {
    const base = layout === 'contiguous' ? 0 : bufferOffset;
    const root = dev.alloc(base + n + (base > 0 ? 3 : 0), 'float32');
    const buf = base > 0 || layout !== 'contiguous' ? dev.view(root, base, n) : root;
    await dev.upload(buf, lse ?? new Float32Array(n).fill(NaN));
    return { root, buf };
  }

  const shape4 = (t: Tensor): Shape4 => t.shape as unknown as Shape4;
  const packable = (q: Tensor, k: Tensor): boolean =>
    layout === 'packed' && q.shape[1] === k.shape[1] && q.shape[2] === k.shape[2];
  const live = (): void => {
    if (disposed) throw new Error(`${name}: used after dispose()`);
  };

  async function withBuffers<T>(
    f: (track: <P extends { root: Buf }>(p: P) => P) => Promise<T>,
  ): Promise<T> {
    const roots: Buf[] = [];
    try {
      return await f((p) => {
        roots.push(p.root);
        return p;
      });
    } finally {
      for (const r of roots) dev.free(r);
    }
  }

  /** q, k, v: packed into one buffer when the layout and shapes allow, else one buffer each. */
  async function placeQkv(
    track: <P extends { root: Buf }>(p: P) => P,
    q: Tensor,
    k: Tensor,
    v: Tensor,
  ): Promise<Record<'q' | 'k' | 'v', StridedView<Buf>>> {
    const dt = q.dtype;
    if (packable(q, k)) {
      const p = track(
        await place(
          dt,
          {
            q: { shape: shape4(q), data: q.data },
            k: { shape: shape4(k), data: k.data },
            v: { shape: shape4(v), data: v.data },
          },
          true,
        ),
      );
      return { q: p.views.q!, k: p.views.k!, v: p.views.v! };
    }
    const one = async (n: string, t: Tensor) =>
      track(await place(dt, { [n]: { shape: shape4(t), data: t.data } }, false)).views[n]!;
    return { q: await one('q', q), k: await one('k', k), v: await one('v', v) };
  }

  return {
    name,
    capabilities,
    async forward(q, k, v, o?: AttentionOptions): Promise<AttentionForwardResult> {
      live();
      return withBuffers(async (track) => {
        const [B, Nq, Hq] = q.shape as [number, number, number];
        const qkv = await placeQkv(track, q, k, v);
        const outP = track(
          await place(q.dtype, { out: { shape: shape4(q), output: true } }, false),
        );
        const lseP = track(await placeLse(undefined, B * Hq * Nq));
        await dev.attentionForward({ ...qkv, out: outP.views.out!, lse: lseP.buf }, o);
        const { out } = await collect(outP);
        const lse = await dev.download(lseP.buf);
        if (!(lse instanceof Float32Array)) {
          throw new Error(
            `${name}: lse downloaded as ${lse.constructor.name}, expected Float32Array`,
          );
        }
        return { out: out!, lse };
      });
    },
    async backward(dout, q, k, v, out, lse, o?: AttentionOptions): Promise<AttentionGradients> {
      live();
      return withBuffers(async (track) => {
        const dt = q.dtype;
        const qkv = await placeQkv(track, q, k, v);
        const outP = track(await place(dt, { out: { shape: shape4(out), data: out.data } }, false));
        const doutP = track(
          await place(dt, { dout: { shape: shape4(dout), data: dout.data } }, false),
        );
        const lseP = track(await placeLse(lse, lse.length));
        let grads: Placed<Buf>[];
        if (packable(q, k)) {
          grads = [
            track(
              await place(
                dt,
                {
                  dq: { shape: shape4(q), output: true },
                  dk: { shape: shape4(k), output: true },
                  dv: { shape: shape4(v), output: true },
                },
                true,
              ),
            ),
          ];
        } else {
          grads = [
            track(await place(dt, { dq: { shape: shape4(q), output: true } }, false)),
            track(await place(dt, { dk: { shape: shape4(k), output: true } }, false)),
            track(await place(dt, { dv: { shape: shape4(v), output: true } }, false)),
          ];
        }
        const gv = Object.assign({}, ...grads.map((g) => g.views)) as Record<
          string,
          StridedView<Buf>
        >;
        await dev.attentionBackward(
          {
            ...qkv,
            out: outP.views.out!,
            dout: doutP.views.dout!,
            lse: lseP.buf,
            dq: gv.dq!,
            dk: gv.dk!,
            dv: gv.dv!,
          },
          o,
        );
        const res: Record<string, Tensor> = {};
        for (const g of grads) Object.assign(res, await collect(g));
        return { dq: res.dq!, dk: res.dk!, dv: res.dv! };
      });
    },
    dispose() {
      disposed = true;
    },
  };
}

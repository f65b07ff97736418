/**
 * A host-tensor AttentionBackend over a CudaDevice whose views the kernels read and write IN PLACE, so the
 * conformance matrix (runConformance / describeConformance: float64 oracle, naive same-precision run, the
 * tolerance rule) checks the strided kernels themselves, not the staging copies. Conformance's own device
 * layouts ('padded', 'packed') use odd gaps and offsets (7, 11 elements): correct for any backend, but here they
 * all go through the staging path, because the kernels need 16-byte aligned rows. Layouts:
 *
 *  - 'packed8': q, k, v at element offset 8 of one (B, N, 3, H, D) buffer (GPT-2's qkv: row stride 3 H D,
 *               head stride D), dq, dk, dv likewise in one packed gradient (when Nq = Nk and Hq = Hk; else
 *               'padded8'); out, dout padded8;
 *  - 'padded8': every tensor in its own buffer, reached through a view at offset 8 of it, at view offset 8,
 *               with a gap of 8 elements after each head row, sequence row and batch.
 *
 * Everything outside the views starts as NaN (a kernel that reads padding poisons its result) and must still be
 * NaN afterwards (a kernel that ignores a stride writes outside its view: a thrown error names the element).
 */
import {
  packedQkvViews,
  tensor,
  type AttentionBackend,
  type AttentionForwardResult,
  type AttentionGradients,
  type AttentionOptions,
  type DType,
  type DeviceAttention,
  type DeviceMemory,
  type HostArray,
  type StridedView,
  type Tensor,
} from '@flashattn/core';

/** What the adapter needs: a device backend (a CudaDevice, or any DeviceMemory + DeviceAttention). */
export type AlignedDevice<Buf> = DeviceMemory<Buf> &
  DeviceAttention<Buf> & { readonly name?: string };

export type AlignedLayout = 'packed8' | 'padded8';
export const ALIGNED_LAYOUTS: readonly AlignedLayout[] = ['packed8', 'padded8'];

type Shape4 = readonly [number, number, number, number];
const A = 8; // elements: 16 bytes of a 16-bit dtype

function nanRaw(dtype: DType, n: number): Float32Array | Uint16Array {
  return dtype === 'float32'
    ? new Float32Array(n).fill(NaN)
    : new Uint16Array(n).fill(dtype === 'float16' ? 0x7e00 : 0x7fc0);
}
function isNanRaw(dtype: DType, raw: HostArray, i: number): boolean {
  const x = raw[i]!;
  if (dtype === 'float32') return Number.isNaN(x);
  return dtype === 'float16'
    ? (x & 0x7c00) === 0x7c00 && (x & 0x3ff) !== 0
    : (x & 0x7f80) === 0x7f80 && (x & 0x7f) !== 0;
}
function forEach(
  v: Omit<StridedView<unknown>, 'buffer'>,
  f: (at: number, x: number) => void,
): void {
  const [B, N, H, D] = v.shape;
  const [sB, sN, sH] = v.strides;
  let x = 0;
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++)
        for (let d = 0; d < D; d++) f(v.offset + b * sB + n * sN + h * sH + d, x++);
}

interface Placed<Buf> {
  root: Buf;
  buf: Buf;
  length: number;
  dtype: DType;
  views: Record<string, StridedView<Buf>>;
}

export function alignedDeviceBackend<Buf>(
  dev: AlignedDevice<Buf>,
  layout: AlignedLayout,
): AttentionBackend {
  const name = `${dev.name ?? 'device'} [${layout}]`;
  const caps = dev.attentionCapabilities;

  async function place(
    dtype: DType,
    ts: Record<string, { shape: Shape4; data?: Float32Array | Uint16Array }>,
    packed: boolean,
  ): Promise<Placed<Buf>> {
    const names = Object.keys(ts);
    const views: Record<string, Omit<StridedView<Buf>, 'buffer'>> = {};
    let length: number;
    if (packed) {
      const [B, N, H, D] = ts[names[0]!]!.shape;
      const p = packedQkvViews(null, B, N, H, D, A);
      [views[names[0]!], views[names[1]!], views[names[2]!]] = [p.q, p.k, p.v];
      length = A + B * N * 3 * H * D;
    } else {
      const shape = ts[names[0]!]!.shape;
      const [B, N, H, D] = shape;
      const sH = Math.ceil(D / A) * A + A;
      const sN = H * sH + A;
      const sB = N * sN + A;
      views[names[0]!] = { offset: A, shape, strides: [sB, sN, sH, 1] };
      length = A + B * sB;
    }
    const host = nanRaw(dtype, length);
    for (const n of names) {
      const src = ts[n]!.data;
      if (src) forEach(views[n]!, (at, x) => (host[at] = src[x]!));
    }
    const root = dev.alloc(A + length, dtype);
    const buf = dev.view(root, A, length);
    await dev.upload(buf, host);
    const full: Record<string, StridedView<Buf>> = {};
    for (const n of names) full[n] = { ...views[n]!, buffer: buf };
    return { root, buf, length, dtype, views: full };
  }

  async function collect(p: Placed<Buf>, outputs: string[]): Promise<Record<string, Tensor>> {
    const raw = await dev.download(p.buf);
    const covered = new Uint8Array(p.length);
    for (const v of Object.values(p.views)) forEach(v, (at) => (covered[at] = 1));
    for (let i = 0; i < p.length; i++) {
      if (!covered[i] && !isNanRaw(p.dtype, raw, i)) {
        throw new Error(
          `${name}: element ${i} outside every view of ${Object.keys(p.views).join(', ')} was written`,
        );
      }
    }
    const res: Record<string, Tensor> = {};
    for (const n of outputs) {
      const v = p.views[n]!;
      const numel = v.shape.reduce((a, b) => a * b, 1);
      const data = p.dtype === 'float32' ? new Float32Array(numel) : new Uint16Array(numel);
      forEach(v, (at, x) => (data[x] = raw[at]!));
      res[n] = tensor(data, v.shape, p.dtype, n);
    }
    return res;
  }

  async function lseBuffer(n: number, data?: Float32Array): Promise<{ root: Buf; buf: Buf }> {
    const root = dev.alloc(n + 2 * A, 'float32');
    const buf = dev.view(root, A, n);
    await dev.upload(buf, data ?? new Float32Array(n).fill(NaN));
    return { root, buf };
  }

  const shape4 = (t: Tensor): Shape4 => t.shape as unknown as Shape4;
  const packable = (q: Tensor, k: Tensor): boolean =>
    layout === 'packed8' && q.shape[1] === k.shape[1] && q.shape[2] === k.shape[2];

  async function withRoots<T>(
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

  async function qkv(
    track: <P extends { root: Buf }>(p: P) => P,
    q: Tensor,
    k: Tensor,
    v: Tensor,
  ): Promise<Record<'q' | 'k' | 'v', StridedView<Buf>>> {
    if (packable(q, k)) {
      const p = track(
        await place(
          q.dtype,
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
      track(await place(t.dtype, { [n]: { shape: shape4(t), data: t.data } }, false)).views[n]!;
    return { q: await one('q', q), k: await one('k', k), v: await one('v', v) };
  }

  return {
    name,
    capabilities: {
      dtypes: caps.dtypes,
      maxHeadDim: caps.maxHeadDim,
      computeDType: (d) => caps.computeDType(d),
    },
    forward(q, k, v, o?: AttentionOptions): Promise<AttentionForwardResult> {
      return withRoots(async (track) => {
        const [B, Nq, Hq] = q.shape as [number, number, number];
        const views = await qkv(track, q, k, v);
        const outP = track(await place(q.dtype, { out: { shape: shape4(q) } }, false));
        const lseB = track(await lseBuffer(B * Hq * Nq));
        await dev.attentionForward({ ...views, out: outP.views.out!, lse: lseB.buf }, o);
        const { out } = await collect(outP, ['out']);
        return { out: out!, lse: (await dev.download(lseB.buf)) as Float32Array };
      });
    },
    backward(dout, q, k, v, out, lse, o?: AttentionOptions): Promise<AttentionGradients> {
      return withRoots(async (track) => {
        const dt = q.dtype;
        const views = await qkv(track, q, k, v);
        const outP = track(await place(dt, { out: { shape: shape4(out), data: out.data } }, false));
        const doutP = track(
          await place(dt, { dout: { shape: shape4(dout), data: dout.data } }, false),
        );
        const lseB = track(await lseBuffer(lse.length, lse));
        const grads: Placed<Buf>[] = packable(q, k)
          ? [
              track(
                await place(
                  dt,
                  { dq: { shape: shape4(q) }, dk: { shape: shape4(k) }, dv: { shape: shape4(v) } },
                  true,
                ),
              ),
            ]
          : [
              track(await place(dt, { dq: { shape: shape4(q) } }, false)),
              track(await place(dt, { dk: { shape: shape4(k) } }, false)),
              track(await place(dt, { dv: { shape: shape4(v) } }, false)),
            ];
        const gv = Object.assign({}, ...grads.map((g) => g.views)) as Record<
          'dq' | 'dk' | 'dv',
          StridedView<Buf>
        >;
        await dev.attentionBackward(
          {
            ...views,
            out: outP.views.out!,
            dout: doutP.views.dout!,
            lse: lseB.buf,
            dq: gv.dq,
            dk: gv.dk,
            dv: gv.dv,
          },
          o,
        );
        const got: Record<string, Tensor> = {};
        for (const g of grads) Object.assign(got, await collect(g, Object.keys(g.views)));
        return { dq: got.dq!, dk: got.dk!, dv: got.dv! };
      });
    },
    dispose() {
      // the device belongs to the caller
    },
  };
}

/**
 * Backend behaviour beyond the numbers (conformance.test.ts checks those): the device API on packed
 * views gives the same bits as the host API on contiguous tensors, and bad input, foreign or freed
 * buffers and use after dispose become typed errors.
 */
import {
  AttentionInputError,
  BackendExecutionError,
  contiguousView,
  createRng,
  fromFloat32,
  packedQkvViews,
  type StridedView,
  type Tensor,
} from '@flashattn/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebGPUBackend, type WebGPUAttentionBackend, type WebGPUBuffer } from './index.js';
import { defaultToSwiftShader, webgpuRequired } from './test-utils/env.js';

defaultToSwiftShader();

let backend: WebGPUAttentionBackend | undefined;
let unavailable: string | undefined;
try {
  backend = await createWebGPUBackend();
} catch (e) {
  unavailable = e instanceof Error ? e.message : String(e);
}
const skip = unavailable !== undefined && !webgpuRequired();
if (skip) console.warn(`webgpu backend tests skipped: no WebGPU adapter: ${unavailable}`);

function randn(shape: number[], seed: number): Tensor {
  const rng = createRng(seed);
  const x = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  return fromFloat32(x, shape, 'float32');
}

/** Scatter a (B, T, H, D) host tensor into slot `s` of a packed (B, T, 3, H, D) host array. */
function pack(dst: Float32Array, t: Tensor, s: number): void {
  const [B, T, H, D] = t.shape as [number, number, number, number];
  const C = H * D;
  for (let bt = 0; bt < B * T; bt++)
    for (let c = 0; c < C; c++) dst[bt * 3 * C + s * C + c] = t.data[bt * C + c]!;
}
function unpack(src: Float32Array, shape: readonly number[], s: number): number[] {
  const [B, T, H, D] = shape as [number, number, number, number];
  const C = H * D;
  const out: number[] = [];
  for (let bt = 0; bt < B * T; bt++)
    for (let c = 0; c < C; c++) out.push(src[bt * 3 * C + s * C + c]!);
  return out;
}

describe.skipIf(skip)('webgpu backend', () => {
  beforeAll(() => {
    if (!backend) throw new Error(`no WebGPU adapter although one is required: ${unavailable}`);
  });
  afterAll(() => backend?.dispose());

  it('reads q, k, v from a packed (B, T, 3, H, D) buffer and writes the packed gradient: same bits as the host API', async () => {
    const be = backend!;
    const [B, T, H, D] = [2, 33, 2, 32];
    const shape = [B, T, H, D];
    const [q, k, v, dout] = [0, 1, 2, 3].map((i) => randn(shape, 7 + i)) as [
      Tensor,
      Tensor,
      Tensor,
      Tensor,
    ];
    const opts = { causal: true };
    const host = await be.forward(q, k, v, opts);
    const hostGrads = await be.backward(dout, q, k, v, host.out, host.lse, opts);

    const packed = new Float32Array(B * T * 3 * H * D);
    [q, k, v].forEach((t, s) => pack(packed, t, s));
    const qkv = be.alloc(packed.length, 'float32');
    const dqkv = be.alloc(packed.length, 'float32');
    const out = be.alloc(q.data.length, 'float32');
    const dO = be.alloc(q.data.length, 'float32');
    const lse = be.alloc(B * H * T, 'float32');
    await be.upload(qkv, packed);
    await be.upload(dO, dout.data as Float32Array);
    const views = packedQkvViews(qkv, B, T, H, D);
    const grads = packedQkvViews(dqkv, B, T, H, D);
    const o: StridedView<WebGPUBuffer> = contiguousView(out, [B, T, H, D]);
    await be.attentionForward({ ...views, out: o, lse }, opts);
    await be.attentionBackward(
      {
        ...views,
        out: o,
        lse,
        dout: contiguousView(dO, [B, T, H, D]),
        dq: grads.q,
        dk: grads.k,
        dv: grads.v,
      },
      opts,
    );
    expect(Array.from(await be.download(out))).toEqual(Array.from(host.out.data));
    expect(Array.from(await be.download(lse))).toEqual(Array.from(host.lse));
    const g = (await be.download(dqkv)) as Float32Array;
    expect(unpack(g, shape, 0)).toEqual(Array.from(hostGrads.dq.data));
    expect(unpack(g, shape, 1)).toEqual(Array.from(hostGrads.dk.data));
    expect(unpack(g, shape, 2)).toEqual(Array.from(hostGrads.dv.data));
    for (const b of [qkv, dqkv, out, dO, lse]) be.free(b);
  });

  it('stores lse = -Infinity and out = 0 for fully masked rows', async () => {
    const be = backend!;
    // causal with Nq > Nk: query rows 0 .. Nq - Nk - 1 see no key (bottom-right aligned diagonal)
    const q = randn([1, 6, 1, 16], 1);
    const k = randn([1, 2, 1, 16], 2);
    const r = await be.forward(q, k, k, { causal: true });
    expect(Array.from(r.lse.subarray(0, 4))).toEqual([-Infinity, -Infinity, -Infinity, -Infinity]);
    expect(r.lse.subarray(4).every(Number.isFinite)).toBe(true);
    expect(Array.from(r.out.data.subarray(0, 4 * 16)).every((x) => x === 0)).toBe(true);
  });

  it('rejects bad input with AttentionInputError naming the argument', async () => {
    const be = backend!;
    const q = randn([1, 4, 2, 32], 1);
    const k = randn([1, 4, 2, 16], 2);
    await expect(be.forward(q, k, k)).rejects.toThrow(AttentionInputError);
    await expect(be.forward(q, k, k)).rejects.toThrow(/k\.shape\[3\]/);
    const big = randn([1, 2, 1, 300], 3);
    await expect(be.forward(big, big, big)).rejects.toThrow(/headdim/);

    const buf = be.alloc(64, 'float32');
    const lse = be.alloc(4, 'float32');
    const view = (
      offset: number,
      strides: [number, number, number, 1],
    ): StridedView<WebGPUBuffer> => ({
      buffer: buf,
      offset,
      shape: [1, 4, 1, 16],
      strides,
    });
    const ok = view(0, [64, 16, 16, 1]);
    // a view reaching past its buffer
    await expect(
      be.attentionForward({ q: view(8, [64, 16, 16, 1]), k: ok, v: ok, out: ok, lse }),
    ).rejects.toThrow(/Invalid q:.*inside its buffer/);
    // head-dim stride other than 1
    const bad = { ...ok, strides: [64, 16, 16, 2] as unknown as [number, number, number, 1] };
    await expect(be.attentionForward({ q: ok, k: bad, v: ok, out: ok, lse })).rejects.toThrow(
      /k\.strides\[3\]/,
    );
    // lse too short
    const short = be.alloc(2, 'float32');
    await expect(be.attentionForward({ q: ok, k: ok, v: ok, out: ok, lse: short })).rejects.toThrow(
      /Invalid lse/,
    );
    // dtype mismatch
    const half = be.alloc(64, 'float16');
    await expect(
      be.attentionForward({ q: ok, k: ok, v: ok, out: { ...ok, buffer: half }, lse }),
    ).rejects.toThrow(/out\.buffer\.dtype/);
    // a freed buffer and a buffer of another backend
    be.free(short);
    await expect(be.attentionForward({ q: ok, k: ok, v: ok, out: ok, lse: short })).rejects.toThrow(
      /lse.*freed/,
    );
    const other = await createWebGPUBackend();
    const foreign = other.alloc(64, 'float32');
    await expect(
      be.attentionForward({ q: ok, k: { ...ok, buffer: foreign }, v: ok, out: ok, lse }),
    ).rejects.toThrow(/k\.buffer.*another backend/);
    other.dispose();
    for (const b of [buf, lse, half]) be.free(b);
  });

  it('throws BackendExecutionError after dispose', async () => {
    const other = await createWebGPUBackend();
    other.dispose();
    const q = randn([1, 2, 1, 32], 4);
    await expect(other.forward(q, q, q)).rejects.toThrow(BackendExecutionError);
    expect(() => other.alloc(4, 'float32')).toThrow(BackendExecutionError);
  });
});

/**
 * Standard attention on the GPU, for benchmark comparison only: it materialises S = scale Q K^T and
 * P = softmax(S) (and dP, dS in the backward) in storage buffers, like a framework's unfused
 * attention. float32, nheads_q == nheads_k. Heads are processed in chunks as large as the device's
 * buffer limit allows; when even one head's (Nq, Nk) matrix does not fit, it throws
 * BackendOutOfMemoryError, which is the point of the comparison.
 */
import { AttentionInputError, resolveOptions, type AttentionOptions } from '@flashattn/core';
import type { WebGPUAttentionBackend } from './backend.js';
import type { GPUTensor } from './device-tensor.js';
import { flashBackwardPreprocessWGSL, PREPROCESS_WG } from './kernels/flash-backward-preprocess.wgsl.js';
import { matmulWGSL, packMatmulParams, type MatmulParams, type MatmulSpec } from './kernels/matmul.wgsl.js';
import { packParams } from './kernels/params.wgsl.js';
import { softmaxBackwardWGSL } from './kernels/softmax-backward.wgsl.js';
import { softmaxWGSL } from './kernels/softmax.wgsl.js';

/** Called exactly like the flash backend's device API, so a benchmark swaps one for the other. */
export interface StandardAttention extends Pick<WebGPUAttentionBackend, 'forwardOnDevice' | 'backwardOnDevice'> {
  /** Bytes of the S / P (and dP / dS) buffers one call needs for all heads at once (unchunked). */
  materialisedBytes(q: GPUTensor, k: GPUTensor, backward: boolean): number;
}

export function createStandardAttention(be: WebGPUAttentionBackend): StandardAttention {
  // 64 x 64 tiles (4 x 4 per invocation) on GPUs; 16 x 16 on software adapters, where compile time rules.
  const TILE: Pick<MatmulSpec, 'BM' | 'BN' | 'BK'> = be.compact ? { BM: 16, BN: 16, BK: 16 } : { BM: 64, BN: 64, BK: 16 };
  const rt = be.runtime;
  const dev = be.device;

  const mm = (spec: MatmulSpec) =>
    rt.pipeline(`matmul-${spec.BM}x${spec.BN}x${spec.BK}-${spec.aContig}${spec.bContig}`, () => matmulWGSL(spec));

  const shape = (q: GPUTensor, k: GPUTensor) => {
    const [B, Nq, H, D] = q.shape as [number, number, number, number];
    const Nk = k.shape[1]!;
    if (q.dtype !== 'float32' || k.shape[2] !== H) {
      throw new AttentionInputError('q', 'float32 with nheads_q == nheads_k (standard baseline)', `${q.dtype}, heads ${H}/${k.shape[2]}`);
    }
    return { B, Nq, Nk, H, D };
  };

  const chunkOf = (BH: number, Nq: number, Nk: number): number => {
    const per = Nq * Nk * 4;
    const lim = Math.min(dev.limits.maxStorageBufferBindingSize, dev.limits.maxBufferSize);
    return Math.max(1, Math.min(BH, Math.floor(lim / per)));
  };

  /** Strided view of a (B, N, H, D) tensor as per-head (N, D) matrices. */
  const rowsView = (N: number, H: number, D: number) => ({ rs: H * D, cs: 1, b: N * H * D, h: D });

  const dispatchMM = (
    pass: GPUComputePassEncoder,
    spec: MatmulSpec,
    p: MatmulParams,
    a: GPUBuffer,
    b: GPUBuffer,
    c: GPUBuffer,
    batch: number,
    uniforms: GPUBuffer[],
  ) => {
    const u = rt.uniform(packMatmulParams(p));
    uniforms.push(u);
    rt.dispatch(pass, mm(spec), [u, a, b, c], [Math.ceil(p.N / spec.BN), Math.ceil(p.M / spec.BM), batch]);
  };

  /** S = scale Q K^T and P = softmax(S) for heads [z0, z0 + c) into Sbuf; lse into lseBuf. */
  const recordScoresAndProbs = (
    pass: GPUComputePassEncoder,
    s: ReturnType<typeof shape>,
    scale: number,
    params: (z0: number) => GPUBuffer,
    q: GPUBuffer,
    k: GPUBuffer,
    Sbuf: GPUBuffer,
    lseBuf: GPUBuffer,
    z0: number,
    c: number,
    uniforms: GPUBuffer[],
  ) => {
    const { Nq, Nk, H, D } = s;
    dispatchMM(
      pass,
      { ...TILE, aContig: 'k', bContig: 'k' },
      {
        z0,
        local: { a: false, b: false, c: true },
        M: Nq,
        N: Nk,
        K: D,
        H,
        a: rowsView(Nq, H, D),
        b: { rs: 1, cs: H * D, b: Nk * H * D, h: D }, // B(k=d, n=j) = K[j][d]
        c: { rs: Nk, cs: 1, b: Nq * Nk, h: 0 },
        alpha: scale,
        beta: 0,
      },
      q,
      k,
      Sbuf,
      c,
      uniforms,
    );
    rt.dispatch(pass, rt.pipeline('std-softmax', softmaxWGSL), [params(z0), Sbuf, lseBuf], [Nq, c, 1]);
  };

  const paramsMaker = (s: ReturnType<typeof shape>, opts: AttentionOptions | undefined, uniforms: GPUBuffer[]) => {
    const o = resolveOptions(opts, s.D);
    return (z0: number): GPUBuffer => {
      const u = rt.uniform(
        packParams({ B: z0, Nq: s.Nq, Nk: s.Nk, Hq: s.H, Hk: s.H, scale: o.softmaxScale, windowLeft: o.windowLeft, windowRight: o.windowRight }),
      );
      uniforms.push(u);
      return u;
    };
  };

  return {
    materialisedBytes(q, k, backward) {
      const [B, Nq, H] = q.shape as [number, number, number];
      return B * H * Nq * k.shape[1]! * 4 * (backward ? 2 : 1);
    },

    async forwardOnDevice(q, k, v, opts) {
      const s = shape(q, k);
      const { B, Nq, Nk, H, D } = s;
      const BH = B * H;
      const c = chunkOf(BH, Nq, Nk);
      const Sbuf = rt.acquire(c * Nq * Nk * 4); // S then P: (chunk, Nq, Nk)
      const out = rt.acquire(B * Nq * H * D * 4);
      const lse = rt.acquire(BH * Nq * 4);
      const uniforms: GPUBuffer[] = [];
      const params = paramsMaker(s, opts, uniforms);
      const scale = resolveOptions(opts, D).softmaxScale;
      try {
        for (let z0 = 0; z0 < BH; z0 += c) {
          const cc = Math.min(c, BH - z0);
          await rt.submit((enc) => {
            const pass = enc.beginComputePass();
            recordScoresAndProbs(pass, s, scale, params, q.buffer, k.buffer, Sbuf, lse, z0, cc, uniforms);
            // O = P V
            dispatchMM(
              pass,
              { ...TILE, aContig: 'k', bContig: 'n' },
              {
                z0,
                local: { a: true, b: false, c: false },
                M: Nq,
                N: D,
                K: Nk,
                H,
                a: { rs: Nk, cs: 1, b: Nq * Nk, h: 0 },
                b: rowsView(Nk, H, D),
                c: rowsView(Nq, H, D),
                alpha: 1,
                beta: 0,
              },
              Sbuf,
              v.buffer,
              out,
              cc,
              uniforms,
            );
            pass.end();
          });
        }
      } finally {
        rt.release(Sbuf);
        uniforms.forEach((u) => u.destroy());
      }
      return {
        out: { dtype: 'float32', shape: [...q.shape], buffer: out },
        lse: { dtype: 'float32', shape: [B, H, Nq], buffer: lse },
      };
    },

    async backwardOnDevice(dout, q, k, v, out, _lse, opts) {
      const s = shape(q, k);
      const { B, Nq, Nk, H, D } = s;
      const BH = B * H;
      const c = chunkOf(BH, Nq, Nk);
      const Sbuf = rt.acquire(c * Nq * Nk * 4); // P: (chunk, Nq, Nk)
      const dPbuf = rt.acquire(c * Nq * Nk * 4); // dP then dS: (chunk, Nq, Nk)
      const lseScratch = rt.acquire(BH * Nq * 4);
      const delta = rt.acquire(BH * Nq * 4); // (B, H, Nq)
      const dq = rt.acquire(B * Nq * H * D * 4);
      const dk = rt.acquire(B * Nk * H * D * 4);
      const dv = rt.acquire(B * Nk * H * D * 4);
      const uniforms: GPUBuffer[] = [];
      const params = paramsMaker(s, opts, uniforms);
      const scale = resolveOptions(opts, D).softmaxScale;
      const rowsQ = rowsView(Nq, H, D);
      const rowsK = rowsView(Nk, H, D);
      const local = { rs: Nk, cs: 1, b: Nq * Nk, h: 0 }; // (Nq, Nk) per head in the chunk
      const localT = { rs: 1, cs: Nk, b: Nq * Nk, h: 0 }; // its transpose (Nk, Nq)
      try {
        await rt.submit((enc) => {
          const pass = enc.beginComputePass();
          rt.dispatch(pass, rt.pipeline(`flash-bwd-pre-d${D}-f32`, () => flashBackwardPreprocessWGSL(D, 'f32')), [params(0), dout.buffer, out.buffer, delta], [
            Math.ceil(Nq / PREPROCESS_WG),
            H,
            B,
          ]);
          pass.end();
        });
        for (let z0 = 0; z0 < BH; z0 += c) {
          const cc = Math.min(c, BH - z0);
          await rt.submit((enc) => {
            const pass = enc.beginComputePass();
            recordScoresAndProbs(pass, s, scale, params, q.buffer, k.buffer, Sbuf, lseScratch, z0, cc, uniforms);
            const run = (spec: MatmulSpec, p: Omit<MatmulParams, 'z0' | 'H' | 'beta'>, a: GPUBuffer, b: GPUBuffer, cBuf: GPUBuffer) =>
              dispatchMM(pass, spec, { ...p, z0, H, beta: 0 }, a, b, cBuf, cc, uniforms);
            // dP = dO V^T
            run({ ...TILE, aContig: 'k', bContig: 'k' }, { local: { a: false, b: false, c: true }, M: Nq, N: Nk, K: D, a: rowsQ, b: { rs: 1, cs: H * D, b: Nk * H * D, h: D }, c: local, alpha: 1 }, dout.buffer, v.buffer, dPbuf);
            // dS = P * (dP - D)
            rt.dispatch(pass, rt.pipeline('std-softmax-bwd', softmaxBackwardWGSL), [params(z0), Sbuf, dPbuf, delta], [Nq, cc, 1]);
            // dV = P^T dO
            run({ ...TILE, aContig: 'm', bContig: 'n' }, { local: { a: true, b: false, c: false }, M: Nk, N: D, K: Nq, a: localT, b: rowsQ, c: rowsK, alpha: 1 }, Sbuf, dout.buffer, dv);
            // dQ = scale dS K
            run({ ...TILE, aContig: 'k', bContig: 'n' }, { local: { a: true, b: false, c: false }, M: Nq, N: D, K: Nk, a: local, b: rowsK, c: rowsQ, alpha: scale }, dPbuf, k.buffer, dq);
            // dK = scale dS^T Q
            run({ ...TILE, aContig: 'm', bContig: 'n' }, { local: { a: true, b: false, c: false }, M: Nk, N: D, K: Nq, a: localT, b: rowsQ, c: rowsK, alpha: scale }, dPbuf, q.buffer, dk);
            pass.end();
          });
        }
      } finally {
        for (const b of [Sbuf, dPbuf, lseScratch, delta]) rt.release(b);
        uniforms.forEach((u) => u.destroy());
      }
      return {
        dq: { dtype: 'float32', shape: [...q.shape], buffer: dq },
        dk: { dtype: 'float32', shape: [...k.shape], buffer: dk },
        dv: { dtype: 'float32', shape: [...v.shape], buffer: dv },
      };
    },
  };
}

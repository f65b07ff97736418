/**
 * Standard attention on the GPU, for benchmark comparison only: it materialises S = scale Q K^T and
 * P = softmax(S) (and dP, dS in the backward) in storage buffers, like a framework's unfused
 * attention. float32, nheads_q == nheads_k, contiguous (B, N, H, D) views at offset 0. Heads are processed
 * in chunks as large as the device's buffer limit allows; when even one head's (Nq, Nk) matrix does not
 * fit, it throws BackendOutOfMemoryError, which is the point of the comparison.
 */
import {
  AttentionInputError,
  contiguousStrides,
  resolveOptions,
  type AttentionOptions,
  type DeviceAttentionBackwardArgs,
  type DeviceAttentionForwardArgs,
  type StridedView,
} from '@flashattn/core';
import type { WebGPUAttentionBackend } from '../backend.js';
import {
  flashBackwardPreprocessProgram,
  PREPROCESS_WG,
} from '../kernels/flash-backward-preprocess.wgsl.js';
import { attentionUniforms } from '../kernels/params.wgsl.js';
import type { WebGPUBuffer } from '../memory.js';
import type { UniformValue } from '../program.js';
import {
  matmulProgram,
  matmulUniforms,
  type MatmulParams,
  type MatmulSpec,
} from './matmul.wgsl.js';
import { softmaxBackwardProgram } from './softmax-backward.wgsl.js';
import { softmaxProgram } from './softmax.wgsl.js';

/** Called exactly like the flash backend's device API, so a benchmark swaps one for the other. */
export interface StandardAttention {
  attentionForward(
    args: DeviceAttentionForwardArgs<WebGPUBuffer>,
    opts?: AttentionOptions,
  ): Promise<void>;
  /** The forward's lse is not read (P is recomputed with its own softmax). */
  attentionBackward(
    args: DeviceAttentionBackwardArgs<WebGPUBuffer>,
    opts?: AttentionOptions,
  ): Promise<void>;
  /** Bytes of the S / P (and dP / dS) buffers one call needs for all heads at once (unchunked). */
  materialisedBytes(
    q: StridedView<WebGPUBuffer>,
    k: StridedView<WebGPUBuffer>,
    backward: boolean,
  ): number;
}

export function createStandardAttention(be: WebGPUAttentionBackend): StandardAttention {
  // 64 x 64 tiles (4 x 4 per invocation) on GPUs; 16 x 16 on software adapters, where compile time rules.
  const TILE: Pick<MatmulSpec, 'BM' | 'BN' | 'BK'> = be.compact
    ? { BM: 16, BN: 16, BK: 16 }
    : { BM: 64, BN: 64, BK: 16 };
  const rt = be.runtime;
  const dev = be.device;

  /** The GPUBuffer of a contiguous float32 view at offset 0 (what this baseline supports). */
  const gpu = (name: string, v: StridedView<WebGPUBuffer> | WebGPUBuffer): GPUBuffer => {
    const view = 'shape' in v ? v : undefined;
    const buf = view ? view.buffer : (v as WebGPUBuffer);
    const contiguous =
      !view ||
      (view.offset === 0 && view.strides.every((s, i) => s === contiguousStrides(view.shape)[i]));
    if (buf.dtype !== 'float32' || buf.offset !== 0 || !contiguous) {
      throw new AttentionInputError(
        name,
        'a contiguous float32 view at offset 0 (standard baseline)',
        `${buf.dtype} view`,
      );
    }
    return buf.gpuBuffer;
  };

  const shape = (q: StridedView<WebGPUBuffer>, k: StridedView<WebGPUBuffer>) => {
    const [B, Nq, H, D] = q.shape;
    const Nk = k.shape[1];
    if (k.shape[2] !== H) {
      throw new AttentionInputError(
        'k.shape[2]',
        'nheads_q == nheads_k (standard baseline)',
        k.shape[2],
      );
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
  ) => {
    const program = matmulProgram({ ...spec }, [
      Math.ceil(p.N / spec.BN),
      Math.ceil(p.M / spec.BM),
      batch,
    ]);
    rt.programs.run(pass, program, matmulUniforms(p), { A: a, Bm: b, C: c });
  };

  /** The attention uniforms with B = z0, the chunk's first flattened head (softmax kernels). */
  const paramsMaker = (s: ReturnType<typeof shape>, opts: AttentionOptions | undefined) => {
    const o = resolveOptions(opts, s.D);
    const { Nq, H, D } = s;
    const rows: [number, number, number, number] = [0, Nq * H * D, H * D, D]; // contiguous (B, Nq, H, D)
    return (z0: number): Record<string, UniformValue> =>
      attentionUniforms({
        B: z0,
        Nq: s.Nq,
        Nk: s.Nk,
        Hq: s.H,
        Hk: s.H,
        scale: o.softmaxScale,
        windowLeft: o.windowLeft,
        windowRight: o.windowRight,
        dtype: 0,
        lseOff: 0,
        views: { o: rows, dout: rows },
      });
  };

  /** S = scale Q K^T and P = softmax(S) for heads [z0, z0 + c) into Sbuf; lse into lseBuf. */
  const recordScoresAndProbs = (
    pass: GPUComputePassEncoder,
    s: ReturnType<typeof shape>,
    scale: number,
    params: (z0: number) => Record<string, UniformValue>,
    q: GPUBuffer,
    k: GPUBuffer,
    Sbuf: GPUBuffer,
    lseBuf: GPUBuffer,
    z0: number,
    c: number,
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
    );
    rt.programs.run(pass, softmaxProgram([Nq, c, 1]), params(z0), { S: Sbuf, lse: lseBuf });
  };

  return {
    materialisedBytes(q, k, backward) {
      const [B, Nq, H] = q.shape;
      return B * H * Nq * k.shape[1] * 4 * (backward ? 2 : 1);
    },

    async attentionForward(args, opts) {
      const s = shape(args.q, args.k);
      const { B, Nq, Nk, H, D } = s;
      const [q, k, v, out, lse] = [
        gpu('q', args.q),
        gpu('k', args.k),
        gpu('v', args.v),
        gpu('out', args.out),
        gpu('lse', args.lse),
      ] as const;
      const BH = B * H;
      const c = chunkOf(BH, Nq, Nk);
      const Sbuf = rt.acquire(c * Nq * Nk * 4); // S then P: (chunk, Nq, Nk)
      const params = paramsMaker(s, opts);
      const scale = resolveOptions(opts, D).softmaxScale;
      try {
        for (let z0 = 0; z0 < BH; z0 += c) {
          const cc = Math.min(c, BH - z0);
          await rt.submit((enc) => {
            const pass = enc.beginComputePass();
            recordScoresAndProbs(pass, s, scale, params, q, k, Sbuf, lse, z0, cc);
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
              v,
              out,
              cc,
            );
            pass.end();
          });
        }
      } finally {
        rt.release(Sbuf);
      }
    },

    async attentionBackward(args, opts) {
      const s = shape(args.q, args.k);
      const { B, Nq, Nk, H, D } = s;
      const [q, k, v, out, dout, dq, dk, dv] = [
        gpu('q', args.q),
        gpu('k', args.k),
        gpu('v', args.v),
        gpu('out', args.out),
        gpu('dout', args.dout),
        gpu('dq', args.dq),
        gpu('dk', args.dk),
        gpu('dv', args.dv),
      ] as const;
      const BH = B * H;
      const c = chunkOf(BH, Nq, Nk);
      const Sbuf = rt.acquire(c * Nq * Nk * 4); // P: (chunk, Nq, Nk)
      const dPbuf = rt.acquire(c * Nq * Nk * 4); // dP then dS: (chunk, Nq, Nk)
      const lseScratch = rt.acquire(BH * Nq * 4);
      const delta = rt.acquire(BH * Nq * 4); // (B, H, Nq)
      const params = paramsMaker(s, opts);
      const scale = resolveOptions(opts, D).softmaxScale;
      const rowsQ = rowsView(Nq, H, D);
      const rowsK = rowsView(Nk, H, D);
      const local = { rs: Nk, cs: 1, b: Nq * Nk, h: 0 }; // (Nq, Nk) per head in the chunk
      const localT = { rs: 1, cs: Nk, b: Nq * Nk, h: 0 }; // its transpose (Nk, Nq)
      try {
        await rt.submit((enc) => {
          const pass = enc.beginComputePass();
          const pre = flashBackwardPreprocessProgram(D, 'f32', [
            Math.ceil(Nq / PREPROCESS_WG),
            H,
            B,
          ]);
          rt.programs.run(pass, pre, params(0), { dout, o: out, delta });
          pass.end();
        });
        for (let z0 = 0; z0 < BH; z0 += c) {
          const cc = Math.min(c, BH - z0);
          await rt.submit((enc) => {
            const pass = enc.beginComputePass();
            recordScoresAndProbs(pass, s, scale, params, q, k, Sbuf, lseScratch, z0, cc);
            const run = (
              spec: MatmulSpec,
              p: Omit<MatmulParams, 'z0' | 'H' | 'beta'>,
              a: GPUBuffer,
              b: GPUBuffer,
              cBuf: GPUBuffer,
            ) => dispatchMM(pass, spec, { ...p, z0, H, beta: 0 }, a, b, cBuf, cc);
            // dP = dO V^T
            run(
              { ...TILE, aContig: 'k', bContig: 'k' },
              {
                local: { a: false, b: false, c: true },
                M: Nq,
                N: Nk,
                K: D,
                a: rowsQ,
                b: { rs: 1, cs: H * D, b: Nk * H * D, h: D },
                c: local,
                alpha: 1,
              },
              dout,
              v,
              dPbuf,
            );
            // dS = P * (dP - D)
            rt.programs.run(pass, softmaxBackwardProgram([Nq, cc, 1]), params(z0), {
              P: Sbuf,
              dP: dPbuf,
              delta,
            });
            // dV = P^T dO
            run(
              { ...TILE, aContig: 'm', bContig: 'n' },
              {
                local: { a: true, b: false, c: false },
                M: Nk,
                N: D,
                K: Nq,
                a: localT,
                b: rowsQ,
                c: rowsK,
                alpha: 1,
              },
              Sbuf,
              dout,
              dv,
            );
            // dQ = scale dS K
            run(
              { ...TILE, aContig: 'k', bContig: 'n' },
              {
                local: { a: true, b: false, c: false },
                M: Nq,
                N: D,
                K: Nk,
                a: local,
                b: rowsK,
                c: rowsQ,
                alpha: scale,
              },
              dPbuf,
              k,
              dq,
            );
            // dK = scale dS^T Q
            run(
              { ...TILE, aContig: 'm', bContig: 'n' },
              {
                local: { a: true, b: false, c: false },
                M: Nk,
                N: D,
                K: Nq,
                a: localT,
                b: rowsQ,
                c: rowsK,
                alpha: scale,
              },
              dPbuf,
              q,
              dk,
            );
            pass.end();
          });
        }
      } finally {
        for (const b of [Sbuf, dPbuf, lseScratch, delta]) rt.release(b);
      }
    },
  };
}

/**
 * What the conformance suite does not cover: consecutive ops are recorded into one command buffer and
 * submitted at the sync; a lost device turns the pending sync and later calls into BackendExecutionError
 * (never a hang); an oversized buffer is BackendOutOfMemoryError; use after dispose an OpsInputError;
 * and the chunked path of the per-column sums (bias and LayerNorm dw / db over more than CHUNK_ROWS
 * rows: the suite's cases are shorter), under the suite's rule.
 */
import { BackendExecutionError, BackendOutOfMemoryError, OpsInputError } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { defaultToSwiftShader, probeAdapter, webgpuRequired } from '../test-utils/env.js';
import { CHUNK_ROWS } from '../kernels/ops/column-sums.js';
import { createWebGpuOps } from './webgpu-ops.js';

/**
 * The suite's rule for a column sum s_j = init_j + sum_r t_rj: the error against float64 is at most
 * 2x the naive float32 sum's (sequential, one rounding per add) + u32 max|s| + u32 max_j sum_r |t_rj|.
 */
function checkColumnSums(
  got: Float32Array,
  init: Float32Array,
  term: (r: number, j: number) => number,
  rows: number,
  cols: number,
): void {
  const u = 2 ** -24;
  let errGot = 0;
  let errNaive = 0;
  let maxRef = 0;
  let maxAbs = 0;
  for (let j = 0; j < cols; j++) {
    let ref = init[j]!;
    let naive = init[j]!;
    let abs = Math.abs(init[j]!);
    for (let r = 0; r < rows; r++) {
      const t = term(r, j);
      ref += t;
      naive = Math.fround(naive + Math.fround(t));
      abs += Math.abs(t);
    }
    errGot = Math.max(errGot, Math.abs(got[j]! - ref));
    errNaive = Math.max(errNaive, Math.abs(naive - ref));
    maxRef = Math.max(maxRef, Math.abs(ref));
    maxAbs = Math.max(maxAbs, abs);
  }
  expect(errGot).toBeLessThanOrEqual(2 * errNaive + u * maxRef + u * maxAbs);
}

defaultToSwiftShader();
const unavailable = await probeAdapter();
const skip = unavailable !== undefined && !webgpuRequired();
if (skip) console.warn(`webgpu ops: skipped: no WebGPU adapter: ${unavailable}`);

describe.skipIf(skip)('WebGpuOps', () => {
  it('records consecutive ops into one command buffer, submitted at the sync', async () => {
    const ops = await createWebGpuOps();
    try {
      const n = 1000;
      const x = ops.alloc(n, 'float32'); // (n)
      const y = ops.alloc(n, 'float32'); // (n)
      await ops.upload(
        x,
        Float32Array.from({ length: n }, (_, i) => (i % 7) - 3),
      );
      const before = ops.recorder.submits;
      ops.add(y, x, x, n); // y = 2x
      ops.scale(y, 0.25); // y = x / 2
      ops.geluForward(y, y, n);
      ops.geluBackward(y, x, y, n);
      ops.add(y, y, x, n);
      expect(ops.recorder.submits).toBe(before); // nothing submitted yet
      const s = await ops.sumSquares(x);
      expect(ops.recorder.submits).toBe(before + 1); // one command buffer for all six ops
      let want = 0;
      for (let i = 0; i < n; i++) want += ((i % 7) - 3) ** 2;
      expect(s).toBe(want); // small integers: exact in float32 in any order
    } finally {
      await ops.dispose();
    }
  });

  it('types a too-large buffer, use after dispose, and a lost device (no hang)', async () => {
    const ops = await createWebGpuOps();
    // one element past what a storage binding can hold (elements are u32-indexed: below 2^32)
    const tooMany = Math.min(
      Math.floor(ops.device.limits.maxStorageBufferBindingSize / 4) + 1,
      2 ** 32 - 1,
    );
    expect(() => ops.alloc(tooMany, 'float32')).toThrow(BackendOutOfMemoryError);
    const x = ops.alloc(4, 'float32');
    await ops.upload(x, Float32Array.of(1, 2, 3, 4));
    expect(await ops.sum(x)).toBe(10);
    ops.scale(x, 2); // recorded, not yet submitted
    ops.device.destroy(); // what a lost device looks like to the ops
    await expect(ops.sum(x)).rejects.toThrow(BackendExecutionError);
    await new Promise((r) => setTimeout(r, 0)); // device.lost resolves
    expect(() => ops.scale(x, 2)).toThrow(BackendExecutionError);
    await ops.dispose();
    expect(() => ops.alloc(1, 'float32')).toThrow(OpsInputError);
  });

  it(`sums columns over more than ${CHUNK_ROWS} rows in chunks (bias, LayerNorm dw / db)`, async () => {
    const ops = await createWebGpuOps();
    try {
      const [M, N] = [3 * CHUNK_ROWS + 17, 37];
      const rnd = (n: number): Float32Array =>
        Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 12.9898) * 3));
      const up = async (data: Float32Array) => {
        const b = ops.alloc(data.length, 'float32');
        await ops.upload(b, data);
        return b;
      };
      const dout = rnd(M * N); // (M, N)
      const inp = rnd(M * N + 5).subarray(5); // (M, N)
      const mean = Float32Array.from({ length: M }, (_, i) => Math.fround(Math.cos(i))); // (M)
      const rstd = Float32Array.from({ length: M }, (_, i) => Math.fround(1 + (i % 5) / 7)); // (M)
      const w = rnd(N);
      const init = rnd(N + 3).subarray(3); // the gradients accumulate onto this
      const g = await up(dout);
      const x = await up(Float32Array.from(inp));
      const mu = await up(mean);
      const rs = await up(rstd);
      const W = await up(w);
      const dbias = await up(Float32Array.from(init));
      const dw = await up(Float32Array.from(init));
      const db = await up(Float32Array.from(init));
      const dinp = ops.alloc(M * N, 'float32');
      ops.biasBackward(dbias, g, M, N);
      ops.layernormBackward(dinp, dw, db, g, x, W, mu, rs, M, N);
      const d = dout;
      const xhat = (r: number, j: number) => (inp[r * N + j]! - mean[r]!) * rstd[r]!;
      const got = async (b: typeof dw) => (await ops.download(b)) as Float32Array;
      checkColumnSums(await got(dbias), init, (r, j) => d[r * N + j]!, M, N);
      checkColumnSums(await got(db), init, (r, j) => d[r * N + j]!, M, N);
      checkColumnSums(await got(dw), init, (r, j) => d[r * N + j]! * xhat(r, j), M, N);
    } finally {
      await ops.dispose();
    }
  });

  it.each([
    // [M, N, K, lead]: the suite's ci matmuls have odd sizes (scalar reads, bounds checks); these take
    // vec4 reads (sizes and offsets multiples of 4) with partial tiles, vec4 reads with full 64 x 64 tiles
    // (no bounds checks), and scalar reads (odd offset) with full tiles.
    [36, 132, 20, 4],
    [128, 64, 32, 4],
    [64, 128, 48, 5],
  ])(
    'matmul M%i N%i K%i (operands from element %i) in every transpose, under the rule',
    async (M, N, K, lead) => {
      const ops = await createWebGpuOps();
      try {
        const val = (i: number): number => Math.fround(Math.sin(i * 1.618) * 2);
        const host = (n: number, s: number): Float32Array =>
          Float32Array.from({ length: n }, (_, i) => val(i + s));
        const a = host(M * K, 1); // (M, K) or, transA, (K, M)
        const b = host(K * N, 2); // (K, N) or, transB, (N, K)
        const bias = host(N, 3);
        const init = host(M * N, 4);
        // one allocation for the inputs, views from element `lead` on
        const inputs = ops.alloc(lead + a.length + b.length + bias.length, 'float32');
        const A = ops.view(inputs, lead, a.length);
        const B = ops.view(inputs, lead + a.length, b.length);
        const Bias = ops.view(inputs, lead + a.length + b.length, N);
        await ops.upload(A, a);
        await ops.upload(B, b);
        await ops.upload(Bias, bias);
        const out = ops.alloc(M * N, 'float32'); // (M, N)
        const u = 2 ** -24;
        // each transpose once, each epilogue at least once (pipelines compile slowly on SwiftShader)
        const combos = [
          [false, false, 'bias'],
          [true, false, 'accumulate'],
          [false, true, 'store'],
          [true, true, 'accumulate'],
        ] as const;
        for (const [transA, transB, mode] of combos) {
          await ops.upload(out, init);
          ops.matmul(out, A, B, M, N, K, {
            transA,
            transB,
            accumulate: mode === 'accumulate',
            ...(mode === 'bias' ? { bias: Bias } : {}),
          });
          const got = (await ops.download(out)) as Float32Array;
          let errGot = 0;
          let errNaive = 0;
          let maxRef = 0;
          let maxAbs = 0;
          for (let i = 0; i < M; i++) {
            for (let j = 0; j < N; j++) {
              const start =
                mode === 'accumulate' ? init[i * N + j]! : mode === 'bias' ? bias[j]! : 0;
              let ref = start;
              let naive = start;
              let abs = Math.abs(start);
              for (let k = 0; k < K; k++) {
                const t =
                  (transA ? a[k * M + i]! : a[i * K + k]!) *
                  (transB ? b[j * K + k]! : b[k * N + j]!);
                ref += t;
                naive = Math.fround(naive + t); // one rounding per multiply-add (FMA)
                abs += Math.abs(t);
              }
              errGot = Math.max(errGot, Math.abs(got[i * N + j]! - ref));
              errNaive = Math.max(errNaive, Math.abs(naive - ref));
              maxRef = Math.max(maxRef, Math.abs(ref));
              maxAbs = Math.max(maxAbs, abs);
            }
          }
          expect(errGot, `transA ${transA} transB ${transB} ${mode}`).toBeLessThanOrEqual(
            2 * errNaive + u * maxRef + u * maxAbs,
          );
        }
      } finally {
        await ops.dispose();
      }
    },
  );
});

// Finite-difference checks (float64) of the backward of every op the model uses, through the CPU ops on
// float64 buffers: each op's output is contracted with a fixed random R, loss = sum(out * R), so
// d loss / d out = R. Attention runs on views into packed (B, T, 3, H, D) buffers, as in the model.
import { contiguousView, freshSeed, packedQkvViews } from '@flashattn/core';
import { CpuOps } from '@flashattn/cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { dot, finiteDiff, FD_TOL, randn64 } from '../test-utils/fd.js';

const ops = new CpuOps({ threads: 1 });
afterAll(() => ops.dispose());
const seed = freshSeed();
const msg = `seed ${seed}`;

describe(`layer gradients vs finite differences (float64, ${msg})`, () => {
  it('matmul, all four transpose combinations, with bias', async () => {
    const [M, N, K] = [5, 7, 6];
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = randn64(M * K, seed + 1);
        const b = randn64(K * N, seed + 2);
        const bias = randn64(N, seed + 3);
        const R = randn64(M * N, seed + 4);
        const out = new Float64Array(M * N);
        const loss = async (): Promise<number> => {
          await ops.matmul(out, a, b, M, N, K, { transA, transB, bias });
          return dot(out, R);
        };
        // Analytic: dA = R op(B)^T, dB = op(A)^T R (in storage layout), dbias = colsum(R).
        const opA = (i: number, k: number): number => (transA ? a[k * M + i]! : a[i * K + k]!);
        const opB = (k: number, j: number): number => (transB ? b[j * K + k]! : b[k * N + j]!);
        const da = new Float64Array(M * K);
        const db = new Float64Array(K * N);
        for (let i = 0; i < M; i++)
          for (let k = 0; k < K; k++) {
            let s = 0;
            for (let j = 0; j < N; j++) s += R[i * N + j]! * opB(k, j);
            da[transA ? k * M + i : i * K + k] = s;
          }
        for (let k = 0; k < K; k++)
          for (let j = 0; j < N; j++) {
            let s = 0;
            for (let i = 0; i < M; i++) s += opA(i, k) * R[i * N + j]!;
            db[transB ? j * K + k : k * N + j] = s;
          }
        const dbias = new Float64Array(N);
        await ops.biasBackward(dbias, R, M, N);
        expect(
          (await finiteDiff(a, loss, da)).maxErr,
          `${msg} transA=${transA} transB=${transB}`,
        ).toBeLessThan(FD_TOL);
        expect((await finiteDiff(b, loss, db)).maxErr, msg).toBeLessThan(FD_TOL);
        expect((await finiteDiff(bias, loss, dbias)).maxErr, msg).toBeLessThan(FD_TOL);
      }
    }
  });

  it('layernorm (input, weight, bias)', async () => {
    const [N, C] = [4, 9];
    const x = randn64(N * C, seed + 5, 2);
    const w = randn64(C, seed + 6);
    const b = randn64(C, seed + 7);
    const R = randn64(N * C, seed + 8);
    const out = new Float64Array(N * C);
    const mean = new Float64Array(N);
    const rstd = new Float64Array(N);
    const loss = (): number => {
      ops.layernormForward(out, mean, rstd, x, w, b, N, C);
      return dot(out, R);
    };
    loss();
    const dx = new Float64Array(N * C);
    const dw = new Float64Array(C);
    const db = new Float64Array(C);
    ops.layernormBackward(dx, dw, db, R, x, w, mean, rstd, N, C);
    for (const [p, g] of [
      [x, dx],
      [w, dw],
      [b, db],
    ] as const) {
      expect((await finiteDiff(p, loss, g)).maxErr, msg).toBeLessThan(FD_TOL);
    }
  });

  it('gelu (tanh approximation)', async () => {
    const n = 40;
    const x = randn64(n, seed + 9, 3);
    const R = randn64(n, seed + 10);
    const out = new Float64Array(n);
    const loss = (): number => {
      ops.geluForward(out, x, n);
      return dot(out, R);
    };
    const dx = new Float64Array(n);
    ops.geluBackward(dx, x, R, n);
    expect((await finiteDiff(x, loss, dx)).maxErr, msg).toBeLessThan(FD_TOL);
  });

  it('fused softmax cross-entropy (mean over rows, one ignored target)', async () => {
    const [N, V] = [5, 11];
    const logits = randn64(N * V, seed + 11, 3);
    const targets = Int32Array.from([3, 0, -1, 10, 7]);
    const losses = new Float64Array(N);
    const loss = async (): Promise<number> => {
      ops.softmaxCrossEntropy(losses, null, logits, targets, N, V, 0);
      return (await ops.sum(losses)) / 4;
    };
    const dlogits = new Float64Array(N * V);
    ops.softmaxCrossEntropy(losses, dlogits, logits, targets, N, V, 1 / 4);
    expect((await finiteDiff(logits, loss, dlogits)).maxErr, msg).toBeLessThan(FD_TOL);
    // Independent value check of one row: -log softmax(target).
    let m = -Infinity;
    for (let j = 0; j < V; j++) m = Math.max(m, logits[j]!);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(logits[j]! - m);
    expect(losses[0]).toBeCloseTo(m + Math.log(s) - logits[3]!, 12);
    expect(losses[2]).toBe(0);
  });

  it('embedding (token and position tables)', async () => {
    const [B, T, C, V] = [2, 3, 4, 5];
    const wte = randn64(V * C, seed + 12);
    const wpe = randn64(T * C, seed + 13);
    const tokens = Int32Array.from([1, 4, 1, 0, 2, 1]);
    const R = randn64(B * T * C, seed + 14);
    const out = new Float64Array(B * T * C);
    const loss = (): number => {
      ops.embeddingForward(out, tokens, wte, wpe, B, T, C);
      return dot(out, R);
    };
    const dwte = new Float64Array(V * C);
    const dwpe = new Float64Array(T * C);
    ops.embeddingBackward(dwte, dwpe, R, tokens, B, T, C);
    expect((await finiteDiff(wte, loss, dwte)).maxErr, msg).toBeLessThan(FD_TOL);
    expect((await finiteDiff(wpe, loss, dwpe)).maxErr, msg).toBeLessThan(FD_TOL);
  });

  it('causal attention (float64), q, k, v read from and dq, dk, dv written into packed buffers', async () => {
    const [B, T, H, D] = [2, 5, 2, 3];
    const n = B * T * H * D;
    const qkv = randn64(3 * n, seed + 15); // (B, T, 3, H, D)
    const R = randn64(n, seed + 18);
    const { q, k, v } = packedQkvViews(qkv, B, T, H, D);
    const out = new Float64Array(n);
    const lse = new Float64Array(B * H * T);
    const forward = (): Promise<void> =>
      ops.attentionForward(
        { q, k, v, out: contiguousView(out, [B, T, H, D]), lse },
        { causal: true },
      );
    const loss = async (): Promise<number> => {
      await forward();
      return dot(out, R);
    };
    await forward();
    const dqkv = new Float64Array(3 * n).fill(NaN); // every element must be written (overwrite, not accumulate)
    const d = packedQkvViews(dqkv, B, T, H, D);
    const shape = [B, T, H, D] as const;
    await ops.attentionBackward(
      {
        dout: contiguousView(R, shape),
        q,
        k,
        v,
        out: contiguousView(out, shape),
        lse,
        dq: d.q,
        dk: d.k,
        dv: d.v,
      },
      { causal: true },
    );
    expect(dqkv.every(Number.isFinite)).toBe(true);
    expect((await finiteDiff(qkv, loss, dqkv)).maxErr, msg).toBeLessThan(FD_TOL);
  });
});

import { describe, expect, it } from 'vitest';
import { packedQkvViews } from '../contracts/device-attention.js';
import { FlashAttnError, OpsInputError } from '../errors.js';
import { createRng, freshSeed, type Rng } from '../random.js';
import { attentionReference64, attentionReferenceBackward64 } from '../reference.js';
import { fromFloat32, zeros } from '../tensor.js';
import { adamwRef } from './adamw.js';
import { softmaxCrossEntropyRef } from './cross-entropy.js';
import { embeddingBackwardRef, embeddingForwardRef } from './embedding.js';
import { geluBackwardRef, geluForwardRef } from './gelu.js';
import { layernormBackwardRef, layernormForwardRef } from './layernorm.js';
import { biasBackwardRef, matmulRef } from './matmul.js';
import { createReferenceOps, ReferenceBuffer } from './reference-ops.js';

const rand = (rng: Rng, n: number): Float64Array =>
  Float64Array.from({ length: n }, () => rng.normal());

/** The OpsInputError a call throws (fails the test if it throws nothing or something else). */
function inputError(f: () => unknown): OpsInputError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(OpsInputError);
    return e as OpsInputError;
  }
  throw new Error('expected an OpsInputError, nothing was thrown');
}

describe('reference ops: memory', () => {
  it('buffers are opaque handles, zeroed, with a length and a dtype', async () => {
    const ops = createReferenceOps();
    const b = ops.alloc(5, 'float32');
    expect(b).toBeInstanceOf(ReferenceBuffer);
    expect(ArrayBuffer.isView(b)).toBe(false);
    expect(Object.keys(b)).toEqual([]);
    expect(ops.lengthOf(b)).toBe(5);
    expect(ops.dtypeOf(b)).toBe('float32');
    expect(Array.from(await ops.download(b))).toEqual([0, 0, 0, 0, 0]);
    expect(ops.dtypes).toEqual(['float64', 'float32', 'int32']);
  });

  it('a view of a view is relative to its parent and shares memory', async () => {
    const ops = createReferenceOps();
    const root = ops.alloc(10, 'float64');
    await ops.upload(
      root,
      Float64Array.from({ length: 10 }, (_, i) => i),
    );
    const outer = ops.view(root, 2, 6); // elements 2..7
    const inner = ops.view(outer, 3, 2); // elements 5..6
    expect(Array.from(await ops.download(inner))).toEqual([5, 6]);
    await ops.upload(inner, Float64Array.of(-1, -2));
    expect(Array.from(await ops.download(root))).toEqual([0, 1, 2, 3, 4, -1, -2, 7, 8, 9]);
    await ops.zero(outer);
    expect(Array.from(await ops.download(root))).toEqual([0, 1, 0, 0, 0, 0, 0, 0, 8, 9]);
  });

  it('float32 buffers store float32 values; copy casts between float dtypes', async () => {
    const ops = createReferenceOps();
    const f64 = ops.alloc(3, 'float64');
    const f32 = ops.alloc(3, 'float32');
    const x = Float64Array.of(0.1, 1 / 3, 1e-40);
    await ops.upload(f64, x);
    await ops.copy(f32, f64);
    const got = await ops.download(f32);
    expect(got).toBeInstanceOf(Float32Array);
    expect(Array.from(got)).toEqual(Array.from(x, Math.fround));
    await ops.copy(f64, f32);
    expect(Array.from(await ops.download(f64))).toEqual(Array.from(x, Math.fround));
    const i32 = ops.alloc(3, 'int32');
    expect(inputError(() => ops.copy(i32, f64)).argument).toBe('copy src dtype');
  });

  it('every bad argument is an OpsInputError naming it, and a rejected call writes nothing', async () => {
    const ops = createReferenceOps();
    const out = ops.alloc(12, 'float32');
    await ops.upload(
      out,
      Float32Array.from({ length: 12 }, (_, i) => i + 1),
    );
    const a = ops.alloc(15, 'float32');
    const b = ops.alloc(20, 'float32');
    expect(inputError(() => ops.matmul(ops.view(out, 0, 11), a, b, 3, 4, 5)).argument).toBe(
      'matmul out length',
    );
    expect(inputError(() => ops.matmul(out, ops.alloc(15, 'int32'), b, 3, 4, 5)).argument).toBe(
      'matmul a dtype',
    );
    expect(
      inputError(() =>
        ops.matmul(out, a, b, 3, 4, 5, { accumulate: true, bias: ops.alloc(4, 'float32') }),
      ).argument,
    ).toBe('matmul opts.bias');
    expect(inputError(() => ops.matmul(out, a, b, 3, 4, -5)).argument).toBe('matmul K');
    expect(inputError(() => ops.view(out, 10, 3)).argument).toBe('view buf view');
    expect(inputError(() => ops.upload(out, new Float32Array(11))).argument).toBe(
      'upload data length',
    );
    expect(inputError(() => ops.upload(out, new Int32Array(12))).argument).toBe('upload data');
    const tgt = ops.alloc(3, 'int32');
    await ops.upload(tgt, Int32Array.of(0, 4, -1));
    const logits = ops.alloc(12, 'float32');
    expect(
      inputError(() =>
        ops.softmaxCrossEntropy(ops.alloc(3, 'float32'), logits, logits, tgt, 3, 4, 1),
      ).argument,
    ).toBe('softmaxCrossEntropy targets[1]');
    expect(Array.from(await ops.download(out))).toEqual(
      Array.from({ length: 12 }, (_, i) => i + 1),
    );
    expect(Array.from(await ops.download(logits))).toEqual(new Array(12).fill(0));
    expect(inputError(() => ops.matmul(out, a, {} as ReferenceBuffer, 3, 4, 5)).argument).toBe(
      'matmul b',
    );
  });

  it('free: a freed buffer and its views are unusable; a view cannot be freed', () => {
    const ops = createReferenceOps();
    const root = ops.alloc(4, 'float32');
    const v = ops.view(root, 1, 2);
    expect(inputError(() => ops.free(v)).argument).toBe('free buf');
    ops.free(root);
    expect(inputError(() => ops.zero(root)).actual).toBe('a freed buffer');
    expect(inputError(() => ops.scale(v, 2)).actual).toBe('a freed buffer');
  });

  it('throws after dispose()', () => {
    const ops = createReferenceOps();
    ops.dispose();
    expect(() => ops.alloc(1, 'float32')).toThrow(FlashAttnError);
  });
});

describe('reference ops: the float64 functions against finite differences and closed forms', () => {
  // Central differences of a float64 scalar loss L: truncation O(h^2 L''') ~ 1e-10 and cancellation
  // ~ u64 |L| / h ~ 1e-11 |L| for h = 1e-5 and the O(1)-O(10) losses here, so 1e-7 (1 + |fd|) is a wide margin.
  const h = 1e-5;
  const fdCheck = (x: Float64Array, grad: Float64Array, loss: () => number, what: string): void => {
    for (let i = 0; i < x.length; i++) {
      const x0 = x[i]!;
      x[i] = x0 + h;
      const fp = loss();
      x[i] = x0 - h;
      const fm = loss();
      x[i] = x0;
      const fd = (fp - fm) / (2 * h);
      expect(Math.abs(grad[i]! - fd), `${what}[${i}]: ${grad[i]} vs fd ${fd}`).toBeLessThan(
        1e-7 * (1 + Math.abs(fd)),
      );
    }
  };

  it('layernorm backward (accumulating) is the gradient of the forward', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const [N, C] = [3, 7];
    const inp = rand(rng, N * C);
    const w = rand(rng, C);
    const b = rand(rng, C);
    const dout = rand(rng, N * C);
    const loss = (): number => {
      const out = new Float64Array(N * C);
      layernormForwardRef(out, new Float64Array(N), new Float64Array(N), inp, w, b, N, C);
      return out.reduce((s, o, i) => s + o * dout[i]!, 0);
    };
    const mean = new Float64Array(N);
    const rstd = new Float64Array(N);
    layernormForwardRef(new Float64Array(N * C), mean, rstd, inp, w, b, N, C);
    const dinp0 = rand(rng, N * C); // accumulated into: the gradient is dinp - dinp0
    const [dinp, dw, db] = [Float64Array.from(dinp0), new Float64Array(C), new Float64Array(C)];
    layernormBackwardRef(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    fdCheck(
      inp,
      dinp.map((x, i) => x - dinp0[i]!),
      loss,
      `seed ${seed} dinp`,
    );
    fdCheck(w, dw, loss, `seed ${seed} dw`);
    fdCheck(b, db, loss, `seed ${seed} db`);
  });

  it('gelu backward overwrites dinp with the derivative times dout', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const n = 9;
    const x = rand(rng, n).map((v) => 3 * v);
    const dout = rand(rng, n);
    const dinp = rand(rng, n); // overwritten
    geluBackwardRef(dinp, x, dout, n);
    fdCheck(
      x,
      dinp,
      () => {
        const y = new Float64Array(n);
        geluForwardRef(y, x, n);
        return y.reduce((s, v, i) => s + v * dout[i]!, 0);
      },
      `seed ${seed} gelu`,
    );
  });

  it('softmax cross-entropy: dlogits is dlossScale times the gradient of the losses; ignored rows are 0', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const [N, V, s] = [4, 5, 0.25];
    const logits = rand(rng, N * V);
    const targets = Int32Array.of(2, -1, 0, 4);
    const losses = new Float64Array(N);
    const dl = new Float64Array(N * V);
    softmaxCrossEntropyRef(losses, dl, logits, targets, N, V, s);
    expect(losses[1]).toBe(0);
    expect(Array.from(dl.subarray(V, 2 * V))).toEqual(new Array(V).fill(0));
    fdCheck(
      logits,
      dl,
      () => {
        const l = new Float64Array(N);
        softmaxCrossEntropyRef(l, null, logits, targets, N, V, s);
        return s * l.reduce((a, b) => a + b, 0);
      },
      `seed ${seed} dlogits`,
    );
    // V = 1: the only class has probability 1, loss 0, gradient 0.
    const one = new Float64Array(1);
    const g1 = new Float64Array(1);
    softmaxCrossEntropyRef(one, g1, Float64Array.of(123.4), Int32Array.of(0), 1, 1, 1);
    expect([one[0], g1[0]]).toEqual([0, 0]);
  });

  it('matmul transposes, accumulate and bias agree with explicit transposition; biasBackward is the bias gradient', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const [M, N, K] = [3, 4, 5];
    const a = rand(rng, M * K); // (M, K)
    const b = rand(rng, K * N); // (K, N)
    const aT = new Float64Array(K * M); // (K, M)
    const bT = new Float64Array(N * K); // (N, K)
    for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) aT[k * M + i] = a[i * K + k]!;
    for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) bT[j * K + k] = b[k * N + j]!;
    const direct = new Float64Array(M * N);
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++)
        for (let k = 0; k < K; k++) direct[i * N + j]! += a[i * K + k]! * b[k * N + j]!;
    const out = new Float64Array(M * N);
    const init = rand(rng, M * N);
    for (const [A, B, transA, transB] of [
      [a, b, false, false],
      [aT, b, true, false],
      [a, bT, false, true],
      [aT, bT, true, true],
    ] as const) {
      matmulRef(out, A, B, M, N, K, { transA, transB });
      expect(Array.from(out), `seed ${seed} ${transA} ${transB}`).toEqual(Array.from(direct));
      const acc = Float64Array.from(init);
      matmulRef(acc, A, B, M, N, K, { transA, transB, accumulate: true });
      expect(Array.from(acc)).toEqual(Array.from(direct, (x, i) => init[i]! + x));
    }
    const bias = rand(rng, N);
    const dout = rand(rng, M * N);
    const dbias = new Float64Array(N);
    biasBackwardRef(dbias, dout, M, N);
    fdCheck(
      bias,
      dbias,
      () => {
        const o = new Float64Array(M * N);
        matmulRef(o, a, b, M, N, K, { bias });
        return o.reduce((s, v, i) => s + v * dout[i]!, 0);
      },
      `seed ${seed} dbias`,
    );
  });

  it('embedding backward is the gradient of the forward (repeated tokens summed)', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const [B, T, C, V] = [2, 3, 4, 2];
    const tokens = Int32Array.from({ length: B * T }, () => rng.int(V));
    const wte = rand(rng, V * C);
    const wpe = rand(rng, T * C);
    const dout = rand(rng, B * T * C);
    const loss = (): number => {
      const out = new Float64Array(B * T * C);
      embeddingForwardRef(out, tokens, wte, wpe, B, T, C);
      return out.reduce((s, v, i) => s + v * dout[i]!, 0);
    };
    const dwte = new Float64Array(V * C);
    const dwpe = new Float64Array(T * C);
    embeddingBackwardRef(dwte, dwpe, dout, tokens, B, T, C);
    fdCheck(wte, dwte, loss, `seed ${seed} dwte`);
    fdCheck(wpe, dwpe, loss, `seed ${seed} dwpe`);
  });

  it('adamw: the first step from m = v = 0 moves each parameter by lr (1 - 1e-8 relative) against its gradient', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const n = 6;
    const p0 = rand(rng, n);
    const g = rand(rng, n);
    const p = Float64Array.from(p0);
    // mhat = g, vhat = g^2 at t = 1, so the step is lr g / (|g| + eps) = lr sign(g) (eps / |g| relative).
    adamwRef(p, g, new Float64Array(n), new Float64Array(n), {
      lr: 0.01,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-10,
      weightDecay: 0,
      t: 1,
    });
    for (let i = 0; i < n; i++) {
      expect(Math.abs(p0[i]! - p[i]! - 0.01 * Math.sign(g[i]!)), `seed ${seed}`).toBeLessThan(
        0.01 * (1e-10 / Math.abs(g[i]!)) + 1e-15,
      );
    }
  });
});

describe('reference ops: strided device attention', () => {
  it('reads q, k, v from a packed (B, T, 3, H, D) buffer and writes dq, dk, dv into a packed gradient', async () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const ops = createReferenceOps();
    const [B, T, H, D] = [2, 5, 3, 4];
    const C = H * D;
    const qkvHost = Float32Array.from({ length: B * T * 3 * C }, () => rng.normal());
    const qkv = ops.alloc(B * T * 3 * C, 'float32');
    await ops.upload(qkv, qkvHost);
    const split = (part: number): Float32Array => {
      const t = new Float32Array(B * T * C);
      for (let r = 0; r < B * T; r++)
        t.set(qkvHost.subarray(r * 3 * C + part * C, r * 3 * C + (part + 1) * C), r * C);
      return t;
    };
    const [q, k, v] = [0, 1, 2].map((i) => fromFloat32(split(i), [B, T, H, D]));
    const views = packedQkvViews(qkv, B, T, H, D);
    const out = ops.alloc(B * T * C, 'float32');
    const lse = ops.alloc(B * H * T, 'float32');
    const outView = {
      buffer: out,
      offset: 0,
      shape: [B, T, H, D] as const,
      strides: [T * C, C, D, 1] as const,
    };
    await ops.attentionForward({ ...views, out: outView, lse }, { causal: true });
    const ref = attentionReference64(q!, k!, v!, { causal: true });
    expect(Array.from(await ops.download(out)), `seed ${seed}`).toEqual(
      Array.from(ref.out, Math.fround),
    );
    expect(Array.from(await ops.download(lse))).toEqual(Array.from(ref.lse, Math.fround));

    const doutHost = Float32Array.from({ length: B * T * C }, () => rng.normal());
    const dout = ops.alloc(B * T * C, 'float32');
    await ops.upload(dout, doutHost);
    const dqkv = ops.alloc(B * T * 3 * C, 'float32');
    await ops.upload(dqkv, new Float32Array(B * T * 3 * C).fill(NaN)); // overwritten, not accumulated
    const g = packedQkvViews(dqkv, B, T, H, D);
    await ops.attentionBackward(
      {
        ...views,
        out: outView,
        dout: { ...outView, buffer: dout },
        lse,
        dq: g.q,
        dk: g.k,
        dv: g.v,
      },
      { causal: true },
    );
    const gref = attentionReferenceBackward64(
      fromFloat32(doutHost, [B, T, H, D]),
      q!,
      k!,
      v!,
      zeros([B, T, H, D]),
      new Float32Array(B * H * T),
      {
        causal: true,
      },
    );
    const got = (await ops.download(dqkv)) as Float32Array;
    for (let r = 0; r < B * T; r++) {
      for (const [part, name] of [
        [0, 'dq'],
        [1, 'dk'],
        [2, 'dv'],
      ] as const) {
        for (let c = 0; c < C; c++) {
          expect(got[r * 3 * C + part * C + c], `seed ${seed} ${name}`).toBe(
            Math.fround(gref[name][r * C + c]!),
          );
        }
      }
    }
  });
});

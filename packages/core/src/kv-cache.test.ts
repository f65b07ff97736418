// The inference oracles, kernels and validation (contracts/kv-cache.ts, kv-cache-reference.ts,
// kv-cache-kernels.ts). The oracles are checked against attentionReference64 on independently built
// inputs (the same keys contiguous, paged through a shuffled block table, split, or padded); the
// kernels' float64 twin against the oracles (exact-arithmetic algorithm, so 1e-12 relative).
import { describe, expect, it } from 'vitest';
import { contiguousView, type StridedView } from './contracts/device-attention.js';
import {
  kvSplitHeuristic,
  validateKvCacheArgs,
  type KvCacheAttentionArgs,
} from './contracts/kv-cache.js';
import { AttentionInputError } from './errors.js';
import { contiguousLayout, type KernelLayout } from './flash-blocks.js';
import {
  appendKvKernel,
  kvDecodeKernel,
  lseCombineKernel,
  varlenBackwardKernel,
  varlenForwardKernel,
} from './kv-cache-kernels.js';
import {
  combineByLse64,
  kvCacheReference64,
  varlenReference64,
  varlenReferenceBackward64,
  type HostFloat,
} from './kv-cache-reference.js';
import { resolveOptions, type AttentionOptions } from './options.js';
import { createRng, freshSeed, type Rng } from './random.js';
import { attentionReference64, attentionReferenceBackward64 } from './reference.js';
import { tensor, zeros } from './tensor.js';

const randn = (rng: Rng, n: number): Float64Array => {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.fround(rng.normal());
  return a;
};
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue; // equal infinities
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
  }
  return m;
};
const view = (buf: HostFloat, shape: [number, number, number, number]): StridedView<HostFloat> =>
  contiguousView(buf, shape);
const layoutOf = (v: StridedView<unknown>): KernelLayout => ({
  offset: v.offset,
  sB: v.strides[0],
  sN: v.strides[1],
  sH: v.strides[2],
});

/** A decode problem: B sequences with ragged cache lengths, the same keys contiguous and paged. */
function decodeProblem(
  seed: number,
  o: {
    B: number;
    Nq: number;
    Hq: number;
    Hk: number;
    D: number;
    Nnew: number;
    ps: number;
    lens: number[];
  },
) {
  const rng = createRng(seed);
  const { B, Nq, Hq, Hk, D, Nnew, ps, lens } = o;
  const Nmax = Math.max(...lens) + Nnew + 3;
  const row = Hk * D;
  const kc = randn(rng, B * Nmax * row); // (B, Nmax, Hk, D)
  const vc = randn(rng, B * Nmax * row);
  const q = randn(rng, B * Nq * Hq * D);
  const kNew = randn(rng, B * Nnew * row);
  const vNew = randn(rng, B * Nnew * row);
  // Paged copy: pages of ps rows, assigned in a shuffled order, plus spare pages.
  const maxBlocks = Math.ceil(Nmax / ps);
  const numBlocks = B * maxBlocks + 2;
  const order = Array.from({ length: numBlocks }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const bt = new Int32Array(B * maxBlocks);
  for (let x = 0; x < bt.length; x++) bt[x] = order[x]!;
  const kp = randn(rng, numBlocks * ps * row); // untouched rows hold noise
  const vp = randn(rng, numBlocks * ps * row);
  for (let b = 0; b < B; b++)
    for (let j = 0; j < Nmax; j++) {
      const page = bt[b * maxBlocks + Math.floor(j / ps)]!;
      const to = (page * ps + (j % ps)) * row;
      kp.set(kc.subarray((b * Nmax + j) * row, (b * Nmax + j + 1) * row), to);
      vp.set(vc.subarray((b * Nmax + j) * row, (b * Nmax + j + 1) * row), to);
    }
  const common = {
    q: view(q, [B, Nq, Hq, D]),
    cacheSeqlens: Int32Array.from(lens),
    out: view(new Float64Array(B * Nq * Hq * D), [B, Nq, Hq, D]),
    ...(Nnew > 0 ? { kNew: view(kNew, [B, Nnew, Hk, D]), vNew: view(vNew, [B, Nnew, Hk, D]) } : {}),
  };
  const contiguous: KvCacheAttentionArgs<HostFloat> = {
    ...common,
    kCache: view(kc, [B, Nmax, Hk, D]),
    vCache: view(vc, [B, Nmax, Hk, D]),
  };
  const paged: KvCacheAttentionArgs<HostFloat> = {
    ...common,
    kCache: view(kp, [numBlocks, ps, Hk, D]),
    vCache: view(vp, [numBlocks, ps, Hk, D]),
    blockTable: bt,
  };
  return { contiguous, paged, kc, vc, kNew, vNew, q, Nmax };
}

describe('kvCacheReference64 (the oracle)', () => {
  const seed = freshSeed();
  const opts: AttentionOptions = { causal: true, windowSize: [5, -1] };
  const shape = { B: 3, Nq: 2, Hq: 4, Hk: 2, D: 8, Nnew: 2, ps: 4, lens: [0, 7, 13] };

  it(`equals attentionReference64 on the appended keys, contiguous and paged alike (seed=${seed})`, () => {
    const p = decodeProblem(seed, shape);
    const rc = kvCacheReference64(p.contiguous, opts);
    const rp = kvCacheReference64(p.paged, opts);
    expect(maxAbsDiff(rc.out, rp.out)).toBe(0);
    expect(maxAbsDiff(rc.lse, rp.lse)).toBe(0);
    const { B, Nq, Hq, Hk, D, Nnew, lens } = shape;
    const row = Hk * D;
    for (let b = 0; b < B; b++) {
      const Lk = lens[b]! + Nnew;
      // keys = cache rows [0, lens[b]) then k_new, built here without the cache helpers
      const k = new Float32Array(Lk * row);
      const v = new Float32Array(Lk * row);
      k.set(p.kc.subarray(b * p.Nmax * row, (b * p.Nmax + lens[b]!) * row));
      v.set(p.vc.subarray(b * p.Nmax * row, (b * p.Nmax + lens[b]!) * row));
      k.set(p.kNew.subarray(b * Nnew * row, (b + 1) * Nnew * row), lens[b]! * row);
      v.set(p.vNew.subarray(b * Nnew * row, (b + 1) * Nnew * row), lens[b]! * row);
      const q = Float32Array.from(p.q.subarray(b * Nq * Hq * D, (b + 1) * Nq * Hq * D));
      const r = attentionReference64(
        tensor(q, [1, Nq, Hq, D]),
        tensor(k, [1, Lk, Hk, D]),
        tensor(v, [1, Lk, Hk, D]),
        opts,
      );
      expect(maxAbsDiff(rc.out.subarray(b * Nq * Hq * D, (b + 1) * Nq * Hq * D), r.out)).toBe(0);
      expect(maxAbsDiff(rc.lse.subarray(b * Hq * Nq, (b + 1) * Hq * Nq), r.lse)).toBe(0);
      // the appended rows are in the returned cache, exactly
      for (let t = 0; t < Nnew; t++) {
        const at = (b * p.Nmax + lens[b]! + t) * row;
        expect(Array.from(rc.kCache.subarray(at, at + row))).toEqual(
          Array.from(p.kNew.subarray((b * Nnew + t) * row, (b * Nnew + t + 1) * row)),
        );
      }
    }
    // the inputs were not mutated
    expect(p.contiguous.kCache.buffer).toBe(p.kc);
    expect(maxAbsDiff(p.kc, kvCacheReference64(p.contiguous, opts).kCache)).toBeGreaterThan(0);
  });

  it(`combineByLse64 of two key halves equals attention over all keys (seed=${seed})`, () => {
    const rng = createRng(seed ^ 1);
    const [Nq, Nk, H, D] = [3, 10, 2, 4];
    const q = Float32Array.from(randn(rng, Nq * H * D));
    const k = Float32Array.from(randn(rng, Nk * H * D));
    const v = Float32Array.from(randn(rng, Nk * H * D));
    const t = (x: Float32Array, n: number) => tensor(x, [1, n, H, D]);
    const whole = attentionReference64(t(q, Nq), t(k, Nk), t(v, Nk));
    const cut = 6 * H * D;
    const a = attentionReference64(t(q, Nq), t(k.slice(0, cut), 6), t(v.slice(0, cut), 6));
    const b = attentionReference64(t(q, Nq), t(k.slice(cut), 4), t(v.slice(cut), 4));
    const outP = new Float64Array([...a.out, ...b.out]);
    const lseP = new Float64Array([...a.lse, ...b.lse]);
    const c = combineByLse64(outP, lseP, 2, 1, Nq, H, D);
    expect(maxAbsDiff(c.out, whole.out)).toBeLessThan(1e-12);
    expect(maxAbsDiff(c.lse, whole.lse)).toBeLessThan(1e-12);
    // a split that saw nothing (lse -Infinity, out garbage-free zeros) changes nothing
    const c3 = combineByLse64(
      new Float64Array([...outP, ...new Float64Array(a.out.length)]),
      new Float64Array([...lseP, ...new Float64Array(a.lse.length).fill(-Infinity)]),
      3,
      1,
      Nq,
      H,
      D,
    );
    expect(maxAbsDiff(c3.out, c.out)).toBe(0);
  });
});

describe('kvDecodeKernel + lseCombineKernel (float64 twin) against the oracle', () => {
  const seed = freshSeed();
  for (const [name, opts, S, paged] of [
    ['causal, 1 split, contiguous', { causal: true }, 1, false],
    ['causal, 3 splits, paged', { causal: true }, 3, true],
    ['window, 4 splits, paged', { windowSize: [6, 0] }, 4, true],
    ['non-causal, 7 splits (more than some lengths), contiguous', {}, 7, false],
  ] as const) {
    it(`${name} (seed=${seed})`, () => {
      const shape = { B: 4, Nq: 3, Hq: 6, Hk: 2, D: 5, Nnew: 1, ps: 4, lens: [0, 1, 4, 17] };
      const p = decodeProblem(seed, shape);
      const a = paged ? p.paged : p.contiguous;
      const ref = kvCacheReference64(a, opts);
      const pr = validateKvCacheArgs(a, opts, (b) => b.length, {
        pageSizeMultiple: 1,
        maxHeadDim: 64,
      });
      const g = { ...pr, blockTable: a.blockTable };
      const kBuf = a.kCache.buffer.slice();
      const vBuf = a.vCache.buffer.slice();
      appendKvKernel(
        kBuf,
        layoutOf(a.kCache),
        a.kNew!.buffer,
        layoutOf(a.kNew!),
        1,
        a.cacheSeqlens,
        g,
      );
      appendKvKernel(
        vBuf,
        layoutOf(a.vCache),
        a.vNew!.buffer,
        layoutOf(a.vNew!),
        1,
        a.cacheSeqlens,
        g,
      );
      expect(maxAbsDiff(kBuf, ref.kCache)).toBe(0);
      expect(maxAbsDiff(vBuf, ref.vCache)).toBe(0);
      const { B, Nq, Hq, Hk, D } = shape;
      const o = resolveOptions(opts, D);
      const out = new Float64Array(B * Nq * Hq * D);
      const lse = new Float64Array(B * Hq * Nq);
      const units = B * Hk * S;
      if (S === 1) {
        kvDecodeKernel(
          a.q.buffer,
          layoutOf(a.q),
          kBuf,
          layoutOf(a.kCache),
          vBuf,
          layoutOf(a.vCache),
          g,
          o,
          1,
          { kind: 'direct', out, outLayout: contiguousLayout(Nq, Hq, D), lse },
          4,
          'float64',
          0,
          units,
        );
      } else {
        const outPartial = new Float64Array(S * out.length).fill(NaN);
        const lsePartial = new Float64Array(S * lse.length).fill(NaN);
        // two ranges, as two threads would run them
        const mid = Math.floor(units / 2);
        for (const [lo, hi] of [
          [0, mid],
          [mid, units],
        ] as const)
          kvDecodeKernel(
            a.q.buffer,
            layoutOf(a.q),
            kBuf,
            layoutOf(a.kCache),
            vBuf,
            layoutOf(a.vCache),
            g,
            o,
            S,
            { kind: 'partial', outPartial, lsePartial },
            4,
            'float64',
            lo,
            hi,
          );
        lseCombineKernel(
          outPartial,
          lsePartial,
          S,
          B,
          Nq,
          Hq,
          D,
          out,
          contiguousLayout(Nq, Hq, D),
          lse,
          0,
          B * Hq * Nq,
        );
      }
      expect(maxAbsDiff(out, ref.out)).toBeLessThan(1e-12);
      expect(maxAbsDiff(lse, ref.lse)).toBeLessThan(1e-12);
      // sequence 0 holds one key (0 cached + 1 new): under a causal mask its first Nq - 1 rows see none
      const masked = (x: ArrayLike<number>) => Array.from(x).filter((y) => y === -Infinity).length;
      expect(masked(lse)).toBe(masked(ref.lse));
      if ('causal' in opts) expect(masked(ref.lse)).toBeGreaterThan(0);
    });
  }
});

describe('varlen oracles and kernels', () => {
  const seed = freshSeed();
  it(`varlenReference64 equals per-sequence attention; the float64 kernels match it, forward and backward (seed=${seed})`, () => {
    const rng = createRng(seed);
    const lensQ = [3, 0, 1, 5, 2];
    const lensK = [4, 2, 0, 5, 6];
    const [Hq, Hk, D] = [4, 2, 3];
    const cu = (l: number[]) =>
      Int32Array.from([0, ...l.map((_, i) => l.slice(0, i + 1).reduce((x, y) => x + y, 0))]);
    const cuQ = cu(lensQ);
    const cuK = cu(lensK);
    const tq = cuQ[cuQ.length - 1]!;
    const tk = cuK[cuK.length - 1]!;
    const q = randn(rng, tq * Hq * D);
    const k = randn(rng, tk * Hk * D);
    const v = randn(rng, tk * Hk * D);
    const dout = randn(rng, tq * Hq * D);
    const opts: AttentionOptions = { causal: true };
    const V = (buf: Float64Array, n: number, H: number) => view(buf, [1, n, H, D]);
    const args = {
      q: V(q, tq, Hq),
      k: V(k, tk, Hk),
      v: V(v, tk, Hk),
      cuSeqlensQ: cuQ,
      cuSeqlensK: cuK,
      maxSeqlenQ: 5,
      maxSeqlenK: 6,
    };
    const ref = varlenReference64(
      { ...args, out: V(new Float64Array(q.length), tq, Hq), lse: new Float64Array(Hq * tq) },
      opts,
    );
    const grads = varlenReferenceBackward64(
      {
        ...args,
        dout: V(dout, tq, Hq),
        out: V(new Float64Array(q.length), tq, Hq),
        lse: new Float64Array(Hq * tq),
        dq: V(new Float64Array(q.length), tq, Hq),
        dk: V(new Float64Array(k.length), tk, Hk),
        dv: V(new Float64Array(k.length), tk, Hk),
      },
      opts,
    );
    // per-sequence attentionReference64, sliced by hand
    for (let b = 0; b < lensQ.length; b++) {
      if (lensQ[b] === 0) continue;
      const sl = (x: Float64Array, c: Int32Array, H: number) =>
        Float32Array.from(x.subarray(c[b]! * H * D, c[b + 1]! * H * D));
      if (lensK[b] === 0) {
        expect(ref.out.subarray(cuQ[b]! * Hq * D, cuQ[b + 1]! * Hq * D).every((x) => x === 0)).toBe(
          true,
        );
        continue;
      }
      const tQ = tensor(sl(q, cuQ, Hq), [1, lensQ[b]!, Hq, D]);
      const tK = tensor(sl(k, cuK, Hk), [1, lensK[b]!, Hk, D]);
      const tV = tensor(sl(v, cuK, Hk), [1, lensK[b]!, Hk, D]);
      const r = attentionReference64(tQ, tK, tV, opts);
      expect(maxAbsDiff(ref.out.subarray(cuQ[b]! * Hq * D, cuQ[b + 1]! * Hq * D), r.out)).toBe(0);
      const g = attentionReferenceBackward64(
        tensor(sl(dout, cuQ, Hq), tQ.shape),
        tQ,
        tK,
        tV,
        zeros(tQ.shape),
        new Float32Array(Hq * lensQ[b]!),
        opts,
      );
      expect(maxAbsDiff(grads.dk.subarray(cuK[b]! * Hk * D, cuK[b + 1]! * Hk * D), g.dk)).toBe(0);
      for (let h = 0; h < Hq; h++)
        expect(
          maxAbsDiff(
            ref.lse.subarray(h * tq + cuQ[b]!, h * tq + cuQ[b + 1]!),
            r.lse.subarray(h * lensQ[b]!, (h + 1) * lensQ[b]!),
          ),
        ).toBe(0);
    }
    // keys of the sequence without queries get zero gradients
    expect(grads.dk.subarray(cuK[1]! * Hk * D, cuK[2]! * Hk * D).every((x) => x === 0)).toBe(true);

    const g = { Hq, Hk, D, totalQ: tq, cuQ, cuK };
    const o = resolveOptions(opts, D);
    const L = (n: number, H: number) => contiguousLayout(n, H, D);
    const out = new Float64Array(q.length).fill(NaN);
    const lse = new Float64Array(Hq * tq).fill(NaN);
    varlenForwardKernel(
      q,
      L(tq, Hq),
      k,
      L(tk, Hk),
      v,
      L(tk, Hk),
      out,
      L(tq, Hq),
      lse,
      g,
      o,
      2,
      3,
      'float64',
      0,
      lensQ.length,
    );
    expect(maxAbsDiff(out, ref.out)).toBeLessThan(1e-12);
    expect(maxAbsDiff(lse, ref.lse)).toBeLessThan(1e-12);
    const [dq, dk, dv] = [q.length, k.length, k.length].map((n) =>
      new Float64Array(n).fill(NaN),
    ) as [Float64Array, Float64Array, Float64Array];
    varlenBackwardKernel(
      dout,
      L(tq, Hq),
      q,
      L(tq, Hq),
      k,
      L(tk, Hk),
      v,
      L(tk, Hk),
      out,
      L(tq, Hq),
      lse,
      dq,
      L(tq, Hq),
      dk,
      L(tk, Hk),
      dv,
      L(tk, Hk),
      g,
      o,
      2,
      3,
      'float64',
      0,
      lensQ.length,
    );
    expect(maxAbsDiff(dq, grads.dq)).toBeLessThan(1e-12);
    expect(maxAbsDiff(dk, grads.dk)).toBeLessThan(1e-12);
    expect(maxAbsDiff(dv, grads.dv)).toBeLessThan(1e-12);
  });
});

describe('validation names the argument', () => {
  const p = decodeProblem(1, { B: 2, Nq: 1, Hq: 2, Hk: 1, D: 4, Nnew: 1, ps: 4, lens: [3, 5] });
  const caps = { pageSizeMultiple: 1, maxHeadDim: 64 };
  const check = (a: KvCacheAttentionArgs<HostFloat>, arg: string, c = caps) => {
    const run = () => validateKvCacheArgs(a, undefined, (b) => b.length, c);
    expect(run).toThrow(AttentionInputError);
    try {
      run();
    } catch (e) {
      expect((e as AttentionInputError).argument).toBe(arg);
    }
  };
  it('block table entries, cache lengths, page sizes, shapes', () => {
    const bt = p.paged.blockTable!.slice();
    const maxBlocks = bt.length / 2;
    bt[maxBlocks + 1] = 999; // sequence 1 holds 5 + 1 keys: pages 0 and 1
    check({ ...p.paged, blockTable: bt }, 'blockTable[1, 1]');
    bt[maxBlocks + 1] = -1;
    check({ ...p.paged, blockTable: bt }, 'blockTable[1, 1]');
    bt[maxBlocks + 2] = -1; // unused entries are not read
    bt[maxBlocks + 1] = p.paged.blockTable![maxBlocks + 1]!;
    expect(
      validateKvCacheArgs({ ...p.paged, blockTable: bt }, undefined, (b) => b.length, caps)
        .maxSeqlenK,
    ).toBe(6);
    check({ ...p.paged, cacheSeqlens: Int32Array.from([3, p.Nmax + 5]) }, 'cacheSeqlens[1]');
    check({ ...p.contiguous, cacheSeqlens: Int32Array.from([-1, 0]) }, 'cacheSeqlens[0]');
    check(p.paged, 'kCache.shape[1] (page_size)', { pageSizeMultiple: 256, maxHeadDim: 64 });
    check({ ...p.contiguous, cacheBatchIdx: Int32Array.from([0, 2]) }, 'cacheBatchIdx[1]');
    check({ ...p.contiguous, cacheBatchIdx: Int32Array.from([1, 1]) }, 'cacheBatchIdx[1]');
    check({ ...p.paged, cacheBatchIdx: Int32Array.from([0, 1]) }, 'cacheBatchIdx');
    check({ ...p.contiguous, cacheSeqlens: new Int32Array(3) }, 'cacheSeqlens.length');
    check({ ...p.contiguous, vNew: undefined }, 'vNew');
    const bt2 = p.paged.blockTable!.slice();
    bt2[p.paged.blockTable!.length / 2 + 1] = bt2[0]!; // sequence 1 appends into sequence 0's page
    check({ ...p.paged, blockTable: bt2 }, 'blockTable[1, 1]');
  });
  it('varlen: cu_seqlens must start at 0, not decrease, end at the total and respect the max lengths', () => {
    const D = 2;
    const q = view(new Float64Array(5 * D), [1, 5, 1, D]);
    const base = { q, k: q, v: q, out: q, lse: new Float64Array(5), maxSeqlenQ: 5, maxSeqlenK: 5 };
    const bad = (cuQ: number[], arg: string, extra: object = {}) => {
      try {
        varlenReference64({
          ...base,
          cuSeqlensQ: Int32Array.from(cuQ),
          cuSeqlensK: Int32Array.from([0, 2, 5]),
          ...extra,
        });
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(AttentionInputError);
        expect((e as AttentionInputError).argument).toBe(arg);
      }
    };
    bad([0, 3, 2], 'cuSeqlensQ[2]');
    bad([1, 3, 5], 'cuSeqlensQ[0]');
    bad([0, 3, 4], 'cuSeqlensQ[2]');
    bad([0, 3, 5], 'maxSeqlenQ', { maxSeqlenQ: 2 });
    bad([0, 5], 'cuSeqlensK.length');
  });
});

describe('kvSplitHeuristic', () => {
  it('splits decode work that cannot fill the device and not work that can', () => {
    const caps = { parallelism: 132, maxSplits: 128 };
    const decode = { batch: 1, seqlenQ: 1, nheadsQ: 32, nheadsK: 8, seqlenK: 32768 };
    const s = kvSplitHeuristic(decode, caps);
    expect(s).toBeGreaterThan(1);
    expect(s).toBeLessThanOrEqual(caps.maxSplits);
    expect(kvSplitHeuristic({ ...decode, batch: 64 }, caps)).toBe(1);
    expect(kvSplitHeuristic({ ...decode, seqlenK: 100 }, caps)).toBe(1); // too few keys to split
    expect(kvSplitHeuristic(decode, { parallelism: 2, maxSplits: 8 })).toBe(1); // 8 units on 2 threads
    expect(
      kvSplitHeuristic({ ...decode, nheadsK: 1, nheadsQ: 1 }, { parallelism: 4, maxSplits: 8 }),
    ).toBe(4);
  });
});

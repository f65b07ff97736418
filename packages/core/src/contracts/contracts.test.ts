// The contracts' own helpers: strided views (packed qkv, checks), the registry (priorities, reasons,
// named vs auto), and the behaviour core's CPU backends promise for bad and extreme input.
import { describe, expect, it } from 'vitest';
import {
  AttentionInputError,
  BackendOutOfMemoryError,
  BackendUnavailableError,
} from '../errors.js';
import { createCpuBackend } from '../cpu-backend.js';
import { createRng, freshSeed, randomTensor } from '../random.js';
import { flashForwardKernel } from '../flash-forward.js';
import { flashBackwardKernel } from '../flash-backward.js';
import { resolveOptions } from '../options.js';
import { tensor } from '../tensor.js';
import { checkFinite } from '../validate.js';
import {
  checkStridedView,
  contiguousView,
  packedQkvViews,
  viewExtent,
} from './device-attention.js';
import { listBackends, registerBackend, resolveBackend, type BackendProvider } from './registry.js';
import { rankEnvVars, rankPlace } from './collectives.js';

describe('strided views', () => {
  it('packedQkvViews addresses q, k, v inside (B, T, 3, H, D)', () => {
    const [B, T, H, D] = [2, 3, 2, 4];
    const { q, k, v } = packedQkvViews('buf', B, T, H, D);
    const at = (x: typeof q, b: number, t: number, h: number, d: number): number =>
      x.offset + b * x.strides[0] + t * x.strides[1] + h * x.strides[2] + d;
    // Element (b, t, which, h, d) of the packed buffer, written out independently.
    const packed = (b: number, t: number, which: number, h: number, d: number): number =>
      (((b * T + t) * 3 + which) * H + h) * D + d;
    for (const [which, x] of [q, k, v].entries()) {
      expect(at(x, 1, 2, 1, 3)).toBe(packed(1, 2, which, 1, 3));
      expect(at(x, 0, 1, 0, 0)).toBe(packed(0, 1, which, 0, 0));
    }
    expect(viewExtent(v)).toBe(B * T * 3 * H * D);
  });

  it('checkStridedView rejects bad shapes, strides and ranges with the argument named', () => {
    const ok = contiguousView('b', [1, 4, 2, 8]);
    expect(() => checkStridedView('q', ok, 64)).not.toThrow();
    expect(() => checkStridedView('q', ok, 63)).toThrow(
      /Invalid q: expected a view inside its buffer of 63 elements/,
    );
    expect(() => checkStridedView('k', { ...ok, strides: [64, 16, 8, 2] as never }, 1e6)).toThrow(
      /k\.strides\[3\]/,
    );
    expect(() => checkStridedView('v', { ...ok, shape: [1, 4, 2] as never }, 1e6)).toThrow(
      /v\.shape/,
    );
    expect(() => checkStridedView('v', { ...ok, offset: -1 }, 1e6)).toThrow(AttentionInputError);
  });
});

describe('CPU kernels over strided layouts', () => {
  it('reading q, k, v from a packed buffer and writing into padded outputs gives the contiguous results bitwise', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const [B, T, H, D] = [2, 37, 3, 8];
    const shape = { batch: B, seqlenQ: T, seqlenK: T, nheadsQ: H, nheadsK: H, headDim: D };
    const o = resolveOptions({ causal: true }, D);
    const qkv = Float32Array.from({ length: B * T * 3 * H * D }, () => rng.normal()); // (B, T, 3, H, D)
    const dO = Float32Array.from({ length: B * T * H * D }, () => rng.normal()); // (B, T, H, D)
    // Contiguous copies of q, k, v.
    const part = (which: number): Float32Array => {
      const x = new Float32Array(B * T * H * D);
      for (let r = 0; r < B * T; r++)
        x.set(qkv.subarray((r * 3 + which) * H * D, (r * 3 + which + 1) * H * D), r * H * D);
      return x;
    };
    const [q, k, v] = [part(0), part(1), part(2)];
    const ref = flashForwardKernel(q, k, v, shape, o, 16, 16, 'float32');
    const refG = flashBackwardKernel(dO, q, k, v, ref.out, ref.lse, shape, o, 16, 16, 'float32');
    // Strided: q, k, v in place; out padded to a row stride of H * D + 5 at offset 7.
    const L = (offset: number) => ({ offset, sB: T * 3 * H * D, sN: 3 * H * D, sH: D });
    const outL = { offset: 7, sB: T * (H * D + 5), sN: H * D + 5, sH: D };
    const out = new Float32Array(7 + B * T * (H * D + 5)).fill(NaN);
    const lse = new Float32Array(B * H * T);
    flashForwardKernel(qkv, qkv, qkv, shape, o, 16, 16, 'float32', {
      q: L(0),
      k: L(H * D),
      v: L(2 * H * D),
      out,
      outLayout: outL,
      lse,
    });
    const dqkv = new Float32Array(qkv.length).fill(NaN); // every element must be overwritten
    const dOL = { offset: 0, sB: T * H * D, sN: H * D, sH: D };
    flashBackwardKernel(dO, qkv, qkv, qkv, out, lse, shape, o, 16, 16, 'float32', {
      dO: dOL,
      q: L(0),
      k: L(H * D),
      v: L(2 * H * D),
      O: outL,
      dq: dqkv,
      dqLayout: L(0),
      dk: dqkv,
      dkLayout: L(H * D),
      dv: dqkv,
      dvLayout: L(2 * H * D),
    });
    expect(Array.from(lse)).toEqual(Array.from(ref.lse));
    for (let r = 0; r < B * T; r++) {
      expect(
        Array.from(out.subarray(7 + r * (H * D + 5), 7 + r * (H * D + 5) + H * D)),
        `seed ${seed}`,
      ).toEqual(Array.from(ref.out.subarray(r * H * D, (r + 1) * H * D)));
      for (const [which, g] of [refG.dq, refG.dk, refG.dv].entries()) {
        expect(
          Array.from(dqkv.subarray((r * 3 + which) * H * D, (r * 3 + which + 1) * H * D)),
        ).toEqual(Array.from(g.subarray(r * H * D, (r + 1) * H * D)));
      }
    }
  });
});

describe('backend registry', () => {
  const provider = (
    name: string,
    priority: number,
    available: boolean,
    fail = false,
  ): BackendProvider => ({
    name,
    priority,
    probe: async (ctx) =>
      available
        ? { available: true, detail: `requested=${ctx?.requested}` }
        : { available: false, reason: `${name} missing` },
    createAttention: async () => {
      if (fail) throw new BackendUnavailableError(name, 'driver too old');
      return createCpuBackend({ kind: 'flash' });
    },
  });

  it('auto takes the highest-priority available backend and gives a reason for each candidate', async () => {
    registerBackend(provider('reg-a', 5001, false));
    registerBackend(provider('reg-b', 5000, true, true));
    registerBackend(provider('reg-c', 4999, true));
    expect(
      listBackends()
        .map((p) => p.name)
        .slice(0, 3),
    ).toEqual(['reg-a', 'reg-b', 'reg-c']);
    const r = await resolveBackend('auto');
    expect(r.provider.name).toBe('reg-c');
    expect(r.decisions.slice(0, 3)).toEqual([
      { name: 'reg-a', taken: false, reason: 'reg-a missing' },
      { name: 'reg-b', taken: false, reason: 'driver too old' },
      { name: 'reg-c', taken: true, reason: 'requested=false' },
    ]);
    const named = await resolveBackend('reg-c');
    expect(named.decisions).toEqual([{ name: 'reg-c', taken: true, reason: 'requested=true' }]);
    await expect(resolveBackend('reg-a')).rejects.toThrow(
      /^reg-a backend is unavailable: reg-a missing$/, // one candidate: its reason once, not 'reg-a: ' again
    );
    await expect(resolveBackend('auto', { need: 'ops' })).rejects.toBeInstanceOf(
      BackendUnavailableError,
    );
    for (const p of ['reg-a', 'reg-b', 'reg-c']) registerBackend(provider(p, -5000, false));
  });

  it('optionsFor gives one backend its own options on top of the shared ones', async () => {
    const seen: Record<string, unknown> = {};
    const recording = (name: string, priority: number): BackendProvider => ({
      name,
      priority,
      probe: async () => ({ available: true }),
      createAttention: async (options) => {
        seen[name] = options;
        if (name === 'opt-x') throw new Error('x fails'); // so auto goes on to opt-y
        return createCpuBackend({ kind: 'flash' });
      },
    });
    registerBackend(recording('opt-x', 6001));
    registerBackend(recording('opt-y', 6000));
    const r = await resolveBackend('auto', {
      options: { device: 0 },
      optionsFor: { 'opt-x': { threads: 3, device: 1 } },
    });
    expect(r.provider.name).toBe('opt-y');
    expect(seen['opt-x']).toEqual({ device: 1, threads: 3 }); // its own over the shared
    expect(seen['opt-y']).toEqual({ device: 0 }); // never the other backend's
    for (const p of ['opt-x', 'opt-y']) registerBackend(provider(p, -5000, false));
  });
});

describe('CPU backends: extreme input', () => {
  it('a problem too large for the reference backend is BackendOutOfMemoryError, and the backend still works', async () => {
    const b = createCpuBackend({ kind: 'reference' });
    const N = 70000; // the reference's (Nq, Nk) float64 score matrix needs 39 GB
    const big = tensor(new Float32Array(N * 8), [1, N, 1, 8]);
    await expect(b.forward(big, big, big)).rejects.toBeInstanceOf(BackendOutOfMemoryError);
    const rng = createRng(1);
    const small = randomTensor(rng, [1, 4, 1, 8]);
    expect((await b.forward(small, small, small)).out.shape).toEqual([1, 4, 1, 8]);
  });

  it('NaN propagates to exactly the rows that see it; checkFinite rejects it up front', async () => {
    const rng = createRng(2);
    const [N, D] = [6, 4];
    const q = randomTensor(rng, [1, N, 1, D]);
    const k = randomTensor(rng, [1, N, 1, D]);
    const v = randomTensor(rng, [1, N, 1, D]);
    (v.data as Float32Array)[3 * D + 1] = NaN; // key/value row 3
    for (const kind of ['flash', 'reference'] as const) {
      const { out } = await createCpuBackend({ kind }).forward(q, k, v, { causal: true });
      for (let i = 0; i < N; i++) {
        const row = Array.from((out.data as Float32Array).subarray(i * D, (i + 1) * D));
        // Causal: rows 0..2 never see key 3; rows 3..5 do, and its NaN reaches their output.
        expect(row.some(Number.isNaN), `${kind} row ${i}`).toBe(i >= 3);
      }
    }
    expect(() => checkFinite(v, 'v')).toThrow(
      /Invalid v\.data\[13\]: expected a finite value \(checkFinite\), got NaN/,
    );
    expect(() => checkFinite(q, 'q')).not.toThrow();
  });
});

describe("rank environment (the launchers' protocol)", () => {
  it('rankPlace reads back what rankEnvVars writes; null outside a launcher', () => {
    const place = {
      rank: 1,
      worldSize: 2,
      rendezvous: '/tmp/r',
      timeoutMs: 5000,
      transport: 'nccl' as const,
    };
    const vars = rankEnvVars({ ...place, gpu: '3' });
    expect(vars['NCCL_NVLS_ENABLE']).toBe('0');
    expect(vars['CUDA_VISIBLE_DEVICES']).toBe('3');
    expect(rankPlace(vars)).toEqual(place);
    expect(
      rankEnvVars({ ...place, transport: 'cpu', gpu: '3' })['CUDA_VISIBLE_DEVICES'],
    ).toBeUndefined();
    expect(rankPlace({})).toBeNull();
  });
  it('names the variables when they disagree', () => {
    expect(() =>
      rankPlace({ FLASHATTN_RANK: '2', FLASHATTN_WORLD_SIZE: '2', FLASHATTN_RENDEZVOUS: '/tmp/r' }),
    ).toThrow(/FLASHATTN_RANK=2 FLASHATTN_WORLD_SIZE=2/);
  });
});

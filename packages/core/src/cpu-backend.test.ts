import { describe, expect, it } from 'vitest';
import { createCpuBackend } from './cpu-backend.js';
import { DTYPES, roundToDType } from './dtype.js';
import { AttentionInputError, FlashAttnError } from './errors.js';
import { createRng, freshSeed, randomTensor } from './random.js';
import { attentionReference64 } from './reference.js';
import { toFloat32 } from './tensor.js';
import { attentionRuleChecks, flashForwardErrorBound } from './test-utils/attention-rule.js';

describe('createCpuBackend', () => {
  it('names the backends and states their capabilities', () => {
    const ref = createCpuBackend({ kind: 'reference' });
    const flash = createCpuBackend({ kind: 'flash' });
    expect(ref.name).toBe('cpu-reference');
    expect(flash.name).toBe('cpu-flash');
    for (const b of [ref, flash]) {
      expect([...b.capabilities.dtypes].sort()).toEqual([...DTYPES].sort());
      expect(b.capabilities.maxHeadDim).toBeGreaterThanOrEqual(256);
      for (const dt of DTYPES) expect(b.capabilities.computeDType(dt)).toBe(dt);
    }
  });

  it.each(DTYPES)(
    'both kinds return out, dq, dk, dv in the input dtype (%s), matching the oracle',
    async (dtype) => {
      const seed = freshSeed();
      const rng = createRng(seed);
      const q = randomTensor(rng, [2, 33, 4, 16], dtype);
      const k = randomTensor(rng, [2, 21, 2, 16], dtype);
      const v = randomTensor(rng, [2, 21, 2, 16], dtype);
      const dout = randomTensor(rng, [2, 33, 4, 16], dtype);
      const opts = { causal: true };
      const ref64 = attentionReference64(q, k, v, opts);
      for (const kind of ['reference', 'flash'] as const) {
        const be = createCpuBackend(
          kind === 'flash' ? { kind, blockSizeQ: 8, blockSizeK: 5 } : { kind },
        );
        const what = `seed ${seed} ${kind} ${dtype}`;
        const { out, lse } = await be.forward(q, k, v, opts);
        expect(out.dtype, what).toBe(dtype);
        expect(out.shape, what).toEqual(q.shape);
        expect(lse.length, what).toBe(2 * 4 * 33);
        if (kind === 'reference') {
          // The oracle's float64 values, rounded once to the dtype (via float32).
          const o = toFloat32(out);
          for (let i = 0; i < o.length; i++)
            expect(o[i], what).toBe(roundToDType(Math.fround(ref64.out[i]!), dtype));
        }
        const g = await be.backward(dout, q, k, v, out, lse, opts);
        for (const name of ['dq', 'dk', 'dv'] as const) {
          expect(g[name].dtype, `${what} ${name}`).toBe(dtype);
          expect(g[name].shape, `${what} ${name}`).toEqual(name === 'dq' ? q.shape : k.shape);
        }
        // The repo's one rule (@flashattn/core/testing), compute dtype = the storage dtype here.
        const checks = attentionRuleChecks(
          q,
          k,
          v,
          opts,
          be.capabilities.computeDType(dtype),
          { out: toFloat32(out), lse },
          { dout, dq: toFloat32(g.dq), dk: toFloat32(g.dk), dv: toFloat32(g.dv) },
        );
        for (const ch of checks) {
          expect(ch.err, `${what} ${ch.output} (naive ${ch.errNaive})`).toBeLessThanOrEqual(
            ch.allowed,
          );
        }
        await be.dispose();
      }
    },
  );

  it('throws a FlashAttnError from forward and backward after dispose()', async () => {
    const rng = createRng(5);
    const q = randomTensor(rng, [1, 3, 1, 4]);
    for (const kind of ['reference', 'flash'] as const) {
      const be = createCpuBackend({ kind });
      const { out, lse } = await be.forward(q, q, q);
      await be.dispose();
      await expect(be.forward(q, q, q)).rejects.toBeInstanceOf(FlashAttnError);
      await expect(be.forward(q, q, q)).rejects.toThrow(/dispose/);
      await expect(be.backward(q, q, q, q, out, lse)).rejects.toBeInstanceOf(FlashAttnError);
    }
  });

  it('rejects bad construction options and bad inputs with AttentionInputError', async () => {
    expect(() => createCpuBackend({ kind: 'gpu' } as never)).toThrow(AttentionInputError);
    expect(() => createCpuBackend({ kind: 'flash', blockSizeQ: 0 })).toThrow(/blockSizeQ/);
    expect(() => createCpuBackend({ kind: 'flash', blockSizeK: 1.5 })).toThrow(/blockSizeK/);
    expect(() => createCpuBackend({ kind: 'reference', blockSizeK: 16 })).toThrow(
      AttentionInputError,
    );
    const rng = createRng(6);
    const q = randomTensor(rng, [1, 3, 2, 4]);
    const k = randomTensor(rng, [1, 3, 2, 4], 'float16');
    for (const kind of ['reference', 'flash'] as const) {
      const be = createCpuBackend({ kind });
      await expect(be.forward(q, k, k)).rejects.toBeInstanceOf(AttentionInputError);
      await expect(be.forward(q, q, q, { softmaxScale: -1 })).rejects.toThrow(/softmaxScale/);
      await expect(be.forward(q, q, q, null as never)).rejects.toBeInstanceOf(AttentionInputError);
    }
  });

  it('lets per-call options override the backend block sizes for kind flash', async () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const q = randomTensor(rng, [1, 40, 1, 8]);
    const be = createCpuBackend({ kind: 'flash', blockSizeQ: 16, blockSizeK: 16 });
    const a = await be.forward(q, q, q, { causal: true });
    const b = await be.forward(q, q, q, { causal: true, blockSizeQ: 3, blockSizeK: 7 } as never);
    // Two float32 evaluation orders: within twice the any-order bound of each element (attention-rule.ts).
    const bound = flashForwardErrorBound(q, q, q, { causal: true }, 2 ** -24).out;
    const [x, y] = [toFloat32(a.out), toFloat32(b.out)];
    const over = x.findIndex((xi, i) => !(Math.abs(xi - y[i]!) <= 2 * bound[i]!));
    expect(over, `seed ${seed}: element ${over} ${x[over]} vs ${y[over]}`).toBe(-1);
    await expect(be.forward(q, q, q, { blockSizeQ: -1 } as never)).rejects.toThrow(/blockSizeQ/);
  });
});

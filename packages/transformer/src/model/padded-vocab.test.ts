// The padded vocabulary (Ops.rowMultiple, llm.c's padded_vocab_size): a backend that asks for it gets wte followed
// by zero rows and logits rows Vp apart, and nothing a user sees changes. The same tiny GPT-2 (V = 23) trains on
// core's float64 reference ops as they are (V = 23) and with rowMultiple 16 (Vp = 32): losses, gradient norms,
// every parameter (matched by name), the logits, cached greedy generation and a checkpoint round trip between
// the two layouts agree; the padding stays exactly zero in the parameters, the gradients and the moments.
import { createReferenceOps, createRng, freshSeed, type Ops } from '@flashattn/core';
import { CpuOps } from '@flashattn/cpu';
import { afterAll, describe, expect, it } from 'vitest';
import type { GPT2Config } from '../config.js';
import { encodeCheckpoint, loadCheckpointBytes } from '../checkpoint/checkpoint.js';
import { AdamW } from '../train/adamw.js';
import { clipGradNorm } from '../train/clip.js';
import { generate } from './generate.js';
import { GPT2 } from './gpt2.js';

const config: GPT2Config = { vocabSize: 23, maxSeqLen: 12, nLayer: 2, nHead: 2, nEmbd: 16 };
const [B, T, steps] = [2, 12, 3];
const seed = freshSeed();

/** The same ops with a rowMultiple: the only difference between the two runs (methods bound to the original). */
function withRowMultiple<Buf>(ops: Ops<Buf>, m: number): Ops<Buf> {
  return new Proxy(ops, {
    get(target, prop) {
      if (prop === 'rowMultiple') return m;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function run<Buf>(ops: Ops<Buf>, dtype: 'float32' | 'float64' = 'float64') {
  const model = new GPT2({ config, ops, paramDType: dtype, seed });
  const opt = new AdamW(ops, model.specs, model.paramsLength, undefined, dtype);
  const rng = createRng(seed ^ 0x2545f491);
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize)); // (B, T)
  const targets = Int32Array.from({ length: B * T }, (_, i) =>
    i % 5 === 2 ? -1 : rng.int(config.vocabSize),
  ); // (B, T)
  const losses: number[] = [];
  const norms: number[] = [];
  let grads: Float64Array | null = null;
  for (let s = 0; s < steps; s++) {
    await model.zeroGrad();
    losses.push(await model.forward(tokens, targets, B, T, true));
    await model.backward();
    if (s === 0) grads = Float64Array.from(await model.getGrads());
    norms.push(await clipGradNorm(ops, model.grads, 1.0));
    await opt.step(model.params, model.grads, 1e-2);
    await model.syncParams();
  }
  await model.forward(tokens, null, B, T);
  const logits = Float64Array.from(await model.downloadLogits()); // (B*T, V)
  const greedy = await generate(model, [1, 2, 3], {
    maxNewTokens: 6,
    temperature: 1,
    topK: 1, // greedy
    useCache: true,
    rng: createRng(1),
  });
  return { model, opt, losses, norms, grads: grads!, logits, greedy };
}

/** Values of every named tensor of a flat buffer in the model's layout. */
function byName(model: GPT2<unknown>, flat: Float64Array | Float32Array): Map<string, number[]> {
  return new Map(
    model.specs.map((s) => [s.name, Array.from(flat.subarray(s.offset, s.offset + s.size))]),
  );
}

/** The padding rows (V..Vp) of a flat buffer in the padded model's layout. */
function padding(model: GPT2<unknown>, flat: Float64Array | Float32Array): Float64Array {
  const { vocabSize: V, nEmbd: C } = model.config;
  return Float64Array.from(flat.subarray(V * C, model.paddedVocab * C));
}

function maxRelDiff(a: Map<string, number[]>, b: Map<string, number[]>): number {
  let worst = 0;
  for (const [name, x] of a) {
    const y = b.get(name)!;
    const scale = Math.max(1e-300, ...y.map(Math.abs));
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!) / scale);
  }
  return worst;
}

describe(`GPT-2 with a padded vocabulary (seed ${seed})`, () => {
  it('lays out Vp = 32 rows for V = 23 at rowMultiple 16, and 23 without one', () => {
    const plain = new GPT2({ config, ops: createReferenceOps(), seed });
    const padded = new GPT2({ config, ops: withRowMultiple(createReferenceOps(), 16), seed });
    expect(plain.paddedVocab).toBe(23);
    expect(padded.paddedVocab).toBe(32);
    expect(padded.numParams).toBe(plain.numParams);
    expect(padded.paramsLength).toBe(plain.numParams + (32 - 23) * 16);
    // Every tensor after wte moves by the padding; wte itself stays (V, C) at 0.
    expect(padded.specs[0]).toEqual(plain.specs[0]);
    expect(padded.specs[1]!.offset).toBe(plain.specs[1]!.offset + 9 * 16);
  });

  it('trains, samples and checkpoints exactly as the unpadded model', async () => {
    const a = await run(createReferenceOps());
    const b = await run(withRowMultiple(createReferenceOps(), 16));
    expect(b.model.paddedVocab).toBe(32);
    // The loss falls: a real run, not a constant.
    expect(a.losses[steps - 1]!).toBeLessThan(a.losses[0]!);
    // Float64 both: the padded head multiplies extra zero rows, which changes no sum beyond float64 rounding
    // (1e-12 relative leaves a wide margin; a wrong stride or padding read moves the loss at 1e-3 or more).
    for (let s = 0; s < steps; s++) {
      expect(Math.abs(a.losses[s]! - b.losses[s]!), `loss ${s}`).toBeLessThan(1e-12 * a.losses[s]!);
      expect(Math.abs(a.norms[s]! - b.norms[s]!), `norm ${s}`).toBeLessThan(1e-12 * a.norms[s]!);
    }
    expect(maxRelDiff(byName(b.model, b.grads), byName(a.model, a.grads))).toBeLessThan(1e-12);
    const pa = (await a.model.getParams()) as Float64Array;
    const pb = (await b.model.getParams()) as Float64Array;
    expect(pb.length).toBe(b.model.paramsLength);
    expect(maxRelDiff(byName(b.model, pb), byName(a.model, pa))).toBeLessThan(1e-12);
    let logitErr = 0;
    for (let i = 0; i < a.logits.length; i++)
      logitErr = Math.max(logitErr, Math.abs(a.logits[i]! - b.logits[i]!));
    expect(b.logits.length).toBe(B * T * config.vocabSize);
    expect(logitErr).toBeLessThan(1e-12);
    expect(b.greedy).toEqual(a.greedy);
    // The padding rows stay exactly zero: parameters, their gradient, both moments.
    expect(padding(b.model, pb).every((x) => x === 0)).toBe(true);
    expect(padding(b.model, b.grads).every((x) => x === 0)).toBe(true);
    const { m, v } = await b.opt.getState();
    expect(padding(b.model, m).every((x) => x === 0)).toBe(true);
    expect(padding(b.model, v).every((x) => x === 0)).toBe(true);

    // A checkpoint written by the padded model loads into an unpadded one (and back): same tensors.
    const state = { step: steps, dataPosition: 0, rngState: 7 };
    const bytes = await encodeCheckpoint(b.model, b.opt, state);
    const plain = new GPT2({
      config,
      ops: createReferenceOps(),
      paramDType: 'float64',
      seed: seed + 1,
    });
    const plainOpt = new AdamW(plain.ops, plain.specs, plain.paramsLength, undefined, 'float64');
    await loadCheckpointBytes(bytes, 'padded.safetensors', plain, plainOpt);
    const pp = (await plain.getParams()) as Float64Array;
    // Checkpoints store float32: compare with the padded model's values rounded to float32.
    const f32 = (x: Map<string, number[]>) =>
      new Map([...x].map(([k, v]) => [k, v.map((y) => Math.fround(y))]));
    expect(maxRelDiff(byName(plain, pp), f32(byName(b.model, pb)))).toBe(0);
    const back = new GPT2({
      config,
      ops: withRowMultiple(createReferenceOps(), 16),
      paramDType: 'float64',
    });
    await loadCheckpointBytes(
      await encodeCheckpoint(plain, plainOpt, state),
      'plain.safetensors',
      back,
    );
    const pback = (await back.getParams()) as Float64Array;
    expect(maxRelDiff(byName(back, pback), byName(plain, pp))).toBe(0);
    expect(padding(back, pback).every((x) => x === 0)).toBe(true);
  });

  it('takes parameters in the unpadded Hugging Face order too, and rejects other lengths', async () => {
    const plain = new GPT2({ config, ops: createReferenceOps(), paramDType: 'float64', seed });
    const padded = new GPT2({
      config,
      ops: withRowMultiple(createReferenceOps(), 16),
      paramDType: 'float64',
    });
    const hf = (await plain.getParams()) as Float64Array; // numParams, HF order
    await padded.setParams(hf);
    const got = (await padded.getParams()) as Float64Array;
    expect(maxRelDiff(byName(padded, got), byName(plain, hf))).toBe(0);
    expect(padding(padded, got).every((x) => x === 0)).toBe(true);
    await expect(padded.setParams(new Float64Array(padded.numParams + 1))).rejects.toThrow(
      /setParams values.length.*(padded layout).*HF order/,
    );
    expect(
      () => new AdamW(padded.ops, padded.specs, padded.numParams, undefined, 'float64'),
    ).toThrow(/AdamW n.*paramsLength/);
  });

  it('trains the same on the CPU ops (float32, native / wasm SIMD matmul) padded and not', async () => {
    const cpu = new CpuOps({ threads: 2 });
    afterAll(() => cpu.dispose());
    const a = await run(cpu, 'float32');
    const b = await run(withRowMultiple(cpu, 16), 'float32');
    expect(b.model.paddedVocab).toBe(32);
    // float32: the padded head's extra zero products may change the summation blocking; 1e-5 relative is
    // float32 rounding over three steps with margin, and far below what a padding read or stride error does.
    for (let s = 0; s < steps; s++)
      expect(Math.abs(a.losses[s]! - b.losses[s]!), `loss ${s}`).toBeLessThan(1e-5 * a.losses[s]!);
    expect(maxRelDiff(byName(b.model, b.grads), byName(a.model, a.grads))).toBeLessThan(1e-5);
    expect(b.greedy).toEqual(a.greedy);
    expect(padding(b.model, b.grads).every((x) => x === 0)).toBe(true);
    expect(padding(b.model, await b.model.getParams()).every((x) => x === 0)).toBe(true);
  });
});

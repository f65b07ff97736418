// A 16-bit compute dtype seen from the host: `download` of a float16 / bfloat16 buffer gives raw bits
// (Uint16Array), and everything the model hands to the user as numbers (logitsAt, downloadLogits, getGrads,
// and so generate()'s sampling) must decode them. Found on the H100 on 2026-12-07: a bf16 GPT-2 124M trained to
// val loss 6.2 on the Brown corpus sampled "Amtrak Amtrak ... Wendy Wendy": the sampler read bf16 bits as
// numbers, so it drew the tokens with the largest bit patterns, i.e. the most negative logits.
//
// No CPU backend computes in bfloat16, so `asBf16Host` below gives the CPU float32 ops a bfloat16 dtype whose
// buffers are float32 inside and whose host side is bfloat16 bits (upload decodes, download rounds to bf16):
// a bf16-compute model then computes exactly what the float32 model computes, and only the host side differs.
// Expected values: the float32 model's own logits / gradients, rounded to bfloat16 by core's float32ToBFloat16Bits
// (round to nearest even), and for greedy sampling a token of the largest rounded logit.
import { CpuOps } from '@flashattn/cpu';
import {
  bfloat16BitsToFloat32,
  createRng,
  float32ToBFloat16Bits,
  freshSeed,
  hostFloats,
  OpsInputError,
  type HostArray,
  type Ops,
} from '@flashattn/core';
import { afterAll, describe, expect, it } from 'vitest';
import type { GPT2Config } from '../config.js';
import { generate } from './generate.js';
import { GPT2 } from './gpt2.js';

const config: GPT2Config = { vocabSize: 61, maxSeqLen: 24, nLayer: 2, nHead: 2, nEmbd: 32 };
const [B, T] = [2, 11];

/** The ops with a 'bfloat16' dtype held as float32 on the device and as bf16 bits on the host. */
function asBf16Host<Buf extends object>(ops: Ops<Buf>): Ops<Buf> {
  const bf16 = new WeakSet<object>();
  const mark = (b: Buf, is: boolean): Buf => {
    if (is) bf16.add(b);
    return b;
  };
  return new Proxy(ops, {
    get(target, prop) {
      switch (prop) {
        case 'dtypes':
          return [...target.dtypes, 'bfloat16'];
        case 'alloc':
          return (n: number, dt: Parameters<Ops<Buf>['alloc']>[1]) =>
            dt === 'bfloat16' ? mark(target.alloc(n, 'float32'), true) : target.alloc(n, dt);
        case 'view':
          return (b: Buf, offset: number, length: number) =>
            mark(target.view(b, offset, length), bf16.has(b));
        case 'dtypeOf':
          return (b: Buf) => (bf16.has(b) ? 'bfloat16' : target.dtypeOf(b));
        case 'download':
          return async (b: Buf): Promise<HostArray> => {
            const h = await target.download(b);
            return bf16.has(b) ? Uint16Array.from(h as Float32Array, float32ToBFloat16Bits) : h;
          };
        case 'upload':
          return (b: Buf, h: HostArray) =>
            target.upload(
              b,
              bf16.has(b) ? Float32Array.from(h as Uint16Array, bfloat16BitsToFloat32) : h,
            );
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

const toBf16 = (x: ArrayLike<number>) =>
  Float32Array.from(x, (v) => bfloat16BitsToFloat32(float32ToBFloat16Bits(v)));

describe('a 16-bit compute dtype on the host side', () => {
  const cpu = new CpuOps({ threads: 2 });
  afterAll(() => cpu.dispose());
  const seed = freshSeed();
  const rng = createRng(seed);
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize)); // (B, T)
  const targets = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize)); // (B, T)

  async function run(computeDType: 'float32' | 'bfloat16') {
    const ops = computeDType === 'float32' ? cpu : asBf16Host(cpu);
    const model = new GPT2({ config, ops, paramDType: 'float32', computeDType, seed });
    await model.zeroGrad();
    await model.forward(tokens, targets, B, T, true);
    await model.backward();
    const grads = await model.getGrads();
    await model.forward(tokens, null, B, T);
    const logits = await model.downloadLogits(); // (B*T, V)
    const row = await model.logitsAt(1, T - 2);
    const prompt = [3, 1, 4, 1, 5];
    const sampled = await generate(model, prompt, {
      maxNewTokens: 8,
      topK: 1,
      rng: createRng(seed),
    }); // greedy
    await model.forward(Int32Array.from(prompt), null, 1, prompt.length);
    const next = await model.logitsAt(0, prompt.length - 1); // what the first sampled token was drawn from
    return { grads, logits, row, sampled, next };
  }

  it(`logitsAt, downloadLogits, getGrads decode bf16 bits; greedy generate draws the largest logit (seed=${seed})`, async () => {
    const f32 = await run('float32');
    const b16 = await run('bfloat16');
    expect(b16.logits).toBeInstanceOf(Float32Array);
    expect(Array.from(b16.logits)).toEqual(Array.from(toBf16(f32.logits)));
    expect(Array.from(b16.row)).toEqual(Array.from(toBf16(f32.row)));
    expect(Array.from(b16.grads)).toEqual(Array.from(toBf16(f32.grads)));
    // greedy: the first token is one whose bf16 logit is the largest (the float32 logits rounded to bf16; a tie
    // between bf16 values may go either way, so any maximiser counts); raw bits would pick the most negative one
    const next = toBf16(f32.next);
    const best = Math.max(...next);
    expect(b16.sampled).toHaveLength(8);
    expect(next[b16.sampled[0]!]).toBe(best);
    expect(b16.sampled.every((t) => Number.isInteger(t) && t >= 0 && t < config.vocabSize)).toBe(
      true,
    );
  });

  it('hostFloats: float arrays as they came, 16-bit bits decoded, a mismatched array named', () => {
    const f = Float32Array.of(1.5, -2);
    expect(hostFloats(f, 'float32')).toBe(f);
    // bfloat16 bits of 1, -2, +inf, the smallest normal; float16 bits of 1, -2, 65504 (IEEE encodings)
    expect(
      Array.from(hostFloats(Uint16Array.of(0x3f80, 0xc000, 0x7f80, 0x0080), 'bfloat16')),
    ).toEqual([1, -2, Infinity, 2 ** -126]);
    expect(Array.from(hostFloats(Uint16Array.of(0x3c00, 0xc000, 0x7bff), 'float16'))).toEqual([
      1, -2, 65504,
    ]);
    expect(() => hostFloats(f, 'bfloat16')).toThrow(OpsInputError);
    expect(() => hostFloats(Int32Array.of(1), 'int32')).toThrow(/hostFloats host/);
  });
});

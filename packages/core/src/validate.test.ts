import { describe, expect, it } from 'vitest';
import { AttentionInputError } from './errors.js';
import { createRng, randomTensor } from './random.js';
import { tensor, type Tensor } from './tensor.js';
import { validateBackward, validateForward, validateOptions } from './validate.js';

const rng = createRng(11);
const T = (shape: number[], dtype: 'float32' | 'float16' | 'bfloat16' = 'float32'): Tensor =>
  randomTensor(rng, shape, dtype);
const q = T([2, 5, 4, 8]);
const k = T([2, 7, 2, 8]);
const v = T([2, 7, 2, 8]);
const out = T([2, 5, 4, 8]);
const dout = T([2, 5, 4, 8]);
const lse = new Float32Array(2 * 4 * 5);

/** Run f, expect an AttentionInputError, and check the fields it names. */
function expectInputError(
  f: () => unknown,
  argument: string | RegExp,
  expected?: RegExp,
  actual?: string,
): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(AttentionInputError);
  const e = err as AttentionInputError;
  if (typeof argument === 'string') expect(e.argument).toBe(argument);
  else expect(e.argument).toMatch(argument);
  if (expected) expect(e.expected).toMatch(expected);
  if (actual !== undefined) expect(e.actual).toBe(actual);
  // The message names all three.
  expect(e.message).toContain(e.argument);
  expect(e.message).toContain(e.expected);
  expect(e.message).toContain(e.actual);
}

describe('validateForward', () => {
  it('returns the shape of a valid GQA problem', () => {
    expect(validateForward(q, k, v)).toEqual({
      batch: 2,
      seqlenQ: 5,
      seqlenK: 7,
      nheadsQ: 4,
      nheadsK: 2,
      headDim: 8,
    });
  });

  it('rejects wrong rank', () => {
    const q3 = tensor(new Float32Array(2 * 5 * 32), [2, 5, 32]);
    expectInputError(() => validateForward(q3, k, v), 'q.shape', /rank 4/, 'rank 3 [2, 5, 32]');
    const k5 = tensor(new Float32Array(2 * 7 * 2 * 8), [2, 7, 2, 8, 1]);
    expectInputError(() => validateForward(q, k5, v), 'k.shape', /rank 4/);
  });

  it('rejects non-tensors and zero-sized axes', () => {
    expectInputError(() => validateForward(null as never, k, v), 'q');
    expectInputError(
      () => validateForward(q, k, { dtype: 'float32', shape: 'x', data: 1 } as never),
      'v.shape',
    );
    expectInputError(
      () => validateForward(tensor(new Float32Array(0), [2, 0, 4, 8]), k, v),
      'q.shape[1] (seqlen)',
      /positive/,
      '0',
    );
  });

  it('rejects mismatched batch, seqlen and headdim across q, k, v', () => {
    expectInputError(
      () => validateForward(q, T([3, 7, 2, 8]), T([3, 7, 2, 8])),
      'k.shape[0] (batch)',
      /2/,
      '3',
    );
    expectInputError(
      () => validateForward(q, T([2, 7, 2, 16]), T([2, 7, 2, 16])),
      'k.shape[3] (headdim)',
      /8/,
      '16',
    );
    expectInputError(() => validateForward(q, k, T([2, 6, 2, 8])), 'v.shape[1] (seqlen)', /7/, '6');
    expectInputError(() => validateForward(q, k, T([2, 7, 1, 8])), 'v.shape[2] (nheads)', /2/, '1');
    expectInputError(
      () => validateForward(q, k, T([2, 7, 2, 4])),
      'v.shape[3] (headdim)',
      /8/,
      '4',
    );
  });

  it('rejects nheads not divisible (GQA needs nheads_q % nheads_k === 0)', () => {
    expectInputError(
      () => validateForward(q, T([2, 7, 3, 8]), T([2, 7, 3, 8])),
      'k.shape[2] (nheads)',
      /divisor of q's nheads 4/,
      '3',
    );
  });

  it('rejects dtype mismatch', () => {
    expectInputError(
      () => validateForward(q, T([2, 7, 2, 8], 'float16'), v),
      'k.dtype',
      /float32/,
      'float16',
    );
    expectInputError(
      () => validateForward(q, k, T([2, 7, 2, 8], 'bfloat16')),
      'v.dtype',
      /float32/,
      'bfloat16',
    );
    expectInputError(
      () => validateForward({ ...q, dtype: 'int8' } as never, k, v),
      'q.dtype',
      /float32, float16, bfloat16/,
      'int8',
    );
  });

  it('rejects data length != product(shape) and the wrong array type', () => {
    const bad = { dtype: 'float32', shape: [2, 7, 2, 8], data: new Float32Array(10) } as Tensor;
    expectInputError(() => validateForward(q, bad, v), 'k.data.length', /224/, '10');
    const wrongType = {
      dtype: 'float16',
      shape: [2, 5, 4, 8],
      data: new Float32Array(320),
    } as unknown as Tensor;
    expectInputError(() => validateForward(wrongType, k, v), 'q.data', /Uint16Array/);
  });

  it('rejects non-finite or non-positive softmaxScale', () => {
    for (const s of [0, -1, NaN, Infinity, -Infinity, '1']) {
      expectInputError(
        () => validateForward(q, k, v, { softmaxScale: s as number }),
        'opts.softmaxScale',
        /finite number > 0/,
      );
    }
  });

  it('rejects bad windows', () => {
    expectInputError(
      () => validateForward(q, k, v, { windowSize: [3] as never }),
      'opts.windowSize',
      /\[left, right\]/,
    );
    expectInputError(
      () => validateForward(q, k, v, { windowSize: [-2, 0] }),
      'opts.windowSize[0] (left)',
      />= -1/,
      '-2',
    );
    expectInputError(
      () => validateForward(q, k, v, { windowSize: [0, 1.5] }),
      'opts.windowSize[1] (right)',
      /integer/,
      '1.5',
    );
    expectInputError(() => validateForward(q, k, v, { windowSize: 4 as never }), 'opts.windowSize');
  });

  it('rejects unknown options and non-boolean causal, but accepts declared extra keys', () => {
    expectInputError(
      () => validateForward(q, k, v, { dropout: 0.1 } as never),
      'opts.dropout',
      /causal, softmaxScale, windowSize/,
    );
    expectInputError(
      () => validateForward(q, k, v, { causal: 1 } as never),
      'opts.causal',
      /boolean/,
      '1',
    );
    expectInputError(() => validateOptions('fast' as never), 'opts', /object/);
    expect(() =>
      validateForward(q, k, v, { blockSizeQ: 4 } as never, ['blockSizeQ']),
    ).not.toThrow();
  });
});

describe('validateBackward', () => {
  it('accepts consistent inputs', () => {
    expect(validateBackward(dout, q, k, v, out, lse).seqlenK).toBe(7);
  });

  it('rejects dout and out that do not match q', () => {
    expectInputError(
      () => validateBackward(T([2, 6, 4, 8]), q, k, v, out, lse),
      'dout.shape[1] (seqlen)',
      /5/,
      '6',
    );
    expectInputError(
      () => validateBackward(dout, q, k, v, T([1, 5, 4, 8]), lse),
      'out.shape[0] (batch)',
      /2/,
      '1',
    );
    expectInputError(
      () => validateBackward(dout, q, k, v, T([2, 5, 4, 4]), lse),
      'out.shape[3] (headdim)',
      /8/,
      '4',
    );
    expectInputError(
      () => validateBackward(T([2, 5, 4, 8], 'float16'), q, k, v, out, lse),
      'dout.dtype',
      /float32/,
      'float16',
    );
    expectInputError(
      () => validateBackward(T([2, 5, 32]), q, k, v, out, lse),
      'dout.shape',
      /rank 4/,
    );
  });

  it('rejects lse of the wrong length or type', () => {
    expectInputError(
      () => validateBackward(dout, q, k, v, out, new Float32Array(39)),
      'lse.length',
      /40 = batch 2 x nheads 4 x seqlen_q 5/,
      '39',
    );
    expectInputError(
      () => validateBackward(dout, q, k, v, out, new Float64Array(40) as never),
      'lse',
      /Float32Array/,
    );
  });
});

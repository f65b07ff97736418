/**
 * Input validation shared by every backend: each check throws AttentionInputError naming the
 * argument, what was expected and what came. Backends call these before touching a device.
 */
import { DTYPES } from './dtype.js';
import { AttentionInputError, describe } from './errors.js';
import type { AttentionOptions, AttentionShape } from './options.js';
import { checkData, toFloat32, type Tensor } from './tensor.js';

const AXES = ['batch', 'seqlen', 'nheads', 'headdim'] as const;

function checkTensor(name: string, t: unknown): asserts t is Tensor {
  if (t === null || typeof t !== 'object') {
    throw new AttentionInputError(name, 'a Tensor { dtype, shape, data }', describe(t));
  }
  const { dtype, shape, data } = t as Partial<Tensor>;
  if (!DTYPES.includes(dtype as never)) {
    throw new AttentionInputError(`${name}.dtype`, `one of ${DTYPES.join(', ')}`, dtype);
  }
  if (!Array.isArray(shape))
    throw new AttentionInputError(`${name}.shape`, 'an array', describe(shape));
  if (shape.length !== 4) {
    throw new AttentionInputError(
      `${name}.shape`,
      'rank 4 (batch, seqlen, nheads, headdim)',
      `rank ${shape.length} [${shape.join(', ')}]`,
    );
  }
  shape.forEach((s, axis) => {
    if (!Number.isInteger(s) || s < 1) {
      throw new AttentionInputError(
        `${name}.shape[${axis}] (${AXES[axis]})`,
        'a positive integer',
        s,
      );
    }
  });
  checkData(name, data, shape, dtype!);
}

function checkSame(
  name: string,
  axis: number,
  actual: number,
  refName: string,
  expected: number,
): void {
  if (actual !== expected) {
    throw new AttentionInputError(
      `${name}.shape[${axis}] (${AXES[axis]})`,
      `${expected} to match ${refName}.shape[${axis}]`,
      actual,
    );
  }
}

function checkDType(name: string, t: Tensor, ref: Tensor): void {
  if (t.dtype !== ref.dtype) {
    throw new AttentionInputError(`${name}.dtype`, `${ref.dtype} to match q.dtype`, t.dtype);
  }
}

/** Validate options (independent of shapes except headDim, which is only used for the default scale). */
export function validateOptions(
  opts: AttentionOptions | undefined,
  extraKeys: readonly string[] = [],
): void {
  if (opts === undefined) return;
  if (opts === null || typeof opts !== 'object') {
    throw new AttentionInputError('opts', 'an object or undefined', describe(opts));
  }
  const known = new Set(['causal', 'softmaxScale', 'windowSize', ...extraKeys]);
  for (const key of Object.keys(opts)) {
    if (!known.has(key)) {
      throw new AttentionInputError(
        `opts.${key}`,
        `one of the options ${[...known].join(', ')}`,
        'an unknown option',
      );
    }
  }
  if (opts.causal !== undefined && typeof opts.causal !== 'boolean') {
    throw new AttentionInputError('opts.causal', 'a boolean', describe(opts.causal));
  }
  const s = opts.softmaxScale;
  if (s !== undefined && (typeof s !== 'number' || !Number.isFinite(s) || s <= 0)) {
    throw new AttentionInputError('opts.softmaxScale', 'a finite number > 0', describe(s));
  }
  const w = opts.windowSize;
  if (w !== undefined) {
    if (!Array.isArray(w) || w.length !== 2) {
      throw new AttentionInputError('opts.windowSize', '[left, right]', describe(w));
    }
    w.forEach((x, side) => {
      if (!Number.isInteger(x) || x < -1) {
        throw new AttentionInputError(
          `opts.windowSize[${side}] (${side === 0 ? 'left' : 'right'})`,
          'an integer >= -1 (-1 = unbounded)',
          describe(x),
        );
      }
    });
  }
}

/**
 * Validate q (B, Nq, Hq, D), k (B, Nk, Hk, D), v (B, Nk, Hk, D) and options; return the shape.
 * `extraOptionKeys` names backend-specific options (e.g. block sizes) that opts may also carry.
 */
export function validateForward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts?: AttentionOptions,
  extraOptionKeys: readonly string[] = [],
): AttentionShape {
  checkTensor('q', q);
  checkTensor('k', k);
  checkTensor('v', v);
  checkDType('k', k, q);
  checkDType('v', v, q);
  checkSame('k', 0, k.shape[0]!, 'q', q.shape[0]!);
  checkSame('k', 3, k.shape[3]!, 'q', q.shape[3]!);
  for (let axis = 0; axis < 4; axis++) checkSame('v', axis, v.shape[axis]!, 'k', k.shape[axis]!);
  const nheadsQ = q.shape[2]!;
  const nheadsK = k.shape[2]!;
  if (nheadsQ % nheadsK !== 0) {
    throw new AttentionInputError(
      'k.shape[2] (nheads)',
      `a divisor of q's nheads ${nheadsQ} (GQA/MQA needs nheads_q % nheads_k === 0)`,
      nheadsK,
    );
  }
  validateOptions(opts, extraOptionKeys);
  return {
    batch: q.shape[0]!,
    seqlenQ: q.shape[1]!,
    seqlenK: k.shape[1]!,
    nheadsQ,
    nheadsK,
    headDim: q.shape[3]!,
  };
}

/**
 * Validate the backward's inputs: those of the forward plus dout and out (shaped like q) and
 * lse (float32, length B * Hq * Nq, layout (B, H, Nq)).
 */
export function validateBackward(
  dout: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  lse: Float32Array,
  opts?: AttentionOptions,
  extraOptionKeys: readonly string[] = [],
): AttentionShape {
  const shape = validateForward(q, k, v, opts, extraOptionKeys);
  for (const [name, t] of [
    ['dout', dout],
    ['out', out],
  ] as const) {
    checkTensor(name, t);
    checkDType(name, t, q);
    for (let axis = 0; axis < 4; axis++) checkSame(name, axis, t.shape[axis]!, 'q', q.shape[axis]!);
  }
  if (!(lse instanceof Float32Array)) {
    throw new AttentionInputError(
      'lse',
      'a Float32Array of shape (batch, nheads, seqlen_q)',
      describe(lse),
    );
  }
  const want = shape.batch * shape.nheadsQ * shape.seqlenQ;
  if (lse.length !== want) {
    throw new AttentionInputError(
      'lse.length',
      `${want} = batch ${shape.batch} x nheads ${shape.nheadsQ} x seqlen_q ${shape.seqlenQ}`,
      lse.length,
    );
  }
  return shape;
}

/**
 * The NaN/Infinity contract: like flash-attn, attention does not inspect values, so a NaN or Infinity
 * in q, k or v propagates to every output row that sees it (and to the gradients), and nothing else
 * fails. Call this first to reject such inputs instead: it throws AttentionInputError naming the tensor
 * and the first offending element.
 */
export function checkFinite(t: Tensor, name = 'tensor'): void {
  const f = toFloat32(t);
  for (let i = 0; i < f.length; i++) {
    if (!Number.isFinite(f[i]!)) {
      throw new AttentionInputError(`${name}.data[${i}]`, 'a finite value (checkFinite)', f[i]!);
    }
  }
}

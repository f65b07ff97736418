/**
 * The training-parity rule (issue #10 "Correctness"): our loss and every parameter gradient against the
 * float64 oracle that packages/transformer/parity/hf_train_golden.py computes with Hugging Face's
 * GPT2LMHeadModel, scaled by the same-precision error of PyTorch itself (the conformance suite's rule:
 * at most ~2x a same-precision implementation's error, plus a small floor).
 *
 * Per tensor t (and for the loss, with |loss64| as the scale):
 *   err(x) = max_i |x_i - oracle_i| / max_i |oracle_i|
 *   pass  iff  err(ours) <= 2 * err(torch in the same precision) + floor
 *   floor: fp32 1e-5 (parity.test.ts's rule; the oracle stored as float32 adds <= 6e-8), bf16 2^-8
 *          (one bf16 rounding of the tensor's scale: our gradients are bf16 buffers, PyTorch autocast's are
 *          float32 masters').
 * Without a same-precision PyTorch golden (the CPU test against the committed float64 golden):
 *   pass  iff  err(ours) <= 1e-4 (fp32; parity.test.ts's end-to-end bound) or 2^-5 (bf16).
 */
export type ParityDType = 'fp32' | 'bf16' | 'fp16';

export const FLOOR: Record<ParityDType, number> = { fp32: 1e-5, bf16: 2 ** -8, fp16: 2 ** -11 };
export const NO_PEER_BOUND: Record<ParityDType, number> = {
  fp32: 1e-4,
  bf16: 2 ** -5,
  fp16: 2 ** -8,
};

type Values = ArrayLike<number>;

/** max |x - oracle| / max |oracle| (0/0 = 0). */
export function relErr(x: Values, oracle: Values): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < oracle.length; i++) {
    err = Math.max(err, Math.abs(x[i]! - oracle[i]!));
    scale = Math.max(scale, Math.abs(oracle[i]!));
  }
  if (!(err === err)) return Infinity; // NaN anywhere fails
  return scale > 0 ? err / scale : err;
}

export interface TensorVerdict {
  name: string;
  ours: number;
  torch: number | null;
  bound: number;
  pass: boolean;
}

export function judge(
  name: string,
  ours: Values,
  oracle: Values,
  torch: Values | null,
  dtype: ParityDType,
): TensorVerdict {
  if (ours.length !== oracle.length)
    throw new RangeError(`${name}: ${ours.length} values, the golden has ${oracle.length}`);
  const e = relErr(ours, oracle);
  const p = torch ? relErr(torch, oracle) : null;
  const bound = p === null ? NO_PEER_BOUND[dtype] : 2 * p + FLOOR[dtype];
  return { name, ours: e, torch: p, bound, pass: e <= bound };
}

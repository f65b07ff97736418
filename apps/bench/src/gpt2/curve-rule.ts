/**
 * The loss-curve rule (issue #10: "a 100-step loss curve from the same initialisation and data order tracks
 * PyTorch's (state the bound and the measured maximum difference)"): the training-parity rule
 * (parity-rule.ts) applied to the whole curve as one tensor.
 *
 *   oracle  PyTorch's float64 curve (hf_train_curve.py --modes fp64: the same initial weights, batches,
 *           learning rates, AdamW and clipping); without it, for bf16 only, PyTorch's float32 curve (its
 *           distance from float64 is orders below bf16's floor: curve-tiny's golden measured it)
 *   err(c)  = max_s |c_s - oracle_s| / max_s |oracle_s|            (parity-rule relErr)
 *   pass    iff err(ours) <= 2 x err(PyTorch in the same precision) + floor
 *   floor   fp32 1e-5, bf16 2^-8 (parity-rule FLOOR: one bf16 rounding of the loss's scale)
 *
 * Why this bound: a run in finite precision drifts from the exact trajectory by rounding at every step,
 * and training amplifies the drift (Adam normalises tiny gradient differences into lr-sized updates). How
 * far a correct implementation drifts is not something to guess: PyTorch's own same-precision run measures
 * it on the same steps, and ours may be up to twice as far (the conformance rule), plus one rounding. A
 * wrong optimizer, schedule, data order or gradient moves the curve by far more (the golden test shows a
 * wrong weight decay failing).
 * The measured maximum differences reported beside the verdict: max_s |ours_s - torch_s| in nats against
 * PyTorch in the same precision (and in the first 10 steps, where float32 should agree tightly), and
 * max_s |ours_s - oracle_s|.
 */
import { FLOOR, judge, type ParityDType } from './parity-rule.js';

export interface Curve {
  losses: number[];
  norms?: number[];
}

export interface CurveVerdict {
  dtype: ParityDType;
  /** Which PyTorch curve served as the oracle. */
  oracle: 'fp64' | 'fp32';
  steps: number;
  /** err(ours), err(torch), the bound (relative to the oracle's largest loss). */
  ours: number;
  torch: number;
  bound: number;
  floor: number;
  pass: boolean;
  /** max_s |ours_s - torch_s| (nats), its step, and the same over the first 10 steps. */
  maxAbsDiffTorch: number;
  worstStep: number;
  maxAbsDiffTorchFirst10: number;
  /** max_s |ours_s - oracle_s| and max_s |torch_s - oracle_s| (nats). */
  maxAbsDiffOracle: number;
  torchMaxAbsDiffOracle: number;
  /** max_s |norm ours - norm torch| / norm torch (information: gradient norms before clipping). */
  normMaxRelDiffTorch: number | null;
}

export type CurveJudgement = CurveVerdict | { dtype: ParityDType; skipped: string };

function maxAbsDiff(
  a: readonly number[],
  b: readonly number[],
  n = a.length,
): { max: number; at: number } {
  let max = 0;
  let at = 0;
  for (let i = 0; i < Math.min(n, a.length); i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= max)) {
      max = d; // NaN lands here and stays (NaN <= x is false)
      at = i;
      if (Number.isNaN(d)) break;
    }
  }
  return { max, at };
}

/**
 * Judge our curve in `dtype` against PyTorch's curves by precision (fp64 / fp32 / bf16, from
 * hf_train_curve.py). Skipped (with the reason) when the same-precision PyTorch curve or an oracle is
 * missing, or the lengths differ.
 */
export function judgeCurve(
  dtype: ParityDType,
  ours: Curve,
  torch: Partial<Record<'fp64' | 'fp32' | 'bf16', Curve>>,
): CurveJudgement {
  const peer = dtype === 'fp32' ? torch.fp32 : dtype === 'bf16' ? torch.bf16 : undefined;
  if (!peer) return { dtype, skipped: `no PyTorch ${dtype} curve` };
  const oracleName = torch.fp64 ? 'fp64' : dtype === 'bf16' && torch.fp32 ? 'fp32' : null;
  if (!oracleName)
    return {
      dtype,
      skipped: `no PyTorch float64 curve (the oracle for ${dtype}; run hf_train_curve.py with fp64)`,
    };
  const oracle = torch[oracleName]!;
  const n = ours.losses.length;
  for (const [name, c] of [
    [`torch ${dtype}`, peer],
    [`torch ${oracleName}`, oracle],
  ] as const)
    if (c.losses.length !== n)
      return { dtype, skipped: `${name} has ${c.losses.length} steps, ours ${n}` };
  const v = judge(`loss curve ${dtype}`, ours.losses, oracle.losses, peer.losses, dtype);
  const worst = maxAbsDiff(ours.losses, peer.losses);
  let normMax: number | null = null;
  if (ours.norms && peer.norms && peer.norms.length === ours.norms.length) {
    normMax = 0;
    for (let i = 0; i < ours.norms.length; i++)
      normMax = Math.max(
        normMax,
        Math.abs(ours.norms[i]! - peer.norms[i]!) / Math.abs(peer.norms[i]!),
      );
  }
  return {
    dtype,
    oracle: oracleName,
    steps: n,
    ours: v.ours,
    torch: v.torch!,
    bound: v.bound,
    floor: FLOOR[dtype],
    pass: v.pass,
    maxAbsDiffTorch: worst.max,
    worstStep: worst.at,
    maxAbsDiffTorchFirst10: maxAbsDiff(ours.losses, peer.losses, 10).max,
    maxAbsDiffOracle: maxAbsDiff(ours.losses, oracle.losses).max,
    torchMaxAbsDiffOracle: maxAbsDiff(peer.losses, oracle.losses).max,
    normMaxRelDiffTorch: normMax,
  };
}

export function formatCurveVerdict(v: CurveJudgement, backend = ''): string {
  if ('skipped' in v)
    return `curve ${v.dtype}${backend ? ` on ${backend}` : ''}: not judged (${v.skipped})`;
  const e = (x: number): string => x.toExponential(2);
  return [
    `curve ${v.dtype}${backend ? ` on ${backend}` : ''}, ${v.steps} steps: ${v.pass ? 'PASS' : 'FAIL'}: err(ours) ${e(v.ours)} <= bound ${e(v.bound)} = 2 x err(torch ${v.dtype}) ${e(v.torch)} + ${e(v.floor)}? (err = max_s |loss - oracle| / max |oracle|, oracle torch ${v.oracle})`,
    `  max |ours - torch ${v.dtype}| = ${e(v.maxAbsDiffTorch)} nats (step ${v.worstStep}); first 10 steps ${e(v.maxAbsDiffTorchFirst10)}; ` +
      `max |ours - oracle| ${e(v.maxAbsDiffOracle)}, max |torch ${v.dtype} - oracle| ${e(v.torchMaxAbsDiffOracle)}` +
      (v.normMaxRelDiffTorch === null
        ? ''
        : `; gradient norms max rel diff ${e(v.normMaxRelDiffTorch)}`),
  ].join('\n');
}

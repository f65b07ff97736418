/** Learning rate: linear warmup to maxLr over `warmup` steps, then cosine decay to minLr at `total`. */
export interface LrSchedule {
  maxLr: number;
  minLr: number;
  warmup: number;
  total: number;
}

/** lr for 0-based step `step`. */
export function learningRate(s: LrSchedule, step: number): number {
  if (step < s.warmup) return (s.maxLr * (step + 1)) / s.warmup;
  if (step >= s.total) return s.minLr;
  const progress = (step - s.warmup) / Math.max(1, s.total - s.warmup);
  return s.minLr + 0.5 * (1 + Math.cos(Math.PI * progress)) * (s.maxLr - s.minLr);
}

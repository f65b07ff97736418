/**
 * Timing with warmup and the median of repeats (the median resists one-off GC pauses and JIT
 * tier-ups better than the mean). Works for sync and async functions; GPU callers must make `fn`
 * wait for the device (e.g. read back or await queue completion) or the time is only the enqueue.
 */

export interface TimingOptions {
  /** Untimed calls first (JIT warmup, pipeline compilation, allocation). Default 1. */
  warmup?: number;
  /** Timed calls. Default 5. */
  repeats?: number;
  /** Stop repeating once this much time was spent timing (at least one timed call). Default Infinity. */
  maxSeconds?: number;
  /** Called before each call, untimed (e.g. to sample memory). */
  before?: () => void | Promise<void>;
  /** Called after each call with its duration, untimed. */
  after?: (ms: number, index: number) => void;
}

export interface Timing {
  /** Median of the timed calls, milliseconds. */
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** Every timed call, in order. */
  samplesMs: number[];
}

/** Median of a non-empty list (mean of the middle two for even lengths). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median of an empty list');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Milliseconds from a monotonic clock. */
export function nowMs(): number {
  return performance.now();
}

/** Time `fn`: `warmup` untimed calls, then up to `repeats` timed calls; returns the median. */
export async function timeIt(fn: () => unknown, opts: TimingOptions = {}): Promise<Timing> {
  const warmup = opts.warmup ?? 1;
  const repeats = opts.repeats ?? 5;
  const budgetMs = (opts.maxSeconds ?? Infinity) * 1000;
  if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`warmup must be an integer >= 0, got ${warmup}`);
  if (!Number.isInteger(repeats) || repeats < 1) throw new RangeError(`repeats must be an integer >= 1, got ${repeats}`);
  for (let i = 0; i < warmup; i++) await fn();
  const samplesMs: number[] = [];
  const start = nowMs();
  for (let i = 0; i < repeats; i++) {
    await opts.before?.();
    const t0 = nowMs();
    await fn();
    const ms = nowMs() - t0;
    samplesMs.push(ms);
    opts.after?.(ms, i);
    if (nowMs() - start >= budgetMs) break;
  }
  return { medianMs: median(samplesMs), minMs: Math.min(...samplesMs), maxMs: Math.max(...samplesMs), samplesMs };
}

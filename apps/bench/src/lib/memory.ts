/**
 * What a call allocates, as far as Node lets us see it from JavaScript.
 *
 * `process.memoryUsage().arrayBuffers` counts the bytes of every live ArrayBuffer (typed-array
 * storage lives outside the JS heap). We collect garbage first (when node runs with --expose-gc),
 * sample, make the call, and sample again before anything else can collect: the difference is the
 * ArrayBuffer bytes the call allocated and that were still uncollected when it returned. That equals
 * the call's peak ArrayBuffer footprint when no GC ran during the call, and is a lower bound on it
 * otherwise (V8 may collect dead temporaries mid-call under memory pressure). Process-wide peak
 * resident memory (`maxRSS`) is reported separately; it only ever grows, so it is meaningful for the
 * first (largest) call of a process.
 */

export interface MemorySample {
  /** process.memoryUsage().arrayBuffers, bytes */
  arrayBuffers: number;
  /** process.resourceUsage().maxRSS, bytes (peak resident set of the whole process so far) */
  maxRss: number;
}

type GcFn = () => void;
const gcFn: GcFn | undefined = (globalThis as { gc?: GcFn }).gc;

/** True when node was started with --expose-gc, so samples start from a collected heap. */
export const canCollect = gcFn !== undefined;

export function collectGarbage(): void {
  gcFn?.();
}

/**
 * Collect garbage and wait until the ArrayBuffer count settles: V8 frees the backing stores of dead
 * ArrayBuffers on a background thread after a GC, so a sample taken right after gc() can still
 * include them and drop later (seen at N = 32768: the previous run's 12 MiB of inputs were freed
 * during the next measured call). Two collections 10 ms apart, then samples 2 ms apart until three
 * agree. Returns the settled sample.
 */
export async function settledSample(maxWaits = 25): Promise<MemorySample> {
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  collectGarbage();
  await sleep(10);
  collectGarbage();
  let prev = sampleMemory();
  let same = 0;
  for (let i = 0; i < maxWaits && same < 2; i++) {
    await sleep(2);
    const cur = sampleMemory();
    same = cur.arrayBuffers === prev.arrayBuffers ? same + 1 : 0;
    prev = cur;
  }
  return prev;
}

export function sampleMemory(): MemorySample {
  return { arrayBuffers: process.memoryUsage().arrayBuffers, maxRss: process.resourceUsage().maxRSS * 1024 };
}

export interface CallMemory<T> {
  result: T;
  /** ArrayBuffer bytes allocated by the call and still uncollected when it returned (see above). */
  arrayBufferBytes: number;
  /** Growth of the process's peak RSS during the call, bytes (0 when an earlier call peaked higher). */
  maxRssGrowth: number;
}

/** Run `fn` once and report what it allocated. */
export async function measureAllocation<T>(fn: () => T | Promise<T>): Promise<CallMemory<T>> {
  const before = await settledSample();
  const result = await fn();
  const after = sampleMemory();
  return {
    result,
    arrayBufferBytes: Math.max(0, after.arrayBuffers - before.arrayBuffers),
    maxRssGrowth: Math.max(0, after.maxRss - before.maxRss),
  };
}

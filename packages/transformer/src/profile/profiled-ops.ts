/**
 * A per-op time profile of any `Ops<Buf>` backend: `profileOps(ops)` returns a wrapper that forwards every
 * property and method to the backend unchanged (views, dtypes, optional contracts such as the KV cache,
 * duck-typed extras) and, while `profile.enabled` is true, drains the device around each model op so the
 * op's wall time can be attributed to one category (llm.c's op list):
 *   matmul, attention, layernorm, gelu, softmax-xent, adamw, embedding, other.
 * (GPT-2's GELU runs as the fc matmul's epilogue, `geluPre` / `dgeluPre`, so its time counts as matmul; 'gelu'
 * holds only direct geluForward / geluBackward calls.)
 *
 * Draining: the backend's own `synchronize()` when it has one (duck-typed; not part of the core contract),
 * else a `download` of a 1-element scratch buffer, which on an in-order queue (a CUDA stream, a WebGPU
 * queue, the CPU) completes only after all earlier work. Each op is timed as
 *   drain; t0; op; drain; t1   and attributed  max(0, t1 - t0 - drain latency)
 * where the drain latency (an empty drain's round trip, the median of 20, measured when profiling is
 * switched on) is what the second drain adds by itself. With profiling off the wrapper adds one property
 * lookup per call and no synchronisation: the step runs as unwrapped.
 *
 * Always (profiling on or off) it also counts the bytes allocated through `alloc` and returned through
 * `free`, and their peak: the model's own device memory, comparable across backends (a backend's internal
 * scratch, workspaces and allocator caching are not in it).
 */
import { bufferDTypeBytes, type BufferDType, type Ops } from '@flashattn/core';

export const OP_CATEGORIES = [
  'matmul',
  'attention',
  'layernorm',
  'gelu',
  'softmax-xent',
  'adamw',
  'embedding',
  'other',
] as const;
export type OpCategory = (typeof OP_CATEGORIES)[number];

/** The model ops and where their time goes; any other method is forwarded without timing. */
const CATEGORY: Readonly<Record<string, OpCategory>> = {
  matmul: 'matmul',
  attentionForward: 'attention',
  attentionBackward: 'attention',
  attentionWithKvCache: 'attention',
  layernormForward: 'layernorm',
  layernormBackward: 'layernorm',
  geluForward: 'gelu',
  geluBackward: 'gelu',
  softmaxCrossEntropy: 'softmax-xent',
  adamw: 'adamw',
  embeddingForward: 'embedding',
  embeddingBackward: 'embedding',
  // 'other': residual adds, bias gradients, gradient norm and clipping, zeroing, casts, host transfers
  add: 'other',
  biasBackward: 'other',
  scale: 'other',
  sum: 'other',
  sumSquares: 'other',
  zero: 'other',
  copy: 'other',
  upload: 'other',
  download: 'other',
};

export interface OpProfileReport {
  /** Milliseconds per category (drain latency subtracted), every category present. */
  categories: Record<OpCategory, number>;
  /** Milliseconds and calls per op name. */
  byOp: Record<string, { ms: number; calls: number }>;
  /** Sum of the categories. */
  totalMs: number;
  /** The empty drain's round trip that was subtracted from each op (ms). */
  drainMs: number;
  /** How the device was drained: 'synchronize' or 'download'. */
  drain: 'synchronize' | 'download';
}

/** Bytes held in buffers allocated through the wrapper (views are free). */
export interface AllocStats {
  liveBytes: number;
  peakBytes: number;
}

export interface OpProfile {
  /** Time ops (with a drain around each) while true. Set through start()/stop(). */
  readonly enabled: boolean;
  /** Measure the drain latency, clear the counters and start timing. */
  start(): Promise<void>;
  /** Stop timing (the counters stay for report()). */
  stop(): void;
  report(): OpProfileReport;
  /** Bytes allocated through `alloc` and not yet freed, and their peak (counted whether or not enabled). */
  allocations(): AllocStats;
  /** Start a new peak from the bytes live now. */
  resetPeak(): void;
}

type AnyFn = (...args: unknown[]) => unknown;

/** Wrap `inner`: the result is used in place of it (same type), `profile` switches timing on and off. */
export function profileOps<O extends Ops<Buf>, Buf = unknown>(
  inner: O,
): { ops: O; profile: OpProfile } {
  const sync = (inner as { synchronize?: unknown }).synchronize;
  const hasSync = typeof sync === 'function';
  let scratch: Buf | null = null;
  const drain = async (): Promise<void> => {
    if (hasSync) {
      await (sync as () => Promise<void>).call(inner);
      return;
    }
    scratch ??= inner.alloc(1, 'float32');
    await inner.download(scratch);
  };
  let enabled = false;
  let drainMs = 0;
  const categories = {} as Record<OpCategory, number>;
  const byOp: Record<string, { ms: number; calls: number }> = {};
  const clear = (): void => {
    for (const c of OP_CATEGORIES) categories[c] = 0;
    for (const k of Object.keys(byOp)) delete byOp[k];
  };
  clear();
  const held = new Map<unknown, number>();
  let liveBytes = 0;
  let peakBytes = 0;

  const timed = async (name: string, fn: AnyFn, args: unknown[]): Promise<unknown> => {
    await drain();
    const t0 = performance.now();
    const r = await fn.apply(inner, args);
    await drain();
    const ms = Math.max(0, performance.now() - t0 - drainMs);
    categories[CATEGORY[name]!] += ms;
    const e = (byOp[name] ??= { ms: 0, calls: 0 });
    e.ms += ms;
    e.calls++;
    return r;
  };

  const ops = new Proxy(inner, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      const fn = value as AnyFn;
      if (prop === 'alloc')
        return (n: number, dtype: BufferDType) => {
          const buf = fn.call(target, n, dtype);
          const bytes = n * bufferDTypeBytes(dtype);
          held.set(buf, bytes);
          liveBytes += bytes;
          peakBytes = Math.max(peakBytes, liveBytes);
          return buf;
        };
      if (prop === 'free')
        return (buf: unknown) => {
          const r = fn.call(target, buf);
          const bytes = held.get(buf);
          if (bytes !== undefined) {
            held.delete(buf);
            liveBytes -= bytes;
          }
          return r;
        };
      if (typeof prop !== 'string' || !(prop in CATEGORY))
        return (...args: unknown[]) => fn.apply(target, args);
      return (...args: unknown[]) => (enabled ? timed(prop, fn, args) : fn.apply(target, args));
    },
  });

  const profile: OpProfile = {
    get enabled() {
      return enabled;
    },
    async start() {
      enabled = false;
      await drain();
      const samples: number[] = [];
      for (let i = 0; i < 20; i++) {
        const t0 = performance.now();
        await drain();
        samples.push(performance.now() - t0);
      }
      samples.sort((a, b) => a - b);
      drainMs = samples[samples.length >> 1]!;
      clear();
      enabled = true;
    },
    stop() {
      enabled = false;
    },
    allocations() {
      return { liveBytes, peakBytes };
    },
    resetPeak() {
      peakBytes = liveBytes;
    },
    report() {
      const cats = { ...categories };
      return {
        categories: cats,
        byOp: Object.fromEntries(Object.entries(byOp).map(([k, v]) => [k, { ...v }])),
        totalMs: OP_CATEGORIES.reduce((s, c) => s + cats[c], 0),
        drainMs,
        drain: hasSync ? 'synchronize' : 'download',
      };
    },
  };
  return { ops, profile };
}

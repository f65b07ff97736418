/**
 * The host-slack test for CUDA graphs (issue #10: "CUDA graphs if they pay"). A graph removes the host's launch
 * work from the step; that pays only where the GPU waits for the host. This wrapper adds `us` microseconds of
 * busy host time before every op call (the model's, the optimizer's, the read-backs'), so a run with it against
 * one without says how much slack the host has: if the step time does not move while the host does `calls x us`
 * more work per step, the host's launches are off the critical path (they run ahead of the GPU), and a graph
 * could save only the bubbles after the step's read-backs.
 *
 * It also measures the host's wait for the GPU: the time from a call that waits for the device (download, sum,
 * sumSquares, and upload: a copy from pageable host memory synchronises the stream) to its result. Over a step that is how far the host ran ahead of the GPU (it had queued everything and then waited); at
 * 0 us it bounds what a graph could take off the host's side: with W ms of wait per step, the host's own work is
 * the step minus W.
 */
import type { Ops } from '@flashattn/core';

export interface HostDelay<O> {
  ops: O;
  /** Op calls made through `ops` since the last reset. */
  calls(): number;
  /** Milliseconds spent in calls that wait for the device (download, sum, sumSquares, upload) since the last reset. */
  waitMs(): number;
  reset(): void;
}

/** The calls the host waits for the GPU in: read-backs, and uploads (the copy synchronises the stream). */
const READ_BACKS: ReadonlySet<PropertyKey> = new Set(['download', 'sum', 'sumSquares', 'upload']);

export function withHostDelay<O extends Ops<unknown>>(inner: O, us: number): HostDelay<O> {
  if (!Number.isFinite(us) || us < 0)
    throw new RangeError(`withHostDelay: us must be a finite number >= 0, got ${us}`);
  let calls = 0;
  let waitMs = 0;
  const spin = (): void => {
    const end = performance.now() + us / 1000;
    while (performance.now() < end) {
      /* busy: the host is doing launch-like work */
    }
  };
  const ops = new Proxy(inner, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      const readBack = READ_BACKS.has(prop);
      return (...args: unknown[]): unknown => {
        calls++;
        if (us > 0) spin();
        const t0 = performance.now();
        const out = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (!readBack) return out;
        return Promise.resolve(out).finally(() => {
          waitMs += performance.now() - t0;
        });
      };
    },
  });
  return {
    ops,
    calls: () => calls,
    waitMs: () => waitMs,
    reset: () => {
      calls = 0;
      waitMs = 0;
    },
  };
}

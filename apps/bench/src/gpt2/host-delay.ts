/**
 * The host-slack test for CUDA graphs (issue #10: "CUDA graphs if they pay"). A graph removes the host's launch
 * work from the step; that pays only where the GPU waits for the host. This wrapper adds `us` microseconds of
 * busy host time before every op call (the model's, the optimizer's, the read-backs'), so a run with it against
 * one without says how much slack the host has: if the step time does not move while the host does `calls x us`
 * more work per step, the host's launches are off the critical path (they run ahead of the GPU), and a graph
 * could save only the bubbles after the step's read-backs.
 */
import type { Ops } from '@flashattn/core';

export interface HostDelay<O> {
  ops: O;
  /** Op calls made through `ops` since the last reset. */
  calls(): number;
  reset(): void;
}

export function withHostDelay<O extends Ops<unknown>>(inner: O, us: number): HostDelay<O> {
  if (!Number.isFinite(us) || us < 0)
    throw new RangeError(`withHostDelay: us must be a finite number >= 0, got ${us}`);
  let calls = 0;
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
      return (...args: unknown[]): unknown => {
        calls++;
        if (us > 0) spin();
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    ops,
    calls: () => calls,
    reset: () => {
      calls = 0;
    },
  };
}

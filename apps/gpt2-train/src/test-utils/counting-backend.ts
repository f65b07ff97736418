/**
 * A backend registered for a test (priority -1: never chosen by 'auto'): the ops `create` makes, behind a Proxy that
 * counts the host reads (sum, sumSquares, download). Returns the live counters.
 */
import { registerBackend, type Ops } from '@flashattn/core';

export interface ReadCounts {
  sum: number;
  sumSquares: number;
  download: number;
}

export function registerCountingBackend(name: string, create: () => Ops<unknown>): ReadCounts {
  const reads: ReadCounts = { sum: 0, sumSquares: 0, download: 0 };
  registerBackend({
    name,
    priority: -1,
    probe: () => Promise.resolve({ available: true }),
    createAttention: () => Promise.reject(new Error('ops only')),
    createOps: () => {
      const inner = create();
      return Promise.resolve(
        new Proxy(inner, {
          get(target, prop) {
            const v = Reflect.get(target, prop, target) as unknown;
            if (typeof v !== 'function') return v;
            return (...args: unknown[]) => {
              if (prop === 'sum' || prop === 'sumSquares' || prop === 'download') reads[prop]++;
              return (v as (...a: unknown[]) => unknown).apply(target, args);
            };
          },
        }),
      );
    },
  });
  return reads;
}

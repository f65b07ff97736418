// withHostDelay (the CUDA-graphs slack test's wrapper): every op call goes through to the backend with its
// arguments, `this` and result intact (CpuOps' private state included), and is counted; a bad delay is refused.
import { CpuOps } from '@flashattn/cpu';
import { describe, expect, it } from 'vitest';
import { withHostDelay } from './host-delay.js';

describe('withHostDelay', () => {
  it('passes every call through and counts it', async () => {
    const inner = new CpuOps({ threads: 1 });
    const d = withHostDelay(inner, 1);
    const a = d.ops.alloc(4, 'float32');
    const b = d.ops.alloc(4, 'float32');
    const out = d.ops.alloc(4, 'float32');
    await d.ops.upload(a, Float32Array.of(1, 2, 3, 4));
    await d.ops.upload(b, Float32Array.of(10, 20, 30, 40));
    await d.ops.add(out, a, b, 4);
    expect(Array.from((await d.ops.download(out)) as Float32Array)).toEqual([11, 22, 33, 44]);
    expect(await d.ops.sumSquares(a)).toBe(30);
    expect(d.calls()).toBe(8);
    expect(d.waitMs()).toBeGreaterThan(0); // the download and the sumSquares were timed
    d.reset();
    expect(d.calls()).toBe(0);
    expect(d.waitMs()).toBe(0);
    expect(d.ops.name).toBe(inner.name); // properties are not wrapped
    await inner.dispose();
  });
  it('times only the read-backs: a delayed read-back waits for a slow device', async () => {
    const inner = new CpuOps({ threads: 1 });
    const buf = inner.alloc(2, 'float32');
    const slow = new Proxy(inner, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target) as unknown;
        if (typeof v !== 'function') return v;
        const f = (v as (...a: unknown[]) => unknown).bind(target);
        // a device that takes 30 ms to answer a read-back and 0 to take an upload
        return prop === 'download'
          ? (...a: unknown[]) => new Promise((r) => setTimeout(() => r(f(...a)), 30))
          : f;
      },
    });
    const d = withHostDelay(slow, 0);
    await d.ops.upload(buf, Float32Array.of(1, 2));
    expect(d.waitMs()).toBe(0);
    expect(Array.from((await d.ops.download(buf)) as Float32Array)).toEqual([1, 2]);
    expect(d.waitMs()).toBeGreaterThanOrEqual(25); // setTimeout may fire a little early
    await inner.dispose();
  });
  it('refuses a negative or non-finite delay, naming it', () => {
    const inner = new CpuOps({ threads: 1 });
    expect(() => withHostDelay(inner, -1)).toThrow(/us must be a finite number >= 0, got -1/);
    expect(() => withHostDelay(inner, Number.NaN)).toThrow(/got NaN/);
  });
});

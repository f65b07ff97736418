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
  it('times only the calls that wait for the device: read-backs and uploads, not the queued ops', async () => {
    const inner = new CpuOps({ threads: 1 });
    const buf = inner.alloc(2, 'float32');
    const slow = new Proxy(inner, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target) as unknown;
        if (typeof v !== 'function') return v;
        const f = (v as (...a: unknown[]) => unknown).bind(target);
        // a device that takes 30 ms to answer a read-back, 20 ms to take an upload, and 40 ms for an add that it
        // queues (the host does not wait for it)
        const after =
          (ms: number) =>
          (...a: unknown[]) =>
            new Promise((r) => setTimeout(() => r(f(...a)), ms));
        return prop === 'download' ? after(30) : prop === 'upload' ? after(20) : f;
      },
    });
    const d = withHostDelay(slow, 0);
    await d.ops.upload(buf, Float32Array.of(1, 2));
    const afterUpload = d.waitMs();
    expect(afterUpload).toBeGreaterThanOrEqual(15); // setTimeout may fire a little early
    await d.ops.add(buf, buf, buf, 2);
    expect(d.waitMs()).toBe(afterUpload);
    expect(Array.from((await d.ops.download(buf)) as Float32Array)).toEqual([2, 4]);
    expect(d.waitMs()).toBeGreaterThanOrEqual(afterUpload + 25);
    await inner.dispose();
  });
  it('refuses a negative or non-finite delay, naming it', () => {
    const inner = new CpuOps({ threads: 1 });
    expect(() => withHostDelay(inner, -1)).toThrow(/us must be a finite number >= 0, got -1/);
    expect(() => withHostDelay(inner, Number.NaN)).toThrow(/got NaN/);
  });
});

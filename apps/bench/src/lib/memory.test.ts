import { describe, expect, it } from 'vitest';
import { measureAllocation, sampleMemory } from './memory.js';

describe('measureAllocation', () => {
  it('sees the ArrayBuffer bytes a call allocates and returns', async () => {
    const m = await measureAllocation(() => new Float64Array(1 << 20)); // 8 MiB, alive as the result
    expect(m.result.length).toBe(1 << 20);
    expect(m.arrayBufferBytes).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    expect(m.maxRssGrowth).toBeGreaterThanOrEqual(0);
  });

  it('samples positive numbers', () => {
    const s = sampleMemory();
    expect(s.maxRss).toBeGreaterThan(1024 * 1024);
    expect(s.arrayBuffers).toBeGreaterThanOrEqual(0);
  });
});

import { describe, expect, it } from 'vitest';
import { formatTick, linearScale, logScale, niceStep } from './ticks.js';

describe('scales', () => {
  it('picks 1-2-5 steps and widens linear domains to whole steps', () => {
    expect(niceStep(9.3, 6)).toBe(2);
    expect(niceStep(0.7, 6)).toBe(0.2);
    const s = linearScale(0.4, 9.3);
    expect(s.ticks).toEqual([0, 2, 4, 6, 8, 10]);
    expect([s.min, s.max]).toEqual([0, 10]);
    expect(s.frac(5)).toBe(0.5);
  });

  it('gives a usable window for a single value', () => {
    const s = linearScale(3, 3);
    expect(s.min).toBeLessThan(3);
    expect(s.max).toBeGreaterThan(3);
  });

  it('puts 1-2-5 ticks on short log axes and powers of ten on long ones', () => {
    const s = logScale(256, 32768);
    expect(s.ticks).toEqual([500, 1000, 2000, 5000, 10000, 20000]);
    expect(s.min).toBeLessThan(256);
    expect(s.max).toBeGreaterThan(32768);
    expect(s.frac(1000) - s.frac(100)).toBeCloseTo(s.frac(10000) - s.frac(1000), 12); // equal per decade
    expect(logScale(300, 400).ticks).toEqual([300, 350, 400]); // no 1-2-5 value in range
    const wide = logScale(1e-3, 1e4);
    expect(wide.ticks).toEqual([1e-3, 1e-2, 0.1, 1, 10, 100, 1000, 1e4]);
  });

  it('keeps explicit ticks', () => {
    const s = logScale(256, 2048, [256, 512, 1024, 2048]);
    expect(s.ticks).toEqual([256, 512, 1024, 2048]);
    expect(s.frac(512) - s.frac(256)).toBeCloseTo(s.frac(2048) - s.frac(1024), 12);
  });

  it('formats tick labels briefly', () => {
    expect(formatTick(0)).toBe('0');
    expect(formatTick(32768)).toBe('32768');
    expect(formatTick(2e7)).toBe('2e7');
    expect(formatTick(0.30000000000000004)).toBe('0.3');
    expect(formatTick(1.5e-5)).toBe('1.5e-5');
  });
});

import { describe, expect, it } from 'vitest';
import { median, timeIt } from './timing.js';

describe('median', () => {
  it('takes the middle value, or the mean of the middle two', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(() => median([])).toThrow(RangeError);
  });
});

describe('timeIt', () => {
  it('runs warmup calls untimed, then the timed repeats, and reports their median', async () => {
    let calls = 0;
    const seen: number[] = [];
    const t = await timeIt(() => void calls++, { warmup: 2, repeats: 5, after: (ms, i) => seen.push(i) });
    expect(calls).toBe(7);
    expect(t.samplesMs).toHaveLength(5);
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(t.medianMs).toBe(median(t.samplesMs));
    expect(t.minMs).toBeLessThanOrEqual(t.medianMs);
    expect(t.maxMs).toBeGreaterThanOrEqual(t.medianMs);
  });

  it('awaits async functions, so the time covers the whole call', async () => {
    const t = await timeIt(() => new Promise((r) => setTimeout(r, 20)), { warmup: 0, repeats: 3 });
    expect(t.minMs).toBeGreaterThanOrEqual(15); // timers may fire a little early on some platforms
  });

  it('stops early once maxSeconds is spent, after at least one timed call', async () => {
    const t = await timeIt(() => new Promise((r) => setTimeout(r, 30)), { warmup: 0, repeats: 100, maxSeconds: 0.05 });
    expect(t.samplesMs.length).toBeGreaterThanOrEqual(1);
    expect(t.samplesMs.length).toBeLessThanOrEqual(3);
  });

  it('rejects nonsense counts', async () => {
    await expect(timeIt(() => 0, { repeats: 0 })).rejects.toThrow(/repeats must be an integer >= 1/);
    await expect(timeIt(() => 0, { warmup: -1 })).rejects.toThrow(/warmup/);
  });
});

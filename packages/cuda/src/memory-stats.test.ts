// memoryStats() / resetPeakMemory() of CudaDevice and CudaOps (memory-stats.ts): on the CPU, against a stand-in
// addon whose malloc / free keep the byte counts a stream-ordered pool would (so the test sees that the query is
// ordered after the frees queued before it, and that the reset restarts the peak); the checks on what the addon
// answers; and on a GPU (skipped with the reason where CUDA is unavailable, as in CI) the real counts: a 4 MiB
// buffer shows in allocatedBytes and peakBytes, its free leaves the peak, the reset drops it, and the first matmul
// adds the cuBLASLt workspace (a plain cudaMalloc outside the pool) to outsidePoolBytes.
import { BackendExecutionError } from '@flashattn/core';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaUnavailableReason } from './availability.js';
import { readMemoryStats } from './memory-stats.js';
import { CudaOps, createCudaOps } from './ops.js';
import { STAND_IN_INFO, standInMemory } from './test-utils/stand-in-addon.js';

/** A stand-in addon that counts its malloc'd bytes as the pool would (live, peak since reset). */
function countingAddon(withStats = true) {
  const base = standInMemory();
  const sizes = new Map<bigint, number>();
  const pool = { live: 0, peak: 0 };
  const calls: boolean[] = [];
  const addon: Record<string, unknown> = {
    ...base,
    malloc: (d: number, bytes: number) => {
      const p = (base['malloc'] as (d: number, b: number) => bigint)(d, bytes);
      const rounded = Math.max(256, bytes);
      sizes.set(p, rounded);
      pool.live += rounded;
      pool.peak = Math.max(pool.peak, pool.live);
      return p;
    },
    free: (_d: number, p: bigint) => {
      pool.live -= sizes.get(p) ?? 0;
      sizes.delete(p);
    },
  };
  if (withStats)
    addon['memoryStats'] = (_d: number, reset: boolean) => {
      calls.push(reset);
      const out = {
        allocatedBytes: pool.live + 1024,
        peakBytes: pool.peak + 1024,
        poolBytes: pool.live,
        poolPeakBytes: pool.peak,
        poolReservedBytes: pool.peak,
        outsidePoolBytes: 1024, // a stand-in workspace
        outsidePoolPeakBytes: 1024,
        graphBytes: 0,
        graphPeakBytes: 0,
      };
      if (reset) pool.peak = pool.live;
      return out;
    };
  const ops = new CudaOps(
    addon as unknown as ConstructorParameters<typeof CudaOps>[0],
    0,
    STAND_IN_INFO,
    {},
    {
      path: 'stand-in',
      version: 130100,
    },
  );
  return { ops, calls };
}

describe('CUDA memoryStats on the CPU (stand-in addon)', () => {
  it('counts a buffer while it lives, keeps the peak after its free, and resetPeakMemory restarts the peak', async () => {
    const { ops, calls } = countingAddon();
    const before = await ops.memoryStats();
    const n = 1 << 20; // float32: 4 MiB
    const buf = ops.alloc(n, 'float32');
    const live = await ops.memoryStats();
    expect(live.poolBytes - before.poolBytes).toBe(4 * n);
    expect(live.allocatedBytes).toBe(live.poolBytes + live.outsidePoolBytes);
    expect(live.peakBytes).toBeGreaterThanOrEqual(live.allocatedBytes);
    ops.free(buf); // queued: the next query runs after it
    const freed = await ops.memoryStats();
    expect(freed.poolBytes).toBe(before.poolBytes);
    expect(freed.poolPeakBytes).toBe(live.poolBytes);
    await ops.resetPeakMemory();
    const reset = await ops.memoryStats();
    expect(reset.poolPeakBytes).toBe(reset.poolBytes);
    expect(calls).toEqual([false, false, false, true, false]);
    await ops.dispose();
    await expect(ops.memoryStats()).rejects.toThrow(/after dispose/);
  });

  it('an addon built before memoryStats rejects with a BackendExecutionError that says to rebuild', async () => {
    const { ops } = countingAddon(false);
    await expect(ops.memoryStats()).rejects.toThrow(BackendExecutionError);
    await expect(ops.memoryStats()).rejects.toThrow(/no memoryStats entry point.*rebuild/);
    await ops.dispose();
  });

  it('an answer that is not bytes is an error naming the field', () => {
    const good = {
      allocatedBytes: 1,
      peakBytes: 2,
      poolBytes: 1,
      poolPeakBytes: 2,
      poolReservedBytes: 2,
      outsidePoolBytes: 0,
      outsidePoolPeakBytes: 0,
      graphBytes: 0,
      graphPeakBytes: 0,
    };
    expect(readMemoryStats({ memoryStats: () => good }, 0, 'cuda:0', false)).toEqual(good);
    expect(() =>
      readMemoryStats({ memoryStats: () => ({ ...good, peakBytes: NaN }) }, 0, 'cuda:0', false),
    ).toThrow(/peakBytes = NaN, expected bytes >= 0/);
    expect(() =>
      readMemoryStats({ memoryStats: () => ({ ...good, poolBytes: -1 }) }, 0, 'cuda:0', false),
    ).toThrow(BackendExecutionError);
    expect(() => readMemoryStats({ memoryStats: () => null }, 0, 'cuda:0', false)).toThrow(
      /allocatedBytes = undefined/,
    );
  });
});

const reason = cudaUnavailableReason();
if (reason)
  console.warn(`@flashattn/cuda memoryStats GPU test skipped: CUDA unavailable: ${reason}`);

describe.skipIf(!!reason)('CUDA memoryStats (GPU)', () => {
  const made: CudaOps[] = [];
  afterAll(async () => {
    for (const o of made) await o.dispose();
  });

  it('allocate, free, reset: the counts follow; the first matmul adds the cuBLASLt workspace outside the pool', async () => {
    const ops = createCudaOps();
    made.push(ops);
    await ops.resetPeakMemory();
    const s0 = await ops.memoryStats();
    expect(s0.peakBytes).toBe(s0.allocatedBytes);
    const n = 1 << 20; // float32: 4 MiB
    const buf = ops.alloc(n, 'float32');
    const s1 = await ops.memoryStats();
    expect(s1.poolBytes - s0.poolBytes).toBeGreaterThanOrEqual(4 * n);
    expect(s1.peakBytes).toBeGreaterThanOrEqual(s0.allocatedBytes + 4 * n);
    ops.free(buf);
    await ops.synchronize();
    const s2 = await ops.memoryStats();
    expect(s2.allocatedBytes).toBe(s0.allocatedBytes);
    expect(s2.peakBytes).toBeGreaterThanOrEqual(s0.allocatedBytes + 4 * n);
    await ops.resetPeakMemory();
    const s3 = await ops.memoryStats();
    expect(s3.peakBytes).toBe(s3.allocatedBytes);

    // (64, 64) @ (64, 64) in float32: the device's cuBLASLt workspace is allocated on the first matmul
    const a = ops.alloc(64 * 64, 'float32');
    const b = ops.alloc(64 * 64, 'float32');
    const out = ops.alloc(64 * 64, 'float32');
    await ops.matmul(out, a, b, 64, 64, 64);
    const s4 = await ops.memoryStats();
    expect(s4.outsidePoolBytes).toBeGreaterThan(0);
    expect(s4.allocatedBytes).toBe(s4.poolBytes + s4.outsidePoolBytes);
    expect(s4.peakBytes).toBeGreaterThanOrEqual(s4.allocatedBytes);
    console.log(`memoryStats after the first matmul: ${JSON.stringify(s4)}`);
    for (const x of [a, b, out]) ops.free(x);
  });
});

/**
 * What the conformance suite does not cover: consecutive ops are recorded into one command buffer and
 * submitted at the sync; a lost device turns the pending sync and later calls into BackendExecutionError
 * (never a hang); an oversized buffer is BackendOutOfMemoryError; use after dispose an OpsInputError.
 */
import { BackendExecutionError, BackendOutOfMemoryError, OpsInputError } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { defaultToSwiftShader, probeAdapter, webgpuRequired } from '../test-utils/env.js';
import { createWebGpuOps } from './webgpu-ops.js';

defaultToSwiftShader();
const unavailable = await probeAdapter();
const skip = unavailable !== undefined && !webgpuRequired();
if (skip) console.warn(`webgpu ops: skipped: no WebGPU adapter: ${unavailable}`);

describe.skipIf(skip)('WebGpuOps', () => {
  it('records consecutive ops into one command buffer, submitted at the sync', async () => {
    const ops = await createWebGpuOps();
    try {
      const n = 1000;
      const x = ops.alloc(n, 'float32'); // (n)
      const y = ops.alloc(n, 'float32'); // (n)
      await ops.upload(
        x,
        Float32Array.from({ length: n }, (_, i) => (i % 7) - 3),
      );
      const before = ops.recorder.submits;
      ops.add(y, x, x, n); // y = 2x
      ops.scale(y, 0.25); // y = x / 2
      ops.geluForward(y, y, n);
      ops.geluBackward(y, x, y, n);
      ops.add(y, y, x, n);
      expect(ops.recorder.submits).toBe(before); // nothing submitted yet
      const s = await ops.sumSquares(x);
      expect(ops.recorder.submits).toBe(before + 1); // one command buffer for all six ops
      let want = 0;
      for (let i = 0; i < n; i++) want += ((i % 7) - 3) ** 2;
      expect(s).toBe(want); // small integers: exact in float32 in any order
    } finally {
      await ops.dispose();
    }
  });

  it('types a too-large buffer, use after dispose, and a lost device (no hang)', async () => {
    const ops = await createWebGpuOps();
    // one element past what a storage binding can hold (elements are u32-indexed: below 2^32)
    const tooMany = Math.min(
      Math.floor(ops.device.limits.maxStorageBufferBindingSize / 4) + 1,
      2 ** 32 - 1,
    );
    expect(() => ops.alloc(tooMany, 'float32')).toThrow(BackendOutOfMemoryError);
    const x = ops.alloc(4, 'float32');
    await ops.upload(x, Float32Array.of(1, 2, 3, 4));
    expect(await ops.sum(x)).toBe(10);
    ops.scale(x, 2); // recorded, not yet submitted
    ops.device.destroy(); // what a lost device looks like to the ops
    await expect(ops.sum(x)).rejects.toThrow(BackendExecutionError);
    await new Promise((r) => setTimeout(r, 0)); // device.lost resolves
    expect(() => ops.scale(x, 2)).toThrow(BackendExecutionError);
    await ops.dispose();
    expect(() => ops.alloc(1, 'float32')).toThrow(OpsInputError);
  });
});

/**
 * The registry entry: importing the provider registers 'webgpu' (priority 10); probe() finds the adapter
 * here (SwiftShader on a CPU-only machine) or names what is missing and the command that fixes it;
 * resolveBackend('webgpu') creates a working backend, and with { need: 'ops' } the WebGPU ops.
 */
import { listBackends, resolveBackend, type AttentionBackend, type Ops } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { WebGpuOps } from './ops/webgpu-ops.js';
import { provider } from './provider.js';
import { defaultToSwiftShader, probeAdapter, webgpuRequired } from './test-utils/env.js';

defaultToSwiftShader();
const unavailable = await probeAdapter();
const skip = unavailable !== undefined && !webgpuRequired();

describe('webgpu provider', () => {
  it('registers itself on import as webgpu, priority 10', () => {
    const p = listBackends().find((b) => b.name === 'webgpu');
    expect(p).toBe(provider);
    expect(provider.priority).toBe(10);
  });

  it('names the missing Vulkan driver and the command that installs one', async () => {
    const saved = process.env.VK_DRIVER_FILES;
    process.env.VK_DRIVER_FILES = '/nonexistent/icd.json';
    try {
      const r = await provider.probe();
      expect(r.available).toBe(false);
      if (!r.available) {
        expect(r.reason).toMatch(
          /no Vulkan driver \(ICD\).*VK_DRIVER_FILES=\/nonexistent\/icd\.json does not exist/,
        );
        expect(r.reason).toMatch(/apt-get install -y chromium/);
      }
    } finally {
      if (saved === undefined) delete process.env.VK_DRIVER_FILES;
      else process.env.VK_DRIVER_FILES = saved;
    }
  });

  it.skipIf(skip)('probes available here and resolves to a working backend', async () => {
    const r = await provider.probe({ requested: true });
    expect(r, JSON.stringify(r)).toMatchObject({ available: true });
    // A software adapter declines 'auto' (the CPU backend is faster) but runs when named.
    const auto = await provider.probe({ requested: false });
    if (r.available && /swiftshader|llvmpipe/i.test(r.detail ?? '')) {
      expect(auto).toMatchObject({
        available: false,
        reason: expect.stringMatching(/only a software adapter/),
      });
    } else {
      expect(auto).toMatchObject({ available: true });
    }
    const { value, decisions } = await resolveBackend<AttentionBackend>('webgpu');
    try {
      expect(decisions).toEqual([
        { name: 'webgpu', taken: true, reason: expect.stringMatching(/^webgpu/) },
      ]);
      const t = {
        dtype: 'float32' as const,
        shape: [1, 2, 1, 4],
        data: new Float32Array(8).fill(1),
      };
      const f = await value.forward(t, t, t);
      expect(Array.from(f.out.data)).toEqual(new Array(8).fill(1));
    } finally {
      await value.dispose();
    }
  });

  it.skipIf(skip)("resolves { need: 'ops' } to WebGpuOps that compute", async () => {
    const { value: ops, decisions } = await resolveBackend<Ops<unknown>>('webgpu', { need: 'ops' });
    try {
      expect(decisions).toEqual([
        { name: 'webgpu', taken: true, reason: expect.stringMatching(/^webgpu/) },
      ]);
      expect(ops).toBeInstanceOf(WebGpuOps);
      const x = ops.alloc(3, 'float32');
      await ops.upload(x, Float32Array.of(1, -2, 4));
      await ops.scale(x, 0.5);
      expect(await ops.sumSquares(x)).toBe(0.25 + 1 + 4);
    } finally {
      await ops.dispose();
    }
  });
});

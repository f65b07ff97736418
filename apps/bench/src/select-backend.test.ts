import {
  BackendUnavailableError,
  registerBackend,
  type AttentionBackend,
  type BackendProvider,
} from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { selectBackend, SWIFTSHADER_ICD, useSwiftShaderWithoutGpu } from './select-backend.js';

const fakeBackend = (name: string): AttentionBackend =>
  ({
    name,
    capabilities: { dtypes: ['float32'], maxHeadDim: 256, computeDType: (d: string) => d },
    forward: async () => {
      throw new Error('not used');
    },
    backward: async () => {
      throw new Error('not used');
    },
    dispose: () => undefined,
  }) as unknown as AttentionBackend;

/** A provider for the tests (registered under a name no real package uses). */
const fake = (
  name: string,
  priority: number,
  probe: BackendProvider['probe'],
): BackendProvider => ({
  name,
  priority,
  probe,
  createAttention: async () => fakeBackend(`${name}:0`),
});

describe('useSwiftShaderWithoutGpu', () => {
  it('points Vulkan at SwiftShader on a machine without a GPU, unless the user chose a driver', () => {
    const chosen: NodeJS.ProcessEnv = { VK_DRIVER_FILES: '/etc/my-icd.json' };
    expect(useSwiftShaderWithoutGpu(chosen)).toBeUndefined();
    expect(chosen.VK_DRIVER_FILES).toBe('/etc/my-icd.json');
    const env: NodeJS.ProcessEnv = {};
    const note = useSwiftShaderWithoutGpu(env);
    const gpu =
      (existsSync('/dev/dri') && readdirSync('/dev/dri').some((f) => f.startsWith('renderD'))) ||
      readdirSync('/dev').some((f) => /^nvidia\d+$/.test(f));
    if (process.platform === 'linux' && existsSync(SWIFTSHADER_ICD) && !gpu) {
      expect(note).toMatch(/^webgpu: no GPU device here, so Vulkan uses SwiftShader/);
      expect(env.VK_DRIVER_FILES).toBe(SWIFTSHADER_ICD);
    } else {
      expect(note).toBeUndefined();
      expect(env.VK_DRIVER_FILES).toBeUndefined();
    }
  });
});

describe('selectBackend', () => {
  it('discovers the installed CPU provider and uses it on auto when nothing better is available', async () => {
    registerBackend(
      fake('test-gpu-absent', 1000, async () => ({ available: false, reason: 'no test device' })),
    );
    const s = await selectBackend('auto');
    expect(s.notes[0]).toBe('test-gpu-absent: not used (no test device)');
    // Whatever real GPU backends are installed here, each is listed with its reason, and the CPU is there.
    expect(s.notes.some((n) => /^cpu: /.test(n))).toBe(true);
    expect(['cpu', 'webgpu', 'cuda']).toContain(s.kind);
    await s.backend.dispose();
  });

  it('a backend may decline auto and still run when named (the software-adapter rule)', async () => {
    const probe: BackendProvider['probe'] = async (ctx) =>
      ctx?.requested
        ? { available: true, detail: 'software adapter' }
        : { available: false, reason: 'only a software adapter' };
    registerBackend(fake('test-soft', 999, probe));
    registerBackend(
      fake('test-gpu-absent', 1000, async () => ({ available: false, reason: 'no test device' })),
    );
    const auto = await selectBackend('auto', { discover: false });
    expect(auto.notes).toContain('test-soft: not used (only a software adapter)');
    expect(auto.kind).not.toBe('test-soft');
    const named = await selectBackend('test-soft', { discover: false });
    expect([named.kind, named.backend.name]).toEqual(['test-soft', 'test-soft:0']);
    expect(named.notes).toEqual(['test-soft: using test-soft:0 (software adapter)']);
    registerBackend(fake('test-soft', -1000, probe)); // out of the way of later tests
  });

  it('throws BackendUnavailableError naming the reasons when a named backend cannot start', async () => {
    registerBackend(
      fake('test-gpu-absent', 1000, async () => ({ available: false, reason: 'no test device' })),
    );
    await expect(selectBackend('test-gpu-absent', { discover: false })).rejects.toThrow(
      /^test-gpu-absent backend is unavailable: no test device$/,
    );
    await expect(selectBackend('no-such-backend', { discover: false })).rejects.toBeInstanceOf(
      BackendUnavailableError,
    );
  });
});

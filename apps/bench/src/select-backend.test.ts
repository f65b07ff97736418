import { BackendUnavailableError, type AttentionBackend } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { selectBackend, type Importer } from './select-backend.js';

const fakeBackend = (name: string, disposed: string[] = []): AttentionBackend =>
  ({
    name,
    capabilities: { dtypes: ['float32'], maxHeadDim: 256, computeDType: (d: string) => d },
    forward: async () => {
      throw new Error('not used');
    },
    backward: async () => {
      throw new Error('not used');
    },
    dispose: () => void disposed.push(name),
  }) as unknown as AttentionBackend;

const importer =
  (mods: Record<string, unknown>): Importer =>
  async (name) => {
    if (name in mods) return mods[name];
    throw new Error(`Cannot find package '${name}'`);
  };

describe('selectBackend', () => {
  it('falls back to the CPU and says why each GPU backend was not used', async () => {
    const s = await selectBackend('auto', importer({}));
    expect(s.kind).toBe('cpu');
    expect(s.backend.name).toBe('cpu-flash');
    expect(s.notes).toEqual([
      "cuda not used: @flashattn/cuda did not import (Cannot find package '@flashattn/cuda')",
      "webgpu not used: @flashattn/webgpu did not import (Cannot find package '@flashattn/webgpu')",
      'cpu: no GPU backend available',
    ]);
  });

  it('prefers CUDA when it is available, then a hardware WebGPU adapter', async () => {
    const cuda = { isCudaAvailable: () => true, createCudaBackend: () => fakeBackend('cuda:0') };
    const webgpu = { createWebGPUBackend: async () => fakeBackend('webgpu (nvidia hopper)') };
    const both = await selectBackend('auto', importer({ '@flashattn/cuda': cuda, '@flashattn/webgpu': webgpu }));
    expect([both.kind, both.backend.name]).toEqual(['cuda', 'cuda:0']);
    const noCuda = { ...cuda, isCudaAvailable: () => false, cudaUnavailableReason: () => 'nvcc not found' };
    const w = await selectBackend('auto', importer({ '@flashattn/cuda': noCuda, '@flashattn/webgpu': webgpu }));
    expect(w.kind).toBe('webgpu');
    expect(w.notes[0]).toBe('cuda not used: isCudaAvailable() is false (nvcc not found)');
  });

  it('skips a software WebGPU adapter on auto (disposing it) but uses it when asked for', async () => {
    const disposed: string[] = [];
    const webgpu = { createWebGPUBackend: async () => fakeBackend('webgpu (google swiftshader)', disposed) };
    const auto = await selectBackend('auto', importer({ '@flashattn/webgpu': webgpu }));
    expect(auto.kind).toBe('cpu');
    expect(auto.notes[1]).toMatch(/only a software adapter \(webgpu \(google swiftshader\)\)/);
    expect(disposed).toEqual(['webgpu (google swiftshader)']);
    const forced = await selectBackend('webgpu', importer({ '@flashattn/webgpu': webgpu }));
    expect(forced.kind).toBe('webgpu');
  });

  it('throws BackendUnavailableError with the reason when a named GPU backend cannot start', async () => {
    const noAdapter = {
      createWebGPUBackend: async () => {
        throw new Error('requestAdapter() returned null');
      },
    };
    await expect(selectBackend('webgpu', importer({ '@flashattn/webgpu': noAdapter }))).rejects.toThrow(
      /webgpu backend is unavailable: createWebGPUBackend\(\) failed: requestAdapter\(\) returned null/,
    );
    await expect(selectBackend('cuda', importer({}))).rejects.toBeInstanceOf(BackendUnavailableError);
    expect((await selectBackend('cpu', importer({}))).notes).toEqual(['cpu: requested with --backend cpu']);
  });
});

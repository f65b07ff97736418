/**
 * Pick the flash backend for the demo: CUDA if `@flashattn/cuda` imports and reports a device,
 * else WebGPU if `@flashattn/webgpu` imports and finds a hardware adapter, else the CPU. The GPU
 * packages are optional: they are imported by name at run time, so the demo works without them, and
 * every backend not used is listed with the reason.
 */
import { BackendUnavailableError, createCpuBackend, type AttentionBackend } from '@flashattn/core';

export type BackendRequest = 'auto' | 'cpu' | 'webgpu' | 'cuda';

export interface SelectedBackend {
  kind: 'cpu' | 'webgpu' | 'cuda';
  backend: AttentionBackend;
  /** Why this one, and why not each of the others. */
  notes: string[];
}

/** Imports a module by name (injectable for tests). */
export type Importer = (name: string) => Promise<unknown>;

// A variable specifier: neither tsc nor a bundler tries to resolve the optional packages.
const defaultImporter: Importer = (name) => import(/* @vite-ignore */ name);

/** Software rasterisers that expose a WebGPU adapter but run on the CPU (slower than cpu-flash). */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|software|warp/i;

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

type Attempt = { ok: true; backend: AttentionBackend; note: string } | { ok: false; reason: string };

async function tryCuda(importer: Importer): Promise<Attempt> {
  let mod: Record<string, unknown>;
  try {
    mod = (await importer('@flashattn/cuda')) as Record<string, unknown>;
  } catch (e) {
    return { ok: false, reason: `@flashattn/cuda did not import (${message(e).split('\n')[0]})` };
  }
  const isAvailable = mod.isCudaAvailable;
  const create = mod.createCudaBackend ?? mod.createCUDABackend;
  if (typeof isAvailable !== 'function' || typeof create !== 'function') {
    return { ok: false, reason: '@flashattn/cuda has no isCudaAvailable()/createCudaBackend() export' };
  }
  try {
    if (!(await isAvailable())) {
      const why = typeof mod.cudaUnavailableReason === 'function' ? (mod.cudaUnavailableReason as () => unknown)() : undefined;
      return { ok: false, reason: `isCudaAvailable() is false (${typeof why === 'string' ? why : 'no addon build or no NVIDIA device'})` };
    }
    const backend = (await create()) as AttentionBackend;
    return { ok: true, backend, note: `cuda: isCudaAvailable() is true; using ${backend.name}` };
  } catch (e) {
    return { ok: false, reason: `@flashattn/cuda failed to start: ${message(e)}` };
  }
}

async function tryWebGPU(importer: Importer, allowSoftware: boolean): Promise<Attempt> {
  let mod: Record<string, unknown>;
  try {
    mod = (await importer('@flashattn/webgpu')) as Record<string, unknown>;
  } catch (e) {
    return { ok: false, reason: `@flashattn/webgpu did not import (${message(e).split('\n')[0]})` };
  }
  const create = mod.createWebGPUBackend;
  if (typeof create !== 'function') return { ok: false, reason: '@flashattn/webgpu has no createWebGPUBackend() export' };
  let backend: AttentionBackend;
  try {
    backend = (await create()) as AttentionBackend;
  } catch (e) {
    return { ok: false, reason: `createWebGPUBackend() failed: ${message(e)}` };
  }
  if (!allowSoftware && SOFTWARE_ADAPTER.test(backend.name)) {
    await backend.dispose();
    return { ok: false, reason: `only a software adapter (${backend.name}), slower than the CPU path; force it with --backend webgpu` };
  }
  return { ok: true, backend, note: `webgpu: adapter found; using ${backend.name}` };
}

/**
 * Resolve `request` to a backend. 'auto' falls back to the CPU and never throws; naming a GPU
 * backend that cannot start throws BackendUnavailableError with the reason.
 */
export async function selectBackend(request: BackendRequest, importer: Importer = defaultImporter): Promise<SelectedBackend> {
  const notes: string[] = [];
  if (request === 'cuda' || request === 'auto') {
    const a = await tryCuda(importer);
    if (a.ok) return { kind: 'cuda', backend: a.backend, notes: [a.note] };
    if (request === 'cuda') throw new BackendUnavailableError('cuda', a.reason);
    notes.push(`cuda not used: ${a.reason}`);
  }
  if (request === 'webgpu' || request === 'auto') {
    const a = await tryWebGPU(importer, request === 'webgpu');
    if (a.ok) return { kind: 'webgpu', backend: a.backend, notes: [...notes, a.note] };
    if (request === 'webgpu') throw new BackendUnavailableError('webgpu', a.reason);
    notes.push(`webgpu not used: ${a.reason}`);
  }
  const backend = createCpuBackend({ kind: 'flash' });
  notes.push(request === 'cpu' ? 'cpu: requested with --backend cpu' : 'cpu: no GPU backend available');
  return { kind: 'cpu', backend, notes };
}

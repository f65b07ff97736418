/**
 * Pick the flash backend for the demo through core's backend registry: every installed package that
 * declares a provider is discovered (no list of backends here), 'auto' takes the most preferred one that
 * probes available and starts, and every candidate is reported with the reason it was or was not taken.
 * The CPU provider (@flashattn/cpu) is always installed, so 'auto' always finds a backend.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveBackend, type AttentionBackend } from '@flashattn/core';
import { discoverBackends } from '@flashattn/core/node';

export interface SelectedBackend {
  /** The provider's name: 'cpu', 'webgpu', 'cuda', ... */
  kind: string;
  backend: AttentionBackend;
  /** Why this one, and why not each of the others. */
  notes: string[];
}

export interface SelectOptions {
  /** Discover installed backends first (default true; tests register their own providers). */
  discover?: boolean;
}

const appDir = dirname(fileURLToPath(import.meta.url));

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * For `--backend webgpu` on Linux without a GPU (no /dev/dri render node, no /dev/nvidia*), point Dawn's Vulkan loader at
 * SwiftShader when chromium ships it and the user chose no driver (VK_DRIVER_FILES / VK_ICD_FILENAMES):
 * the demo then finds the software adapter by itself, as the WebGPU tests do. Returns a note, or undefined.
 */
export function useSwiftShaderWithoutGpu(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (process.platform !== 'linux' || env.VK_DRIVER_FILES || env.VK_ICD_FILENAMES) return undefined;
  if (!existsSync(SWIFTSHADER_ICD)) return undefined;
  const nodes = (dir: string, re: RegExp): boolean =>
    existsSync(dir) && readdirSync(dir).some((f) => re.test(f));
  if (nodes('/dev/dri', /^renderD\d+$/) || nodes('/dev', /^nvidia\d+$/)) return undefined;
  env.VK_DRIVER_FILES = SWIFTSHADER_ICD;
  return `webgpu: no GPU device here, so Vulkan uses SwiftShader (VK_DRIVER_FILES=${SWIFTSHADER_ICD}; set it to another ICD to choose)`;
}

/**
 * Resolve `request` ('auto' or a backend name) to an attention backend. Naming a backend that cannot
 * start throws BackendUnavailableError with the reasons.
 */
export async function selectBackend(
  request: string,
  o: SelectOptions = {},
): Promise<SelectedBackend> {
  // Only when WebGPU is asked for by name: on 'auto' a software adapter is no better than the CPU backend.
  const swiftshader =
    o.discover === false || request !== 'webgpu' ? undefined : useSwiftShaderWithoutGpu();
  const found = o.discover === false ? [] : await discoverBackends(appDir);
  const r = await resolveBackend(request);
  const notes = r.decisions.map((d) =>
    d.taken
      ? `${d.name}: using ${r.value.name}${d.reason === r.value.name ? '' : ` (${d.reason})`}`
      : `${d.name}: not used (${d.reason})`,
  );
  if (swiftshader) notes.push(swiftshader);
  for (const f of found)
    if (f.error) notes.push(`${f.package}: its provider did not load (${f.error})`);
  return { kind: r.provider.name, backend: r.value, notes };
}

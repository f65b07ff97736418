/**
 * Pick the flash backend for the demo through core's backend registry: every installed package that
 * declares a provider is discovered (no list of backends here), 'auto' takes the most preferred one that
 * probes available and starts, and every candidate is reported with the reason it was or was not taken.
 * The CPU provider (@flashattn/cpu) is always installed, so 'auto' always finds a backend.
 */
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

/**
 * Resolve `request` ('auto' or a backend name) to an attention backend. Naming a backend that cannot
 * start throws BackendUnavailableError with the reasons.
 */
export async function selectBackend(
  request: string,
  o: SelectOptions = {},
): Promise<SelectedBackend> {
  const found = o.discover === false ? [] : await discoverBackends(appDir);
  const r = await resolveBackend(request);
  const notes = r.decisions.map(
    (d) => `${d.name}: ${d.taken ? `using ${r.value.name}` : 'not used'} (${d.reason})`,
  );
  for (const f of found)
    if (f.error) notes.push(`${f.package}: its provider did not load (${f.error})`);
  return { kind: r.provider.name, backend: r.value, notes };
}

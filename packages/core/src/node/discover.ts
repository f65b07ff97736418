/**
 * Backend discovery for Node: every installed package under `node_modules/@flashattn/` (looked up from
 * `from` and each of its parent folders, as Node resolves packages) whose package.json has
 *   "flashattn": { "provider": "./dist/provider.js" }
 * is imported, and the `provider` it exports is registered. So `resolveBackend('auto')` sees whatever
 * backends the user installed, with no list of names anywhere. Browsers register providers by import.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { registerBackend, type BackendProvider } from '../contracts/registry.js';

export interface DiscoveredBackend {
  package: string;
  /** Absent when the import failed (see error). */
  provider?: string;
  error?: string;
}

/** Package folders under node_modules/@flashattn visible from `from`, nearest first, one per name. */
function flashattnPackages(from: string): Map<string, string> {
  const found = new Map<string, string>();
  let dir = resolve(from);
  for (;;) {
    const scope = join(dir, 'node_modules', '@flashattn');
    if (existsSync(scope)) {
      for (const name of readdirSync(scope)) {
        const pkg = `@flashattn/${name}`;
        if (!found.has(pkg)) found.set(pkg, realpathSync(join(scope, name)));
      }
    }
    const up = dirname(dir);
    if (up === dir) return found;
    dir = up;
  }
}

/** Import and register every provider installed where `from` (default: the working directory) resolves packages. */
export async function discoverBackends(from: string = process.cwd()): Promise<DiscoveredBackend[]> {
  const out: DiscoveredBackend[] = [];
  for (const [pkg, dir] of flashattnPackages(from)) {
    let meta: { flashattn?: { provider?: string } };
    try {
      meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as typeof meta;
    } catch {
      continue;
    }
    const rel = meta.flashattn?.provider;
    if (typeof rel !== 'string') continue;
    try {
      const mod = (await import(pathToFileURL(join(dir, rel)).href)) as {
        provider?: BackendProvider;
      };
      if (!mod.provider) throw new Error(`${rel} exports no 'provider'`);
      registerBackend(mod.provider);
      out.push({ package: pkg, provider: mod.provider.name });
    } catch (e) {
      out.push({ package: pkg, error: (e as Error).message });
    }
  }
  return out;
}

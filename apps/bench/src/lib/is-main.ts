import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Whether the module at `moduleUrl` (its import.meta.url) is the script node was started with. Both sides
 * through realpath: a script run through a symlink (a bundle directory linked under another name, an npm
 * bin link) has a process.argv[1] that differs from the module's resolved URL, and a plain comparison then
 * made the script exit 0 having done nothing.
 */
export function isMain(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}

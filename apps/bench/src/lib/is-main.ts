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

/**
 * The CLI tail of every bench script: when the module is the one node started with, run `main` and exit with the
 * code it returns (a number), else `process.exitCode` or 0; an error prints `${name}: message` (with the stack
 * when `stack`) and exits 1. `exit` is for tests.
 */
export function runIfMain(
  moduleUrl: string,
  name: string,
  main: () => Promise<number | void>,
  o: { stack?: boolean; exit?: (code: number) => void } = {},
): Promise<void> | null {
  if (!isMain(moduleUrl)) return null;
  const exit = o.exit ?? ((code: number) => process.exit(code));
  return main().then(
    (code) => exit(typeof code === 'number' ? code : Number(process.exitCode ?? 0)),
    (e: unknown) => {
      const what = e instanceof Error ? (o.stack ? (e.stack ?? e.message) : e.message) : String(e);
      process.stderr.write(`${name}: ${what}\n`);
      exit(1);
    },
  );
}

// The prepack / postpack step of the prebuilt addon packages (packages/cpu-linux-x64, packages/cuda-linux-x64):
// copy the addon that the source package's build compiled (packages/<source>/build/Release/<file>) into the
// prebuilt package, with prebuilt.json saying what it is; with --clean (postpack) remove both again, so the
// workspace never loads a stale copy. The binary is compiled once, by the source build (`pnpm build`).
// Runs only in the workspace (packing), never on a user's install.
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * @param {object} o
 * @param {string} o.here     the prebuilt package's directory
 * @param {string} o.source   the source package's directory name under packages/ ('cpu', 'cuda')
 * @param {string} o.file     the addon's file name ('flashattn_cpu.node')
 * @param {string} o.compiler what the source build needs on PATH, for the error ('g++', 'nvcc')
 * @param {(sourceDir: string) => Record<string, string>} o.describe  prebuilt.json's fields after
 *   package, version and platform
 */
export function stageAddon({ here, source, file, compiler, describe }) {
  const out = join(here, file);
  const info = join(here, 'prebuilt.json');
  const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
  if (process.argv.includes('--clean')) {
    rmSync(out, { force: true });
    rmSync(info, { force: true });
    return;
  }
  const sourceDir = join(here, '..', source);
  const addon = join(sourceDir, 'build', 'Release', file);
  if (!existsSync(addon)) {
    console.error(
      `[${pkg.name}] ${addon} is missing: build it first with ${compiler} on PATH (npx -y pnpm@10.34.8 --filter @flashattn/${source} build).`,
    );
    process.exit(1);
  }
  const fields = describe(sourceDir);
  copyFileSync(addon, out);
  const platform = `${process.platform}-${process.arch}`;
  writeFileSync(
    info,
    JSON.stringify({ package: pkg.name, version: pkg.version, platform, ...fields }, null, 2) +
      '\n',
  );
  console.log(`[${pkg.name}] staged ${addon}`);
}

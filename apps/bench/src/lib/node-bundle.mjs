// The pieces every GPU-machine bundle shares (the device machine has Node, carried, but no node_modules):
// esbuild from the webgpu package's devDependencies, an ESM entry with every @flashattn/* package bundled
// in, one bundled copy of @flashattn/core under node_modules (the CPU backend's worker threads import it by
// module URL), the CUDA addon copied beside the entries, and the folder's size. Used by gpt2/bundle.mjs and
// multigpu/bundle.mjs.
import { copyFileSync, existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
/** require() from the webgpu package (esbuild is its devDependency; the webgpu package lives beside it). */
export const fromWebgpu = createRequire(join(root, 'packages', 'webgpu', 'package.json'));
const { build } = fromWebgpu('esbuild');

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
};

/** Bundle one entry (TypeScript or JavaScript) into `outfile`; `webgpu` stays external (Dawn is native). */
export async function bundleEntry(entry, outfile) {
  await build({
    ...common,
    entryPoints: [entry],
    outfile,
    external: ['webgpu'],
    // CommonJS code inside the bundle may call require().
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
  });
}

/** node_modules/@flashattn/core in `outDir`: core's build bundled into one module. */
export async function bundleCore(outDir) {
  const coreDir = join(outDir, 'node_modules', '@flashattn', 'core');
  await build({
    ...common,
    entryPoints: [join(root, 'packages', 'core', 'dist', 'index.js')],
    outfile: join(coreDir, 'index.mjs'),
  });
  writeFileSync(
    join(coreDir, 'package.json'),
    JSON.stringify({
      name: '@flashattn/core',
      type: 'module',
      exports: { '.': { default: './index.mjs' } },
    }) + '\n',
  );
}

/** The CUDA addon (FLASHATTN_CUDA_ADDON, else the local build) copied to `outDir`/flashattn_cuda.node. */
export function copyCudaAddon(outDir) {
  const addon =
    process.env.FLASHATTN_CUDA_ADDON ??
    join(root, 'packages', 'cuda', 'build', 'Release', 'flashattn_cuda.node');
  if (existsSync(addon)) copyFileSync(addon, join(outDir, 'flashattn_cuda.node'));
  else
    console.warn(
      `no CUDA addon at ${addon}: build it (pnpm --filter @flashattn/cuda build) or set FLASHATTN_CUDA_ADDON`,
    );
}

/** Print the folder's size (it must fit the device's carry limit beside .carry). */
export function reportSize(outDir) {
  let total = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else total += statSync(p).size;
    }
  };
  walk(outDir);
  console.log(`bundled into ${outDir} (${(total / 2 ** 20).toFixed(1)} MiB)`);
}

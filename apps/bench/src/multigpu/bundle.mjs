// Bundle the ring-attention benchmark for the GPU machine (no Node modules there) into .bundle/ring/ at the
// repo root (git-ignored), with esbuild (from the webgpu package's devDependencies), after
// `pnpm --filter @flashattn/bench... build`:
//   node apps/bench/src/multigpu/bundle.mjs [outdir]
// Writes ring-bench.mjs (every @flashattn/* package bundled in; the rank processes are this same file),
// node_modules/@flashattn/core (CpuOps' worker threads import core by module URL, for a CPU run of the bundle)
// and copies the CUDA addon (FLASHATTN_CUDA_ADDON if set, else packages/cuda/build/Release/flashattn_cuda.node)
// to flashattn_cuda.node; device.sh's ring mode points FLASHATTN_CUDA_ADDON at it. ~7 MiB with the addon.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..', '..', '..');
const outDir = resolve(process.argv[2] ?? join(root, '.bundle', 'ring'));
const { build } = createRequire(join(root, 'packages', 'webgpu', 'package.json'))('esbuild');
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
};

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
await build({
  ...common,
  entryPoints: [join(here, 'ring-bench.ts')],
  outfile: join(outDir, 'ring-bench.mjs'),
  external: ['webgpu'],
  // CommonJS code inside the bundle may call require().
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
});
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
const addon =
  process.env.FLASHATTN_CUDA_ADDON ??
  join(root, 'packages', 'cuda', 'build', 'Release', 'flashattn_cuda.node');
if (existsSync(addon)) copyFileSync(addon, join(outDir, 'flashattn_cuda.node'));
else
  console.warn(
    `no CUDA addon at ${addon}: build it (pnpm --filter @flashattn/cuda build) or set FLASHATTN_CUDA_ADDON`,
  );
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

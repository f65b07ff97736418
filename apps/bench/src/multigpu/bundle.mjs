// Bundle the ring-attention benchmark for the GPU machine (no Node modules there) into .bundle/ring/ at the
// repo root (git-ignored), with esbuild (from the webgpu package's devDependencies), after
// `pnpm --filter @flashattn/bench... build`:
//   node apps/bench/src/multigpu/bundle.mjs [outdir]
// Writes ring-bench.mjs (every @flashattn/* package bundled in; the rank processes are this same file),
// node_modules/@flashattn/core (CpuOps' worker threads import core by module URL, for a CPU run of the bundle)
// and copies the CUDA addon (FLASHATTN_CUDA_ADDON if set, else packages/cuda/build/Release/flashattn_cuda.node)
// to flashattn_cuda.node; device.sh's ring mode points FLASHATTN_CUDA_ADDON at it. ~7 MiB with the addon.
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleCore, bundleEntry, copyCudaAddon, reportSize, root } from '../lib/node-bundle.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = resolve(process.argv[2] ?? join(root, '.bundle', 'ring'));

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
await bundleEntry(join(here, 'ring-bench.ts'), join(outDir, 'ring-bench.mjs'));
await bundleCore(outDir);
copyCudaAddon(outDir);
reportSize(outDir);

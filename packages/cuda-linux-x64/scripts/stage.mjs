#!/usr/bin/env node
// prepack: copy the addon that @flashattn/cuda's build compiled (packages/cuda/build/Release) into this package,
// with prebuilt.json saying what it is. postpack (--clean) removes both again, so the workspace never
// loads a stale copy. The binary is compiled once, by the source build (`pnpm build`), and reused here.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(here, 'flashattn_cuda.node');
const info = join(here, 'prebuilt.json');
if (process.argv.includes('--clean')) {
  rmSync(out, { force: true });
  rmSync(info, { force: true });
  process.exit(0);
}
const cuda = join(here, '..', 'cuda');
const addon = join(cuda, 'build', 'Release', 'flashattn_cuda.node');
const statusFile = join(cuda, 'build', 'native-status.json');
if (!existsSync(addon)) {
  console.error(
    `[@flashattn/cuda-linux-x64] ${addon} is missing: build it first with nvcc on PATH (npx -y pnpm@10.34.8 --filter @flashattn/cuda build).`,
  );
  process.exit(1);
}
const status = existsSync(statusFile) ? JSON.parse(readFileSync(statusFile, 'utf8')) : {};
let cudaVersion = status.cudaVersion;
if (!cudaVersion && status.cudaHome) {
  // "Cuda compilation tools, release 13.0, V13.0.88" -> 13.0
  const v = execFileSync(join(status.cudaHome, 'bin', 'nvcc'), ['--version'], { encoding: 'utf8' });
  cudaVersion = /release (\d+\.\d+)/.exec(v)?.[1];
}
copyFileSync(addon, out);
const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
writeFileSync(
  info,
  JSON.stringify(
    {
      package: pkg.name,
      version: pkg.version,
      platform: 'linux-x64',
      arch: process.env.FLASHATTN_CUDA_ARCH ?? 'sm_80, sm_90a',
      cudaVersion: cudaVersion ?? 'unknown',
      cudart: 'static',
    },
    null,
    2,
  ) + '\n',
);
console.log(`[@flashattn/cuda-linux-x64] staged ${addon} (CUDA ${cudaVersion ?? 'unknown'})`);

#!/usr/bin/env node
// prepack / postpack (--clean): stage @flashattn/cuda's compiled addon here (tooling/scripts/stage-addon.mjs),
// with the CUDA version it was built with (the build's native-status.json, else `nvcc --version`).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stageAddon } from '../../../tooling/scripts/stage-addon.mjs';

stageAddon({
  here: join(dirname(fileURLToPath(import.meta.url)), '..'),
  source: 'cuda',
  file: 'flashattn_cuda.node',
  compiler: 'nvcc',
  describe: (cuda) => {
    const statusFile = join(cuda, 'build', 'native-status.json');
    const status = existsSync(statusFile) ? JSON.parse(readFileSync(statusFile, 'utf8')) : {};
    let cudaVersion = status.cudaVersion;
    if (!cudaVersion && status.cudaHome) {
      // "Cuda compilation tools, release 13.0, V13.0.88" -> 13.0
      const v = execFileSync(join(status.cudaHome, 'bin', 'nvcc'), ['--version'], {
        encoding: 'utf8',
      });
      cudaVersion = /release (\d+\.\d+)/.exec(v)?.[1];
    }
    return {
      arch: process.env.FLASHATTN_CUDA_ARCH ?? 'sm_80, sm_90a',
      cudaVersion: cudaVersion ?? 'unknown',
      cudart: 'static',
    };
  },
});

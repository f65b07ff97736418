#!/usr/bin/env node
// Build the CUDA addon with node-gyp + nvcc when nvcc exists; otherwise skip (the addon is optional:
// isCudaAvailable() then reports why). FLASHATTN_CUDA_SKIP_BUILD=1 skips on purpose.
// FLASHATTN_CUDA_ARCH overrides the nvcc -gencode flags (default: sm_80 and sm_90a; sm_90a code runs on
// compute capability 9.0 only and adds wgmma, which the Hopper backward uses).
// --optional (the package's install script): a failed compile only warns, so installing never fails;
// `pnpm build` runs without it, so a broken kernel still fails the build where nvcc exists.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const optional = process.argv.includes('--optional');
const status = join(pkg, 'build', 'native-status.json');
const write = (obj) => {
  mkdirSync(join(pkg, 'build'), { recursive: true });
  writeFileSync(status, JSON.stringify(obj, null, 2) + '\n');
};

if (process.env.FLASHATTN_CUDA_SKIP_BUILD === '1') {
  write({ built: false, reason: 'native build skipped (FLASHATTN_CUDA_SKIP_BUILD=1)' });
  console.warn('[@flashattn/cuda] native build skipped (FLASHATTN_CUDA_SKIP_BUILD=1)');
  process.exit(0);
}

function findCudaHome() {
  const candidates = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda'].filter(Boolean);
  for (const c of candidates) if (existsSync(join(c, 'bin', 'nvcc'))) return realpathSync(c);
  const which = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) {
    // nvcc may be a wrapper script; ask it where it lives.
    const out = spawnSync(which.stdout.trim(), ['--dryrun', '--version'], { encoding: 'utf8' });
    const m = /TOP=(\S+)/.exec(out.stderr ?? '');
    if (m && existsSync(join(m[1], 'bin', 'nvcc'))) return realpathSync(m[1]);
    return realpathSync(join(dirname(realpathSync(which.stdout.trim())), '..'));
  }
  return undefined;
}

function findNodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  const bundled = [
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  ];
  return bundled.find((p) => existsSync(p));
}

const cudaHome = findCudaHome();
if (!cudaHome) {
  write({ built: false, reason: 'nvcc not found (set CUDA_HOME or put nvcc on PATH, then rebuild @flashattn/cuda)' });
  console.warn('[@flashattn/cuda] nvcc not found: skipping the native addon (the package still installs).');
  process.exit(0);
}
const nodeGyp = findNodeGyp();
if (!nodeGyp) {
  write({ built: false, reason: 'node-gyp not found (it ships with npm)' });
  console.warn('[@flashattn/cuda] node-gyp not found: skipping the native addon.');
  process.exit(0);
}

// Parallel `pnpm test` runs (turbo in several checkouts of one tree) must not run node-gyp in the same
// build/ folder at once: take a directory lock, waiting for a holder; a lock older than 20 min is stale.
const lock = join(pkg, '.native-build.lock');
for (const start = Date.now(); ; ) {
  try {
    mkdirSync(lock);
    break;
  } catch {
    let age = 0;
    try {
      age = Date.now() - statSync(lock).mtimeMs;
    } catch {
      continue;
    }
    if (age > 20 * 60_000) rmSync(lock, { recursive: true, force: true });
    else if (Date.now() - start > 20 * 60_000) throw new Error(`timed out waiting for ${lock}`);
    else await new Promise((r) => setTimeout(r, 2000));
  }
}
const release = () => rmSync(lock, { recursive: true, force: true });
process.on('exit', release);

const t0 = Date.now();
const jobs = String(Math.max(1, cpus().length));
console.log(`[@flashattn/cuda] building with ${join(cudaHome, 'bin', 'nvcc')} via node-gyp, ${jobs} jobs`);
try {
  // Use the running Node's own headers when they are installed beside it (no download, works offline).
  const localNodeDir = join(dirname(process.execPath), '..');
  const nodedir = process.env.npm_config_nodedir ??
    (existsSync(join(localNodeDir, 'include', 'node', 'node_api.h')) ? localNodeDir : undefined);
  const opts = { cwd: pkg, stdio: 'inherit', env: { ...process.env, FLASHATTN_CUDA_HOME: cudaHome } };
  const nd = nodedir ? [`--nodedir=${nodedir}`] : [];
  // configure + build (not rebuild): make recompiles only the .cu files that changed.
  execFileSync(process.execPath, [nodeGyp, 'configure', ...nd], opts);
  execFileSync(process.execPath, [nodeGyp, 'build', '-j', jobs, ...nd], opts);
} catch (e) {
  write({ built: false, reason: `native build failed: ${e.message}` });
  console.error(`[@flashattn/cuda] native build FAILED${optional ? ' (install continues without the addon)' : ''}`);
  process.exit(optional ? 0 : 1);
}
const seconds = (Date.now() - t0) / 1000;
// "Cuda compilation tools, release 13.0, V13.0.88" -> 13.0: cudaInfo() names the driver this runtime needs.
const nvccVersion = spawnSync(join(cudaHome, 'bin', 'nvcc'), ['--version'], { encoding: 'utf8' }).stdout ?? '';
const cudaVersion = /release (\d+\.\d+)/.exec(nvccVersion)?.[1];
write({ built: true, cudaHome, cudaVersion, seconds, addon: 'build/Release/flashattn_cuda.node' });
console.log(`[@flashattn/cuda] addon built in ${seconds.toFixed(1)} s`);

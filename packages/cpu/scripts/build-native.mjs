#!/usr/bin/env node
// Build the native CPU addon (native/: the AVX2 + FMA FlashAttention forward) with g++ into
// build/Release/flashattn_cpu.node, on linux-x64 where g++ and Node's headers exist; elsewhere skip: the
// package then runs the wasm kernels, and nativeAttentionInfo() says why (build/native-status.json).
// Four translation units, compiled in parallel: the kernels (flash_forward_avx2.cc, gemm_avx2.cc,
// gemv_avx2.cc) with -O3 -mavx2 -mfma (called only after the addon's run-time CPU check), the addon
// without AVX flags. FLASHATTN_CPU_SKIP_NATIVE=1 skips on purpose.
// A failed compile fails `pnpm build` where g++ exists (a broken kernel must not pass CI silently);
// with --optional it only warns.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const optional = process.argv.includes('--optional');
const out = join(pkg, 'build', 'Release');
const status = join(pkg, 'build', 'native-status.json');
const write = (obj) => {
  mkdirSync(join(pkg, 'build'), { recursive: true });
  writeFileSync(status, JSON.stringify(obj, null, 2) + '\n');
};
const skip = (reason) => {
  write({ built: false, reason });
  console.warn(`[@flashattn/cpu] native addon not built: ${reason} (the wasm kernels run instead)`);
  process.exit(0);
};

if (process.env.FLASHATTN_CPU_SKIP_NATIVE === '1') skip('skipped (FLASHATTN_CPU_SKIP_NATIVE=1)');
if (process.platform !== 'linux' || process.arch !== 'x64')
  skip(`no native build for ${process.platform}-${process.arch}`);
const cxx = process.env.CXX ?? 'g++';
if (spawnSync(cxx, ['--version']).status !== 0) skip(`${cxx} not found`);
const include = [
  process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
  join(dirname(process.execPath), '..', 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
].find((d) => d && existsSync(join(d, 'node_api.h')));
if (!include) skip("Node's headers (node_api.h) not found: set npm_config_nodedir");

mkdirSync(out, { recursive: true });
const t0 = Date.now();
const common = ['-std=c++20', '-fPIC', '-fvisibility=hidden', '-Wall', '-Wextra', '-I', include];
const compile = (src, flags) =>
  new Promise((resolve, reject) => {
    const obj = join(out, src.replace(/\.cc$/, '.o'));
    const p = spawn(cxx, [...common, ...flags, '-c', join(pkg, 'native', src), '-o', obj], {
      stdio: 'inherit',
    });
    p.on('exit', (code) =>
      code === 0 ? resolve(obj) : reject(new Error(`${cxx} ${src}: exit ${code}`)),
    );
    p.on('error', reject);
  });
try {
  const objs = await Promise.all([
    compile('flash_forward_avx2.cc', ['-O3', '-mavx2', '-mfma']),
    compile('gemm_avx2.cc', ['-O3', '-mavx2', '-mfma']),
    compile('gemv_avx2.cc', ['-O3', '-mavx2', '-mfma']),
    compile('addon.cc', ['-O2']),
  ]);
  const tmp = join(out, 'flashattn_cpu.node.tmp');
  const link = spawnSync(cxx, ['-shared', '-pthread', '-o', tmp, ...objs], { stdio: 'inherit' });
  if (link.status !== 0) throw new Error(`${cxx} -shared: exit ${link.status}`);
  renameSync(tmp, join(out, 'flashattn_cpu.node'));
} catch (e) {
  write({ built: false, reason: `native build failed: ${e.message}` });
  console.error(`[@flashattn/cpu] native build FAILED: ${e.message}`);
  process.exit(optional ? 0 : 1);
}
const seconds = (Date.now() - t0) / 1000;
write({ built: true, seconds, addon: 'build/Release/flashattn_cpu.node' });
console.log(`[@flashattn/cpu] native addon built in ${seconds.toFixed(1)} s`);

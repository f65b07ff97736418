#!/usr/bin/env node
// Installs what would be published, the way users install it: `pnpm pack` every public package (pnpm
// rewrites workspace:* to versions), then in empty directories outside the workspace, with plain npm:
//   core         core alone; runs the README snippet from the packed README
//   webgpu       core + webgpu + the `webgpu` package (Dawn); attention on SwiftShader vs the oracle
//   transformer  core + cpu (+ the prebuilt cpu-linux-x64) + transformer; runs the packed README's training
//                snippet, and the same snippet without ops.dispose() (the process must still exit); the
//                native CPU forward loaded from the prebuilt package where it was built
//   cuda         core + cuda + the prebuilt cuda-linux-x64 with nvcc hidden from PATH: installs in
//                seconds with no compiler and cudaInfo() says which addon loaded and why CUDA can or cannot run
// Each either works or reports what is missing in one sentence. Needs `pnpm build` first (dist/, and the
// CUDA addon, which the prebuilt package reuses: it is compiled once, by the source build).
// Prints one line per check and "pack-test: N passed, N failed"; exits 1 on any failure.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const PNPM = ['-y', 'pnpm@10.34.8'];
const PUBLIC = ['core', 'conformance', 'cpu', 'cpu-linux-x64', 'webgpu', 'transformer', 'cuda', 'cuda-linux-x64'];
const work = mkdtempSync(join(tmpdir(), 'flashattn-pack-'));
const packs = join(work, 'packs');
const cache = process.env.FLASHATTN_PACK_NPM_CACHE ?? join(tmpdir(), 'flashattn-pack-npm-cache'); // reused between runs
let passed = 0;
let failed = 0;
const t0 = Date.now();

function check(name, ok, detail) {
  if (ok) passed++;
  else failed++;
  console.log(`pack-test: ${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
}
const run = (cmd, args, opts = {}) =>
  spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20, ...opts });
const tail = (s, n = 1200) => (s.length > n ? '...' + s.slice(-n) : s).trim();

// ---- pack ----
mkdirSync(packs);
const tarballs = {};
for (const p of PUBLIC) {
  const dir = join(root, 'packages', p);
  if (p === 'cuda-linux-x64' && !existsSync(join(root, 'packages/cuda/build/Release/flashattn_cuda.node'))) {
    check(`pack @flashattn/${p}`, true, 'skipped: no CUDA addon was built here (no nvcc), so there is no binary to ship');
    continue;
  }
  if (p === 'cpu-linux-x64' && !existsSync(join(root, 'packages/cpu/build/Release/flashattn_cpu.node'))) {
    check(`pack @flashattn/${p}`, true, 'skipped: no native CPU addon was built here (not linux-x64, or no g++), so there is no binary to ship');
    continue;
  }
  const r = run('npx', [...PNPM, 'pack', '--pack-destination', packs], { cwd: dir });
  const tgz = readdirSync(packs).find((f) => f.startsWith(`flashattn-${p}-`) && f.endsWith('.tgz') && !Object.values(tarballs).includes(join(packs, f)));
  if (r.status !== 0 || !tgz) {
    check(`pack @flashattn/${p}`, false, tail(r.stderr + r.stdout));
    continue;
  }
  tarballs[p] = join(packs, tgz);
  const files = execFileSync('tar', ['-tzf', tarballs[p]], { encoding: 'utf8' }).split('\n');
  const manifest = execFileSync('tar', ['-xzOf', tarballs[p], 'package/package.json'], { encoding: 'utf8' });
  const missing = ['package/LICENSE', 'package/README.md', 'package/package.json'].filter((f) => !files.includes(f));
  const ws = /"workspace:/.test(manifest);
  check(
    `pack @flashattn/${p}`,
    missing.length === 0 && !ws,
    missing.length ? `tarball lacks ${missing.join(', ')}` : ws ? 'package.json still says workspace:' : `${files.filter(Boolean).length} files`,
  );
}

/** npm install into a fresh directory; returns [dir, seconds] or undefined after reporting the failure. */
function npmInstall(name, specs, env = process.env, extra = []) {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `try-${name}`, private: true, type: 'module' }));
  const s = Date.now();
  const r = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--cache', cache, ...extra, ...specs], { cwd: dir, env });
  const seconds = (Date.now() - s) / 1000;
  check(`${name}: npm install ${specs.map((x) => x.replace(packs + '/', '')).join(' ')}`, r.status === 0, r.status === 0 ? `${seconds.toFixed(1)} s` : tail(r.stderr));
  return r.status === 0 ? [dir, seconds, r.stdout + r.stderr] : undefined;
}

/** Run a script in dir; it must exit 0 within the limit. */
function script(name, dir, file, body, { env = process.env, limit = 120_000, expect } = {}) {
  writeFileSync(join(dir, file), body);
  const r = run(process.execPath, [file], { cwd: dir, env, timeout: limit });
  const out = (r.stdout ?? '') + (r.stderr ?? '');
  const ok = r.status === 0 && (!expect || expect.test(out));
  const why = r.signal ? `killed by ${r.signal} after ${limit / 1000} s (did not exit)` : `exit ${r.status}`;
  const shown = (expect && expect.exec(out)?.[0]) || tail(r.stdout, 300).split('\n').pop();
  check(name, ok, ok ? shown : `${why}: ${tail(out)}`);
  return out;
}

const readmeSnippet = (tgz) => {
  const readme = execFileSync('tar', ['-xzOf', tgz, 'package/README.md'], { encoding: 'utf8' });
  return /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
};

// ---- core alone: the README snippet ----
if (tarballs.core) {
  const inst = npmInstall('core', [tarballs.core]);
  const snippet = readmeSnippet(tarballs.core);
  if (inst && snippet)
    script('core: README snippet', inst[0], 'readme.mjs', snippet + "\nconsole.log('out', out.shape.join('x'), 'dq', dq.shape.join('x'), 'dk', dk.shape.join('x'), 'dv', dv.shape.join('x'));\n", {
      expect: /out 1x256x8x64 dq 1x256x8x64 dk 1x256x2x64 dv 1x256x2x64/,
    });
  else if (inst) check('core: README snippet', false, 'the packed README has no ```ts block');
}

// ---- core + webgpu + webgpu (Dawn) on SwiftShader ----
if (tarballs.core && tarballs.webgpu) {
  const inst = npmInstall('webgpu', [tarballs.core, tarballs.webgpu, 'webgpu@^0.6.2']);
  if (inst) {
    const icd = '/usr/lib/chromium/vk_swiftshader_icd.json';
    const env = { ...process.env };
    if (!env.VK_DRIVER_FILES && !env.VK_ICD_FILENAMES && existsSync(icd)) env.VK_DRIVER_FILES = icd; // as the README says
    const out = script(
      'webgpu: attention on the software adapter vs the float64 oracle',
      inst[0],
      'attn.mjs',
      `import { attentionReference64, createRng, randomTensor, BackendUnavailableError } from '@flashattn/core';
import { createWebGPUBackend } from '@flashattn/webgpu';
const rng = createRng(1);
const q = randomTensor(rng, [1, 33, 2, 16]), k = randomTensor(rng, [1, 40, 1, 16]), v = randomTensor(rng, [1, 40, 1, 16]);
let backend;
try {
  backend = await createWebGPUBackend();
} catch (e) {
  if (!(e instanceof BackendUnavailableError)) throw e;
  console.log('UNAVAILABLE ' + e.message);
  process.exit(${process.env.FLASHATTN_REQUIRE_WEBGPU === '1' ? 1 : 0});
}
const { out } = await backend.forward(q, k, v, { causal: true });
const ref = attentionReference64(q, k, v, { causal: true }).out;
let err = 0;
for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs(out.data[i] - ref[i]));
await backend.dispose();
if (!(err < 1e-4)) throw new Error('max error ' + err);
console.log('webgpu ' + backend.name + ': max |out - oracle| ' + err.toExponential(2));
`,
      { env, limit: 240_000 },
    );
    const m = /UNAVAILABLE (.*)/.exec(out);
    if (m) check('webgpu: the unavailable reason is one sentence naming what is missing', !/\n/.test(m[1]) && /install|missing|not installed|no /i.test(m[1]), m[1]);
  }
}

// ---- core + cpu + transformer: train a few steps from the packed README ----
if (tarballs.core && tarballs.cpu && tarballs.transformer) {
  const cpuPrebuilt = tarballs['cpu-linux-x64'] ? [tarballs['cpu-linux-x64']] : [];
  const inst = npmInstall('transformer', [tarballs.core, tarballs.cpu, ...cpuPrebuilt, tarballs.transformer]);
  const snippet = readmeSnippet(tarballs.transformer);
  if (inst && cpuPrebuilt.length > 0)
    script(
      'transformer: the native CPU forward loaded from the prebuilt package',
      inst[0],
      'native.mjs',
      `import { nativeAttentionInfo } from '@flashattn/cpu';\nconst i = nativeAttentionInfo();\nconsole.log(JSON.stringify(i));\nif (!i.available && !/lacks/.test(i.reason)) process.exit(1);\nif (i.available && !/cpu-linux-x64/.test(i.path)) process.exit(1);\n`,
    );
  if (inst && snippet) {
    script('transformer: README snippet (train 5 steps, save, sample, dispose)', inst[0], 'train.mjs', snippet, { expect: /step 5: loss [\d.]+/ });
    script(
      'transformer: the same without ops.dispose() still exits',
      inst[0],
      'train-no-dispose.mjs',
      snippet.replace(/^await ops\.dispose\(\);.*$/m, ''),
      { limit: 60_000, expect: /step 5: loss [\d.]+/ },
    );
  } else if (inst) check('transformer: README snippet', false, 'the packed README has no ```ts block');
}

// ---- core + cuda (+ prebuilt) with nvcc hidden ----
if (tarballs.core && tarballs.cuda) {
  // PATH without any directory that holds nvcc (node and npm stay reachable through a shim directory).
  const shim = join(work, 'bin');
  mkdirSync(shim);
  for (const tool of ['node', 'npm', 'npx']) {
    const w = run('sh', ['-c', `command -v ${tool}`]).stdout.trim();
    if (w) symlinkSync(w, join(shim, tool));
  }
  const path = [shim, ...(process.env.PATH ?? '').split(delimiter).filter((d) => d && !existsSync(join(d, 'nvcc')))].join(delimiter);
  const env = { ...process.env, PATH: path };
  delete env.CUDA_HOME;
  delete env.CUDA_PATH;
  const nvccVisible = run('sh', ['-c', 'command -v nvcc'], { env }).status === 0;
  check('cuda: nvcc is hidden from PATH', !nvccVisible);
  const specs = [tarballs.core, tarballs.cuda, ...(tarballs['cuda-linux-x64'] ? [tarballs['cuda-linux-x64']] : [])];
  const inst = npmInstall('cuda', specs, env, ['--foreground-scripts']); // show the install script's line
  if (inst && tarballs['cuda-linux-x64']) {
    check('cuda: install used the prebuilt addon (no compile)', /using the prebuilt addon from @flashattn\/cuda-linux-x64/.test(inst[2]) && !/building with/.test(inst[2]), `${inst[1].toFixed(1)} s`);
  }
  if (inst) {
    const out = script(
      'cuda: cudaInfo() names the addon and why CUDA can or cannot run',
      inst[0],
      'info.mjs',
      `import { cudaInfo, createCudaBackend } from '@flashattn/cuda';
const info = cudaInfo();
console.log(JSON.stringify(info));
if (!info.available) {
  let msg = '';
  try { await createCudaBackend(); } catch (e) { msg = e.message; }
  console.log('REASON ' + info.reason);
  console.log('CREATE ' + msg);
}
`,
      { env },
    );
    const info = JSON.parse(out.split('\n').find((l) => l.startsWith('{')) ?? '{}');
    if (tarballs['cuda-linux-x64']) check('cuda: the prebuilt package was loaded', info.addon?.loaded && info.addon.source === 'prebuilt package', JSON.stringify(info.addon));
    const reason = /REASON (.*)/.exec(out)?.[1];
    if (reason !== undefined) {
      check('cuda: the reason is one sentence and not "driver version is insufficient"', !/insufficient/.test(reason) && reason.length > 10, reason);
      check('cuda: createCudaBackend() throws that reason', (/CREATE (.*)/.exec(out)?.[1] ?? '').includes(reason.slice(0, 40)), /CREATE (.*)/.exec(out)?.[1]);
    }
  }
}

rmSync(work, { recursive: true, force: true });
console.log(`pack-test: done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
console.log(`pack-test: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);

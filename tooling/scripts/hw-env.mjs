#!/usr/bin/env node
// Runs a command (turbo) with FLASHATTN_HW_FINGERPRINT set: a hash of what decides whether the GPU tests run
// or skip (the Vulkan loader, Vulkan drivers and their selection, chromium's SwiftShader, the NVIDIA driver
// and devices, nvcc). turbo.json makes it part of the test task's cache key, so after installing what a
// skip asked for (e.g. `apt-get install libvulkan1 chromium`) the same test command re-runs the tests
// instead of replaying the cached skips.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

const facts = [];
const list = (d) => (existsSync(d) ? readdirSync(d).sort().join(',') : '-');
const libDirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu'];
facts.push(`vulkan-loader=${libDirs.some((d) => existsSync(join(d, 'libvulkan.so.1')))}`);
for (const d of ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d']) facts.push(`${d}=${list(d)}`);
facts.push(`swiftshader=${existsSync('/usr/lib/chromium/vk_swiftshader_icd.json')}`);
facts.push(`chromium=${existsSync('/usr/bin/chromium')}`);
for (const k of ['VK_DRIVER_FILES', 'VK_ICD_FILENAMES', 'CUDA_VISIBLE_DEVICES']) facts.push(`${k}=${process.env[k] ?? ''}`);
let driver = '-';
try {
  driver = readFileSync('/proc/driver/nvidia/version', 'utf8').split('\n')[0];
} catch {
  // no NVIDIA driver
}
facts.push(`nvidia-driver=${driver}`);
facts.push(`nvidia-devices=${existsSync('/dev') ? readdirSync('/dev').filter((f) => /^nvidia\d+$/.test(f)).join(',') : '-'}`);
const path = (process.env.PATH ?? '').split(delimiter);
facts.push(`nvcc=${path.some((d) => d && existsSync(join(d, 'nvcc'))) || existsSync('/usr/local/cuda/bin/nvcc')}`);

const fingerprint = createHash('sha256').update(facts.join('\n')).digest('hex').slice(0, 16);
if (process.argv.length <= 2) {
  console.log(`${fingerprint}\n${facts.join('\n')}`);
  process.exit(0);
}
const [cmd, ...args] = process.argv.slice(2);
const r = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, FLASHATTN_HW_FINGERPRINT: fingerprint } });
process.exit(r.status ?? 1);

/**
 * The WebGPU backend's entry in core's registry (`@flashattn/webgpu/provider`; package.json's
 * `"flashattn": { "provider": "./dist/provider.js" }` lets `discoverBackends()` find it). Importing this
 * module registers the provider. probe() says exactly what is missing when no adapter can be had: the
 * `webgpu` package (Dawn), the Vulkan loader, a Vulkan driver, or an adapter; and the command that fixes it.
 */
import {
  BackendUnavailableError,
  registerBackend,
  type AttentionBackend,
  type BackendProvider,
  type Ops,
  type ProbeContext,
  type ProbeResult,
} from '@flashattn/core';
import { createWebGPUBackend, type WebGPUBackendOptions } from './backend.js';
import { createWebGpuOps } from './ops/webgpu-ops.js';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const PROBE_MS = 120_000;

/** What a Node machine lacks for Dawn's Vulkan backend, checked from the file system (Linux). */
async function missingOnLinux(): Promise<string | undefined> {
  const fs = await import('node:fs');
  const libDirs = [
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/usr/lib64',
    '/usr/lib',
    '/lib/x86_64-linux-gnu',
  ];
  const ldPath = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  const hasLoader = [...ldPath, ...libDirs].some((d) => fs.existsSync(`${d}/libvulkan.so.1`));
  if (!hasLoader) {
    return 'the Vulkan loader (libvulkan.so.1) is not installed; fix: apt-get install -y libvulkan1';
  }
  const files = (process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES ?? '')
    .split(':')
    .filter(Boolean);
  const icdDirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
  const hasDriver =
    files.some((f) => fs.existsSync(f)) ||
    (files.length === 0 &&
      icdDirs.some((d) => fs.existsSync(d) && fs.readdirSync(d).some((f) => f.endsWith('.json'))));
  if (!hasDriver) {
    return (
      'no Vulkan driver (ICD) is installed' +
      (files.length ? ` (VK_DRIVER_FILES=${files.join(':')} does not exist)` : '') +
      '; fix: install the GPU vendor driver, or for the SwiftShader software adapter apt-get install -y chromium' +
      ` and set VK_DRIVER_FILES=${SWIFTSHADER_ICD}`
    );
  }
  return undefined;
}

/** Software rasterisers that expose a WebGPU adapter but run on the CPU (slower than the cpu backend). */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|software|warp/i;

async function probe(context?: ProbeContext): Promise<ProbeResult> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  const isNode = !nav?.gpu && typeof process !== 'undefined' && !!process.versions?.node;
  if (isNode) {
    try {
      const name = 'webgpu';
      await import(/* @vite-ignore */ name);
    } catch {
      return {
        available: false,
        reason: "the 'webgpu' package (Dawn for Node) is not installed; fix: npm install webgpu",
      };
    }
    if (process.platform === 'linux') {
      const missing = await missingOnLinux();
      if (missing) return { available: false, reason: missing };
    }
  } else if (!nav?.gpu) {
    return {
      available: false,
      reason: 'navigator.gpu is missing (WebGPU disabled or unsupported in this browser)',
    };
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const be = await Promise.race([
      createWebGPUBackend(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no adapter within ${PROBE_MS / 1000} s`)),
          PROBE_MS,
        );
      }),
    ]);
    const detail = be.name;
    be.dispose();
    // 'auto' should not pick a software adapter over the CPU backend; naming webgpu still gets it.
    if (!context?.requested && SOFTWARE_ADAPTER.test(detail)) {
      return {
        available: false,
        reason: `only a software adapter (${detail}), slower than the CPU path; ask for it by name (--backend webgpu) to use it`,
      };
    }
    return { available: true, detail };
  } catch (e) {
    // The reason alone (not "webgpu backend is unavailable: ..." again), and the fix once.
    const why =
      e instanceof BackendUnavailableError ? e.reason : e instanceof Error ? e.message : String(e);
    return {
      available: false,
      reason:
        `no WebGPU adapter: ${why}` +
        (isNode && !why.includes('VK_DRIVER_FILES')
          ? `; fix: check the GPU driver with vulkaninfo, or use SwiftShader (apt-get install -y chromium; VK_DRIVER_FILES=${SWIFTSHADER_ICD})`
          : ''),
    };
  } finally {
    clearTimeout(timer);
  }
}

export const provider: BackendProvider = {
  name: 'webgpu',
  priority: 10,
  probe,
  createAttention: (options?: Record<string, unknown>): Promise<AttentionBackend> =>
    createWebGPUBackend(options as WebGPUBackendOptions | undefined),
  createOps: (options?: Record<string, unknown>): Promise<Ops<unknown>> =>
    createWebGpuOps(options as WebGPUBackendOptions | undefined) as Promise<Ops<unknown>>,
};

registerBackend(provider);

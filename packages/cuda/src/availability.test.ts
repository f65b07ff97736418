// What users are told when CUDA cannot run (issue 14): the CUDA runtime's "driver version is insufficient"
// is said as what is actually missing, and cudaInfo() names the addon it loaded and why.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cudaInfo, explainCudaError } from './availability.js';

const pkgRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('CUDA availability messages', () => {
  it('never passes on "driver version is insufficient": no driver, or a driver too old, with the version needed', () => {
    const raw =
      'CUDA error cudaErrorInsufficientDriver (35) in cudaGetDeviceCount: CUDA driver version is insufficient for CUDA runtime version';
    const said = explainCudaError(raw, '13.0');
    expect(said).not.toMatch(/insufficient/);
    if (existsSync('/proc/driver/nvidia/version'))
      expect(said).toMatch(/NVIDIA driver .*too old for CUDA 13\.0: install driver >= 580/);
    else expect(said).toMatch(/^no NVIDIA driver found .*\(CUDA 13\.0 needs driver >= 580\)$/);
  });

  it('says "no CUDA device" when the driver sees no GPU, and passes other errors through', () => {
    expect(
      explainCudaError(
        'CUDA error cudaErrorNoDevice (100): no CUDA-capable device is detected',
        '13.0',
      ),
    ).toMatch(/^no CUDA device: the NVIDIA driver is loaded but sees no GPU/);
    expect(explainCudaError('something else', undefined)).toBe('something else');
  });

  it('cudaInfo() names the loaded addon (source, path, why) or why none loaded', () => {
    const info = cudaInfo();
    if (info.addon.loaded) {
      expect(['FLASHATTN_CUDA_ADDON', 'local build', 'prebuilt package']).toContain(
        info.addon.source,
      );
      expect(existsSync(info.addon.path)).toBe(true);
      expect(info.addon.why.length).toBeGreaterThan(10);
    } else {
      expect(info.addon.reason).toMatch(/no CUDA addon|not built|failed to load/);
    }
    expect(info.available || (info.reason ?? '').length > 0).toBe(true);
  });

  it('a FLASHATTN_CUDA_ADDON that does not exist is reported as not built there', () => {
    // A fresh process: the override wins over the local build and the prebuilt package, so its reason is this one.
    const script = `
      import { loadAddon, PREBUILT_PACKAGE } from './dist/native.js';
      console.log(JSON.stringify({ pkg: PREBUILT_PACKAGE, load: loadAddon() }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: pkgRoot,
      encoding: 'utf8',
      env: { ...process.env, FLASHATTN_CUDA_ADDON: '/nonexistent/flashattn_cuda.node' },
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { pkg: string; load: { reason: string } };
    expect(out.pkg).toBe(`@flashattn/cuda-${process.platform}-${process.arch}`);
    expect(out.load.reason).toBe(
      'the native addon was not built at FLASHATTN_CUDA_ADDON=/nonexistent/flashattn_cuda.node (no such file)',
    );
  });
});

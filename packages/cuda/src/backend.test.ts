import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AttentionInputError,
  BackendOutOfMemoryError,
  BackendUnavailableError,
  attentionReference64,
  createRng,
  freshSeed,
  randomTensor,
  toFloat32,
  type Tensor,
} from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { createCudaBackend, paddedHeadDim } from './backend.js';
import { cudaStatus, cudaUnavailableReason, isCudaAvailable } from './availability.js';
import { CudaUnavailableError, mapCudaError } from './errors.js';
import { loadAddon } from './native.js';

const pkgRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const reason = cudaUnavailableReason();
if (reason) console.warn(`@flashattn/cuda GPU tests skipped: CUDA unavailable: ${reason}`);
const hasNvcc = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).status === 0;

describe('availability (runs everywhere)', () => {
  it('isCudaAvailable agrees with cudaStatus and gives a reason when false', () => {
    const s = cudaStatus();
    expect(isCudaAvailable()).toBe(s.available);
    if (!s.available) expect(s.reason.length).toBeGreaterThan(10);
  });

  it.skipIf(!reason)(
    'createCudaBackend throws a typed CudaUnavailableError saying what is missing',
    () => {
      let caught: unknown;
      try {
        createCudaBackend();
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(CudaUnavailableError);
      expect(caught).toBeInstanceOf(BackendUnavailableError);
      expect((caught as CudaUnavailableError).backend).toBe('cuda');
      expect((caught as CudaUnavailableError).reason).toBe(reason);
    },
  );

  it.skipIf(!hasNvcc)(
    'with nvcc present the build compiled the addon (CI compiles the kernels)',
    () => {
      const status = JSON.parse(
        readFileSync(join(pkgRoot, 'build', 'native-status.json'), 'utf8'),
      ) as { built: boolean; seconds?: number };
      expect(status.built).toBe(true);
      expect(existsSync(join(pkgRoot, 'build', 'Release', 'flashattn_cuda.node'))).toBe(true);
      const load = loadAddon();
      expect(load.addon).toBeDefined();
      console.log(`[@flashattn/cuda] addon compiled in ${status.seconds?.toFixed(1)} s`);
    },
  );

  it('without the addon (no nvcc at install): unavailable with the reason, typed error from createCudaBackend', () => {
    // A fresh process whose addon path points nowhere: what a machine without nvcc sees.
    const script = `
      import { isCudaAvailable, cudaUnavailableReason, createCudaBackend, CudaUnavailableError } from './dist/index.js';
      let err;
      try { createCudaBackend(); } catch (e) { err = e; }
      console.log(JSON.stringify({ available: isCudaAvailable(), reason: cudaUnavailableReason(),
        typed: err instanceof CudaUnavailableError, message: err?.message }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: pkgRoot,
      encoding: 'utf8',
      env: { ...process.env, FLASHATTN_CUDA_ADDON: '/nonexistent/flashattn_cuda.node' },
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      available: boolean;
      reason: string;
      typed: boolean;
      message: string;
    };
    expect(out.available).toBe(false);
    expect(out.reason).toContain('not built');
    expect(out.typed).toBe(true);
    expect(out.message).toContain('cuda backend is unavailable');
  });

  it('maps CUDA error names to typed errors', () => {
    const mk = (name: string): Error =>
      Object.assign(new Error(`CUDA error ${name}: text`), { cudaError: name });
    expect(mapCudaError(mk('cudaErrorInsufficientDriver'), 'cuda:0')).toBeInstanceOf(
      CudaUnavailableError,
    );
    expect(mapCudaError(mk('cudaErrorMemoryAllocation'), 'cuda:0')).toBeInstanceOf(
      BackendOutOfMemoryError,
    );
    const other = mapCudaError(mk('cudaErrorIllegalAddress'), 'cuda:0');
    expect(other.message).toContain('cudaErrorIllegalAddress');
  });

  it('pads head dims up to the compiled kernels and rejects > 256', () => {
    expect([1, 32, 33, 64, 80, 96, 100, 128, 129, 256].map(paddedHeadDim)).toEqual([
      32, 32, 64, 64, 96, 96, 128, 128, 256, 256,
    ]);
    expect(() => paddedHeadDim(257)).toThrow(AttentionInputError);
  });
});

describe.skipIf(!!reason)('on the GPU', () => {
  it('device tensors: upload with conversion, forward/backward on the device, download', async () => {
    const be = createCudaBackend();
    const seed = freshSeed();
    const rng = createRng(seed);
    const [B, N, H, D] = [1, 200, 2, 64];
    const q = randomTensor(rng, [B, N, H, D], 'float32');
    const k = randomTensor(rng, [B, N, H, D], 'float32');
    const v = randomTensor(rng, [B, N, H, D], 'float32');
    const [qd, kd, vd] = await Promise.all([
      be.upload(q, 'bfloat16'),
      be.upload(k, 'bfloat16'),
      be.upload(v, 'bfloat16'),
    ]);
    const { out, lse } = await be.forward(qd, kd, vd, { causal: true });
    expect(out.dtype).toBe('bfloat16');
    expect(lse.shape).toEqual([B, H, N]);
    const host = toFloat32(await be.download(out, 'float32'));
    const ref = attentionReference64(q, k, v, { causal: true });
    let err = 0;
    for (let i = 0; i < host.length; i++) err = Math.max(err, Math.abs(host[i]! - ref.out[i]!));
    // bf16 inputs and P: a few bf16 ulps of |out| <= ~3 (seed printed on failure).
    expect(err, `seed ${seed}`).toBeLessThan(0.05);
    const grads = await be.backward(out, qd, kd, vd, out, lse, { causal: true });
    expect(grads.dk.shape).toEqual([B, N, H, D]);
    for (const t of [qd, kd, vd, out, lse, grads.dq, grads.dk, grads.dv]) t.dispose();
    await be.dispose();
  });

  it('out of memory becomes BackendOutOfMemoryError and the backend keeps working', async () => {
    const be = createCudaBackend();
    const q = randomTensor(createRng(1), [1, 8, 1, 32], 'float16');
    // A (1, 2^26, 64, 128) float16 tensor is 1 TiB: its device allocation fails before any copy.
    const huge = {
      dtype: 'float16',
      shape: [1, 2 ** 26, 64, 128],
      data: new Uint16Array(0),
    } as unknown as Tensor;
    let caught: unknown;
    try {
      (await be.upload(huge)).dispose();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(BackendOutOfMemoryError);
    expect((caught as Error).message).toContain('cudaErrorMemoryAllocation');
    const r = await be.forward(q, q, q);
    expect(r.out.shape).toEqual([1, 8, 1, 32]);
    await be.dispose();
  });

  it('bad shapes throw AttentionInputError before touching the device', async () => {
    const be = createCudaBackend();
    const q = randomTensor(createRng(2), [1, 8, 1, 300], 'float16');
    await expect(be.forward(q, q, q)).rejects.toThrow(AttentionInputError);
    await be.dispose();
  });

  it('deterministic mode gives bit-identical dQ across runs', async () => {
    const be = createCudaBackend({ deterministic: true });
    const rng = createRng(freshSeed());
    const [B, N, H, D] = [1, 700, 2, 64];
    const q = randomTensor(rng, [B, N, H, D], 'bfloat16');
    const k = randomTensor(rng, [B, N, H, D], 'bfloat16');
    const v = randomTensor(rng, [B, N, H, D], 'bfloat16');
    const dO = randomTensor(rng, [B, N, H, D], 'bfloat16');
    const f = await be.forward(q, k, v);
    const a = await be.backward(dO, q, k, v, f.out, f.lse);
    const b = await be.backward(dO, q, k, v, f.out, f.lse);
    expect(Array.from(a.dq.data)).toEqual(Array.from(b.dq.data));
    await be.dispose();
  });
});

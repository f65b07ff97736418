/**
 * Harness of the retired subgroup-matrix (tensor core) forward, flash-forward-sgmat.wgsl.ts: out of the
 * backend's dispatch since the vec4 fp32-math forward is 2x faster on the same f16 inputs (BENCHMARKS.md,
 * WebGPU: 10-12 vs 24 TFLOP/s on the H100). `createSgmatBackend` is a host-tensor AttentionBackend whose
 * float16 forward runs this kernel (contiguous buffers) and whose backward is the production one, so
 * the conformance suite checks it against the float64 oracle (sgmat.test.ts: skipped, with the reason,
 * where the adapter lacks `chromium-experimental-subgroup-matrix`, e.g. SwiftShader); `timeSgmat` is its
 * benchmark against the production forward.
 */
import {
  contiguousView,
  numel,
  resolveOptions,
  validateForward,
  type AttentionBackend,
  type Tensor,
} from '@flashattn/core';
import {
  createWebGPUBackend,
  type WebGPUAttentionBackend,
  type WebGPUBackendOptions,
} from '../src/index.js';
import { attentionUniforms } from '../src/kernels/params.wgsl.js';
import {
  flashForwardSgmatProgram,
  sgmatRows,
  sgmatSupports,
  type SgmatSpec,
} from './flash-forward-sgmat.wgsl.js';
import { chooseSgmat } from './sgmat-variants.js';

export const SGMAT_FEATURE = 'chromium-experimental-subgroup-matrix';

export interface SgmatBackend extends AttentionBackend {
  /** The production backend underneath (its device memory runs the sgmat kernel too). */
  readonly base: WebGPUAttentionBackend;
  /** Whether float16 forwards run on subgroup matrices here (else they fall back to the production forward). */
  readonly active: boolean;
  /** Why not, when not active. */
  readonly reason?: string;
}

export async function createSgmatBackend(
  options: WebGPUBackendOptions & {
    spec?: (headDim: number) => Partial<Omit<SgmatSpec, 'headDim'>> | undefined;
  } = {},
): Promise<SgmatBackend> {
  const base = await createWebGPUBackend({
    ...options,
    extraFeatures: [...(options.extraFeatures ?? []), SGMAT_FEATURE],
  });
  const info = base.device.adapterInfo as GPUAdapterInfo & {
    subgroupMinSize?: number;
    subgroupMaxSize?: number;
  };
  // the kernel is written for 32-wide subgroups, one subgroup per workgroup
  const reason = !base.nativeF16
    ? 'no native shader-f16'
    : !base.device.features.has(SGMAT_FEATURE as GPUFeatureName)
      ? `the adapter has no ${SGMAT_FEATURE}`
      : info?.subgroupMinSize !== 32 || info?.subgroupMaxSize !== 32
        ? 'subgroup size is not 32'
        : undefined;
  const active = reason === undefined;
  const mem = base;

  return {
    name: `${base.name} [sgmat]`,
    capabilities: base.capabilities,
    base,
    active,
    ...(reason ? { reason } : {}),
    async forward(q, k, v, opts) {
      const D = q.shape[3]!;
      if (!active || q.dtype !== 'float16' || !sgmatSupports(D)) return base.forward(q, k, v, opts);
      const s = validateForward(q, k, v, opts);
      const spec: SgmatSpec = {
        ...chooseSgmat(D, base.device.limits),
        ...options.spec?.(D),
        headDim: D,
      };
      const o = resolveOptions(opts, D);
      const bufs = [q, k, v].map((t) => mem.alloc(numel(t.shape), 'float16'));
      const oF32 = mem.alloc(numel(q.shape), 'float32');
      const out = mem.alloc(numel(q.shape), 'float16');
      const lse = mem.alloc(s.batch * s.nheadsQ * s.seqlenQ, 'float32');
      try {
        await Promise.all([q, k, v].map((t, i) => mem.upload(bufs[i]!, t.data)));
        const program = flashForwardSgmatProgram(spec, [
          Math.ceil(s.seqlenQ / sgmatRows(spec)),
          s.nheadsQ,
          s.batch,
        ]);
        const uniforms = attentionUniforms({
          B: s.batch,
          Nq: s.seqlenQ,
          Nk: s.seqlenK,
          Hq: s.nheadsQ,
          Hk: s.nheadsK,
          scale: o.softmaxScale,
          windowLeft: o.windowLeft,
          windowRight: o.windowRight,
          dtype: 1,
          lseOff: 0,
          views: {},
        });
        await base.runtime.submit((enc) => {
          const pass = enc.beginComputePass();
          base.runtime.programs.run(pass, program, uniforms, {
            q: bufs[0]!.gpuBuffer,
            k: bufs[1]!.gpuBuffer,
            v: bufs[2]!.gpuBuffer,
            o: oF32.gpuBuffer,
            lse: lse.gpuBuffer,
          });
          pass.end();
        });
        await mem.copy(out, oF32); // f32 -> f16, round to nearest even
        const data = (await mem.download(out)) as Uint16Array;
        return {
          out: { dtype: 'float16', shape: [...q.shape], data } as Tensor,
          lse: (await mem.download(lse)) as Float32Array,
        };
      } finally {
        [...bufs, oF32, out, lse].forEach((b) => mem.free(b));
      }
    },
    backward: (dout, q, k, v, out, lse, opts) => base.backward(dout, q, k, v, out, lse, opts),
    dispose: () => base.dispose(),
  };
}

/**
 * Benchmark: ms per float16 forward (B = 16384 / N, H = 2048 / D, non-causal) of the subgroup-matrix
 * kernel and of the production forward on the same f16 buffers, after warm-up, over at least 250 ms.
 */
export async function timeSgmat(
  sg: SgmatBackend,
  D: number,
  N: number,
): Promise<{ sgmatMs: number; productionMs: number }> {
  const be = sg.base;
  const B = Math.max(1, Math.floor(16384 / N));
  const H = 2048 / D;
  const shape = [B, N, H, D] as const;
  const n = B * N * H * D;
  const bits = new Uint16Array(n).map((_, i) => 0x3c00 ^ (i % 977)); // f16 values near 1
  const [q, k, v] = [0, 1, 2].map(() => be.alloc(n, 'float16'));
  const out = be.alloc(n, 'float16');
  const oF32 = be.alloc(n, 'float32');
  const lse = be.alloc(B * H * N, 'float32');
  for (const b of [q, k, v]) await be.upload(b!, bits);
  const spec: SgmatSpec = { ...chooseSgmat(D, be.device.limits), headDim: D };
  const program = flashForwardSgmatProgram(spec, [Math.ceil(N / sgmatRows(spec)), H, B]);
  const uniforms = attentionUniforms({
    B,
    Nq: N,
    Nk: N,
    Hq: H,
    Hk: H,
    scale: 1 / Math.sqrt(D),
    windowLeft: -1,
    windowRight: -1,
    dtype: 1,
    lseOff: 0,
    views: {},
  });
  const time = async (fn: () => Promise<void>): Promise<number> => {
    for (let w = performance.now(); performance.now() - w < 150;) await fn();
    await be.runtime.idle();
    let reps = 0;
    const t0 = performance.now();
    while (reps < 50 && (reps < 2 || performance.now() - t0 < 250)) {
      await fn();
      reps++;
    }
    await be.runtime.idle();
    return (performance.now() - t0) / reps;
  };
  try {
    const sgmatMs = await time(() =>
      be.runtime.submit((enc) => {
        const pass = enc.beginComputePass();
        be.runtime.programs.run(pass, program, uniforms, {
          q: q!.gpuBuffer,
          k: k!.gpuBuffer,
          v: v!.gpuBuffer,
          o: oF32.gpuBuffer,
          lse: lse.gpuBuffer,
        });
        pass.end();
      }),
    );
    const views = [q, k, v].map((b) => contiguousView(b!, shape));
    const productionMs = await time(async () => {
      await be.attentionForward({
        q: views[0]!,
        k: views[1]!,
        v: views[2]!,
        out: contiguousView(out, shape),
        lse,
      });
    });
    return { sgmatMs, productionMs };
  } finally {
    [q, k, v, out, oF32, lse].forEach((b) => be.free(b!));
  }
}

// CudaOps on the CPU (CI has nvcc but no GPU): the argument checks that run before any native call, the order of
// createCudaOps's errors (addon, then cuBLASLt, then the GPU), the mapping of addon errors to typed errors, and the
// arguments handed to the addon (pointers of views, dtype ids, transposes). A recording stand-in for the addon
// takes the native calls; the numerics are the GPU conformance suite's job (ops.conformance.test.ts).
import {
  BackendExecutionError,
  BackendOutOfMemoryError,
  BackendUnavailableError,
  OpsInputError,
  resolveBackend,
  type BufferDType,
} from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import type { CudaBuffer } from './cuda-buffer.js';
import { CudaUnavailableError } from './errors.js';
import { loadAddon } from './native.js';
import { CublasLtUnavailableError, CudaOps, createCudaOps } from './ops.js';
import { provider } from './provider.js';
import {
  addonWithoutGpu,
  expectRejects,
  STAND_IN_INFO,
  standInMemory,
} from './test-utils/stand-in-addon.js';

interface Recorded {
  fn: string;
  args: Record<string, unknown>;
}

const made: CudaOps[] = [];

/** An addon whose memory calls hand out fake addresses and whose ops calls are recorded (or throw `fail`). */
function standIn(
  fail?: Record<string, Error>,
  o: { fusedGelu?: boolean; geluApplies?: boolean } = {},
) {
  const calls: Recorded[] = [];
  const addon: Record<string, unknown> = {
    ...standInMemory(),
    opsRelease: (d: number) => calls.push({ fn: 'opsRelease', args: { device: d } }),
    opsMatmulGelu: (_d: number, args: Record<string, unknown>) => {
      calls.push({ fn: 'opsMatmulGelu', args });
      return o.geluApplies ?? true;
    },
  };
  for (const fn of [
    'opsMatmul',
    'opsEmbeddingForward',
    'opsEmbeddingBackward',
    'opsLayernormForward',
    'opsLayernormBackward',
    'opsGeluForward',
    'opsGeluBackward',
    'opsAdd',
    'opsSoftmaxCrossEntropy',
    'opsBiasBackward',
    'opsScale',
    'opsAdamW',
    'opsReduceSumTo',
    'opsAdamWFrom',
  ]) {
    addon[fn] = (_d: number, args: Record<string, unknown>) => {
      calls.push({ fn, args });
      if (fail?.[fn]) throw fail[fn];
    };
  }
  addon.opsReduceSum = async (_d: number, args: Record<string, unknown>) => {
    calls.push({ fn: 'opsReduceSum', args });
    return [42];
  };
  // CUDA graphs: begin / end / abort capture, launch, free (graphs.cpp), recorded in order
  let graphs = 0;
  addon.graphBegin = () => calls.push({ fn: 'graphBegin', args: {} });
  addon.graphEnd = () => {
    calls.push({ fn: 'graphEnd', args: {} });
    return { id: ++graphs, nodes: 7 };
  };
  addon.graphAbort = () => calls.push({ fn: 'graphAbort', args: {} });
  addon.graphLaunch = (_d: number, id: number) => calls.push({ fn: 'graphLaunch', args: { id } });
  addon.graphFree = (_d: number, id: number) => calls.push({ fn: 'graphFree', args: { id } });
  const ops = new CudaOps(
    addon as unknown as ConstructorParameters<typeof CudaOps>[0],
    0,
    STAND_IN_INFO,
    o.fusedGelu === undefined ? {} : { fusedGelu: o.fusedGelu },
    {
      path: 'stand-in',
      version: 130100,
    },
  );
  made.push(ops);
  return { ops, calls };
}

const rejectsWith = (p: () => unknown, argument: string) =>
  expectRejects(p, OpsInputError, argument);

describe('CudaOps argument checks (before any native call)', () => {
  it('rejects bad sizes, lengths, dtypes and options, naming the argument, and calls nothing', async () => {
    const { ops, calls } = standIn();
    const f = (n: number, dt: BufferDType = 'float32'): CudaBuffer => ops.alloc(n, dt);
    const [out, a, b] = [f(12), f(15), f(20)];
    await rejectsWith(() => ops.matmul(f(11), a, b, 3, 4, 5), 'matmul out.length');
    await rejectsWith(() => ops.matmul(out, f(15, 'int32'), b, 3, 4, 5), 'matmul a');
    await rejectsWith(() => ops.matmul(out, a, f(20, 'bfloat16'), 3, 4, 5), 'matmul b.dtype');
    await rejectsWith(
      () => ops.matmul(out, a, b, 3, 4, 5, { accumulate: true, bias: f(4) }),
      'matmul opts.bias',
    );
    await rejectsWith(
      () => ops.matmul(out, a, b, 3, 4, 5, { dgeluPre: f(12), bias: f(4) }),
      'matmul opts.dgeluPre',
    );
    await rejectsWith(
      () => ops.matmul(out, a, b, 3, 4, 5, { geluPre: f(11) }),
      'matmul opts.geluPre.length',
    );
    await rejectsWith(
      () => ops.matmul(out, a, b, 3, 4, 5, { bias: f(5) }),
      'matmul opts.bias.length',
    );
    await rejectsWith(() => ops.matmul(out, a, b, -3, 4, 5), 'matmul M');
    await rejectsWith(() => ops.matmul(out, a, b, 3, 4.5, 5), 'matmul N');
    // 16-bit inputs may write a float32 out, not the other way round
    await rejectsWith(() => ops.matmul(f(12, 'bfloat16'), a, b, 3, 4, 5), 'matmul out.dtype');
    await rejectsWith(() => ops.geluForward(f(9), f(8), 9), 'geluForward inp.length');
    await rejectsWith(
      () => ops.geluBackward(f(4), f(4), f(4, 'float16'), 4),
      'geluBackward dout.dtype',
    );
    await rejectsWith(() => ops.add(f(4), f(4), f(3), 4), 'add b.length');
    await rejectsWith(
      () => ops.layernormForward(f(12), f(3), f(2), f(12), f(4), f(4), 3, 4),
      'layernormForward rstd.length',
    );
    await rejectsWith(
      () =>
        ops.layernormForward(
          f(12, 'bfloat16'),
          f(3, 'bfloat16'),
          f(3),
          f(12, 'bfloat16'),
          f(4, 'bfloat16'),
          f(4, 'bfloat16'),
          3,
          4,
        ),
      'layernormForward mean.dtype',
    );
    await rejectsWith(
      () => ops.softmaxCrossEntropy(f(2), f(10), f(10), f(2), 2, 5, 1),
      'softmaxCrossEntropy targets',
    );
    await rejectsWith(
      () => ops.softmaxCrossEntropy(f(2), f(10), f(10), f(2, 'int32'), 2, 5, Number.NaN),
      'softmaxCrossEntropy dlossScale',
    );
    await rejectsWith(
      () =>
        ops.softmaxCrossEntropy(f(2, 'float16'), null, f(10, 'bfloat16'), f(2, 'int32'), 2, 5, 1),
      'softmaxCrossEntropy losses.dtype',
    );
    await rejectsWith(
      () => ops.embeddingForward(f(2 * 3 * 4), f(6, 'int32'), f(10), f(8), 2, 3, 4),
      'embeddingForward wte.length',
    );
    await rejectsWith(
      () => ops.embeddingForward(f(2 * 3 * 4), f(6, 'int32'), f(12), f(8), 2, 3, 4),
      'embeddingForward wpe.length',
    );
    await rejectsWith(
      () => ops.embeddingBackward(f(12), f(12), f(24), f(5, 'int32'), 2, 3, 4),
      'embeddingBackward tokens.length',
    );
    await rejectsWith(() => ops.biasBackward(f(4), f(13), 3, 4), 'biasBackward dout.length');
    await rejectsWith(() => ops.scale(f(4), Infinity), 'scale s');
    const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, t: 1 };
    await rejectsWith(() => ops.adamw(f(4, 'bfloat16'), f(4), f(4), f(4), h), 'adamw params.dtype');
    await rejectsWith(() => ops.adamw(f(4), f(4), f(3), f(4), h), 'adamw m.length');
    await rejectsWith(() => ops.adamw(f(4), f(4), f(4), f(4), { ...h, t: 0 }), 'adamw h.t');
    await rejectsWith(() => ops.sum(f(4, 'int32')), 'sum x');
    const freed = f(4);
    ops.free(freed);
    await rejectsWith(() => ops.scale(freed, 2), 'scale x');
    await rejectsWith(() => ops.scale({} as CudaBuffer, 2), 'scale x');
    expect(calls).toEqual([]);
  });

  it('hands the addon element-exact pointers of views, dtype ids and flags', async () => {
    const { ops, calls } = standIn();
    const root = ops.alloc(100, 'bfloat16');
    const outer = ops.view(root, 2, 90);
    const a = ops.view(outer, 3, 15); // element 5 of root
    const b = ops.view(outer, 20, 20); // element 22
    const out = ops.alloc(12, 'float32');
    const bias = ops.alloc(4, 'float32');
    await ops.matmul(out, a, b, 3, 4, 5, { transA: true, bias });
    const base = 0x10000n; // the stand-in's first allocation (root)
    expect(calls).toHaveLength(1);
    const m = calls[0]!.args;
    expect(m.a).toBe(base + 5n * 2n); // bfloat16: 2 bytes per element
    expect(m.b).toBe(base + 22n * 2n);
    expect(m.abDtype).toBe(2);
    expect(m.outDtype).toBe(0);
    expect([m.M, m.N, m.K, m.transA, m.transB, m.accumulate]).toEqual([
      3,
      4,
      5,
      true,
      false,
      false,
    ]);
    expect(typeof m.bias).toBe('bigint');
    // sizes of 0 enqueue nothing; sum of an empty buffer is 0 without the device
    await ops.geluForward(ops.alloc(0, 'float32'), ops.alloc(0, 'float32'), 0);
    expect(await ops.sum(ops.alloc(0, 'float16'))).toBe(0);
    expect(calls).toHaveLength(1);
    expect(await ops.sumSquares(ops.view(root, 1, 7))).toBe(42);
    expect(calls[1]).toEqual({
      fn: 'opsReduceSum',
      args: { dtype: 2, x: base + 2n, n: 7, squares: true },
    });
    const h = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, t: 3 };
    const p = ops.alloc(6, 'float32');
    await ops.adamw(
      p,
      ops.alloc(6, 'float16'),
      ops.alloc(6, 'float32'),
      ops.alloc(6, 'float32'),
      h,
    );
    const ad = calls[2]!.args;
    expect(ad.gradDtype).toBe(1);
    expect(ad.c1).toBeCloseTo(1 - 0.9 ** 3, 15);
    expect(ad.c2).toBeCloseTo(1 - 0.95 ** 3, 15);
  });

  it('GELU epilogues: one cuBLASLt call where it applies by default; with fusedGelu false the matmul then the GELU kernel', async () => {
    const run = async (o: { fusedGelu?: boolean; geluApplies?: boolean }) => {
      const { ops, calls } = standIn(undefined, o);
      const [out, pre, a, b] = [12, 12, 15, 20].map((n) => ops.alloc(n, 'bfloat16'));
      const bias = ops.alloc(4, 'bfloat16');
      await ops.matmul(out!, a!, b!, 3, 4, 5, { bias, geluPre: pre! });
      await ops.matmul(out!, a!, b!, 3, 4, 5, { transB: true, dgeluPre: pre! });
      return { calls };
    };
    // fusedGelu false: matmul into pre (with the bias) + GELU forward; matmul into out + GELU backward (in place)
    const plain = await run({ fusedGelu: false });
    expect(plain.calls.map((c) => c.fn)).toEqual([
      'opsMatmul',
      'opsGeluForward',
      'opsMatmul',
      'opsGeluBackward',
    ]);
    expect(plain.calls[0]!.args.out).toBe(plain.calls[1]!.args.inp); // the GELU reads the stored pre
    expect(plain.calls[0]!.args.bias).not.toBeNull();
    expect(plain.calls[2]!.args.bias).toBeNull();
    // default (fusedGelu true): one call each, kind 1 (GELU_AUX_BIAS) and 2 (DGELU), pre passed as the aux
    const fused = await run({});
    expect((await run({ fusedGelu: true })).calls.map((c) => c.fn)).toEqual(
      fused.calls.map((c) => c.fn),
    );
    expect(fused.calls.map((c) => [c.fn, c.args.gelu])).toEqual([
      ['opsMatmulGelu', 1],
      ['opsMatmulGelu', 2],
    ]);
    expect(fused.calls[0]!.args.pre).toBe(plain.calls[0]!.args.out);
    expect(fused.calls[1]!.args.bias).toBeNull();
    // where the addon says the epilogue does not apply, the two kernels run instead
    const fallback = await run({ fusedGelu: true, geluApplies: false });
    expect(fallback.calls.map((c) => c.fn)).toEqual([
      'opsMatmulGelu',
      'opsMatmul',
      'opsGeluForward',
      'opsMatmulGelu',
      'opsMatmul',
      'opsGeluBackward',
    ]);
    expect(() => createCudaOps({ fusedGelu: 'yes' } as never)).toThrow(
      /createCudaOps options.fusedGelu/,
    );
  });

  it('maps addon errors to typed errors and stays usable', async () => {
    const oom = Object.assign(new Error('cuBLASLt error CUBLAS_STATUS_ALLOC_FAILED'), {
      cublasStatus: 'CUBLAS_STATUS_ALLOC_FAILED',
      cudaError: 'cudaErrorMemoryAllocation',
    });
    const fault = Object.assign(new Error('CUDA error cudaErrorIllegalAddress'), {
      cudaError: 'cudaErrorIllegalAddress',
    });
    const { ops, calls } = standIn({ opsMatmul: oom, opsAdd: fault });
    const x = ops.alloc(4, 'float32');
    await expect(ops.matmul(x, x, x, 2, 2, 2)).rejects.toBeInstanceOf(BackendOutOfMemoryError);
    const e = await ops.add(x, x, x, 4).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(BackendExecutionError);
    expect(e).not.toBeInstanceOf(BackendOutOfMemoryError);
    await ops.scale(x, 2);
    expect(calls.map((c) => c.fn)).toEqual(['opsMatmul', 'opsAdd', 'opsScale']);
    // the last CudaOps of a device disposed frees its cuBLASLt handle and workspace, once
    for (const other of made) if (other !== ops) await other.dispose();
    await ops.dispose();
    await ops.dispose();
    expect(calls.map((c) => c.fn)).toEqual(['opsMatmul', 'opsAdd', 'opsScale', 'opsRelease']);
    await expect(ops.scale(x, 2)).rejects.toBeInstanceOf(BackendExecutionError);
  });
});

describe('CudaOps graphs and device scalars (the native side: the GPU run, device-run ops-graphs)', () => {
  it('a capture brackets the recorded calls with graphBegin / graphEnd; a launch and a free name the graph', async () => {
    const { ops, calls } = standIn();
    const x = ops.alloc(8, 'float32');
    const s = ops.alloc(1, 'float32');
    const g = await ops.captureGraph(async () => {
      await ops.scale(x, 2);
      await ops.sumTo(s, x, { squares: true, accumulate: true });
    });
    expect(g.nodes).toBe(7);
    await ops.launchGraph(g);
    ops.freeGraph(g);
    await ops.scale(x, 3); // queued after the free
    expect(calls.map((c) => c.fn)).toEqual([
      'graphBegin',
      'opsScale',
      'opsReduceSumTo',
      'graphEnd',
      'graphLaunch',
      'graphFree',
      'opsScale',
    ]);
    expect(calls[2]!.args).toMatchObject({ n: 8, squares: true, accumulate: true, dtype: 0 });
    expect(calls[4]!.args).toEqual({ id: 1 });
    await rejectsWith(() => ops.launchGraph(g), 'launchGraph g');
  });

  it('refuses every waiting, transferring or allocating call inside a capture, aborts it, and stays usable', async () => {
    const { ops, calls } = standIn();
    const x = ops.alloc(4, 'float32');
    for (const [what, call] of [
      ['upload', () => ops.upload(x, Float32Array.of(1, 2, 3, 4))],
      ['download', () => ops.download(x)],
      ['sum', () => ops.sum(x)],
      ['sumSquares', () => ops.sumSquares(x)],
      ['alloc', () => ops.alloc(4, 'float32')],
      ['free', () => ops.free(x)],
      ['synchronize', () => ops.synchronize()],
    ] as const) {
      calls.length = 0;
      const e = await ops
        .captureGraph(async () => {
          await ops.add(x, x, x, 4);
          await call();
        })
        .catch((err: unknown) => err);
      expect(e, what).toBeInstanceOf(OpsInputError);
      expect((e as OpsInputError).argument).toBe(what);
      expect(calls.map((c) => c.fn)).toEqual(['graphBegin', 'opsAdd', 'graphAbort']);
    }
    // a capture whose body catches the refusal is abandoned all the same
    calls.length = 0;
    const e = await ops
      .captureGraph(async () => {
        await ops.download(x).catch(() => undefined);
      })
      .catch((err: unknown) => err);
    expect((e as OpsInputError).argument).toBe('download');
    expect(calls.map((c) => c.fn)).toEqual(['graphBegin', 'graphAbort']);
    // and after all of it: eager calls run, a nested capture is refused
    calls.length = 0;
    await ops.scale(x, 2);
    expect(calls.map((c) => c.fn)).toEqual(['opsScale']);
    const nested = await ops
      .captureGraph(() => ops.captureGraph(async () => undefined).then(() => undefined))
      .catch((err: unknown) => err);
    expect((nested as OpsInputError).argument).toBe('captureGraph');
  });

  it('adamwFrom hands the addon the hyper and normSq pointers and the clip scalars; checks them first', async () => {
    const { ops, calls } = standIn();
    const [p, g, m, v] = [0, 1, 2, 3].map(() => ops.alloc(10, 'float32')) as [
      CudaBuffer,
      CudaBuffer,
      CudaBuffer,
      CudaBuffer,
    ];
    const hyper = ops.alloc(3, 'float32');
    const normSq = ops.alloc(1, 'float32');
    const h = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, hyper };
    await rejectsWith(
      () => ops.adamwFrom(p, g, m, v, { ...h, hyper: ops.alloc(2, 'float32') }),
      'adamwFrom h.hyper.length',
    );
    await rejectsWith(
      () => ops.adamwFrom(p, g, m, v, { ...h, clip: { normSq, maxNorm: 1, K: 0 } }),
      'adamwFrom h.clip.K',
    );
    await rejectsWith(() => ops.sumTo(ops.alloc(2, 'float32'), p), 'sumTo out.length');
    expect(calls).toEqual([]);
    await ops.adamwFrom(p, g, m, v, { ...h, clip: { normSq, maxNorm: 1, K: 4 } });
    await ops.adamwFrom(p, g, m, v, h);
    expect(calls.map((c) => c.fn)).toEqual(['opsAdamWFrom', 'opsAdamWFrom']);
    expect(calls[0]!.args).toMatchObject({ n: 10, maxNorm: 1, K: 4, beta1: 0.9, weightDecay: 0.1 });
    expect(typeof calls[0]!.args['hyper']).toBe('bigint');
    expect(typeof calls[0]!.args['normSq']).toBe('bigint');
    expect(calls[1]!.args['normSq']).toBeNull();
  });
});

describe('createCudaOps errors, in order: options, addon, cuBLASLt, GPU', () => {
  it('rejects unknown options before loading anything', () => {
    expect(() => createCudaOps({ devcie: 0 } as never)).toThrow(OpsInputError);
    expect(() => createCudaOps({ cublasLtPath: '' })).toThrow(OpsInputError);
  });

  const addon = loadAddon();
  it.skipIf(addon.addon)('without the addon: CudaUnavailableError', () => {
    expect(() => createCudaOps()).toThrow(CudaUnavailableError);
  });

  it.skipIf(!addon.addon)(
    'a cuBLASLt path that does not exist is tried first; when nothing loads, CublasLtUnavailableError lists every path',
    () => {
      const bad = '/nonexistent/flashattn-test/libcublasLt.so.13';
      let thrown: unknown;
      try {
        void createCudaOps({ cublasLtPath: bad }).dispose();
      } catch (e) {
        thrown = e;
      }
      if (thrown instanceof CublasLtUnavailableError) {
        // CI: no cuBLASLt anywhere. Every candidate is named, the explicit one first, with dlopen's reason.
        expect(thrown).toBeInstanceOf(BackendUnavailableError);
        expect(thrown.tried[0]).toContain(bad);
        expect(thrown.tried.some((t) => t.startsWith('libcublasLt.so.13 ('))).toBe(true);
        expect(thrown.tried.some((t) => t.startsWith('libcublasLt.so.12 ('))).toBe(true);
        expect(thrown.message).toContain('cublasLtPath');
        expect(thrown.message).toContain('CUDA attention works without it');
      } else {
        // cuBLASLt found on the standard paths (the GPU machine): the bad path was passed over; what remains is
        // the GPU check (no error with a GPU, CudaUnavailableError without one).
        if (thrown !== undefined) expect(thrown).toBeInstanceOf(CudaUnavailableError);
        else
          console.warn(
            'createCudaOps: cuBLASLt found on the standard paths, the bad path passed over',
          );
        expect(thrown === undefined || thrown instanceof CudaUnavailableError).toBe(true);
      }
    },
  );

  it("resolveBackend('cuda', { need: 'ops' }) reaches the provider's createOps", async () => {
    expect(typeof provider.createOps).toBe('function');
    const r: unknown = await resolveBackend<CudaOps>('cuda', { need: 'ops' }).then(
      async (x) => {
        await x.value.dispose();
        return x.value;
      },
      (e: unknown) => e,
    );
    if (r instanceof Error) {
      expect(r).toBeInstanceOf(BackendUnavailableError);
      expect((r as BackendUnavailableError).backend).toBe('cuda');
    } else {
      expect(r).toBeInstanceOf(CudaOps);
    }
  });
});

describe('the native entry points without a GPU (the addon built, no driver: CI)', () => {
  const { available, call } = addonWithoutGpu();
  const ok: Record<string, Record<string, unknown>> = {
    opsGeluForward: { dtype: 0, out: 256n, inp: 512n, n: 4 },
    opsAdd: { dtype: 2, out: 256n, a: 512n, b: 768n, n: 4 },
    opsLayernormForward: {
      dtype: 1,
      out: 256n,
      mean: 512n,
      rstd: 768n,
      inp: 1024n,
      w: 1280n,
      b: 1536n,
      N: 2,
      C: 3,
    },
    opsReduceSum: { dtype: 0, x: 256n, n: 4, squares: true },
    opsAdamW: {
      gradDtype: 2,
      params: 256n,
      grads: 512n,
      m: 768n,
      v: 1024n,
      n: 4,
      lr: 1e-3,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      c1: 0.1,
      c2: 0.001,
    },
  };
  it.skipIf(!available)(
    'bad arguments are TypeErrors naming them, read before the device is touched; good ones reach the device and fail with a CUDA error, never a crash',
    () => {
      for (const [fn, args] of Object.entries(ok)) {
        const dev = call(fn, args) as { cudaError?: string };
        expect(dev).toBeInstanceOf(Error);
        expect(dev.cudaError).toMatch(/^cuda/);
        const badDtype = call(fn, {
          ...args,
          ...('dtype' in args ? { dtype: 7 } : { gradDtype: 7 }),
        });
        expect(badDtype).toBeInstanceOf(TypeError);
        expect((badDtype as Error).message).toMatch(/dtype must be 0, 1 or 2/i);
        const sizeKey = Object.keys(args).find((k) => ['n', 'N'].includes(k))!;
        const negative = call(fn, { ...args, [sizeKey]: -1 });
        expect(negative).toBeInstanceOf(TypeError);
        expect((negative as Error).message).toContain(`${sizeKey} must be >= 0`);
        expect(call(fn, 5)).toBeInstanceOf(TypeError);
      }
      // matmul: bias with accumulate is refused natively too (and cuBLASLt must be loaded first)
      const mm = call('opsMatmul', {
        a: 256n,
        b: 512n,
        out: 768n,
        bias: 1024n,
        abDtype: 0,
        outDtype: 0,
        M: 2,
        N: 2,
        K: 2,
        transA: false,
        transB: false,
        accumulate: true,
      });
      expect(mm).toBeInstanceOf(TypeError);
      expect((mm as Error).message).toMatch(/cuBLASLt is not loaded|bias and accumulate/);
    },
  );
});

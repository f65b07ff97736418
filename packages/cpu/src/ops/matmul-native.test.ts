// The native AVX2 gemm (native/gemm_avx2.cc through matmul-native.ts): CpuOps.matmul's default float32
// path, and its small-M path (native/gemv_avx2.cc, M <= 8 rows: GPT-2 decoding); checked against a
// float64 triple loop with the tolerance rule (error <= 2x a naive float32 loop's + a 1e-6 floor) on all
// four layouts x plain / bias / accumulate, shapes off the 6 x 16 tiles and the MC, NC, KC blocks (the
// packed gemm), M = 1, 2, 3, 5, 8 with odd N and K off the 8-lane vectors, the 4-step K groups and the
// column units (the small-M path), on the synchronous and the threaded path; bitwise the same on 1, 2, 3
// threads (the addon directly: 1 .. 7); deliberately broken variants rejected by the ops conformance
// suite; the event loop runs
// while it computes; bad input gives typed errors; a worker_thread can load and use the addon; a
// process that used the pool exits on its own. ops/cpu-ops.conformance.test.ts runs the whole ops
// suite with it. Skipped, saying why, where the addon (with its gemm) is not built or the CPU lacks
// AVX2 / FMA.
import { OpsInputError, createRng, freshSeed } from '@flashattn/core';
import { runOpsConformance } from '@flashattn/conformance';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { nativeAddon, nativeInfo, type NativeGemmArgs } from '../attention/flash-native.js';
import { CpuOps } from './cpu-ops.js';
import { NATIVE_SYNC_MACS } from './matmul-native.js';
import { eventLoopTurnsDuring } from '../test-utils/event-loop.js';

const info = nativeInfo();
const skip = info.gemm ? false : `native gemm unavailable: ${info.reason ?? '?'}`;
if (skip) console.warn(`matmul-native.test: skipped: ${skip}`);
const seed = freshSeed();

const randn = (n: number, s: number): Float64Array => {
  const rng = createRng(s);
  return Float64Array.from({ length: n }, () => rng.normal());
};

describe.skipIf(skip)(`native AVX2 gemm (seed ${seed})`, () => {
  const one = new CpuOps({ threads: 1 });
  const ops = [one, new CpuOps({ threads: 2 }), new CpuOps({ threads: 3 })];
  afterAll(async () => {
    for (const o of ops) await o.dispose();
  });
  const fill = (o: CpuOps, src: Float64Array): Float32Array => {
    const x = o.alloc(src.length, 'float32') as Float32Array;
    x.set(src);
    return x;
  };

  it('is the default float32 matmul, and the name says so; native: false runs the wasm gemm', async () => {
    expect(one.name).toContain('native avx2 forward + gemm');
    const out = one.alloc(4, 'float32');
    await one.matmul(out, fill(one, randn(4, 1)), fill(one, randn(4, 2)), 2, 2, 2);
    expect(one.lastMatmulPath).toBe('native-gemv'); // M = 2: the small-M path
    const big = one.alloc(9 * 2, 'float32');
    await one.matmul(big, fill(one, randn(9 * 2, 1)), fill(one, randn(4, 2)), 9, 2, 2);
    expect(one.lastMatmulPath).toBe('native'); // M = 9: the packed gemm
    const wasm = new CpuOps({ threads: 1, native: false });
    try {
      const w = wasm.alloc(4, 'float32');
      await wasm.matmul(w, fill(wasm, randn(4, 1)), fill(wasm, randn(4, 2)), 2, 2, 2);
      expect(wasm.lastMatmulPath).toBe('simd');
      expect(wasm.name).not.toContain('gemm');
    } finally {
      await wasm.dispose();
    }
  });

  // (M, N, K): one element (the small-M path); off every tile (a full and a partial 6-row panel); K over
  // two KC = 256 slices; above NATIVE_SYNC_MACS (the threaded path) with M over two MC = 72 blocks, N
  // over two NC = 256 blocks and three K slices.
  const shapes: Array<[number, number, number]> = [
    [1, 1, 1],
    [11, 17, 5],
    [13, 35, 300],
    [103, 277, 530],
  ];
  expect(103 * 277 * 530).toBeGreaterThan(NATIVE_SYNC_MACS);
  // All three modes of one shape and layout on 1, 2, 3 threads: the tolerance rule against float64, and
  // bitwise equality across the thread counts.
  const check = async (M: number, N: number, K: number, transA: boolean, transB: boolean) => {
    const a = randn(M * K, seed + M);
    const b = randn(K * N, seed + N);
    const bias = randn(N, seed + K);
    const c0 = randn(M * N, seed + 1);
    const a32 = Float32Array.from(a);
    const b32 = Float32Array.from(b);
    const at = (i: number, k: number): number => (transA ? k * M + i : i * K + k);
    const bt = (k: number, j: number): number => (transB ? j * K + k : k * N + j);
    // The oracle: float64 sums of the float32 inputs; the naive float32 loop rounds after every step.
    const prod = new Float64Array(M * N);
    const naive = {
      plain: new Float32Array(M * N),
      bias: new Float32Array(M * N),
      acc: new Float32Array(M * N),
    };
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        let p = 0;
        for (let k = 0; k < K; k++) {
          const x = Math.fround(a32[at(i, k)]! * b32[bt(k, j)]!);
          s += a32[at(i, k)]! * b32[bt(k, j)]!;
          p = Math.fround(p + x);
        }
        prod[i * N + j] = s;
        naive.plain[i * N + j] = p;
        naive.bias[i * N + j] = Math.fround(p + Math.fround(bias[j]!));
        naive.acc[i * N + j] = Math.fround(Math.fround(c0[i * N + j]!) + p);
      }
    const oracle = {
      plain: (x: number) => prod[x]!,
      bias: (x: number) => prod[x]! + Math.fround(bias[x % N]!),
      acc: (x: number) => prod[x]! + Math.fround(c0[x]!),
    };
    for (const mode of ['plain', 'bias', 'acc'] as const) {
      const results: Float32Array[] = [];
      for (const o of ops) {
        const out = fill(o, c0);
        await o.matmul(out, fill(o, a), fill(o, b), M, N, K, {
          transA,
          transB,
          ...(mode === 'acc' ? { accumulate: true } : {}),
          ...(mode === 'bias' ? { bias: fill(o, bias) } : {}),
        });
        expect(o.lastMatmulPath).toBe(M <= 8 ? 'native-gemv' : 'native');
        results.push(out);
      }
      let err = 0;
      let errNaive = 0;
      for (let x = 0; x < M * N; x++) {
        err = Math.max(err, Math.abs(results[0]![x]! - oracle[mode](x)));
        errNaive = Math.max(errNaive, Math.abs(naive[mode][x]! - oracle[mode](x)));
      }
      expect(err, `${mode}: error vs float64`).toBeLessThanOrEqual(2 * errNaive + 1e-6);
      for (const r of results.slice(1))
        expect(
          r.every((y, x) => Object.is(y, results[0]![x])),
          `${mode}: bitwise the same on 1, 2, 3 threads`,
        ).toBe(true);
    }
  };
  const layouts = [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const;
  for (const [M, N, K] of shapes)
    for (const [transA, transB] of layouts)
      it(`M=${M} N=${N} K=${K} transA=${transA} transB=${transB}: plain, bias, accumulate vs float64; 1 = 2 = 3 threads`, async () => {
        await check(M, N, K, transA, transB);
      }, 30_000);

  // The small-M path (M <= 8): M = 1, 2, 3, 5, 8; N odd (edge columns past the 8-lane vectors, several
  // 128-column units without transB, 64-row units with it); K = 1 (below a 4-step group and an 8-lane
  // vector) and odd K (a group tail and a masked lane tail); two shapes above NATIVE_SYNC_MACS (the
  // pool's threads).
  const smallM: Array<[number, number, number]> = [
    [1, 300, 37],
    [2, 137, 261],
    [3, 9, 1],
    [5, 301, 19],
    [8, 263, 43],
    [1, 4099, 1031],
    [5, 1001, 841],
  ];
  expect(1 * 4099 * 1031).toBeGreaterThan(NATIVE_SYNC_MACS);
  expect(5 * 1001 * 841).toBeGreaterThan(NATIVE_SYNC_MACS);
  for (const [M, N, K] of smallM)
    for (const [transA, transB] of layouts)
      it(`small-M path: M=${M} N=${N} K=${K} transA=${transA} transB=${transB}: plain, bias, accumulate vs float64; 1 = 2 = 3 threads`, async () => {
        await check(M, N, K, transA, transB);
      }, 30_000);

  it('small-M path: bitwise the same on 1 .. 7 native threads (the addon directly, below the sync size too)', () => {
    const addon = nativeAddon()!;
    for (const [M, N, K, transB] of [
      [1, 1031, 300, false],
      [3, 517, 77, true],
      [8, 2000, 129, false],
      [7, 333, 500, true],
    ] as const) {
      const a = Float32Array.from(randn(M * K, seed + 11));
      const b = Float32Array.from(randn(K * N, seed + 12));
      const bias = Float32Array.from(randn(N, seed + 13));
      const run = (threads: number): Float32Array => {
        const c = new Float32Array(M * N);
        const kernel = addon.gemmSync!({
          M,
          N,
          K,
          transA: false,
          transB,
          accumulate: false,
          a,
          b,
          c,
          bias,
          threads,
          variant: 0,
        });
        expect(kernel).toBe('gemv');
        return c;
      };
      const c1 = run(1);
      for (const t of [2, 3, 4, 7])
        expect(
          run(t).every((y, x) => Object.is(y, c1[x])),
          `M=${M} N=${N} K=${K} threads=${t}`,
        ).toBe(true);
    }
  });

  it('plain (non-shared) Float32Arrays above the sync size: the same bits as arena buffers', async () => {
    const [M, N, K] = [64, 300, 250];
    expect(M * N * K).toBeGreaterThan(NATIVE_SYNC_MACS);
    const a = randn(M * K, seed + 5);
    const b = randn(N * K, seed + 6);
    const o2 = ops[1]!;
    const arena = o2.alloc(M * N, 'float32') as Float32Array;
    await o2.matmul(arena, fill(o2, a), fill(o2, b), M, N, K, { transB: true });
    const plain = new Float32Array(M * N);
    await o2.matmul(plain, Float32Array.from(a), Float32Array.from(b), M, N, K, { transB: true });
    expect(o2.lastMatmulPath).toBe('native');
    expect(plain.every((y, x) => Object.is(y, arena[x]))).toBe(true);
    expect(plain.some((y) => y !== 0)).toBe(true);
  });

  // The suite's float32 matmul cases (float64 buffers run the JS loops).
  const f32Matmul = (id: string): boolean => id.startsWith('matmul ') && id.endsWith(' f32');
  // Which kernel each matmul of a run took, by M (CpuOps.lastMatmulPath after every call).
  const recordPaths = (o: CpuOps): Map<number, Set<string>> => {
    const paths = new Map<number, Set<string>>();
    const matmul = o.matmul.bind(o);
    o.matmul = async (...args: Parameters<CpuOps['matmul']>) => {
      await matmul(...args);
      const M = args[3];
      if (!paths.has(M)) paths.set(M, new Set());
      paths.get(M)!.add(o.lastMatmulPath ?? 'null');
    };
    return paths;
  };
  const caseM = (id: string): number => Number(/^matmul M(\d+) /.exec(id)![1]);

  it('the ops conformance suite: the matmul cases pass on the native gemm (control); M <= 8 took the small-M path', async () => {
    const o = new CpuOps({ threads: 2 });
    try {
      const paths = recordPaths(o);
      const r = await runOpsConformance(o, { filter: f32Matmul, seed, inputChecks: false });
      expect(r.failed, r.results.map((x) => x.message).join('\n')).toBe(0);
      expect(r.passed).toBe(22);
      // The suite's M: 0, 3, 4, 5, 6, 7 (small-M), 9, 17, 33 (packed); the GELU epilogue cases included.
      expect([...paths.keys()].sort((x, y) => x - y)).toEqual([0, 3, 4, 5, 6, 7, 9, 17, 33]);
      for (const [M, p] of paths)
        expect([...p], `M = ${M}`).toEqual([
          M === 0 ? 'native' : M <= 8 ? 'native-gemv' : 'native',
        ]);
    } finally {
      await o.dispose();
    }
  }, 60_000);

  for (const [variant, name] of [
    [1, 'each K slice drops its last step'],
    [2, 'the edge columns (N % 16 packed, N % 8 small-M) are never written'],
  ] as const)
    it(`broken variant "${name}" fails every matmul case with M > 0`, async () => {
      const bad = new CpuOps({ threads: 2, nativeGemmVariant: variant });
      try {
        const r = await runOpsConformance(bad, { filter: f32Matmul, seed, inputChecks: false });
        // Every case's N is off the 16-column panel and the 8-lane vector, every K >= 3; M = 0 has
        // nothing to get wrong.
        const touched = r.results.filter((x) => !x.id.includes(' M0 '));
        expect(touched.length).toBe(21);
        for (const x of touched) expect(x.status, x.id).toBe('fail');
        expect(r.failedOps).toEqual(['matmul']);
      } finally {
        await bad.dispose();
      }
    }, 60_000);

  it('broken variant "the small-M path computes every row from row 0 of op(A)" fails exactly the cases with 2 <= M <= 8', async () => {
    const bad = new CpuOps({ threads: 2, nativeGemmVariant: 3 });
    try {
      const r = await runOpsConformance(bad, { filter: f32Matmul, seed, inputChecks: false });
      const smallM = r.results.filter((x) => caseM(x.id) >= 2 && caseM(x.id) <= 8);
      expect(smallM.length).toBe(17);
      for (const x of smallM) expect(x.status, x.id).toBe('fail');
      // M = 9, 17 run the packed gemm, which ignores this variant; M = 0 has nothing to get wrong.
      for (const x of r.results.filter((y) => !smallM.includes(y)))
        expect(x.status, x.id).toBe('pass');
    } finally {
      await bad.dispose();
    }
  }, 60_000);

  it('small-M path: the addon says which rows take it', () => {
    expect(nativeAddon()!.gemvMaxM).toBe(8);
  });

  it('small-M path: leaves the event loop free while it computes (above the sync size)', async () => {
    const o = ops[1]!;
    const [M, N, K] = [1, 16384, 1024]; // B: 64 MiB, a few ms from memory
    expect(M * N * K).toBeGreaterThan(NATIVE_SYNC_MACS);
    const out = o.alloc(M * N, 'float32');
    const a = o.alloc(M * K, 'float32');
    const b = o.alloc(K * N, 'float32');
    const ticks = await eventLoopTurnsDuring(() => o.matmul(out, a, b, M, N, K));
    expect(o.lastMatmulPath).toBe('native-gemv');
    expect(ticks).toBeGreaterThan(1);
    o.free(out);
    o.free(a);
    o.free(b);
  });

  it('leaves the event loop free while it computes (above the sync size)', async () => {
    const o = ops[1]!;
    const [M, N, K] = [1024, 768, 768];
    const out = o.alloc(M * N, 'float32');
    const a = o.alloc(M * K, 'float32');
    const b = o.alloc(K * N, 'float32');
    const ticks = await eventLoopTurnsDuring(() => o.matmul(out, a, b, M, N, K));
    expect(o.lastMatmulPath).toBe('native');
    expect(ticks).toBeGreaterThan(1);
  });

  it('bad input: OpsInputError from CpuOps, TypeErrors naming the argument from the addon', async () => {
    const o = ops[1]!;
    const x = o.alloc(12, 'float32');
    await expect(o.matmul(o.alloc(6, 'float32'), x, x, 2, 3, 5)).rejects.toBeInstanceOf(
      OpsInputError,
    );
    await expect(
      o.matmul(o.alloc(6, 'float32'), o.alloc(4, 'float32'), o.alloc(6, 'float32'), 2, 3, 2, {
        accumulate: true,
        bias: o.alloc(3, 'float32'),
      }),
    ).rejects.toBeInstanceOf(OpsInputError);
    const addon = nativeAddon()!;
    const good: NativeGemmArgs = {
      M: 2,
      N: 3,
      K: 4,
      transA: false,
      transB: true,
      accumulate: false,
      a: new Float32Array(8).fill(1),
      b: new Float32Array(new SharedArrayBuffer(48)).fill(2),
      c: new Float32Array(6),
      bias: new Float32Array([1, 2, 3]),
      threads: 2,
      variant: 0,
    };
    expect(await addon.gemm!(good)).toBe('gemv'); // the control: these arguments are accepted (M = 2)
    expect(Array.from(good.c)).toEqual([9, 10, 11, 9, 10, 11]);
    addon.gemmSync!({ ...good, bias: null });
    expect(Array.from(good.c)).toEqual([8, 8, 8, 8, 8, 8]);
    const wrong: Array<[string, Record<string, unknown> | null, RegExp]> = [
      ['no object', null, /expected an object/],
      ['M', { M: 2.5 }, /M: expected an integer/],
      ['K', { K: -1 }, /K: expected an integer/],
      ['transA', { transA: 1 }, /transA: expected a boolean/],
      ['accumulate', { accumulate: undefined }, /accumulate: expected a boolean/],
      ['a', { a: new Float64Array(8) }, /a: expected a Float32Array/],
      ['b', { b: new Float32Array(11) }, /b: expected K N = 12 elements, got 11/],
      ['c', { c: new Float32Array(7) }, /c: expected M N = 6 elements, got 7/],
      ['bias', { bias: new Float32Array(2) }, /bias: expected N = 3 elements, got 2/],
      ['bias + accumulate', { accumulate: true }, /bias: expected null with accumulate/],
      ['threads', { threads: 0 }, /threads: expected an integer in \[1, 256\]/],
      ['variant', { variant: 4 }, /variant: expected an integer in \[0, 3\]/],
    ];
    for (const fn of ['gemm', 'gemmSync'] as const)
      for (const [what, patch, message] of wrong) {
        const args = (patch === null ? null : { ...good, ...patch }) as unknown as NativeGemmArgs;
        expect(() => addon[fn]!(args), `${fn} ${what}`).toThrow(TypeError);
        expect(() => addon[fn]!(args), `${fn} ${what}`).toThrow(message);
      }
  });

  // The pool lives in the addon's per-environment instance data: a worker_thread gets its own and
  // joins it when the worker ends; a process whose pool threads are parked exits on its own.
  it('a worker_thread loads the addon and multiplies; processes exit with their pools parked', () => {
    const script = `
      const { createRequire } = require('node:module');
      const { Worker } = require('node:worker_threads');
      const path = ${JSON.stringify(info.path)};
      const run = (addon) => {
        const c = new Float32Array(512 * 300);
        const args = { M: 512, N: 300, K: 200, transA: false, transB: false, accumulate: false,
          a: new Float32Array(512 * 200).fill(0.5), b: new Float32Array(200 * 300).fill(2),
          c, bias: null, threads: 2, variant: 0 };
        return addon.gemm(args).then(() => c[0] + c[c.length - 1]);
      };
      const code = 'const { parentPort, workerData } = require("node:worker_threads");' +
        'const addon = require(workerData.path);' +
        '(' + run.toString() + ')(addon).then((s) => parentPort.postMessage(s));';
      const w = new Worker(code, { eval: true, workerData: { path } });
      w.on('message', (s) => {
        run(require(path)).then((m) => console.log('sums', s, m));
      });
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.error, 'the process exited on its own within 30 s').toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('sums 400 400');
  });

  // The worker's environment goes away while its pool threads multiply: the cleanup hook waits for the
  // run, the completion finds the environment closing, nothing crashes.
  it('worker_threads terminated during a call: no crash, the process goes on', () => {
    const script = `
      const { Worker } = require('node:worker_threads');
      const code = 'const { parentPort, workerData } = require("node:worker_threads");' +
        'const addon = require(workerData.path); const M = 1024, N = 1024, K = 1024;' +
        'addon.gemm({ M, N, K, transA: false, transB: false, accumulate: false,' +
        ' a: new Float32Array(M * K), b: new Float32Array(K * N), c: new Float32Array(M * N),' +
        ' bias: null, threads: 2, variant: 0 }); parentPort.postMessage("started");';
      const once = (i) => new Promise((res) => {
        const w = new Worker(code, { eval: true, workerData: { path: ${JSON.stringify(info.path)} } });
        w.on('message', () => setTimeout(() => w.terminate(), 3 * i));
        w.on('exit', res);
      });
      (async () => { for (let i = 0; i < 4; i++) await once(i); console.log('main alive'); })();
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.error, 'the process exited on its own within 30 s').toBeUndefined();
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('main alive');
  });

  // The second call finds the pool busy and goes through a libuv thread; the process must wait for both
  // (the first holds the event loop open until its promise settles, whichever ends first).
  it('two calls in flight at once: both settle before the process exits', () => {
    const script = `
      const addon = require(${JSON.stringify(info.path)});
      const call = (M) => {
        const args = { M, N: 512, K: 512, transA: false, transB: false, accumulate: false,
          a: new Float32Array(M * 512).fill(1), b: new Float32Array(512 * 512).fill(1),
          c: new Float32Array(M * 512), bias: null, threads: 2, variant: 0 };
        addon.gemm(args).then(() => console.log(M, args.c[0], args.c[args.c.length - 1]));
      };
      call(2048);
      call(64);
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.error, 'the process exited on its own within 30 s').toBeUndefined();
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n').sort()).toEqual(['2048 512 512', '64 512 512']);
  });
});

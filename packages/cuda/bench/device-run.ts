/**
 * Everything the H100 run does, in one bundle (see bench/README.md and BENCHMARKS.md):
 *   node device-run.mjs conformance [--matrix full|ci|smoke] [--filter S] [--seed N] [--deterministic] [--json F]
 *   node device-run.mjs sanitize        reduced case set (every head dim, causal and not, ragged) for compute-sanitizer
 *   node device-run.mjs bench [--json F] [--quick]   our kernels on the benchmark shapes (CUDA-event medians)
 *   node device-run.mjs memory [--json F]            extra device memory of forward+backward, B=1 H=16 D=128
 * The PyTorch peer (apps/bench/src/cuda-sdpa-peer.py) times the same shapes; cuda-report.mjs joins the two.
 */
import { writeFileSync } from 'node:fs';
import {
  attentionReference64,
  attentionReferenceBackward64,
  createRng,
  randomTensor,
  toFloat32,
  type DType,
} from '@flashattn/core';
import { formatCaseResult, runConformance, type MatrixName } from '@flashattn/conformance';
import { createCudaBackend, CudaTensor, type NativeBackward, type NativeForward } from '../src/index.js';
import { benchShapes, type BenchShape } from './shapes.js';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

async function conformance(args: string[]): Promise<number> {
  const matrix = (flag(args, 'matrix') ?? 'full') as MatrixName;
  const filter = flag(args, 'filter');
  const seed = Number(flag(args, 'seed') ?? 20261121);
  const backend = createCudaBackend({ deterministic: args.includes('--deterministic') });
  const report = await runConformance(backend, {
    matrix,
    seed,
    ...(filter ? { filter } : {}),
    onCase: (r) => {
      if (!r.pass) console.log(formatCaseResult(r));
    },
  });
  const worst = [...report.results].sort((a, b) => b.maxRatio - a.maxRatio)[0];
  console.log(
    `conformance ${backend.name} matrix=${matrix} filter=${filter ?? '-'} seed=${seed}: ${report.passed} passed, ` +
      `${report.failed} failed, ${report.skipped} skipped in ${(report.timeMs / 1000).toFixed(1)} s; worst err/naive ` +
      `${worst ? worst.maxRatio.toFixed(2) + ' (' + worst.case.id + ')' : '-'}`,
  );
  const out = flag(args, 'json');
  if (out) {
    writeFileSync(out, JSON.stringify(report.results.map((r) => ({ id: r.case.id, status: r.status, maxRatio: r.maxRatio, problems: r.problems })), null, 1));
  }
  await backend.dispose();
  return report.failed === 0 ? 0 : 1;
}

/** Small cases for compute-sanitizer: each head dim (and a padded one), causal and not, ragged lengths, GQA. */
async function sanitize(args: string[]): Promise<number> {
  const dtypes = (flag(args, 'dtypes') ?? 'float16,bfloat16').split(',') as DType[];
  const backend = createCudaBackend();
  const det = createCudaBackend({ deterministic: true });
  let bad = 0;
  const rng = createRng(7);
  for (const headDim of [32, 40, 64, 96, 128, 256]) {
    for (const causal of [false, true]) {
      for (const dtype of dtypes) {
        const [B, Nq, Nk, Hq, Hk] = [1, 77, 130, 2, 1];
        const q = randomTensor(rng, [B, Nq, Hq, headDim], dtype);
        const k = randomTensor(rng, [B, Nk, Hk, headDim], dtype);
        const v = randomTensor(rng, [B, Nk, Hk, headDim], dtype);
        const dO = randomTensor(rng, [B, Nq, Hq, headDim], dtype);
        const opts = { causal };
        const be = causal && dtype === 'bfloat16' ? det : backend;
        const f = await be.forward(q, k, v, opts);
        const g = await be.backward(dO, q, k, v, f.out, f.lse, opts);
        const ref = attentionReference64(q, k, v, opts);
        const refG = attentionReferenceBackward64(dO, q, k, v, f.out, f.lse, opts);
        const maxErr = (a: Float32Array, b: Float64Array): number => {
          let m = 0;
          for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
          return m;
        };
        const errs = {
          out: maxErr(toFloat32(f.out), ref.out),
          dq: maxErr(toFloat32(g.dq), refG.dq),
          dk: maxErr(toFloat32(g.dk), refG.dk),
          dv: maxErr(toFloat32(g.dv), refG.dv),
        };
        // Loose sanity bound only (the conformance suite applies the real tolerance rule).
        const ok = Object.values(errs).every((e) => Number.isFinite(e) && e < 0.25);
        if (!ok) bad++;
        console.log(
          `sanitize d=${headDim} causal=${causal} ${dtype}${be === det ? ' det' : ''}: ${Object.entries(errs).map(([k2, e]) => `${k2} ${e.toExponential(2)}`).join(' ')} ${ok ? 'ok' : 'BAD'}`,
        );
      }
    }
  }
  await backend.dispose();
  await det.dispose();
  console.log(`sanitize cases done: ${bad} bad`);
  return bad === 0 ? 0 : 1;
}

const DT_ID: Record<string, number> = { float16: 1, bfloat16: 2 };

/** FA convention: fwd = 4 B H Nq Nk D (halved when causal), bwd = 2.5 x fwd. */
export function flops(s: BenchShape): { fwd: number; bwd: number } {
  const f = (4 * s.batch * s.nheads * s.seqlen * s.seqlen * s.headDim) / (s.causal ? 2 : 1);
  return { fwd: f, bwd: 2.5 * f };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

async function bench(args: string[]): Promise<number> {
  const backend = createCudaBackend();
  const addon = backend.addon;
  const dev = backend.device;
  const only = flag(args, 'only'); // e.g. 'D=128,N=8192,causal=false' for profiling one shape
  const shapes = benchShapes(args.includes('--quick')).filter(
    (s) => !only || only.split(',').every((kv) => String((({ D: s.headDim, N: s.seqlen, causal: s.causal }) as Record<string, unknown>)[kv.split('=')[0]!]) === kv.split('=')[1]),
  );
  const maxElems = Math.max(...shapes.map((s) => s.batch * s.seqlen * s.nheads * s.headDim));
  // One random fp32 pool on the device; q, k, v, dO are converted from shifted windows of it.
  const shifts = [0, 1_000_003, 2_000_029, 3_000_017];
  const poolLen = maxElems + shifts[3]!;
  const rng = createRng(1234);
  const host = new Float32Array(poolLen);
  for (let i = 0; i < poolLen; i++) host[i] = rng.normal();
  const pool = addon.malloc(dev, poolLen * 4);
  await addon.memcpy(dev, pool, host, true);
  const results: Record<string, unknown>[] = [];
  const iters = Number(flag(args, 'iters') ?? 20);
  for (const dtype of (flag(args, 'dtypes') ?? 'bfloat16,float16').split(',')) {
    const bufs = shifts.map(() => addon.malloc(dev, maxElems * 2));
    shifts.forEach((sh, i) =>
      addon.convert(dev, { src: pool + BigInt(sh * 4), srcDtype: 0, dst: bufs[i]!, dstDtype: DT_ID[dtype]!, rows: maxElems / 64, srcCols: 64, dstCols: 64 }),
    );
    const [q, k, v, dO] = bufs as [bigint, bigint, bigint, bigint];
    for (const s of shapes) {
      const n = s.batch * s.seqlen * s.nheads * s.headDim;
      const out = addon.malloc(dev, n * 2);
      const lse = addon.malloc(dev, s.batch * s.nheads * s.seqlen * 4);
      const grads = [addon.malloc(dev, n * 2), addon.malloc(dev, n * 2), addon.malloc(dev, n * 2)] as const;
      const shape = {
        dtype: DT_ID[dtype]!, batch: s.batch, nheadsQ: s.nheads, nheadsK: s.nheads, seqlenQ: s.seqlen, seqlenK: s.seqlen,
        headDim: s.headDim, softmaxScale: 1 / Math.sqrt(s.headDim), windowLeft: -1, windowRight: s.causal ? 0 : -1,
      };
      const fp: NativeForward = { ...shape, q, k, v, out, lse };
      const bp: NativeBackward = { ...shape, q, k, v, out, dout: dO, lse, dq: grads[0], dk: grads[1], dv: grads[2], deterministic: false };
      const warm = 3;
      const bwdOnly = args.includes('--bwd-only');
      const fwd = bwdOnly ? NaN : median(await addon.benchmark(dev, fp, null, warm, iters));
      if (bwdOnly) await addon.benchmark(dev, fp, null, 0, 1); // out and lse for the backward
      const bwd = median(await addon.benchmark(dev, null, bp, warm, iters));
      const both = bwdOnly ? NaN : median(await addon.benchmark(dev, fp, bp, warm, iters));
      const fl = flops(s);
      const row = {
        impl: 'ours', dtype, ...s,
        fwdMs: fwd, bwdMs: bwd, fwdbwdMs: both,
        fwdTflops: fl.fwd / fwd / 1e9, bwdTflops: fl.bwd / bwd / 1e9, fwdbwdTflops: (fl.fwd + fl.bwd) / both / 1e9,
      };
      results.push(row);
      console.log(
        `ours ${dtype} D=${s.headDim} causal=${s.causal} B=${s.batch} N=${s.seqlen} H=${s.nheads}: fwd ${row.fwdTflops.toFixed(1)} bwd ${row.bwdTflops.toFixed(1)} fwd+bwd ${row.fwdbwdTflops.toFixed(1)} TFLOP/s`,
      );
      for (const p of [out, lse, ...grads]) addon.free(dev, p);
    }
    for (const b of bufs) addon.free(dev, b);
  }
  addon.free(dev, pool);
  await addon.synchronize(dev);
  const outFile = flag(args, 'json');
  if (outFile) writeFileSync(outFile, JSON.stringify({ device: backend.deviceInfo, results }, null, 1));
  await backend.dispose();
  return 0;
}

/** Extra device memory of forward + backward (outputs and workspace, not the inputs q, k, v, dO). */
async function memory(args: string[]): Promise<number> {
  const backend = createCudaBackend();
  const addon = backend.addon;
  const dev = backend.device;
  const rows: Record<string, number>[] = [];
  for (const seqlen of [16384, 65536]) {
    const [B, H, D] = [1, 16, 128];
    const n = B * seqlen * H * D;
    const rng = createRng(5);
    const host = new Float32Array(n + 7);
    for (let i = 0; i < host.length; i++) host[i] = rng.normal();
    const raw = addon.malloc(dev, host.length * 4);
    await addon.memcpy(dev, raw, host, true);
    const mk = (shift: number): CudaTensor => {
      const p = addon.malloc(dev, n * 2);
      addon.convert(dev, { src: raw + BigInt(shift * 4), srcDtype: 0, dst: p, dstDtype: 2, rows: n / D, srcCols: D, dstCols: D });
      return new CudaTensor(addon, dev, p, 'bfloat16', [B, seqlen, H, D]);
    };
    const [q, k, v, dO] = [mk(0), mk(1), mk(3), mk(7)];
    addon.free(dev, raw);
    await addon.synchronize(dev);
    const [base] = addon.memPoolUsage(dev, true);
    const f = await backend.forward(q, k, v, { causal: false });
    const g = await backend.backward(dO, q, k, v, f.out, f.lse, { causal: false });
    await addon.synchronize(dev);
    const [, high] = addon.memPoolUsage(dev, false);
    const extra = high - base;
    const inputs = 4 * n * 2;
    rows.push({ seqlen, extraBytes: extra, inputBytes: inputs, extraPerToken: extra / seqlen });
    console.log(`memory B=${B} H=${H} D=${D} N=${seqlen}: inputs ${(inputs / 2 ** 20).toFixed(0)} MiB, extra fwd+bwd ${(extra / 2 ** 20).toFixed(1)} MiB (${(extra / seqlen).toFixed(0)} B/token)`);
    for (const t of [q, k, v, dO, f.out, f.lse, g.dq, g.dk, g.dv]) t.dispose();
    await addon.synchronize(dev);
  }
  const outFile = flag(args, 'json');
  if (outFile) writeFileSync(outFile, JSON.stringify(rows, null, 1));
  await backend.dispose();
  return 0;
}

/** The GPU checks of src/backend.test.ts, runnable without vitest on the device machine. */
async function selftest(): Promise<number> {
  let failed = 0;
  const check = (name: string, ok: boolean, detail = ''): void => {
    if (!ok) failed++;
    console.log(`selftest ${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ': ' + detail : ''}`);
  };
  const be = createCudaBackend();
  const rng = createRng(11);
  // device tensors: upload with conversion, forward/backward on the device, download
  {
    const [B, N, H, D] = [1, 200, 2, 64];
    const q = randomTensor(rng, [B, N, H, D], 'float32');
    const k = randomTensor(rng, [B, N, H, D], 'float32');
    const v = randomTensor(rng, [B, N, H, D], 'float32');
    const [qd, kd, vd] = await Promise.all([be.upload(q, 'bfloat16'), be.upload(k, 'bfloat16'), be.upload(v, 'bfloat16')]);
    const { out, lse } = await be.forward(qd, kd, vd, { causal: true });
    const host = toFloat32(await be.download(out, 'float32'));
    const ref = attentionReference64(q, k, v, { causal: true });
    let err = 0;
    for (let i = 0; i < host.length; i++) err = Math.max(err, Math.abs(host[i]! - ref.out[i]!));
    check('device tensors forward vs float64 oracle (bf16)', err < 0.05, `max err ${err.toExponential(2)}`);
    const g = await be.backward(out, qd, kd, vd, out, lse, { causal: true });
    check('device tensors backward shapes', g.dk.shape.join() === [B, N, H, D].join() && g.dq.dtype === 'bfloat16');
    for (const t of [qd, kd, vd, out, lse, g.dq, g.dk, g.dv]) t.dispose();
  }
  // out of memory -> BackendOutOfMemoryError, and the backend keeps working
  {
    let name = '';
    try {
      await be.upload({ dtype: 'float16', shape: [1 << 16, 1 << 16, 8, 64], data: new Uint16Array(0) } as never);
    } catch (e) {
      name = (e as Error).constructor.name + ': ' + (e as Error).message.slice(0, 90);
    }
    check('OOM becomes BackendOutOfMemoryError', name.startsWith('BackendOutOfMemoryError'), name);
    const q = randomTensor(rng, [1, 8, 1, 32], 'float16');
    const r = await be.forward(q, q, q);
    check('backend usable after OOM', r.out.shape.join() === '1,8,1,32');
  }
  // bad shapes -> AttentionInputError
  {
    const q = randomTensor(rng, [1, 8, 1, 300], 'float16');
    let name = '';
    await be.forward(q, q, q).catch((e: Error) => (name = e.constructor.name));
    check('head dim 300 -> AttentionInputError', name === 'AttentionInputError', name);
  }
  // deterministic mode: bit-identical dQ
  {
    const det = createCudaBackend({ deterministic: true });
    const [B, N, H, D] = [1, 700, 2, 64];
    const q = randomTensor(rng, [B, N, H, D], 'bfloat16');
    const k = randomTensor(rng, [B, N, H, D], 'bfloat16');
    const v = randomTensor(rng, [B, N, H, D], 'bfloat16');
    const dO = randomTensor(rng, [B, N, H, D], 'bfloat16');
    const f = await det.forward(q, k, v);
    const a = await det.backward(dO, q, k, v, f.out, f.lse);
    const b = await det.backward(dO, q, k, v, f.out, f.lse);
    let same = true;
    for (let i = 0; i < a.dq.data.length; i++) if (a.dq.data[i] !== b.dq.data[i]) same = false;
    check('deterministic: dQ bit-identical across runs', same);
    await det.dispose();
  }
  // long call does not block the event loop
  {
    const [B, N, H, D] = [1, 16384, 16, 128];
    const n = B * N * H * D;
    const buf = be.addon.malloc(be.device, n * 2 * 4);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = performance.now();
    const shape = { dtype: 2, batch: B, nheadsQ: H, nheadsK: H, seqlenQ: N, seqlenK: N, headDim: D, softmaxScale: 0.088, windowLeft: -1, windowRight: -1 };
    const lse = be.addon.malloc(be.device, B * H * N * 4);
    const p = be.addon.benchmark(be.device, { ...shape, q: buf, k: buf + BigInt(n * 2), v: buf + BigInt(n * 4), out: buf + BigInt(n * 6), lse }, null, 0, 20);
    await p;
    clearInterval(timer);
    const ms = performance.now() - t0;
    check('event loop keeps running during GPU work', ticks > ms / 10, `${ticks} timer ticks in ${ms.toFixed(0)} ms`);
    be.addon.free(be.device, buf);
    be.addon.free(be.device, lse);
  }
  // dispose() returns the pool's cached memory: a 1 GiB buffer freed, the backend disposed -> reserved drops
  {
    const tmp = createCudaBackend();
    const big = tmp.addon.malloc(tmp.device, 1 << 30);
    tmp.addon.free(tmp.device, big);
    await tmp.synchronize();
    const [, , before] = tmp.addon.memPoolUsage(tmp.device, false);
    await tmp.dispose();
    const [, , after] = tmp.addon.memPoolUsage(tmp.device, false);
    check('dispose() returns the pool\'s cached memory', before - after >= 1 << 30,
      `reserved ${(before / 2 ** 20).toFixed(0)} -> ${(after / 2 ** 20).toFixed(0)} MiB`);
  }
  await be.dispose();
  console.log(`selftest: ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

const [mode, ...rest] = process.argv.slice(2);
const modes: Record<string, (a: string[]) => Promise<number>> = { conformance, sanitize, bench, memory, selftest: () => selftest() };
const run = mode ? modes[mode] : undefined;
if (!run) {
  console.error(`usage: device-run.mjs ${Object.keys(modes).join('|')} [options]`);
  process.exit(2);
}
run(rest).then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);

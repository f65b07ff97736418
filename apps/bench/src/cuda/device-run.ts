/**
 * Everything the GPU run of @flashattn/cuda does, in one bundle (see device.sh and BENCHMARKS.md):
 *   node device-run.mjs conformance [--matrix full|ci|smoke] [--filter S] [--seed N] [--deterministic]
 *                                   [--device contiguous|padded|packed|packed8|padded8] [--json F]
 *                                   [--f32] [--fault drop-last-key-block]
 *       host-tensor AttentionBackend by default; --device LAYOUT runs the same matrix on createCudaDevice()'s
 *       strided DeviceAttention with conformance's layouts (contiguous, padded, packed) or the 16-byte aligned
 *       ones whose views the kernels read in place (packed8, padded8: conformance's layouts with align 8).
 *       --f32: float32ComputeDType 'float32' (the float32 FMA kernels; float32 cases get float32's tolerance).
 *       --fault F (with --f32): the deliberately broken float32 kernel; the run succeeds (exit 0) only when some
 *       case fails, and prints "fault F: N failed (must be > 0)".
 *   node device-run.mjs sanitize [--dtypes ...]  reduced host case set (every head dim, causal and not, ragged)
 *   node device-run.mjs sanitize-device          small strided fwd + bwd (packed8, padded8, packed) for memcheck
 *   node device-run.mjs bench [--json F] [--quick] [--seqlens 4096] [--dtypes bfloat16] [--layouts contiguous,packed]
 *                             [--shape B,N,H,D,causal]
 *       our kernels on the benchmark shapes (CUDA-event medians); layout packed = q, k, v read from one
 *       (B, T, 3, H, D) buffer and dq, dk, dv written into one, through the strides. --dtypes float32 times the
 *       float32 FMA kernels; --shape 4,1024,12,64,1 one shape instead (GPT-2 124M's attention at B = 4, T = 1024)
 *   node device-run.mjs memory [--json F]        extra device memory of forward+backward, B=1 H=16 D=128
 *   node device-run.mjs selftest                 the GPU checks of the package tests, without vitest
 *   node device-run.mjs ops-conformance | ops-sanitize | ops-graphs | ops-bench   CudaOps (the training ops): see ops-run.ts
 *   node device-run.mjs inference | inference-sanitize | inference-gpt2 | decode-bench   the inference kernels
 *       (KV cache, split-KV, varlen, GPT-2 cached generation; issue #12): see decode-run.ts
 * The PyTorch peer (apps/bench/src/cuda-sdpa-peer.py) times the same shapes; report.mjs joins the two.
 */
import { writeFileSync } from 'node:fs';
import {
  attentionReference64,
  attentionReferenceBackward64,
  createRng,
  randomTensor,
  toFloat32,
  type AttentionBackend,
  type DType,
} from '@flashattn/core';
import {
  deviceAttentionBackend,
  formatCaseResult,
  runConformance,
  type DeviceLayout,
  type MatrixName,
} from '@flashattn/conformance';
import {
  createCudaBackend,
  createCudaDevice,
  CudaTensor,
  type CudaBackendOptions,
} from '@flashattn/cuda';
import {
  convertRows,
  loadAddon,
  memcpyHost,
  type CudaAddon,
  type NativeBackward,
  type NativeForward,
  type NativeStrides,
} from '@flashattn/cuda/native';
import {
  decodeBench,
  inferenceConformance,
  inferenceGpt2,
  inferenceSanitize,
} from './decode-run.js';
import { opsBench, opsConformance, opsGraphs, opsSanitize } from './ops-run.js';
import { benchShapes, type BenchShape } from './shapes.js';

/**
 * packed8 / padded8: conformance's packed and padded layouts with every gap and offset a multiple of 8
 * elements, so the kernels' 16-byte row loads read the views in place (the odd default layouts go through
 * the staging copies).
 */
function alignedDeviceBackend(
  dev: ReturnType<typeof createCudaDevice>,
  layout: 'packed8' | 'padded8',
): AttentionBackend {
  return deviceAttentionBackend(dev, {
    layout: layout === 'packed8' ? 'packed' : 'padded',
    align: 8,
    name: `cuda-device [${layout}]`,
  });
}

function addon(): CudaAddon {
  const load = loadAddon();
  if (!load.addon) throw new Error(load.reason);
  return load.addon;
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

async function conformance(args: string[]): Promise<number> {
  const matrix = (flag(args, 'matrix') ?? 'full') as MatrixName;
  const filter = flag(args, 'filter');
  const seed = Number(flag(args, 'seed') ?? 20261121);
  const deterministic = args.includes('--deterministic');
  const layout = flag(args, 'device');
  const fault = flag(args, 'fault') as CudaBackendOptions['testFault'];
  const f32: CudaBackendOptions = args.includes('--f32')
    ? { float32ComputeDType: 'float32', ...(fault ? { testFault: fault } : {}) }
    : {};
  let backend: AttentionBackend;
  let close = async (): Promise<void> => undefined;
  if (layout) {
    const dev = createCudaDevice({ deterministic, ...f32 });
    close = () => dev.dispose();
    backend =
      layout === 'packed8' || layout === 'padded8'
        ? alignedDeviceBackend(dev, layout)
        : deviceAttentionBackend(dev, { layout: layout as DeviceLayout });
  } else {
    backend = createCudaBackend({ deterministic, ...f32 });
  }
  const report = await runConformance(backend, {
    matrix,
    seed,
    ...(filter ? { filter } : {}),
    onCase: (r) => {
      // one line per case as it finishes, so a run cut off by a time limit still says what passed
      console.log(
        `case ${r.status} ${r.case.id} ${Number.isFinite(r.maxRatio) ? r.maxRatio.toFixed(2) : r.maxRatio}`,
      );
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
    writeFileSync(
      out,
      JSON.stringify(
        report.results.map((r) => ({
          id: r.case.id,
          status: r.status,
          maxRatio: r.maxRatio,
          problems: r.problems,
        })),
        null,
        1,
      ),
    );
  }
  await backend.dispose();
  await close();
  if (fault) {
    console.log(`fault ${fault}: ${report.failed} failed (must be > 0)`);
    return report.failed > 0 ? 0 : 1;
  }
  return report.failed === 0 ? 0 : 1;
}

/** Small strided forward + backward through createCudaDevice() for compute-sanitizer (conformance smoke cases). */
async function sanitizeDevice(): Promise<number> {
  const dev = createCudaDevice();
  let failed = 0;
  const layouts: [string, AttentionBackend][] = [
    ['packed8', alignedDeviceBackend(dev, 'packed8')],
    ['padded8', alignedDeviceBackend(dev, 'padded8')],
    ['packed', deviceAttentionBackend(dev, { layout: 'packed' })],
  ];
  for (const [name, backend] of layouts) {
    const report = await runConformance(backend, { matrix: 'smoke', seed: 7 });
    failed += report.failed;
    console.log(`sanitize-device ${name}: ${report.passed} passed, ${report.failed} failed`);
  }
  await dev.dispose();
  console.log(`sanitize-device cases done: ${failed} bad`);
  return failed === 0 ? 0 : 1;
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
          `sanitize d=${headDim} causal=${causal} ${dtype}${be === det ? ' det' : ''}: ${Object.entries(
            errs,
          )
            .map(([k2, e]) => `${k2} ${e.toExponential(2)}`)
            .join(' ')} ${ok ? 'ok' : 'BAD'}`,
        );
      }
    }
  }
  await backend.dispose();
  await det.dispose();
  console.log(`sanitize cases done: ${bad} bad`);
  return bad === 0 ? 0 : 1;
}

const DT_ID: Record<string, number> = { float32: 0, float16: 1, bfloat16: 2 };

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
  const A = addon();
  const dev = backend.device;
  const only = flag(args, 'only'); // e.g. 'D=128,N=8192,causal=false' for profiling one shape
  const seqlens = flag(args, 'seqlens')?.split(',').map(Number);
  const layouts = (flag(args, 'layouts') ?? 'contiguous').split(',');
  const one = flag(args, 'shape')?.split(',').map(Number);
  const shapes = (
    one
      ? [
          {
            batch: one[0]!,
            seqlen: one[1]!,
            nheads: one[2]!,
            headDim: one[3]!,
            causal: one[4] === 1,
          },
        ]
      : benchShapes(args.includes('--quick'), seqlens)
  ).filter(
    (s) =>
      !only ||
      only
        .split(',')
        .every(
          (kv) =>
            String(
              ({ D: s.headDim, N: s.seqlen, causal: s.causal } as Record<string, unknown>)[
                kv.split('=')[0]!
              ],
            ) === kv.split('=')[1],
        ),
  );
  const maxElems = Math.max(...shapes.map((s) => s.batch * s.seqlen * s.nheads * s.headDim));
  // One random fp32 pool on the device; every 16-bit operand is converted from a shifted window of it.
  const shifts = [0, 1_000_003, 2_000_029, 3_000_017];
  const poolLen = 3 * maxElems + shifts[3]!;
  const rng = createRng(1234);
  const host = new Float32Array(poolLen);
  for (let i = 0; i < poolLen; i++) host[i] = rng.normal();
  const pool = A.malloc(dev, poolLen * 4);
  await memcpyHost(A, dev, pool, host, true);
  const fill = (dst: bigint, n: number, shift: number, dt: number): void =>
    convertRows(A, dev, {
      src: pool + BigInt(shift * 4),
      srcDtype: 0,
      dst,
      dstDtype: dt,
      rows: n / 64,
      srcCols: 64,
      dstCols: 64,
    });
  const results: Record<string, unknown>[] = [];
  const iters = Number(flag(args, 'iters') ?? 20);
  for (const dtype of (flag(args, 'dtypes') ?? 'bfloat16,float16').split(',')) {
    const dt = DT_ID[dtype]!;
    const eb = dt === 0 ? 4 : 2; // bytes per element
    for (const layout of layouts) {
      for (const s of shapes) {
        const n = s.batch * s.seqlen * s.nheads * s.headDim;
        const C = s.nheads * s.headDim;
        const owned: bigint[] = [];
        const malloc = (bytes: number): bigint => {
          const p = A.malloc(dev, bytes);
          owned.push(p);
          return p;
        };
        const out = malloc(n * eb);
        const dO = malloc(n * eb);
        const lse = malloc(s.batch * s.nheads * s.seqlen * 4);
        fill(dO, n, shifts[3]!, dt);
        let ops: Pick<
          NativeBackward,
          | 'q'
          | 'k'
          | 'v'
          | 'dq'
          | 'dk'
          | 'dv'
          | 'qStrides'
          | 'kStrides'
          | 'vStrides'
          | 'dqStrides'
          | 'dkStrides'
          | 'dvStrides'
        >;
        if (layout === 'packed') {
          // GPT-2's qkv: (B, T, 3, H, D), row stride 3C, head stride D; the gradient likewise.
          const qkv = malloc(3 * n * eb);
          const dqkv = malloc(3 * n * eb);
          fill(qkv, 3 * n, shifts[1]!, dt);
          const st: NativeStrides = [s.seqlen * 3 * C, 3 * C, s.headDim];
          const at = (p: bigint, i: number): bigint => p + BigInt(i * C * eb);
          ops = {
            q: at(qkv, 0),
            k: at(qkv, 1),
            v: at(qkv, 2),
            dq: at(dqkv, 0),
            dk: at(dqkv, 1),
            dv: at(dqkv, 2),
            qStrides: st,
            kStrides: st,
            vStrides: st,
            dqStrides: st,
            dkStrides: st,
            dvStrides: st,
          };
        } else {
          const [q, k, v] = [malloc(n * eb), malloc(n * eb), malloc(n * eb)];
          shifts.slice(0, 3).forEach((sh, i) => fill([q, k, v][i]!, n, sh, dt));
          ops = { q, k, v, dq: malloc(n * eb), dk: malloc(n * eb), dv: malloc(n * eb) };
        }
        const shape = {
          dtype: dt,
          batch: s.batch,
          nheadsQ: s.nheads,
          nheadsK: s.nheads,
          seqlenQ: s.seqlen,
          seqlenK: s.seqlen,
          headDim: s.headDim,
          softmaxScale: 1 / Math.sqrt(s.headDim),
          windowLeft: -1,
          windowRight: s.causal ? 0 : -1,
        };
        const fp: NativeForward = {
          ...shape,
          q: ops.q,
          k: ops.k,
          v: ops.v,
          out,
          lse,
          ...(ops.qStrides
            ? { qStrides: ops.qStrides, kStrides: ops.kStrides!, vStrides: ops.vStrides! }
            : {}),
        };
        const bp: NativeBackward = { ...shape, ...ops, out, dout: dO, lse, deterministic: false };
        const warm = 3;
        const bwdOnly = args.includes('--bwd-only');
        const fwd = bwdOnly ? NaN : median(await A.benchmark(dev, fp, null, warm, iters));
        if (bwdOnly) await A.benchmark(dev, fp, null, 0, 1); // out and lse for the backward
        const bwd = median(await A.benchmark(dev, null, bp, warm, iters));
        const both = bwdOnly ? NaN : median(await A.benchmark(dev, fp, bp, warm, iters));
        const fl = flops(s);
        const row = {
          impl: layout === 'contiguous' ? 'ours' : `ours-${layout}`,
          dtype,
          layout,
          ...s,
          fwdMs: fwd,
          bwdMs: bwd,
          fwdbwdMs: both,
          fwdTflops: fl.fwd / fwd / 1e9,
          bwdTflops: fl.bwd / bwd / 1e9,
          fwdbwdTflops: (fl.fwd + fl.bwd) / both / 1e9,
        };
        results.push(row);
        console.log(
          `${row.impl} ${dtype} D=${s.headDim} causal=${s.causal} B=${s.batch} N=${s.seqlen} H=${s.nheads}: fwd ${row.fwdTflops.toFixed(1)} bwd ${row.bwdTflops.toFixed(1)} fwd+bwd ${row.fwdbwdTflops.toFixed(1)} TFLOP/s`,
        );
        for (const p of owned) A.free(dev, p);
      }
    }
  }
  A.free(dev, pool);
  await A.synchronize(dev);
  const outFile = flag(args, 'json');
  if (outFile)
    writeFileSync(outFile, JSON.stringify({ device: backend.deviceInfo, results }, null, 1));
  await backend.dispose();
  return 0;
}

/** Extra device memory of forward + backward (outputs and workspace, not the inputs q, k, v, dO). */
async function memory(args: string[]): Promise<number> {
  const backend = createCudaBackend();
  const A = addon();
  const dev = backend.device;
  const rows: Record<string, number>[] = [];
  for (const seqlen of [16384, 65536]) {
    const [B, H, D] = [1, 16, 128];
    const n = B * seqlen * H * D;
    const rng = createRng(5);
    const host = new Float32Array(n + 7);
    for (let i = 0; i < host.length; i++) host[i] = rng.normal();
    const raw = A.malloc(dev, host.length * 4);
    await memcpyHost(A, dev, raw, host, true);
    const mk = (shift: number): CudaTensor => {
      const p = A.malloc(dev, n * 2);
      convertRows(A, dev, {
        src: raw + BigInt(shift * 4),
        srcDtype: 0,
        dst: p,
        dstDtype: 2,
        rows: n / D,
        srcCols: D,
        dstCols: D,
      });
      return new CudaTensor(A, dev, p, 'bfloat16', [B, seqlen, H, D]);
    };
    const [q, k, v, dO] = [mk(0), mk(1), mk(3), mk(7)];
    A.free(dev, raw);
    await A.synchronize(dev);
    const [base] = A.memPoolUsage(dev, true);
    const f = await backend.forward(q, k, v, { causal: false });
    const g = await backend.backward(dO, q, k, v, f.out, f.lse, { causal: false });
    await A.synchronize(dev);
    const [, high] = A.memPoolUsage(dev, false);
    const extra = high - base;
    const inputs = 4 * n * 2;
    rows.push({ seqlen, extraBytes: extra, inputBytes: inputs, extraPerToken: extra / seqlen });
    console.log(
      `memory B=${B} H=${H} D=${D} N=${seqlen}: inputs ${(inputs / 2 ** 20).toFixed(0)} MiB, extra fwd+bwd ${(extra / 2 ** 20).toFixed(1)} MiB (${(extra / seqlen).toFixed(0)} B/token)`,
    );
    for (const t of [q, k, v, dO, f.out, f.lse, g.dq, g.dk, g.dv]) t.dispose();
    await A.synchronize(dev);
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
    const [qd, kd, vd] = await Promise.all([
      be.upload(q, 'bfloat16'),
      be.upload(k, 'bfloat16'),
      be.upload(v, 'bfloat16'),
    ]);
    const { out, lse } = await be.forward(qd, kd, vd, { causal: true });
    const host = toFloat32(await be.download(out, 'float32'));
    const ref = attentionReference64(q, k, v, { causal: true });
    let err = 0;
    for (let i = 0; i < host.length; i++) err = Math.max(err, Math.abs(host[i]! - ref.out[i]!));
    check(
      'device tensors forward vs float64 oracle (bf16)',
      err < 0.05,
      `max err ${err.toExponential(2)}`,
    );
    const g = await be.backward(out, qd, kd, vd, out, lse, { causal: true });
    check(
      'device tensors backward shapes',
      g.dk.shape.join() === [B, N, H, D].join() && g.dq.dtype === 'bfloat16',
    );
    for (const t of [qd, kd, vd, out, lse, g.dq, g.dk, g.dv]) t.dispose();
  }
  // out of memory -> BackendOutOfMemoryError, and the backend keeps working
  {
    let name = '';
    try {
      await be.upload({
        dtype: 'float16',
        shape: [1 << 16, 1 << 16, 8, 64],
        data: new Uint16Array(0),
      } as never);
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
    const buf = addon().malloc(be.device, n * 2 * 4);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = performance.now();
    const shape = {
      dtype: 2,
      batch: B,
      nheadsQ: H,
      nheadsK: H,
      seqlenQ: N,
      seqlenK: N,
      headDim: D,
      softmaxScale: 0.088,
      windowLeft: -1,
      windowRight: -1,
    };
    const lse = addon().malloc(be.device, B * H * N * 4);
    const p = addon().benchmark(
      be.device,
      {
        ...shape,
        q: buf,
        k: buf + BigInt(n * 2),
        v: buf + BigInt(n * 4),
        out: buf + BigInt(n * 6),
        lse,
      },
      null,
      0,
      20,
    );
    await p;
    clearInterval(timer);
    const ms = performance.now() - t0;
    check(
      'event loop keeps running during GPU work',
      ticks > ms / 10,
      `${ticks} timer ticks in ${ms.toFixed(0)} ms`,
    );
    addon().free(be.device, buf);
    addon().free(be.device, lse);
  }
  // dispose() returns the pool's cached memory: a 1 GiB buffer freed, the backend disposed -> reserved drops
  {
    const tmp = createCudaBackend();
    const big = addon().malloc(tmp.device, 1 << 30);
    addon().free(tmp.device, big);
    await tmp.synchronize();
    const [, , before] = addon().memPoolUsage(tmp.device, false);
    await tmp.dispose();
    const [, , after] = addon().memPoolUsage(tmp.device, false);
    check(
      "dispose() returns the pool's cached memory",
      before - after >= 1 << 30,
      `reserved ${(before / 2 ** 20).toFixed(0)} -> ${(after / 2 ** 20).toFixed(0)} MiB`,
    );
  }
  // createCudaDevice(): host inputs of every kind are copied or rejected with a typed error, never a crash;
  // an oversized allocation is BackendOutOfMemoryError and the device stays usable.
  {
    const dev = createCudaDevice();
    const b = dev.alloc(6, 'bfloat16');
    const shared = new Float32Array(new SharedArrayBuffer(32), 4, 6);
    shared.set([1, 2, 3, 4, 5, 6]);
    await dev.upload(b, shared);
    const bits = Array.from((await dev.download(b)) as Uint16Array);
    check(
      'device upload of a SharedArrayBuffer-backed Float32Array',
      bits.join() === [0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0x40c0].join(),
      bits.map((x) => x.toString(16)).join(' '),
    );
    const errs: string[] = [];
    for (const bad of [new Float32Array(5), new Int32Array(6), new Uint8Array(6), [1, 2], null]) {
      await dev
        .upload(b, bad as unknown as Float32Array)
        .catch((e: Error) => errs.push(e.constructor.name));
    }
    check(
      'bad host inputs -> OpsInputError',
      errs.length === 5 && errs.every((e) => e === 'OpsInputError'),
      errs.join(' '),
    );
    let oom = '';
    try {
      dev.alloc(2 ** 44, 'float32');
    } catch (e) {
      oom = (e as Error).constructor.name;
    }
    check(
      'device alloc of 64 TiB -> BackendOutOfMemoryError',
      oom === 'BackendOutOfMemoryError',
      oom,
    );
    const c = dev.alloc(3, 'float32');
    await dev.upload(c, new Float32Array([1, 2, 3]));
    check(
      'device usable after OOM',
      Array.from((await dev.download(c)) as Float32Array).join() === '1,2,3',
    );
    await dev.dispose();
  }
  await be.dispose();
  console.log(`selftest: ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

const [mode, ...rest] = process.argv.slice(2);
const modes: Record<string, (a: string[]) => Promise<number>> = {
  conformance,
  sanitize,
  'sanitize-device': () => sanitizeDevice(),
  bench,
  memory,
  selftest: () => selftest(),
  'ops-conformance': opsConformance,
  'ops-sanitize': opsSanitize,
  'ops-graphs': opsGraphs,
  'ops-bench': opsBench,
  inference: inferenceConformance,
  'inference-sanitize': () => inferenceSanitize(),
  'inference-gpt2': () => inferenceGpt2(),
  'decode-bench': decodeBench,
};
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

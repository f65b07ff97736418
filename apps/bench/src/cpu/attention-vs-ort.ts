/**
 * CPU attention and matmul against onnxruntime-node, same process, same thread count, alternating
 * (every round runs each implementation once, in turn), medians of the rounds.
 *
 *   ours   @flashattn/cpu CpuOps: FlashAttention-2 forward/backward, (B, N, H, D): the forward native
 *          (AVX2 + FMA addon) where it is built and the CPU has both, else wasm SIMD; the backward wasm
 *   wasm   the same CpuOps with native: false (the wasm SIMD forward), in the forward rows where the
 *          native forward runs, so both are measured in the same rounds
 *   mha    com.microsoft MultiHeadAttention, (B, N, H*D)          (forward only: ORT has no training)
 *   plain  the exported MatMul-Softmax-MatMul graph, (B, H, N, D) (its gradient graph for the backward)
 *   attn23 opset 23 Attention, (B, H, N, D)
 * The ONNX models are built in onnx-model.ts. GFLOP/s count 4 B H N^2 D per forward (half under a causal
 * mask) and 2.5x that per backward, whatever an implementation actually does.
 *
 * Run (repo root, after `npx -y pnpm@10.34.8 --filter @flashattn/bench... build`):
 *   node apps/bench/dist/cpu/attention-vs-ort.js attention [--quick | --long | --extra] [--json FILE]
 *   node apps/bench/dist/cpu/attention-vs-ort.js attention --row B:D:N[:causal] [--row ...] [--rounds R]
 *       (forward only, 1 and all threads: the decisive rows again on a quiet minute; R rounds instead
 *       of 5, or 3 at N >= 4096)
 *   node apps/bench/dist/cpu/attention-vs-ort.js memory         (peak RSS per implementation, N = 4096, 16384)
 *   node apps/bench/dist/cpu/attention-vs-ort.js matmul [--decode] [--json FILE]
 *       (native = CpuOps' default float32 matmul, the AVX2 gemm of the addon where it runs, its small-M
 *       path at M <= 8; wasm = CpuOps with native: false, the wasm SIMD gemm; ORT = one MatMul node; 1 and
 *       all threads; --decode: the M = 1 shapes of one GPT-2 decode step instead of the training ones)
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { contiguousView, createRng } from '@flashattn/core';
import { CpuOps, nativeAttentionInfo, nativeInfo } from '@flashattn/cpu';
import * as ort from 'onnxruntime-node';
import {
  attention23Model,
  matmulModel,
  mhaModel,
  plainBackwardModel,
  plainModel,
  type AttnDims,
} from './onnx-model.js';

const USAGE = `usage: attention-vs-ort.js attention [--quick | --long | --extra | --row B:D:N[:causal] ...] [--rounds R] [--json FILE] | memory | matmul [--decode] [--json FILE]`;
const [mode, ...rest] = process.argv.slice(2);
const flags = new Map<string, string | true>();
const rowSpecs: Array<{ B: number; D: number; N: number; causalOnly: boolean }> = [];
for (let i = 0; i < rest.length; i++) {
  const a = rest[i]!;
  if (a === '--quick') flags.set('quick', true);
  else if (a === '--long') flags.set('long', true);
  else if (a === '--extra') flags.set('extra', true);
  else if (a === '--decode' && mode === 'matmul') flags.set('decode', true);
  else if (a === '--json' && rest[i + 1] !== undefined) flags.set('json', rest[++i]!);
  else if (a === '--rounds' && /^[1-9]\d*$/.test(rest[i + 1] ?? ''))
    flags.set('rounds', rest[++i]!);
  else if (a === '--row' && /^\d+:\d+:\d+(:causal)?$/.test(rest[i + 1] ?? '')) {
    const [B, D, N, c] = rest[++i]!.split(':');
    rowSpecs.push({ B: Number(B), D: Number(D), N: Number(N), causalOnly: c === 'causal' });
  } else if (mode === 'mem-child') flags.set(`arg${i}`, a);
  else {
    console.error(`unknown argument ${a}\n${USAGE}`);
    process.exit(2);
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function randn(n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

/** (B, N, H, D) -> (B, H, N, D) */
function toBHND(x: Float32Array, B: number, N: number, H: number, D: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++)
        out.set(
          x.subarray(((b * N + n) * H + h) * D, ((b * N + n) * H + h + 1) * D),
          ((b * H + h) * N + n) * D,
        );
  return out;
}

function session(bytes: Uint8Array, threads: number): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // No spin-waiting between runs: a spinning ORT pool would take the cores from the next
    // implementation in the round (ours waits on its workers without spinning).
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
}

/** Our forward/backward on one CpuOps with the inputs uploaded once. */
function ours(
  ops: CpuOps,
  d: AttnDims,
  host: { q: Float32Array; k: Float32Array; v: Float32Array; dout: Float32Array },
) {
  const { B, N, H, D, causal } = d;
  const shape = [B, N, H, D] as const;
  const up = (x: Float32Array) => {
    const b = ops.alloc(x.length, 'float32') as Float32Array;
    b.set(x);
    return contiguousView(b, shape);
  };
  const [q, k, v, dout] = [up(host.q), up(host.k), up(host.v), up(host.dout)];
  const fresh = () => contiguousView(ops.alloc(B * N * H * D, 'float32') as Float32Array, shape);
  const out = fresh();
  const [dq, dk, dv] = [fresh(), fresh(), fresh()];
  const lse = ops.alloc(B * H * N, 'float32');
  return {
    out: out.buffer as Float32Array,
    forward: () => ops.attentionForward({ q, k, v, out, lse }, { causal }),
    backward: () => ops.attentionBackward({ dout, q, k, v, out, lse, dq, dk, dv }, { causal }),
  };
}

interface Row {
  B: number;
  H: number;
  N: number;
  D: number;
  causal: boolean;
  threads: number;
  impl: string;
  pass: 'fwd' | 'bwd';
  /** median wall ms, median CPU ms (all threads of the process), fastest wall ms */
  ms: number;
  cpuMs: number;
  minMs: number;
  gflops: number;
  rounds: number;
  load: number;
}

async function attention(): Promise<void> {
  const quick = flags.has('quick');
  const all = availableParallelism();
  const threadList = [...new Set([1, all])];
  // The grid, cut to what a loaded 2-core machine runs in reasonable time: B = 1 at N = 256..4096
  // (D = 64) and 256..1024 (D = 128) on 1 and all threads, N = 4096 (D = 128) and 8192 (D = 64, forward
  // only) on all threads, B = 4 at N = 256 and 1024 on all threads.
  const grid: Array<{
    B: number;
    D: number;
    N: number;
    threads: number[];
    bwd: boolean;
    causalOnly?: boolean;
  }> = [];
  const add = (B: number, D: number, N: number, threads: number[], bwd = true) =>
    grid.push({ B, D, N, threads, bwd });
  if (rowSpecs.length > 0) {
    for (const r of rowSpecs) grid.push({ ...r, threads: threadList, bwd: false });
  } else if (flags.has('extra')) {
    // The rest of the N >= 1024 grid of issue #11: B = 4 at N = 1024 (D = 64, 128) and D = 128 at
    // N = 4096 (forward), on 1 and all threads.
    for (const D of [64, 128]) add(4, D, 1024, threadList);
    add(1, 128, 4096, threadList, false);
  } else if (flags.has('long')) {
    // Only the long rows (D = 64): N = 4096 on 1 and all threads, N = 8192 forward on all threads.
    add(1, 64, 4096, threadList);
    add(1, 64, 8192, [all], false);
  } else
    for (const D of [64, 128]) {
      for (const N of quick ? [256, 1024] : [256, 1024]) add(1, D, N, threadList);
      if (!quick) add(1, D, 4096, D === 64 ? threadList : [all]);
      if (!quick && D === 64) add(1, D, 8192, [all], false);
      for (const N of quick ? [256] : [256, 1024]) add(4, D, N, [all]);
    }
  const rows: Row[] = [];
  const H = 8;
  for (const g of grid) {
    for (const causal of g.causalOnly ? [true] : [false, true]) {
      for (const threads of g.threads) {
        const d: AttnDims = { B: g.B, H, N: g.N, D: g.D, causal };
        const n = g.B * g.N * H * g.D;
        const host = { q: randn(n, 1), k: randn(n, 2), v: randn(n, 3), dout: randn(n, 4) };
        const dims3 = [g.B, g.N, H * g.D];
        const dims4 = [g.B, H, g.N, g.D];
        const bhnd = {
          q: toBHND(host.q, g.B, g.N, H, g.D),
          k: toBHND(host.k, g.B, g.N, H, g.D),
          v: toBHND(host.v, g.B, g.N, H, g.D),
          dout: toBHND(host.dout, g.B, g.N, H, g.D),
        };
        const t3 = (x: Float32Array) => new ort.Tensor('float32', x, dims3);
        const t4 = (x: Float32Array) => new ort.Tensor('float32', x, dims4);
        const ops = new CpuOps({ threads });
        const me = ours(ops, d, host);
        const impls: Array<[string, 'fwd' | 'bwd', () => Promise<unknown>]> = [
          ['ours', 'fwd', me.forward],
        ];
        if (g.bwd) impls.push(['ours', 'bwd', me.backward]);
        const wasmOps = nativeAttentionInfo().available
          ? new CpuOps({ threads, native: false })
          : null;
        if (wasmOps) impls.push(['wasm', 'fwd', ours(wasmOps, d, host).forward]);
        const mha = await session(mhaModel(d), threads);
        impls.push(['mha', 'fwd', () => mha.run({ q: t3(host.q), k: t3(host.k), v: t3(host.v) })]);
        const plain = await session(plainModel(d), threads);
        impls.push([
          'plain',
          'fwd',
          () => plain.run({ q: t4(bhnd.q), k: t4(bhnd.k), v: t4(bhnd.v) }),
        ]);
        const a23 = await session(attention23Model(d), threads);
        impls.push([
          'attn23',
          'fwd',
          () => a23.run({ q: t4(bhnd.q), k: t4(bhnd.k), v: t4(bhnd.v) }),
        ]);
        const plainBwd = g.bwd ? await session(plainBackwardModel(d), threads) : null;
        if (plainBwd)
          impls.push([
            'plain',
            'bwd',
            () =>
              plainBwd.run({ q: t4(bhnd.q), k: t4(bhnd.k), v: t4(bhnd.v), dout: t4(bhnd.dout) }),
          ]);

        // Warm up each to its steady state (at least 3 calls and 1 s; V8 needs a few calls to optimise
        // our JS driver: at N = 256 the first calls take 4-6x the CPU time of later ones; 2 calls
        // where one takes over a second), then check ours against MHA's output.
        for (const [, , f] of impls) {
          const t0 = performance.now();
          await f();
          const min = performance.now() - t0 > 1000 ? 2 : 3;
          for (let c = 1; c < 20 && (c < min || performance.now() - t0 < 1000); c++) await f();
        }
        const ref = (await mha.run({ q: t3(host.q), k: t3(host.k), v: t3(host.v) }))['out']!
          .data as Float32Array;
        let maxDiff = 0;
        for (let i = 0; i < ref.length; i++)
          maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - me.out[i]!));

        const flopsFwd = 4 * g.B * H * g.N * g.N * g.D * (causal ? 0.5 : 1);
        const roundsFlag = flags.get('rounds');
        const rounds = typeof roundsFlag === 'string' ? Number(roundsFlag) : g.N >= 4096 ? 3 : 5;
        const times = impls.map(() => [] as number[]);
        const cpuTimes = impls.map(() => [] as number[]);
        for (let r = 0; r < rounds; r++) {
          for (let i = 0; i < impls.length; i++) {
            const c0 = process.cpuUsage();
            const t0 = performance.now();
            await impls[i]![2]();
            times[i]!.push(performance.now() - t0);
            const c = process.cpuUsage(c0);
            cpuTimes[i]!.push((c.user + c.system) / 1e3);
          }
        }
        const line: string[] = [];
        impls.forEach(([impl, pass], i) => {
          const ms = median(times[i]!);
          const cpuMs = median(cpuTimes[i]!);
          const gflops = ((pass === 'fwd' ? 1 : 2.5) * flopsFwd) / ms / 1e6;
          rows.push({
            ...d,
            threads,
            impl,
            pass,
            ms,
            cpuMs,
            minMs: Math.min(...times[i]!),
            gflops,
            rounds,
            load: loadavg()[0]!,
          });
          line.push(`${impl} ${pass} ${ms.toFixed(1)} ms (${gflops.toFixed(1)})`);
        });
        console.log(
          `B=${g.B} H=${H} N=${g.N} D=${g.D} ${causal ? 'causal' : 'full  '} T=${threads}: ${line.join(', ')}; |ours - mha| <= ${maxDiff.toExponential(1)}; load ${loadavg()[0]!.toFixed(1)}`,
        );
        for (const s of [mha, plain, a23, plainBwd]) await s?.release();
        await ops.dispose();
        await wasmOps?.dispose();
      }
    }
  }
  const json = flags.get('json');
  if (typeof json === 'string')
    writeFileSync(json, JSON.stringify({ meta: meta(), rows }, null, 1));
}

function meta() {
  return {
    date: new Date().toISOString(),
    cpu: `${cpus()[0]?.model} x ${cpus().length}`,
    node: process.version,
    ort: ort.env.versions.node,
    nativeForward: nativeAttentionInfo(),
    loadavg: loadavg(),
  };
}

// ---- peak memory: one implementation per fresh process ----
async function memChild(impl: string, N: number, causal: boolean): Promise<void> {
  const d: AttnDims = { B: 1, H: 8, N, D: 64, causal };
  const n = N * 8 * 64;
  const host = { q: randn(n, 1), k: randn(n, 2), v: randn(n, 3), dout: randn(n, 4) };
  const t3 = (x: Float32Array) => new ort.Tensor('float32', x, [1, N, 512]);
  const t4 = (x: Float32Array) => new ort.Tensor('float32', x, [1, 8, N, 64]);
  let run: () => Promise<unknown>;
  const threads = availableParallelism();
  if (impl === 'ours') {
    const me = ours(new CpuOps({ threads }), d, host);
    run = me.forward;
  } else {
    const bytes =
      impl === 'mha' ? mhaModel(d) : impl === 'plain' ? plainModel(d) : attention23Model(d);
    const s = await session(bytes, threads);
    run = () =>
      impl === 'mha'
        ? s.run({ q: t3(host.q), k: t3(host.k), v: t3(host.v) })
        : s.run({ q: t4(host.q), k: t4(host.k), v: t4(host.v) });
  }
  const before = process.resourceUsage().maxRSS;
  await run();
  const after = process.resourceUsage().maxRSS;
  console.log(
    JSON.stringify({
      impl,
      N,
      causal,
      inputsMiB: before / 1024,
      peakExtraMiB: (after - before) / 1024,
    }),
  );
}

function memory(): void {
  const me = fileURLToPath(import.meta.url);
  console.log(
    `peak RSS above the inputs, forward, B=1 H=8 D=64, ${availableParallelism()} threads; ${JSON.stringify(meta())}`,
  );
  for (const N of [4096, 16384]) {
    for (const causal of [false, true]) {
      for (const impl of ['ours', 'mha', 'plain', 'attn23']) {
        // ORT's materialised forms need O(N^2): cap the child's address space (prlimit) so a form that
        // cannot fit fails alone instead of pushing the shared machine into swap or the OOM killer.
        const capGiB = 12;
        try {
          // (Ours is not capped: its shared wasm memory reserves address space up front, not pages.)
          const child = [process.execPath, me, 'mem-child', impl, String(N), String(causal)];
          const [cmd, ...args] =
            impl === 'ours' ? child : ['prlimit', `--as=${capGiB * 2 ** 30}`, ...child];
          const out = execFileSync(cmd!, args, {
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          console.log(out.trim().split('\n').pop());
        } catch (e) {
          const msg =
            String((e as { stderr?: string }).stderr ?? e)
              .split('\n')
              .find((l) => /rror|alloc/.test(l)) ?? 'failed';
          console.log(
            JSON.stringify({
              impl,
              N,
              causal,
              failed: `over a ${capGiB} GiB address-space cap: ${msg.slice(0, 160)}`,
            }),
          );
        }
      }
    }
  }
}

// ---- matmul on the GPT-2 shapes ----
async function matmul(): Promise<void> {
  // (M, N, K) of one GPT-2 step at B*T = 2048 rows: tiny (C = 128) and small (C = 768), vocab 8192.
  // --decode: M = 1, one token of GPT-2 decoding, B (K, N) for all three (the model's tied head reads
  // wte (N, K) transposed; here the head is (K, N) like the rest): the bench's `small` (C = 384,
  // V = 8192) and gpt2-124m (C = 768, V = 50257).
  const decode: Array<[string, number, number, number]> = [
    ['small qkv  1x1152x384', 1, 1152, 384],
    ['small fc   1x1536x384', 1, 1536, 384],
    ['small proj 1x384x1536', 1, 384, 1536],
    ['small head 1x8192x384', 1, 8192, 384],
    ['124m qkv  1x2304x768', 1, 2304, 768],
    ['124m fc   1x3072x768', 1, 3072, 768],
    ['124m proj 1x768x3072', 1, 768, 3072],
    ['124m head 1x50257x768', 1, 50257, 768],
  ];
  const train: Array<[string, number, number, number]> = [
    ['tiny qkv  2048x384x128', 2048, 384, 128],
    ['tiny fc   2048x512x128', 2048, 512, 128],
    ['tiny head 2048x8192x128', 2048, 8192, 128],
    ['small qkv 2048x2304x768', 2048, 2304, 768],
    ['small fc  2048x3072x768', 2048, 3072, 768],
    ['small proj 2048x768x3072', 2048, 768, 3072],
  ];
  const shapes = flags.has('decode') ? decode : train;
  const all = availableParallelism();
  const gemm = nativeInfo();
  if (!gemm.gemm)
    console.log(
      `# no native gemm (${gemm.reason ?? '?'}): the native column is CpuOps' default matmul anyway`,
    );
  const rows: Array<{
    shape: string;
    threads: number;
    nativeGflops: number;
    wasmGflops: number;
    ortGflops: number;
  }> = [];
  for (const threads of [...new Set([1, all])]) {
    const native = new CpuOps({ threads });
    const wasm = new CpuOps({ threads, native: false });
    for (const [name, M, N, K] of shapes) {
      const a = randn(M * K, 5);
      const b = randn(K * N, 6);
      // Operands allocated by the ops under test (the wasm gemm reads them in place from its arena).
      const operands = (ops: CpuOps) => {
        const A = ops.alloc(M * K, 'float32') as Float32Array;
        const Bm = ops.alloc(K * N, 'float32') as Float32Array;
        A.set(a);
        Bm.set(b);
        return { A, Bm, C: ops.alloc(M * N, 'float32') };
      };
      const n = operands(native);
      const w = operands(wasm);
      const s = await session(matmulModel(M, N, K), threads);
      const feeds = {
        a: new ort.Tensor('float32', a, [M, K]),
        b: new ort.Tensor('float32', b, [K, N]),
      };
      const impls: Array<() => Promise<unknown>> = [
        () => native.matmul(n.C, n.A, n.Bm, M, N, K),
        () => wasm.matmul(w.C, w.A, w.Bm, M, N, K),
        () => s.run(feeds),
      ];
      // Warm-up to the steady state (at least 3 calls and 0.3 s each): a fresh CpuOps compiles its
      // wasm with V8's baseline tier first, and with one warm-up call the first shape of each thread
      // count (tiny qkv) was timed partly before the tier-up (2026-12-07, quiet: 45.7 GFLOP/s at 2
      // threads against 77.4 for tiny fc; 3 warm-up calls: see BENCHMARKS.md round 3).
      for (const f of impls) {
        const t0 = performance.now();
        for (let c = 0; c < 50 && (c < 3 || performance.now() - t0 < 300); c++) await f();
      }
      const times: number[][] = impls.map(() => []);
      for (let r = 0; r < 7; r++)
        for (let i = 0; i < impls.length; i++) {
          const t0 = performance.now();
          await impls[i]!();
          times[i]!.push(performance.now() - t0);
        }
      const gf = (ms: number) => (2 * M * N * K) / ms / 1e6;
      const [nat, was, x] = times.map((t) => gf(median(t))) as [number, number, number];
      rows.push({ shape: name, threads, nativeGflops: nat, wasmGflops: was, ortGflops: x });
      console.log(
        `${name} T=${threads}: native ${nat.toFixed(1)}, wasm ${was.toFixed(1)}, ORT MatMul ${x.toFixed(1)} GFLOP/s; native/ORT ${(nat / x).toFixed(2)}, wasm/ORT ${(was / x).toFixed(2)}; load ${loadavg()[0]!.toFixed(1)}`,
      );
      await s.release();
    }
    await native.dispose();
    await wasm.dispose();
  }
  const json = flags.get('json');
  if (typeof json === 'string')
    writeFileSync(json, JSON.stringify({ meta: meta(), rows }, null, 1));
}

if (mode === 'attention') await attention();
else if (mode === 'memory') memory();
else if (mode === 'matmul') await matmul();
else if (mode === 'mem-child') await memChild(rest[0]!, Number(rest[1]), rest[2] === 'true');
else {
  console.error(USAGE);
  process.exit(2);
}

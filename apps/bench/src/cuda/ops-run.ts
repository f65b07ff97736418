/**
 * The GPU modes of CudaOps (createCudaOps, @flashattn/cuda's Ops<CudaBuffer>) in the device runner:
 *   node device-run.mjs ops-conformance [--matrix ci|full] [--seed N] [--filter S] [--json F] [--unfused-gelu]
 *       core's ops conformance suite in every float dtype CudaOps lists (float32, float16, bfloat16): one line
 *       per case (pass/fail, worst err/allowed), the failures' full messages, a summary last; --unfused-gelu
 *       checks createCudaOps({ fusedGelu: false }) (the matmul and the GELU kernel instead of cuBLASLt's GELU epilogues)
 *   node device-run.mjs ops-sanitize [--unfused-gelu]
 *       a tiny GPT-2 (@flashattn/transformer GPT2 + AdamW) training step on CudaOps in float32 and bfloat16, for
 *       compute-sanitizer memcheck; checks the loss is finite and drops over a few steps
 *   node device-run.mjs ops-graphs
 *       CUDA graphs (CudaOps' OpsGraphs): the graphs conformance check (@flashattn/conformance runGraphsConformance),
 *       then a tiny GPT-2 trained eagerly and graphed (GraphedTrainStep) from the same init and batches, in float32
 *       and bfloat16, K = 1 and K = 2 with clipping active: the losses side by side and the verdict of the rule in
 *       graphedRule below
 *   node device-run.mjs ops-sanitize [--graphs]: --graphs runs the tiny GPT-2's steps graphed
 *   node device-run.mjs ops-bench [--json F] [--iters N]
 *       our matmul (cuBLASLt through CudaOps, bf16 in, fp32 accumulate) on GPT-2 124M's shapes, B*T = 16384:
 *       each linear layer's forward (with bias) and its two backward products; wall clock of N back-to-back
 *       calls after warmup, divided by N (the JS enqueue included). ops-matmul-peer.py times torch.matmul on
 *       the same shapes.
 */
import { writeFileSync } from 'node:fs';
import { createRng, type BufferDType } from '@flashattn/core';
import {
  formatGraphsReport,
  formatOpsReport,
  runGraphsConformance,
  runOpsConformance,
  type OpsMatrixName,
} from '@flashattn/conformance';
import { createCudaOps, type CudaBuffer, type CudaOps } from '@flashattn/cuda';
import { AdamW, GPT2, GraphedTrainStep } from '@flashattn/transformer';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

export async function opsConformance(args: string[]): Promise<number> {
  const matrix = (flag(args, 'matrix') ?? 'full') as OpsMatrixName;
  const seed = Number(flag(args, 'seed') ?? 20261207);
  const filter = flag(args, 'filter');
  const unfused = args.includes('--unfused-gelu');
  const ops = createCudaOps(unfused ? { fusedGelu: false } : {});
  console.log(
    `ops-conformance: ${ops.name}, cuBLASLt from ${ops.cublasLt.path}, dtypes ${ops.dtypes.join(' ')}` +
      (unfused ? ', fusedGelu false' : ''),
  );
  const report = await runOpsConformance(ops, {
    matrix,
    seed,
    ...(filter ? { filter } : {}),
    onCase: (r) => {
      const worst = r.checks.reduce((m, c) => Math.max(m, c.errBackend / (c.allowed || 1)), 0);
      console.log(
        `${r.status === 'pass' ? 'pass' : r.status === 'skip' ? 'skip' : 'FAIL'}  ${r.id.padEnd(52)} err/allowed ${worst.toFixed(2)}`,
      );
      if (r.status === 'fail') console.log(r.message);
    },
  });
  await ops.dispose();
  const json = flag(args, 'json');
  if (json) {
    writeFileSync(
      json,
      JSON.stringify(
        {
          backend: report.backend,
          matrix: report.matrix,
          seed: report.seed,
          passed: report.passed,
          failed: report.failed,
          skipped: report.skipped,
          failedOps: report.failedOps,
          results: report.results.map((r) => ({
            id: r.id,
            status: r.status,
            checks: r.checks.map((c) => ({
              output: c.output,
              err: c.errBackend,
              allowed: c.allowed,
            })),
            problems: r.problems,
          })),
        },
        null,
        1,
      ),
    );
  }
  console.log(formatOpsReport(report).split('\n')[0]);
  return report.pass ? 0 : 1;
}

/** A few training steps of a tiny GPT-2 on CudaOps (float32 and bfloat16): the memcheck workload. */
export async function opsSanitize(args: string[] = []): Promise<number> {
  const unfused = args.includes('--unfused-gelu');
  const graphs = args.includes('--graphs');
  const ops = createCudaOps(unfused ? { fusedGelu: false } : {});
  if (unfused) console.log('ops-sanitize: fusedGelu false');
  if (graphs) console.log('ops-sanitize: graphed steps (GraphedTrainStep)');
  const config = { vocabSize: 101, maxSeqLen: 64, nLayer: 2, nHead: 2, nEmbd: 64 };
  const [B, T] = [2, 64];
  let failed = 0;
  for (const computeDType of ['float32', 'bfloat16'] as const) {
    const model = new GPT2({ config, ops, seed: 7, paramDType: 'float32', computeDType });
    const opt = new AdamW(ops, model.specs, model.paramsLength);
    const rng = createRng(11);
    const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
    // next-token targets with every 9th ignored (-1): the xent's ignore path runs too
    const targets = Int32Array.from({ length: B * T }, (_, i) =>
      i % 9 === 0 ? -1 : i % T === T - 1 ? tokens[i - T + 1]! : tokens[i + 1]!,
    );
    const losses: number[] = [];
    const graphed = graphs ? new GraphedTrainStep(model, opt, { B, T, K: 1, maxNorm: 1e9 }) : null;
    for (let step = 0; step < 4; step++) {
      let norm: number;
      if (graphed) {
        const r = await graphed.step([{ x: tokens, y: targets }], 1e-3);
        losses.push(r.loss);
        norm = r.norm;
      } else {
        await model.zeroGrad();
        losses.push(await model.forward(tokens, targets, B, T, true));
        await model.backward();
        norm = Math.sqrt(await ops.sumSquares(model.grads));
        await opt.step(model.params, model.grads, 1e-3);
        await model.syncParams();
      }
      console.log(
        `ops-sanitize ${computeDType} step ${step}: loss ${losses[step]!.toFixed(4)} grad norm ${norm.toFixed(4)}`,
      );
    }
    const ok = losses.every(Number.isFinite) && losses[3]! < losses[0]!;
    if (!ok) failed++;
    console.log(
      `ops-sanitize ${computeDType}: ${ok ? 'ok' : 'FAILED'} (loss ${losses[0]!.toFixed(4)} -> ${losses[3]!.toFixed(4)})`,
    );
  }
  await ops.synchronize();
  await ops.dispose();
  return failed === 0 ? 0 : 1;
}

/**
 * The rule for graphed against eager on the GPU. The graphed step differs from the eager one in three roundings
 * only: the loss and the gradient's sum of squares are float32 on the device (eager: float64 on the host), and the
 * clip factor multiplies each gradient inside AdamW instead of rescaling the gradient buffer first (in bf16 that
 * buffer rounds once more). Without clipping and with K = 1 the updates are the same arithmetic, so the losses agree
 * to float32 rounding of the sum: |a - b| <= 1e-6 |b|. With clipping or K > 1 the bf16 run's extra rounding of each
 * gradient (2^-9 relative) moves the update; the bound is then the bf16 run's own distance from the float32 run
 * (the precision bf16 training has anyway), doubled, plus 1e-6 |b|: graphing must not cost more than bf16 costs.
 */
function graphedRule(
  eager: number[],
  graphed: number[],
  exact: boolean,
  bf16Noise: number,
): { pass: boolean; maxDiff: number; bound: number } {
  let maxDiff = 0;
  let bound = 0;
  for (let i = 0; i < eager.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(graphed[i]! - eager[i]!));
    bound = Math.max(bound, 1e-6 * Math.abs(eager[i]!) + (exact ? 0 : 2 * bf16Noise));
  }
  return { pass: maxDiff <= bound && graphed.every(Number.isFinite), maxDiff, bound };
}

/** CUDA graphs: the graphs conformance check, then a tiny GPT-2 eager against graphed (graphedRule). */
export async function opsGraphs(): Promise<number> {
  // deterministic: the attention backward's dQ without float atomics, so two runs of the same arithmetic agree to
  // the bit (with atomics, bf16 runs drift apart by ~1e-4 in 6 steps: the H200 run of 2026-12-07 18:23 UTC)
  const ops = createCudaOps({ deterministic: true });
  let failed = 0;
  const conf = await runGraphsConformance(ops);
  console.log(formatGraphsReport(conf));
  if (!conf.pass) failed++;
  const config = { vocabSize: 101, maxSeqLen: 64, nLayer: 2, nHead: 2, nEmbd: 64 };
  const [B, T, steps] = [2, 64, 6];
  const rng = createRng(23);
  const data = Array.from({ length: steps * 2 }, () => ({
    x: Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize)),
    y: Int32Array.from({ length: B * T }, (_, i) => (i % 7 === 3 ? -1 : rng.int(config.vocabSize))),
  }));
  const run = async (
    computeDType: 'float32' | 'bfloat16',
    K: number,
    maxNorm: number,
    graphedRun: boolean,
  ): Promise<number[]> => {
    const model = new GPT2({ config, ops, seed: 5, paramDType: 'float32', computeDType });
    const opt = new AdamW(ops, model.specs, model.paramsLength);
    const losses: number[] = [];
    const g = graphedRun ? new GraphedTrainStep(model, opt, { B, T, K, maxNorm }) : null;
    for (let s = 0; s < steps; s++) {
      const batches = data.slice(s * K, s * K + K);
      const lr = 3e-3 * (1 + s / steps);
      if (g) {
        losses.push((await g.step(batches, lr)).loss);
        continue;
      }
      await model.zeroGrad();
      let loss = 0;
      for (const { x, y } of batches) {
        loss += await model.forward(x, y, B, T, true);
        await model.backward();
      }
      const norm = Math.sqrt(await ops.sumSquares(model.grads)) / K;
      const clip = Number.isFinite(norm) && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
      if (clip !== 1 || K !== 1) await ops.scale(model.grads, clip / K);
      await opt.step(model.params, model.grads, lr);
      await model.syncParams();
      losses.push(loss / K);
    }
    g?.dispose();
    for (const b of [model.params, model.grads, opt.m, opt.v]) ops.free(b);
    if (model.computeParams !== model.params) ops.free(model.computeParams);
    return losses;
  };
  for (const [K, maxNorm] of [
    [1, 1e9],
    [2, 0.1],
  ] as const) {
    const f32 = await run('float32', K, maxNorm, false);
    const bf16 = await run('bfloat16', K, maxNorm, false);
    const noise = Math.max(...f32.map((v, i) => Math.abs(bf16[i]! - v)));
    for (const [dt, eager] of [
      ['float32', f32],
      ['bfloat16', bf16],
    ] as const) {
      const graphed = await run(dt, K, maxNorm, true);
      const exact = K === 1 && maxNorm > 1e6;
      const v = graphedRule(eager, graphed, exact || dt === 'float32', noise);
      if (!v.pass) failed++;
      console.log(
        `${v.pass ? 'pass' : 'FAIL'}  graphed vs eager ${dt} K=${K} maxNorm=${maxNorm}: max |diff| ${v.maxDiff.toExponential(2)} <= bound ${v.bound.toExponential(2)}` +
          `${exact || dt === 'float32' ? ' (float32 rounding)' : ` (2 x bf16's distance from float32 ${noise.toExponential(2)} + 1e-6 rel)`}` +
          `\n      eager   ${eager.map((l) => l.toFixed(5)).join(' ')}\n      graphed ${graphed.map((l) => l.toFixed(5)).join(' ')}`,
      );
    }
  }
  await ops.dispose();
  console.log(`ops-graphs: ${failed === 0 ? 'passed' : `FAILED (${failed})`}`);
  return failed === 0 ? 0 : 1;
}

interface MatmulShape {
  name: string;
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  accumulate?: boolean;
  bias?: boolean;
}

/** GPT-2 124M's matmuls at B*T = 16384 (C = 768): every linear layer's forward and backward, and the tied head. */
export function gpt2MatmulShapes(BT = 16384, C = 768, V = 50304): MatmulShape[] {
  const out: MatmulShape[] = [];
  for (const [layer, cin, cout] of [
    ['qkv', C, 3 * C],
    ['attproj', C, C],
    ['fc', C, 4 * C],
    ['fcproj', 4 * C, C],
  ] as const) {
    out.push({ name: `${layer} fwd`, M: BT, N: cout, K: cin, bias: true });
    out.push({ name: `${layer} dinp`, M: BT, N: cin, K: cout, transB: true });
    out.push({ name: `${layer} dW`, M: cin, N: cout, K: BT, transA: true, accumulate: true });
  }
  out.push({ name: 'lmhead fwd', M: BT, N: V, K: C, transB: true });
  out.push({ name: 'lmhead dinp', M: BT, N: C, K: V });
  out.push({ name: 'lmhead dW', M: V, N: C, K: BT, transA: true, accumulate: true });
  return out;
}

/** buf = random N(0, 1) values: one uploaded block doubled by device copies (no multi-GB host arrays). */
async function fillRandom(ops: CudaOps, buf: CudaBuffer, seed: number): Promise<void> {
  const n = ops.lengthOf(buf);
  const first = Math.min(n, 1 << 20);
  const rng = createRng(seed);
  await ops.upload(
    ops.view(buf, 0, first),
    Float32Array.from({ length: first }, () => rng.normal()),
  );
  for (let have = first; have < n; have *= 2) {
    const k = Math.min(have, n - have);
    await ops.copy(ops.view(buf, have, k), ops.view(buf, 0, k));
  }
}

export async function opsBench(args: string[]): Promise<number> {
  const iters = Number(flag(args, 'iters') ?? 50);
  const ops = createCudaOps();
  const dt: BufferDType = 'bfloat16';
  const results: { name: string; M: number; N: number; K: number; ms: number; tflops: number }[] =
    [];
  console.log(
    `ops-bench: ${ops.name}, cuBLASLt ${ops.cublasLt.path}, ${dt}, ${iters} iterations per shape`,
  );
  for (const s of gpt2MatmulShapes()) {
    const a = ops.alloc(s.M * s.K, dt);
    const b = ops.alloc(s.K * s.N, dt);
    const out = ops.alloc(s.M * s.N, dt);
    const bias = s.bias ? ops.alloc(s.N, dt) : undefined;
    await fillRandom(ops, a, 1);
    await fillRandom(ops, b, 2);
    if (bias) await fillRandom(ops, bias, 3);
    const o = {
      transA: !!s.transA,
      transB: !!s.transB,
      accumulate: !!s.accumulate,
      ...(bias ? { bias } : {}),
    };
    for (let i = 0; i < 5; i++) await ops.matmul(out, a, b, s.M, s.N, s.K, o);
    await ops.synchronize();
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) await ops.matmul(out, a, b, s.M, s.N, s.K, o);
    await ops.synchronize();
    const ms = (performance.now() - t0) / iters;
    const tflops = (2 * s.M * s.N * s.K) / (ms * 1e-3) / 1e12;
    results.push({ name: s.name, M: s.M, N: s.N, K: s.K, ms, tflops });
    console.log(
      `${s.name.padEnd(14)} M ${s.M} N ${s.N} K ${s.K}: ${ms.toFixed(3)} ms, ${tflops.toFixed(0)} TFLOP/s`,
    );
    for (const x of [a, b, out, ...(bias ? [bias] : [])]) ops.free(x);
  }
  await ops.dispose();
  const json = flag(args, 'json');
  if (json)
    writeFileSync(json, JSON.stringify({ device: ops.name, dtype: dt, iters, results }, null, 1));
  return 0;
}

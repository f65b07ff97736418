/**
 * One optimizer step of GPT-2 as recorded graphs (OpsGraphs, e.g. CUDA graphs): the host uploads each micro-batch
 * and launches one recording per micro-step, then writes the step's AdamW scalars and launches the optimizer's
 * recording, and reads back K + 1 floats once. Eager, a GPT-2 124M step is ~420 op calls (~1,100 kernels) whose
 * host work the GPU waits for after each read-back (BENCHMARKS.md, issue #10's slack test); graphed it is
 * 3 K + 3 calls (K uploads of tokens and of targets, K + 1 launches, the AdamW scalars, one read-back).
 *
 * Recordings (each run eagerly the first time its key is seen, which allocates whatever it needs, captured the second
 * time and launched from then on; the eager run and the replay enqueue the same kernels with the same arguments):
 *   micro k (one per k and non-ignored target count):  [k = 0: grads = 0]  forward (losses summed into rb[k])
 *                                                       backward (grads += d loss_k / d params)
 *   optimizer:  rb[K] = ||grads||^2;  AdamW from hyper (lr, bias corrections) with the clip factor from rb[K]
 *               (the accumulated gradient's: DeviceStepOps.adamwFrom);  compute copy = masters
 *   rb (K + 1, float32; float64 on a float64 model): [sum of micro-step k's losses for k < K, ||grads||^2].
 *
 * The arithmetic is the eager step's (apps/gpt2-train: accumulatedClip, then AdamW.step), except that the clip
 * factor multiplies each gradient inside AdamW instead of rescaling the (16-bit) gradient buffer first: in float64
 * the two are the same numbers (graphed-step.test.ts); in bf16 the graphed step skips one rounding of the gradient.
 * Runs are reproducible (the same losses for the same seed) and resume exactly, as long as both halves run graphed.
 */
import {
  adamwHyper,
  hasDeviceStep,
  hasOpsGraphs,
  hostFloats,
  OpsInputError,
  type DeviceStepOps,
  type Ops,
  type OpsGraph,
  type OpsGraphs,
} from '@flashattn/core';
import type { GPT2 } from '../model/gpt2.js';
import type { AdamW } from './adamw.js';

export interface GraphedStepOptions {
  B: number;
  T: number;
  /** Micro-steps per optimizer step (gradient accumulation). */
  K: number;
  /** Global gradient-norm clip of the mean gradient. */
  maxNorm: number;
}

export interface GraphedStepResult {
  /** The mean over micro-steps of each micro-step's mean loss. */
  loss: number;
  /** The norm of the mean gradient before clipping (accumulatedClip's). */
  norm: number;
}

type GraphOps<Buf> = Ops<Buf> & DeviceStepOps<Buf> & OpsGraphs;

/** Why a backend cannot run graphed steps, or undefined when it can. */
export function graphedStepUnavailableReason<Buf>(ops: Ops<Buf>): string | undefined {
  if (!hasDeviceStep(ops)) return `${ops.name} has no DeviceStepOps (sumTo, adamwFrom)`;
  if (!hasOpsGraphs(ops)) return `${ops.name} has no OpsGraphs (captureGraph, launchGraph)`;
  return undefined;
}

export class GraphedTrainStep<Buf> {
  /** The most micro-step recordings kept (each holds its own graph memory); past it, new keys run eagerly. */
  static readonly MAX_MICRO_GRAPHS = 32;
  readonly #ops: GraphOps<Buf>;
  /** (K + 1): the micro-steps' loss sums, then the gradient's sum of squares. */
  readonly #rb: Buf;
  /** (3): [lr, 1 - beta1^t, 1 - beta2^t]. */
  readonly #hyper: Buf;
  readonly #micro = new Map<string, OpsGraph>();
  /** Micro-step keys (k, count) run once eagerly: the second sighting records. */
  readonly #seen = new Set<string>();
  #optimizer: OpsGraph | null = null;
  #optimizerRuns = 0;

  constructor(
    readonly model: GPT2<Buf>,
    readonly opt: AdamW<Buf>,
    readonly opts: GraphedStepOptions,
  ) {
    const why = graphedStepUnavailableReason(model.ops);
    if (why)
      throw new OpsInputError('GraphedTrainStep model.ops', 'DeviceStepOps and OpsGraphs', why);
    for (const k of ['B', 'T', 'K'] as const)
      if (!Number.isSafeInteger(opts[k]) || opts[k] < 1)
        throw new OpsInputError(`GraphedTrainStep opts.${k}`, 'a positive integer', opts[k]);
    if (!(opts.maxNorm > 0) || !Number.isFinite(opts.maxNorm))
      throw new OpsInputError('GraphedTrainStep opts.maxNorm', 'a finite number > 0', opts.maxNorm);
    this.#ops = model.ops as GraphOps<Buf>;
    const dt = model.paramDType === 'float64' ? 'float64' : 'float32';
    this.#rb = this.#ops.alloc(opts.K + 1, dt);
    this.#hyper = this.#ops.alloc(3, dt);
  }

  /** Recordings made so far and their sizes (for the benchmark's report). */
  get graphs(): { micro: number; optimizer: number; nodes: number } {
    let nodes = this.#optimizer?.nodes ?? 0;
    for (const g of this.#micro.values()) nodes += g.nodes;
    return { micro: this.#micro.size, optimizer: this.#optimizer ? 1 : 0, nodes };
  }

  /**
   * One optimizer step over K micro-batches (x, y each (B, T)) at learning rate lr. The first step runs its ops
   * eagerly (allocating the activations, library handles and scratch), the second records them, later ones replay.
   * A micro-step whose count of non-ignored targets was not seen before (ragged batches: the loss's 1 / count is
   * frozen in a recording) runs eagerly; at most MAX_MICRO_GRAPHS micro-step recordings are kept.
   */
  async step(
    batches: ReadonlyArray<{ x: Int32Array; y: Int32Array }>,
    lr: number,
  ): Promise<GraphedStepResult> {
    const { B, T, K, maxNorm } = this.opts;
    const { model, opt } = this;
    const ops = this.#ops;
    if (batches.length !== K)
      throw new OpsInputError(
        'GraphedTrainStep.step batches',
        `${K} micro-batches`,
        batches.length,
      );
    // The AdamW scalars first: an upload waits for the device, and before the launches it waits for nothing.
    const { beta1, beta2 } = opt.config;
    await ops.upload(this.#hyper, adamwHyper(lr, beta1, beta2, opt.t + 1));
    const counts: number[] = [];
    for (let k = 0; k < K; k++) {
      const { x, y } = batches[k]!;
      const count = await model.loadBatch(x, y, B, T, true);
      counts.push(count);
      await this.#microStep(k, count);
    }
    const optimize = async (): Promise<void> => {
      const normSq = ops.view(this.#rb, K, 1);
      await ops.sumTo(normSq, model.grads, { squares: true });
      await opt.queueStepFrom(model.params, model.grads, this.#hyper, { normSq, maxNorm, K });
      await model.syncParams();
    };
    if (this.#optimizer) await ops.launchGraph(this.#optimizer);
    else if (this.#optimizerRuns++ === 0) await optimize();
    else await ops.launchGraph((this.#optimizer = await ops.captureGraph(optimize)));
    opt.t++;
    const rb = hostFloats(await ops.download(this.#rb), ops.dtypeOf(this.#rb));
    let loss = 0;
    for (let k = 0; k < K; k++) loss += counts[k]! > 0 ? rb[k]! / counts[k]! : 0;
    return { loss: loss / K, norm: Math.sqrt(rb[K]!) / K };
  }

  /**
   * Micro-step k on the uploaded batch with `count` non-ignored targets (the loss's 1 / count is frozen in a
   * recording): its recording launched, or recorded on the second sighting, or run eagerly.
   */
  async #microStep(k: number, count: number): Promise<void> {
    const key = `${k}:${count}`;
    const ops = this.#ops;
    const g = this.#micro.get(key);
    if (g) return ops.launchGraph(g);
    const { model } = this;
    const { B, T } = this.opts;
    const body = async (): Promise<void> => {
      if (k === 0) await model.zeroGrad();
      await model.forwardQueued(B, T, true, true, count, ops.view(this.#rb, k, 1));
      await model.backward();
    };
    if (!this.#seen.has(key) || this.#micro.size >= GraphedTrainStep.MAX_MICRO_GRAPHS) {
      this.#seen.add(key);
      return body();
    }
    const rec = await ops.captureGraph(body);
    this.#micro.set(key, rec);
    return ops.launchGraph(rec);
  }

  /** Release the recordings and the step's buffers. */
  dispose(): void {
    for (const g of this.#micro.values()) this.#ops.freeGraph(g);
    if (this.#optimizer) this.#ops.freeGraph(this.#optimizer);
    this.#micro.clear();
    this.#seen.clear();
    this.#optimizer = null;
    this.#ops.free(this.#rb);
    this.#ops.free(this.#hyper);
  }
}

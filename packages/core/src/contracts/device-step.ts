/**
 * What a device backend offers so that a training step runs with no host round trip and can be recorded once and
 * replayed as one launch (CUDA graphs). Both capabilities are optional: the model and the trainer use them where
 * `hasDeviceStep` / `hasOpsGraphs` say a backend has them and run the plain `Ops` step otherwise.
 *
 * DeviceStepOps: the step's scalars stay on the device.
 *   - `sumTo(out, x, {squares, accumulate})`: out[0] (+)= sum of x (of x^2): the loss and the gradient's sum of
 *     squares, queued like any op (`sum` / `sumSquares` return them to the host and wait).
 *   - `adamwFrom(params, grads, m, v, h)`: `Ops.adamw` with lr and the bias corrections read from a device buffer
 *     (h.hyper = [lr, 1 - beta1^t, 1 - beta2^t], written by the host before the step: `adamwHyper`) and the
 *     gradient multiplied by the clip factor of an accumulated gradient computed from its sum of squares on the
 *     device (h.clip): factor = min(1, maxNorm / (norm + 1e-6)) / K with norm = sqrt(normSq) / K, and 1 / K where
 *     norm is not finite or <= maxNorm (`clipFactor`, the arithmetic of apps/gpt2-train's accumulatedClip).
 *
 * OpsGraphs: `captureGraph(record)` runs `record` with every op it calls recorded, not run; `launchGraph(g)` runs
 * the recorded ops, in order, on the buffers they were recorded with, reading those buffers' contents at launch
 * (so the host uploads a new batch, then launches). Scalars passed to the recorded calls are frozen: anything that
 * changes per step is read from a device buffer (`adamwFrom`'s hyper). While recording, every call that moves
 * data between host and device or waits for it (upload, download, sum, sumSquares), allocates or frees is an
 * OpsInputError and the capture is abandoned; the backend stays usable.
 */
import { OpsInputError } from '../errors.js';
import type { BufferDType, Ops } from './ops.js';

export interface AdamWFromStep<Buf> {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** float32 or float64, 3 elements: [lr, 1 - beta1^t, 1 - beta2^t] (`adamwHyper`). */
  hyper: Buf;
  /**
   * Clip an accumulated gradient: grads hold K x the step's mean gradient and normSq (float32 or float64, 1
   * element) its sum of squares (`sumTo(normSq, grads, { squares: true })`); the update uses grads x
   * clipFactor(normSq, maxNorm, K). Absent: the grads as they are.
   */
  clip?: { normSq: Buf; maxNorm: number; K: number };
}

export interface DeviceStepOps<Buf> {
  /**
   * out (float32 or float64, 1 element) = sum of x's elements (squares: of their squares); accumulate: out +=.
   * Queued: the host does not wait.
   */
  sumTo(out: Buf, x: Buf, opts?: { squares?: boolean; accumulate?: boolean }): void | Promise<void>;
  /** One AdamW step as `Ops.adamw`, its per-step scalars read from the device (see the file comment). */
  adamwFrom(params: Buf, grads: Buf, m: Buf, v: Buf, h: AdamWFromStep<Buf>): void | Promise<void>;
}

/** A recorded sequence of ops (`OpsGraphs.captureGraph`). */
export interface OpsGraph {
  /** Work items recorded (CUDA: graph nodes, kernels and memory nodes; a host backend: op calls). */
  readonly nodes: number;
}

export interface OpsGraphs {
  /** Record the ops `record` calls (nothing runs); see the file comment for what may not be called. */
  captureGraph(record: () => Promise<void>): Promise<OpsGraph>;
  /** Run a recording (queued after everything before it). */
  launchGraph(g: OpsGraph): Promise<void>;
  /** Release a recording; launching it afterwards is an OpsInputError. */
  freeGraph(g: OpsGraph): void;
}

export function hasDeviceStep<Buf>(ops: Ops<Buf>): ops is Ops<Buf> & DeviceStepOps<Buf> {
  const o = ops as Partial<DeviceStepOps<Buf>>;
  return typeof o.sumTo === 'function' && typeof o.adamwFrom === 'function';
}

export function hasOpsGraphs<Buf>(ops: Ops<Buf>): ops is Ops<Buf> & OpsGraphs {
  const o = ops as Partial<OpsGraphs>;
  return (
    typeof o.captureGraph === 'function' &&
    typeof o.launchGraph === 'function' &&
    typeof o.freeGraph === 'function'
  );
}

/** [lr, 1 - beta1^t, 1 - beta2^t] for `AdamWFromStep.hyper` (t 1-based), computed in float64. */
export function adamwHyper(lr: number, beta1: number, beta2: number, t: number): Float64Array {
  if (!Number.isSafeInteger(t) || t < 1)
    throw new OpsInputError('adamwHyper t', 'an integer >= 1 (the 1-based step)', t);
  if (!Number.isFinite(lr)) throw new OpsInputError('adamwHyper lr', 'a finite number', lr);
  return Float64Array.of(lr, 1 - beta1 ** t, 1 - beta2 ** t);
}

/**
 * The factor an accumulated gradient (K x the mean gradient, sum of squares normSq) is multiplied by:
 * min(1, maxNorm / (norm + 1e-6)) / K with norm = sqrt(normSq) / K; 1 / K when norm is not finite or <= maxNorm.
 */
export function clipFactor(normSq: number, maxNorm: number, K: number): number {
  const norm = Math.sqrt(normSq) / K;
  return (Number.isFinite(norm) && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1) / K;
}

/** Checks `adamwFrom`'s scalar arguments (each backend calls it first): finite betas, eps, decay, clip. */
export function checkAdamWFromScalars<Buf>(op: string, h: AdamWFromStep<Buf>): void {
  if (h === null || typeof h !== 'object') throw new OpsInputError(`${op} h`, 'an object', h);
  for (const k of ['beta1', 'beta2', 'eps', 'weightDecay'] as const)
    if (typeof h[k] !== 'number' || !Number.isFinite(h[k]))
      throw new OpsInputError(`${op} h.${k}`, 'a finite number', h[k]);
  if (h.clip !== undefined) {
    if (h.clip === null || typeof h.clip !== 'object')
      throw new OpsInputError(`${op} h.clip`, 'an object { normSq, maxNorm, K } or absent', h.clip);
    if (
      typeof h.clip.maxNorm !== 'number' ||
      !(h.clip.maxNorm > 0) ||
      !Number.isFinite(h.clip.maxNorm)
    )
      throw new OpsInputError(`${op} h.clip.maxNorm`, 'a finite number > 0', h.clip.maxNorm);
    if (!Number.isSafeInteger(h.clip.K) || h.clip.K < 1)
      throw new OpsInputError(`${op} h.clip.K`, 'an integer >= 1', h.clip.K);
  }
}

/** The dtypes a device scalar (sumTo's out, hyper, normSq) may have. */
export const DEVICE_SCALAR_DTYPES: readonly BufferDType[] = ['float32', 'float64'];

/** The OpsInputError of a call that is not allowed while a graph is being captured. */
export function captureRefusal(op: string): OpsInputError {
  return new OpsInputError(
    op,
    'no host transfer, wait, allocation or free while a graph is being captured (OpsGraphs.captureGraph)',
    'a call during capture',
  );
}

/**
 * Records the ops of a training step into as few command buffers as possible. Dispatches of consecutive
 * ops go into one compute pass of one command encoder (WebGPU orders storage writes between dispatches
 * of a pass); copies and clears end the pass and go into the same encoder. The encoder is submitted:
 *   - at a sync point (`sync()`: sum, sumSquares, download), which also awaits the errors;
 *   - before anything that uses the queue directly (uploads, frees, the device-memory helpers), so the
 *     queue sees work in program order;
 *   - every MAX_DISPATCHES dispatches, so a long step starts on the GPU before it is fully recorded.
 * Each encoder runs under out-of-memory / validation / internal error scopes, pushed when it opens and
 * popped when it is submitted; their results are awaited at the next sync and become
 * BackendOutOfMemoryError / BackendExecutionError there (errors of a batch are reported late, at the
 * next sync, as the contract allows). A lost device fails every later call and every pending sync with
 * BackendExecutionError (Runtime.check), never a hang: sync() races the queue against device.lost.
 */
import { BackendExecutionError, BackendOutOfMemoryError } from '@flashattn/core';
import type { Runtime } from '../runtime.js';

/** Dispatches per command buffer before it is submitted anyway. */
export const MAX_DISPATCHES = 512;

export class Recorder {
  private enc: GPUCommandEncoder | undefined;
  private pass: GPUComputePassEncoder | undefined;
  private dispatches = 0;
  /** Error scopes of submitted batches, not yet awaited: [internal, validation, oom]. */
  private scopes: Promise<GPUError | null>[][] = [];
  /** Command buffers submitted since the start (for the benchmark). */
  submits = 0;

  constructor(private readonly rt: Runtime) {}

  private open(): GPUCommandEncoder {
    this.rt.check();
    if (!this.enc) {
      const dev = this.rt.device;
      dev.pushErrorScope('out-of-memory');
      dev.pushErrorScope('validation');
      dev.pushErrorScope('internal');
      this.enc = dev.createCommandEncoder();
    }
    return this.enc;
  }

  /** The open compute pass (opened if needed). Call `dispatched()` after recording into it. */
  compute(): GPUComputePassEncoder {
    const enc = this.open();
    this.pass ??= enc.beginComputePass();
    return this.pass;
  }

  /** Count a dispatch; submits when MAX_DISPATCHES are pending. */
  dispatched(n = 1): void {
    this.dispatches += n;
    if (this.dispatches >= MAX_DISPATCHES) this.flush();
  }

  /** The encoder with no pass open, for copies and clears. */
  encoder(): GPUCommandEncoder {
    const enc = this.open();
    if (this.pass) {
      this.pass.end();
      this.pass = undefined;
    }
    return enc;
  }

  /** Submit what is recorded (synchronous; errors surface at the next sync()). */
  flush(): void {
    if (!this.enc) return;
    const dev = this.rt.device;
    let thrown: unknown;
    try {
      if (this.pass) this.pass.end();
      dev.queue.submit([this.enc.finish()]);
      this.submits++;
    } catch (e) {
      thrown = e;
    } finally {
      this.pass = undefined;
      this.enc = undefined;
      this.dispatches = 0;
      // the uniform buffers of the submitted dispatches (destroyed once their work is done)
      this.rt.programs.releaseUniforms();
      this.scopes.push([dev.popErrorScope(), dev.popErrorScope(), dev.popErrorScope()]);
    }
    if (thrown !== undefined) {
      throw new BackendExecutionError(this.rt.name, String(thrown), { cause: thrown });
    }
  }

  /** Submit, then await the errors of every batch submitted so far; throws the first as a typed error. */
  async errors(): Promise<void> {
    this.flush();
    const pending = this.scopes;
    this.scopes = [];
    let first: Error | undefined;
    for (const [internal, validation, oom] of pending) {
      const [i, v, o] = await Promise.all([internal!, validation!, oom!]);
      if (first) continue;
      if (o) first = new BackendOutOfMemoryError(this.rt.name, `out of memory: ${o.message}`);
      else if (v) first = new BackendExecutionError(this.rt.name, `validation error: ${v.message}`);
      else if (i) first = new BackendExecutionError(this.rt.name, `internal error: ${i.message}`);
    }
    this.rt.check();
    if (first) throw first;
  }

  /** Submit and wait until the GPU has finished everything submitted (or the device is lost). */
  async sync(): Promise<void> {
    await this.errors();
    // device.lost resolves (never rejects) with the reason: a lost device ends the wait, not a hang.
    const lost = await Promise.race([this.rt.idle().then(() => undefined), this.rt.device.lost]);
    if (lost) {
      throw new BackendExecutionError(
        this.rt.name,
        `device lost (${lost.reason}): ${lost.message}`,
      );
    }
    this.rt.check();
  }
}

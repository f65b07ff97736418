/**
 * The model's view of attention: causal self-attention over (B, T, H, D) buffers. The float32 path
 * goes through any core AttentionBackend ('flash' = tiled, O(N) extra memory; 'standard' = the
 * materialised reference); the float64 path (gradient checks) uses attention64.ts.
 */
import { createCpuBackend, tensor, type AttentionBackend } from '@flashattn/core';
import { availableParallelism } from 'node:os';
import type { FloatArray } from '../ops/ops.js';
import { ParallelCpuAttention } from './parallel-attention.js';

export interface CausalAttention {
  readonly name: string;
  /** out (B, T, H, D) = causal softmax(q k^T / sqrt(D)) v; returns lse (B, H, T). */
  forward(q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, B: number, T: number, H: number, D: number): Promise<FloatArray>;
  /** dq, dk, dv (B, T, H, D) = gradients of sum(out * dout) (overwritten, not accumulated). */
  backward(
    dout: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray,
    dq: FloatArray, dk: FloatArray, dv: FloatArray, B: number, T: number, H: number, D: number,
  ): Promise<void>;
  dispose(): void | Promise<void>;
}

/** Adapts an AttentionBackend (float32) to CausalAttention. */
export class BackendAttention implements CausalAttention {
  readonly name: string;
  constructor(private readonly backend: AttentionBackend) {
    this.name = backend.name;
  }

  async forward(q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, B: number, T: number, H: number, D: number): Promise<FloatArray> {
    const shape = [B, T, H, D];
    const r = await this.backend.forward(f32(q, shape, 'q'), f32(k, shape, 'k'), f32(v, shape, 'v'), { causal: true });
    out.set(r.out.data as Float32Array);
    return r.lse;
  }

  async backward(
    dout: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray,
    dq: FloatArray, dk: FloatArray, dv: FloatArray, B: number, T: number, H: number, D: number,
  ): Promise<void> {
    const shape = [B, T, H, D];
    const g = await this.backend.backward(
      f32(dout, shape, 'dout'), f32(q, shape, 'q'), f32(k, shape, 'k'), f32(v, shape, 'v'), f32(out, shape, 'out'),
      lse as Float32Array, { causal: true },
    );
    dq.set(g.dq.data as Float32Array);
    dk.set(g.dk.data as Float32Array);
    dv.set(g.dv.data as Float32Array);
  }

  dispose(): void | Promise<void> {
    return this.backend.dispose();
  }
}

function f32(x: FloatArray, shape: number[], name: string) {
  if (!(x instanceof Float32Array)) throw new TypeError(`${name}: an AttentionBackend takes float32 buffers`);
  return tensor(x, shape, 'float32', name);
}

/**
 * 'flash' -> core's tiled FlashAttention-2 CPU backend; 'standard' -> core's materialised reference.
 * threads > 1 (default: all cores) splits the batch over worker threads, one backend each.
 */
export function cpuAttention(kind: 'flash' | 'standard', threads = availableParallelism()): CausalAttention {
  const k = kind === 'flash' ? 'flash' : 'reference';
  return threads > 1 ? new ParallelCpuAttention(k, threads) : new BackendAttention(createCpuBackend({ kind: k }));
}

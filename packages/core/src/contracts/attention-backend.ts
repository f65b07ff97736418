/**
 * The contract every backend (CPU, WebGPU, CUDA) implements. Shapes and semantics are those of
 * `attentionReference` / `attentionReferenceBackward`; the conformance suite checks them.
 */
import type { DType } from '../dtype.js';
import type { AttentionOptions } from '../options.js';
import type { Tensor } from '../tensor.js';

export interface AttentionForwardResult {
  /** (B, Nq, Hq, D), same dtype as q. */
  out: Tensor;
  /**
   * Log-sum-exp of each scaled score row, a flat Float32Array laid out (B, Hq, Nq) row-major: the lse of
   * query row i of head h in batch b is lse[(b * Hq + h) * Nq + i]. -Infinity for a fully masked row.
   */
  lse: Float32Array;
}

export interface AttentionGradients {
  /** (B, Nq, Hq, D) */
  dq: Tensor;
  /** (B, Nk, Hk, D): summed over the query heads of each group under GQA/MQA. */
  dk: Tensor;
  /** (B, Nk, Hk, D) */
  dv: Tensor;
}

export interface BackendCapabilities {
  /** Storage dtypes the backend accepts. */
  readonly dtypes: readonly DType[];
  /** Largest head dimension supported. */
  readonly maxHeadDim: number;
  /**
   * The precision a dtype is stored and multiplied in on this backend. Identity for most; the CUDA
   * backend computes float32 inputs as bfloat16 on tensor cores. Conformance sets its tolerance from it.
   */
  computeDType(dtype: DType): DType;
}

export interface AttentionBackend {
  /** Human-readable name, e.g. 'cpu-flash', 'webgpu (NVIDIA H100)', 'cuda:0'. */
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  /** out = softmax(scale * Q K^T + mask) V per head; FlashAttention-2 Algorithm 1 semantics. */
  forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    opts?: AttentionOptions,
  ): Promise<AttentionForwardResult>;
  /** Gradients of sum(out * dout) w.r.t. q, k, v given the forward's out and lse; Algorithm 2 semantics. */
  backward(
    dout: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Float32Array,
    opts?: AttentionOptions,
  ): Promise<AttentionGradients>;
  /** Release device resources. Calling forward/backward afterwards throws. */
  dispose(): void | Promise<void>;
}

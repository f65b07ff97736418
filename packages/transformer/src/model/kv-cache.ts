/**
 * GPT-2's KV cache for generation: per block, the keys and values of every position seen so far, in
 * the contiguous cache layout of core's KV-cache contract (contracts/kv-cache.ts), (B, capacity, H, D)
 * in the model's compute dtype. `GPT2.forwardCached` appends each call's new keys/values in place
 * (the attention's k_new/v_new, read from the packed qkv projection) and attends to the whole cache;
 * `length` is the number of positions every sequence holds (all sequences advance together).
 */
import type { Ops } from '@flashattn/core';

export class GPT2KVCache<Buf> {
  /** Positions held by each sequence (the next token's position). */
  length = 0;
  /** (B, capacity, H, D) per block. */
  readonly k: Buf[];
  readonly v: Buf[];

  constructor(
    private readonly ops: Ops<Buf>,
    readonly B: number,
    readonly capacity: number,
    readonly nLayer: number,
    readonly nHead: number,
    readonly headDim: number,
    dtype: Parameters<Ops<Buf>['alloc']>[1],
  ) {
    const n = B * capacity * nHead * headDim;
    this.k = Array.from({ length: nLayer }, () => ops.alloc(n, dtype));
    this.v = Array.from({ length: nLayer }, () => ops.alloc(n, dtype));
  }

  /** Forget every position (the buffers are kept; stale rows are never read past `length`). */
  reset(): void {
    this.length = 0;
  }

  /** Return the cache's buffers to the backend. */
  free(): void {
    for (const b of [...this.k, ...this.v]) this.ops.free(b);
    this.k.length = 0;
    this.v.length = 0;
  }
}

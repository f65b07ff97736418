/**
 * Data parallel training over core's Communicator, written once for every transport (the CPU sockets,
 * NCCL): the step's micro-batches dealt out to the ranks, the gradients all-reduced in buckets, and
 * AdamW sharded across the ranks (ZeRO stage 1) with the parameters all-gathered after the step.
 *
 * Equivalence with one process (same seed, same --total-batch): every rank reads the whole step's data
 * stream (the loader's position advances identically everywhere, so a checkpoint resumes on any number
 * of ranks) and runs the micro-steps k with k mod W = rank. The all-reduced gradient is the sum of the
 * micro-steps' gradients, as one process accumulates it, but added in another order (per rank, then
 * across ranks in rank order), so it agrees to float32 rounding, not bit for bit; the clip, the norm
 * and AdamW then run on identical bits on every rank. The loss is the mean of the micro-steps' losses
 * gathered and added in micro-step order: bit-identical to one process for the first step.
 */
import { shardRange, type Communicator, type Ops, type ParamSpecLike } from './types.js';

/** PyTorch DDP's default bucket (bucket_cap_mb = 25). */
export const DEFAULT_BUCKET_MB = 25;

/**
 * grads (n) = sum over ranks, in buckets of at most bucketElems, from the end of the flat buffer to its
 * start (the order the backward produces them: the last layers first, as DDP's buckets). On a GPU each
 * bucket's all-reduce is queued on the communication stream as soon as the backward has written it;
 * here they run one after another.
 */
export async function allReduceGradients<Buf>(
  comm: Communicator<Buf>,
  ops: Ops<Buf>,
  grads: Buf,
  bucketElems: number,
): Promise<number> {
  const n = ops.lengthOf(grads);
  let buckets = 0;
  for (let hi = n; hi > 0; hi -= bucketElems) {
    const lo = Math.max(0, hi - bucketElems);
    await comm.allReduce(ops.view(grads, lo, hi - lo), 'sum');
    buckets++;
  }
  return buckets;
}

/** Losses of the micro-steps (K) from every rank, in micro-step order; the step's mean loss. */
export async function gatherLoss<Buf>(
  comm: Communicator<Buf>,
  ops: Ops<Buf>,
  mine: readonly number[],
  K: number,
): Promise<number> {
  const W = comm.worldSize;
  const per = Math.ceil(K / W);
  const dt = ops.dtypes.includes('float64') ? 'float64' : 'float32';
  const local = ops.alloc(per, dt); // (per,) this rank's micro-step losses, zero-padded
  const all = ops.alloc(per * W, dt); // (W, per)
  try {
    await ops.upload(
      local,
      Float64Array.from({ length: per }, (_, i) => mine[i] ?? 0),
    );
    await comm.allGather(all, local);
    const host = await ops.download(all);
    let loss = 0;
    for (let k = 0; k < K; k++) loss += host[(k % W) * per + Math.floor(k / W)]!;
    return loss / K;
  } finally {
    ops.free(local);
    ops.free(all);
  }
}

/**
 * AdamW (the same update and decay groups as @flashattn/transformer's AdamW) over this rank's shard
 * [lo, hi) of the flat parameters only: m and v hold hi - lo elements (ZeRO stage 1). After `step`,
 * every rank holds the whole updated parameters (all-gathered). Checkpoints see the full moments
 * through `gatherState()` (a collective: every rank calls it) and `getState()` after it; `setState`
 * takes the full moments (any world size wrote them) and keeps this rank's shard.
 */
export class ShardedAdamW<Buf> {
  readonly lo: number;
  readonly hi: number;
  /** Moments of the shard: (hi - lo). */
  readonly m: Buf;
  readonly v: Buf;
  t = 0;
  private readonly per: number;
  private readonly ranges: Array<{ lo: number; hi: number; decay: boolean }>;
  private gathered: { m: Float32Array | Float64Array; v: Float32Array | Float64Array } | null =
    null;

  constructor(
    private readonly ops: Ops<Buf>,
    private readonly comm: Communicator<Buf>,
    specs: readonly ParamSpecLike[],
    private readonly n: number,
    readonly config: { beta1: number; beta2: number; eps: number; weightDecay: number },
  ) {
    const W = comm.worldSize;
    ({ lo: this.lo, hi: this.hi } = shardRange(n, comm.rank, W));
    this.per = Math.ceil(n / W);
    this.m = ops.alloc(Math.max(1, this.hi - this.lo), 'float32');
    this.v = ops.alloc(Math.max(1, this.hi - this.lo), 'float32');
    // The decay groups (matrices decay, biases and LayerNorm do not), clipped to the shard.
    this.ranges = [];
    for (const s of specs) {
      const lo = Math.max(this.lo, s.offset);
      const hi = Math.min(this.hi, s.offset + s.size);
      if (lo >= hi) continue;
      const last = this.ranges[this.ranges.length - 1];
      if (last && last.decay === s.decay && last.hi === lo) last.hi = hi;
      else this.ranges.push({ lo, hi, decay: s.decay });
    }
  }

  /** AdamW on the shard, then params (n) all-gathered from the ranks' shards. */
  async step(params: Buf, grads: Buf, lr: number): Promise<void> {
    this.t++;
    this.gathered = null;
    const { beta1, beta2, eps, weightDecay } = this.config;
    const ops = this.ops;
    for (const r of this.ranges) {
      const len = r.hi - r.lo;
      await ops.adamw(
        ops.view(params, r.lo, len),
        ops.view(grads, r.lo, len),
        ops.view(this.m, r.lo - this.lo, len),
        ops.view(this.v, r.lo - this.lo, len),
        { lr, beta1, beta2, eps, weightDecay: r.decay ? weightDecay : 0, t: this.t },
      );
    }
    await this.gatherFull(params, ops.dtypeOf(params));
  }

  /** full (n) = the ranks' shards [lo, hi) of full, through a padded (W * per) staging buffer. */
  private async gatherFull(full: Buf, dtype: 'float32' | 'float64' | string): Promise<void> {
    const ops = this.ops;
    const W = this.comm.worldSize;
    if (W === 1) return;
    const dt = dtype === 'float64' ? 'float64' : 'float32';
    const staging = ops.alloc(W * this.per, dt); // (W, per)
    try {
      const mine = ops.view(staging, this.comm.rank * this.per, this.per);
      if (this.hi > this.lo)
        await ops.copy(
          ops.view(staging, this.lo, this.hi - this.lo),
          ops.view(full, this.lo, this.hi - this.lo),
        );
      await this.comm.allGather(staging, mine);
      await ops.copy(full, ops.view(staging, 0, this.n));
    } finally {
      ops.free(staging);
    }
  }

  /** Gather the full moments to every rank's host (a collective), for the checkpoint writer. */
  async gatherState(): Promise<void> {
    const full = async (shard: Buf): Promise<Float32Array> => {
      const buf = this.ops.alloc(this.n, 'float32');
      try {
        if (this.hi > this.lo)
          await this.ops.copy(
            this.ops.view(buf, this.lo, this.hi - this.lo),
            this.ops.view(shard, 0, this.hi - this.lo),
          );
        await this.gatherFull(buf, 'float32');
        return (await this.ops.download(buf)) as Float32Array;
      } finally {
        this.ops.free(buf);
      }
    };
    this.gathered = { m: await full(this.m), v: await full(this.v) };
  }

  /** The full moments, after gatherState() (the checkpoint writer calls this on rank 0). */
  getState(): Promise<{ m: Float32Array | Float64Array; v: Float32Array | Float64Array }> {
    if (!this.gathered)
      return Promise.reject(
        new Error('ShardedAdamW.getState: call gatherState() on every rank first'),
      );
    return Promise.resolve(this.gathered);
  }

  /** Restore from the full moments (n each) and the step count: this rank keeps its shard. */
  async setState(
    m: Float32Array | Float64Array,
    v: Float32Array | Float64Array,
    t: number,
  ): Promise<void> {
    if (this.hi > this.lo) {
      await this.ops.upload(
        this.ops.view(this.m, 0, this.hi - this.lo),
        m.subarray(this.lo, this.hi),
      );
      await this.ops.upload(
        this.ops.view(this.v, 0, this.hi - this.lo),
        v.subarray(this.lo, this.hi),
      );
    }
    this.t = t;
    this.gathered = null;
  }
}

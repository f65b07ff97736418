/**
 * Ring attention (sequence parallel): one sequence of N rows split across W ranks, each holding 2c rows
 * (c = N / 2W) in the zig-zag split -- chunks r and 2W - 1 - r of the 2W chunks, so under a causal mask
 * every rank does the same work (chunk r sees few keys, chunk 2W - 1 - r many). K/V blocks travel
 * around the ring (rank r sends to r + 1, receives from r - 1) with the Communicator's sendRecv, each
 * rank runs its DeviceAttention on the block in hand, and the partial outputs are merged by their lse
 * with the kv-cache contract's `attentionCombine` (lse = log sum exp lse_s, out = sum exp(lse_s - lse)
 * out_s). Written once over core's contracts: the CPU transport runs it in tests, NCCL on GPUs.
 *
 * Blocks (query chunk i, key chunk j), chunks numbered globally 0..2W-1: non-causal, every pair;
 * causal, j < i is a full block, j = i the causal diagonal (Nq = Nk, so flash-attn's bottom-right
 * alignment is the ordinary one), j > i is skipped.
 *
 * Backward (FlashAttention-2's Algorithm 2 per block, with the FINAL out and lse, so each block's
 * P = exp(S - lse) and D = rowsum(dO * O) are the global ones and the block gradients simply add): dq
 * accumulates on the rank, dk and dv accumulate in a buffer that travels with the K/V block and comes
 * home after W hops.
 *
 * Overlap: each step's sendRecv is issued before the attention on the block in hand and awaited after
 * it. The CPU transport's bytes arrive while the rank computes; @flashattn/cuda's NCCL communicator
 * enqueues every collective on the device's one stream (packages/cuda/src/nccl.ts), so on GPUs the hop
 * and the attention run one after the other until it gets a stream of its own. apps/bench's ring-bench
 * times the sendRecv sequence alone beside the ring, to show what overlap would hide.
 *
 * Memory per rank, in units of one (B, 2c, H, D) float32 buffer, beyond the caller's q, k, v, out, dout,
 * dq, dk, dv (8): forward 6.5 (acc 2, merged 0.5, the packed K/V in hand and the next 2 + 2), backward 9.5
 * (dq/dk/dv blocks 1.5, K/V in hand and next 4, dK/dV travelling and next 4). So the ring's peak is
 * 17.5 units of N / W rows against single-device flash's 8 units of N rows: its longest N is about
 * 0.46 W times flash's (ring-bench's CPU smoke run at a simulated 4 MiB: 2.2 MiB per rank at N = 256,
 * W = 2, against flash's 2.0 MiB).
 *
 * Layout (this rank's rows, zig-zag order): q, out, dout, dq (B, 2c, Hq, D); k, v, dk, dv
 * (B, 2c, Hk, D), contiguous; lse (B, Hq, 2c) float32. All buffers float32 (the combine's partials).
 */
import {
  AttentionInputError,
  contiguousView,
  type AttentionOptions,
  type Communicator,
  type DeviceAttention,
  type DeviceKvCacheAttention,
  type DeviceMemory,
  type Ops,
  type StridedView,
} from '@flashattn/core';

/** What ring attention needs from a backend: memory, attention, the lse combine and add. */
export type RingOps<Buf> = DeviceMemory<Buf> &
  DeviceAttention<Buf> &
  Pick<DeviceKvCacheAttention<Buf>, 'attentionCombine'> &
  Pick<Ops<Buf>, 'add'>;

export interface RingShape {
  B: number;
  /** Rows on this rank: 2c. */
  Nlocal: number;
  Hq: number;
  Hk: number;
  D: number;
}

/** The global row indices of rank `rank`'s 2c rows (zig-zag: chunk rank, then chunk 2W - 1 - rank). */
export function zigzagRows(N: number, rank: number, W: number): number[] {
  if (N % (2 * W) !== 0)
    throw new AttentionInputError(
      'N',
      `a multiple of 2 * worldSize = ${2 * W} (the zig-zag split)`,
      N,
    );
  const c = N / (2 * W);
  const rows: number[] = [];
  for (const chunk of [rank, 2 * W - 1 - rank])
    for (let i = 0; i < c; i++) rows.push(chunk * c + i);
  return rows;
}

/** The global chunk index of local chunk li (0 or 1) on rank r. */
const chunkOf = (r: number, li: number, W: number): number => (li === 0 ? r : 2 * W - 1 - r);

function checkOpts(opts: AttentionOptions | undefined): void {
  const w = opts?.windowSize;
  if (w && (w[0] !== -1 || w[1] !== -1))
    throw new AttentionInputError(
      'opts.windowSize',
      '[-1, -1] (ring attention: causal or full)',
      w,
    );
}

class Ring<Buf> {
  readonly c: number;
  constructor(
    readonly ops: RingOps<Buf>,
    readonly comm: Communicator<Buf>,
    readonly s: RingShape,
  ) {
    if (s.Nlocal % 2 !== 0 || s.Nlocal === 0)
      throw new AttentionInputError(
        'Nlocal',
        'an even number of rows > 0 (two zig-zag chunks)',
        s.Nlocal,
      );
    this.c = s.Nlocal / 2;
  }

  /** Chunk li (B, c, H, D) of a (B, 2c, H, D) buffer, or a (B, c, H, D) block at element `at` of `buf`. */
  chunk(buf: Buf, li: number, H: number, at = 0): StridedView<Buf> {
    const { B, D, Nlocal } = this.s;
    return {
      buffer: buf,
      offset: at + li * this.c * H * D,
      shape: [B, this.c, H, D],
      strides: [Nlocal * H * D, H * D, D, 1],
    };
  }

  block(buf: Buf, H: number, at = 0): StridedView<Buf> {
    return contiguousView(buf, [this.s.B, this.c, H, this.s.D], at);
  }

  /** dst chunk li of (B, 2c, H, D) (+)= src (B, c, H, D), one contiguous row block per batch entry. */
  async intoChunk(
    dst: Buf,
    dstAt: number,
    li: number,
    src: Buf,
    H: number,
    add: boolean,
  ): Promise<void> {
    const { B, D, Nlocal } = this.s;
    const n = this.c * H * D;
    for (let b = 0; b < B; b++) {
      const d = this.ops.view(dst, dstAt + b * Nlocal * H * D + li * n, n);
      const x = this.ops.view(src, b * n, n);
      if (add) await this.ops.add(d, d, x, n);
      else await this.ops.copy(d, x);
    }
  }

  /** lse rows of chunk li: (B, Hq, 2c) <-> (B, Hq, c), one copy per (b, h). */
  async lseChunk(full: Buf, li: number, part: Buf, toPart: boolean): Promise<void> {
    const { B, Hq, Nlocal } = this.s;
    const c = this.c;
    for (let bh = 0; bh < B * Hq; bh++) {
      const f = this.ops.view(full, bh * Nlocal + li * c, c);
      const p = this.ops.view(part, bh * c, c);
      if (toPart) await this.ops.copy(p, f);
      else await this.ops.copy(f, p);
    }
  }

  /** The blocks (local q chunk, local k chunk) to compute when holding the K/V of rank src. */
  pairs(src: number, causal: boolean): Array<[number, number]> {
    const W = this.comm.worldSize;
    const r = this.comm.rank;
    const out: Array<[number, number]> = [];
    for (const qi of [0, 1])
      for (const kj of [0, 1]) {
        const gi = chunkOf(r, qi, W);
        const gj = chunkOf(src, kj, W);
        if (!causal || gj <= gi) out.push([qi, kj]);
      }
    return out;
  }

  /** (B, 2c, Hk, D) k and v packed as one (2, B, 2c, Hk, D) buffer for the ring. */
  async pack(k: Buf, v: Buf): Promise<Buf> {
    const n = this.ops.lengthOf(k);
    const kv = this.ops.alloc(2 * n, 'float32');
    await this.ops.copy(this.ops.view(kv, 0, n), k);
    await this.ops.copy(this.ops.view(kv, n, n), v);
    return kv;
  }
}

export interface RingForwardArgs<Buf> {
  q: Buf; // (B, 2c, Hq, D)
  k: Buf; // (B, 2c, Hk, D)
  v: Buf; // (B, 2c, Hk, D)
  out: Buf; // (B, 2c, Hq, D), written
  lse: Buf; // (B, Hq, 2c) float32, written
}

/** out, lse of this rank's rows = attention of them over the whole sequence's keys. */
export async function ringAttentionForward<Buf>(
  ops: RingOps<Buf>,
  comm: Communicator<Buf>,
  shape: RingShape,
  a: RingForwardArgs<Buf>,
  opts?: AttentionOptions,
): Promise<void> {
  checkOpts(opts);
  const ring = new Ring(ops, comm, shape);
  const { B, Hq, Hk, D } = shape;
  const c = ring.c;
  const W = comm.worldSize;
  const causal = opts?.causal ?? false;
  const nkv = ops.lengthOf(a.k);
  const qBlock = B * c * Hq * D;
  // Per local query chunk: slot 0 the running (out, lse), slot 1 the new partial.
  const acc = [0, 1].map(() => ops.alloc(2 * qBlock, 'float32')); // (2, B, c, Hq, D)
  const accLse = [0, 1].map(() => ops.alloc(2 * B * Hq * c, 'float32')); // (2, B, Hq, c)
  const merged = ops.alloc(qBlock, 'float32'); // (B, c, Hq, D)
  const mergedLse = ops.alloc(B * Hq * c, 'float32'); // (B, Hq, c)
  let cur: Buf = await ring.pack(a.k, a.v);
  let next = ops.alloc(2 * nkv, 'float32');
  const seen = [false, false];
  try {
    for (let s = 0; s < W; s++) {
      const src = (comm.rank - s + W) % W;
      const pending =
        s < W - 1 ? comm.sendRecv(cur, (comm.rank + 1) % W, next, (comm.rank - 1 + W) % W) : null;
      for (const [qi, kj] of ring.pairs(src, causal)) {
        const gi = chunkOf(comm.rank, qi, W);
        const gj = chunkOf(src, kj, W);
        const slot = seen[qi] ? 1 : 0;
        await ops.attentionForward(
          {
            q: ring.chunk(a.q, qi, Hq),
            k: ring.chunk(cur, kj, Hk),
            v: ring.chunk(cur, kj, Hk, nkv),
            out: ring.block(acc[qi]!, Hq, slot * qBlock),
            lse: ops.view(accLse[qi]!, slot * B * Hq * c, B * Hq * c),
          },
          { ...opts, causal: causal && gi === gj },
        );
        if (seen[qi]) {
          // Merge the running result and the new partial by their lse (kv-cache contract's combine).
          await ops.attentionCombine({
            outPartial: acc[qi]!,
            lsePartial: accLse[qi]!,
            numSplits: 2,
            out: ring.block(merged, Hq),
            lse: mergedLse,
          });
          await ops.copy(ops.view(acc[qi]!, 0, qBlock), merged);
          await ops.copy(ops.view(accLse[qi]!, 0, B * Hq * c), mergedLse);
        }
        seen[qi] = true;
      }
      if (pending) {
        await pending;
        const t = cur;
        cur = next;
        next = t;
      }
    }
    for (const qi of [0, 1]) {
      await ring.intoChunk(a.out, 0, qi, ops.view(acc[qi]!, 0, qBlock), Hq, false);
      await ring.lseChunk(a.lse, qi, ops.view(accLse[qi]!, 0, B * Hq * c), false);
    }
  } finally {
    for (const b of [...acc, ...accLse, merged, mergedLse, cur, next]) ops.free(b);
  }
}

export interface RingBackwardArgs<Buf> extends RingForwardArgs<Buf> {
  dout: Buf; // (B, 2c, Hq, D)
  dq: Buf; // (B, 2c, Hq, D), written
  dk: Buf; // (B, 2c, Hk, D), written
  dv: Buf; // (B, 2c, Hk, D), written
}

/** dq, dk, dv of this rank's rows, given the forward's out and lse (ringAttentionForward's). */
export async function ringAttentionBackward<Buf>(
  ops: RingOps<Buf>,
  comm: Communicator<Buf>,
  shape: RingShape,
  a: RingBackwardArgs<Buf>,
  opts?: AttentionOptions,
): Promise<void> {
  checkOpts(opts);
  const ring = new Ring(ops, comm, shape);
  const { B, Hq, Hk, D } = shape;
  const c = ring.c;
  const W = comm.worldSize;
  const causal = opts?.causal ?? false;
  const nkv = ops.lengthOf(a.k);
  const lseParts = [0, 1].map(() => ops.alloc(B * Hq * c, 'float32')); // (B, Hq, c) per local q chunk
  const dqBlock = ops.alloc(B * c * Hq * D, 'float32'); // (B, c, Hq, D)
  const dkBlock = ops.alloc(B * c * Hk * D, 'float32'); // (B, c, Hk, D)
  const dvBlock = ops.alloc(B * c * Hk * D, 'float32');
  let cur: Buf = await ring.pack(a.k, a.v); // (2, B, 2c, Hk, D): the K/V block in hand
  let next = ops.alloc(2 * nkv, 'float32');
  let dkv = ops.alloc(2 * nkv, 'float32'); // its dk, dv accumulated so far, travelling with it
  let dkvNext = ops.alloc(2 * nkv, 'float32');
  try {
    await ops.zero(a.dq);
    for (const qi of [0, 1]) await ring.lseChunk(a.lse, qi, lseParts[qi]!, true);
    for (let s = 0; s < W; s++) {
      const src = (comm.rank - s + W) % W;
      const to = (comm.rank + 1) % W;
      const from = (comm.rank - 1 + W) % W;
      // K/V for the next step travel while this block computes; dk/dv follow once they are complete.
      const pending = s < W - 1 ? comm.sendRecv(cur, to, next, from) : null;
      for (const [qi, kj] of ring.pairs(src, causal)) {
        const gi = chunkOf(comm.rank, qi, W);
        const gj = chunkOf(src, kj, W);
        await ops.attentionBackward(
          {
            dout: ring.chunk(a.dout, qi, Hq),
            q: ring.chunk(a.q, qi, Hq),
            k: ring.chunk(cur, kj, Hk),
            v: ring.chunk(cur, kj, Hk, nkv),
            out: ring.chunk(a.out, qi, Hq),
            lse: lseParts[qi]!,
            dq: ring.block(dqBlock, Hq),
            dk: ring.block(dkBlock, Hk),
            dv: ring.block(dvBlock, Hk),
          },
          { ...opts, causal: causal && gi === gj },
        );
        await ring.intoChunk(a.dq, 0, qi, dqBlock, Hq, true);
        await ring.intoChunk(dkv, 0, kj, dkBlock, Hk, true);
        await ring.intoChunk(dkv, nkv, kj, dvBlock, Hk, true);
      }
      // dk/dv move on every step, the last one bringing each block's gradients home (W hops).
      await comm.sendRecv(dkv, to, dkvNext, from);
      [dkv, dkvNext] = [dkvNext, dkv];
      if (pending) {
        await pending;
        const t = cur;
        cur = next;
        next = t;
      }
    }
    await ops.copy(a.dk, ops.view(dkv, 0, nkv));
    await ops.copy(a.dv, ops.view(dkv, nkv, nkv));
  } finally {
    for (const b of [...lseParts, dqBlock, dkBlock, dvBlock, cur, next, dkv, dkvNext]) ops.free(b);
  }
}

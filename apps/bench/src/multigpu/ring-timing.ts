/**
 * Timed forward + backward at one causal sequence length N, on one rank of a job: ring attention over the
 * job's W ranks (each holding its 2c = N / W zig-zag rows), or single-device flash (the whole sequence on
 * this rank, no communicator). Inputs are random but their contents do not matter for the time: a 2^20-
 * element random block is uploaded repeatedly over each buffer (uploading N x H x D fresh values would take
 * the host longer than the attention at the lengths the search reaches).
 *
 * Each timed phase is bracketed by drains and, for the ring, barriers, so the time is the slowest rank's:
 *   drain; barrier; drain; t0; phase; drain; barrier; drain; t1.
 * For the ring it also times the same sendRecv sequence alone (forward: W - 1 K/V hops of (2, B, 2c, H, D);
 * backward: W - 1 K/V hops and W dK/dV hops), the communication the ring would hide if it overlapped.
 */
import { contiguousView, createRng, type Communicator } from '@flashattn/core';
import { ringAttentionBackward, ringAttentionForward } from '@flashattn/transformer';
import { median } from '../lib/timing.js';
import { drain, type RankOps } from './ring-ops.js';

export interface RunShape {
  B: number;
  H: number;
  D: number;
  /** The global sequence length. */
  N: number;
}

export interface PhaseTimes {
  /** Median milliseconds of the forward, the backward, and (ring) their sendRecv sequence alone. */
  fwdMs: number;
  bwdMs: number;
  commFwdMs: number | null;
  commBwdMs: number | null;
  fwdSamplesMs: number[];
  bwdSamplesMs: number[];
}

const FILL = 1 << 20;

/** Fill `buf` (n elements) with a repeated block of standard normal values. */
async function fillRandom(ops: RankOps, buf: unknown, n: number, seed: number): Promise<void> {
  const rng = createRng(seed);
  const block = new Float32Array(Math.min(n, FILL));
  for (let i = 0; i < block.length; i++) block[i] = rng.normal();
  for (let at = 0; at < n; at += block.length) {
    const len = Math.min(block.length, n - at);
    await ops.upload(ops.view(buf, at, len), len === block.length ? block : block.subarray(0, len));
  }
}

async function fence(ops: RankOps, comm: Communicator<unknown> | null): Promise<void> {
  await drain(ops);
  if (comm) {
    await comm.barrier();
    await drain(ops);
  }
}

/** Times one phase `iters` times after `warmup` untimed runs; the slowest rank's time (see above). */
async function timePhase(
  ops: RankOps,
  comm: Communicator<unknown> | null,
  warmup: number,
  iters: number,
  fn: () => void | Promise<void>,
): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < warmup + iters; i++) {
    await fence(ops, comm);
    const t0 = performance.now();
    await fn();
    await fence(ops, comm);
    if (i >= warmup) samples.push(performance.now() - t0);
  }
  return samples;
}

/**
 * Forward and backward at `s`, causal: ring attention when `comm` is given (this rank's zig-zag rows), else
 * single-device flash on the whole sequence. All buffers float32 (the ring's partials and combine are
 * float32; the single-device run uses the same storage so the two differ only by the ring).
 */
export async function timeForwardBackward(
  ops: RankOps,
  comm: Communicator<unknown> | null,
  s: RunShape,
  o: { warmup: number; iters: number; seed: number },
): Promise<PhaseTimes> {
  const { B, H, D, N } = s;
  const W = comm?.worldSize ?? 1;
  const L = N / W; // rows held here: 2c for the ring, N alone
  const rows = B * L * H * D;
  const held: unknown[] = [];
  const alloc = (n: number): unknown => {
    const b = ops.alloc(n, 'float32');
    held.push(b);
    return b;
  };
  try {
    const q = alloc(rows); // (B, L, H, D)
    const k = alloc(rows); // (B, L, H, D)
    const v = alloc(rows); // (B, L, H, D)
    const dout = alloc(rows); // (B, L, H, D)
    const out = alloc(rows); // (B, L, H, D)
    const lse = alloc(B * H * L); // (B, H, L)
    const dq = alloc(rows); // (B, L, H, D)
    const dk = alloc(rows); // (B, L, H, D)
    const dv = alloc(rows); // (B, L, H, D)
    const seed = o.seed + 7919 * (comm?.rank ?? 0);
    for (const [i, b] of [q, k, v, dout].entries()) await fillRandom(ops, b, rows, seed + i);
    const causal = { causal: true };
    let fwd: () => void | Promise<void>;
    let bwd: () => void | Promise<void>;
    if (comm) {
      const shape = { B, Nlocal: L, Hq: H, Hk: H, D };
      fwd = () => ringAttentionForward(ops, comm, shape, { q, k, v, out, lse }, causal);
      bwd = () =>
        ringAttentionBackward(ops, comm, shape, { q, k, v, out, lse, dout, dq, dk, dv }, causal);
    } else {
      const view = (b: unknown) => contiguousView(b, [B, N, H, D]);
      fwd = () =>
        ops.attentionForward({ q: view(q), k: view(k), v: view(v), out: view(out), lse }, causal);
      bwd = () =>
        ops.attentionBackward(
          {
            dout: view(dout),
            q: view(q),
            k: view(k),
            v: view(v),
            out: view(out),
            lse,
            dq: view(dq),
            dk: view(dk),
            dv: view(dv),
          },
          causal,
        );
    }
    // The backward needs the forward's out and lse: each backward sample follows a forward.
    const fwdSamples = await timePhase(ops, comm, o.warmup, o.iters, fwd);
    const bwdSamples = await timePhase(ops, comm, o.warmup, o.iters, bwd);
    let commFwdMs: number | null = null;
    let commBwdMs: number | null = null;
    if (comm && W > 1) {
      const kv = alloc(2 * rows); // (2, B, 2c, H, D): the K/V block in hand
      const kvNext = alloc(2 * rows);
      const to = (comm.rank + 1) % W;
      const from = (comm.rank - 1 + W) % W;
      const hops = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) await comm.sendRecv(kv, to, kvNext, from);
      };
      commFwdMs = median(await timePhase(ops, comm, 1, o.iters, () => hops(W - 1)));
      commBwdMs = median(await timePhase(ops, comm, 1, o.iters, () => hops(2 * W - 1)));
    }
    return {
      fwdMs: median(fwdSamples),
      bwdMs: median(bwdSamples),
      commFwdMs,
      commBwdMs,
      fwdSamplesMs: fwdSamples,
      bwdSamplesMs: bwdSamples,
    };
  } finally {
    for (const b of held) ops.free(b);
  }
}

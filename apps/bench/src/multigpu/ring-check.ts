/**
 * The correctness check before any timing, at a small causal N on every rank of the job: the same random
 * q, k, v, dout (B, N, H, D) on every rank (one seed), then
 *   ring:   this rank's zig-zag rows through ringAttentionForward / ringAttentionBackward over the W ranks;
 *   single: the whole sequence through this rank's own attentionForward / attentionBackward (single-device
 *           flash, no communicator);
 * and out, lse, dq, dk, dv of both against core's float64 oracle (attentionReference64 and its backward) under
 * the conformance rule (core/testing: error <= 2x a naive implementation's error at the backend's compute
 * precision + the derived floor), the ring on this rank's rows (the naive error on the same rows), single on
 * all rows. Also the largest |ring - single| on this rank's rows, for the report.
 */
import {
  attentionReference64,
  attentionReferenceBackward64,
  contiguousView,
  createRng,
  randomTensor,
  tensor,
  type Communicator,
  type Tensor,
} from '@flashattn/core';
import {
  allowedError,
  naiveAttention,
  toleranceFor,
  withinTolerance,
} from '@flashattn/core/testing';
import { ringAttentionBackward, ringAttentionForward, zigzagRows } from '@flashattn/transformer';
import type { RankSetup } from './ring-ops.js';
import type { RunShape } from './ring-timing.js';

export const CHECK_OUTPUTS = ['out', 'lse', 'dq', 'dk', 'dv'] as const;
export type CheckOutput = (typeof CHECK_OUTPUTS)[number];

export interface OutputCheck {
  /** max |x - oracle| */
  err: number;
  /** max |naive - oracle| on the same elements */
  naiveErr: number;
  /** what the rule allows: factor x naiveErr + floor */
  allowed: number;
  pass: boolean;
}

export interface RankCheck {
  rank: number;
  computeDType: string;
  ring: Record<CheckOutput, OutputCheck>;
  single: Record<CheckOutput, OutputCheck>;
  /** max |ring - single| over this rank's rows, per output */
  ringVsSingle: Record<CheckOutput, number>;
}

type Grads = Record<CheckOutput, ArrayLike<number>>;

export async function checkRing(
  setup: RankSetup,
  comm: Communicator<unknown>,
  s: RunShape,
  seed: number,
): Promise<RankCheck> {
  const { ops, computeDType } = setup;
  const { B, H, D, N } = s;
  const W = comm.worldSize;
  const rng = createRng(seed);
  const [q, k, v, dout] = [0, 1, 2, 3].map(() => randomTensor(rng, [B, N, H, D])) as [
    Tensor,
    Tensor,
    Tensor,
    Tensor,
  ];
  const opts = { causal: true };
  const ref = attentionReference64(q, k, v, opts);
  const refGrads = attentionReferenceBackward64(
    dout,
    q,
    k,
    v,
    tensor(Float32Array.from(ref.out), [B, N, H, D]),
    Float32Array.from(ref.lse),
    opts,
  );
  const oracle: Grads = { out: ref.out, lse: ref.lse, ...refGrads };
  const naive = naiveAttention(q, k, v, opts, computeDType, dout);
  const nf = naive.forward;
  const nb = naive.backward!;
  const naiveOut: Grads = { out: nf.out, lse: nf.lse, dq: nb.dq, dk: nb.dk, dv: nb.dv };
  const magnitudes: Record<CheckOutput, { abs: number; recompute: number }> = {
    out: { abs: nf.outAbs, recompute: nf.outRescore },
    lse: { abs: nf.lseAbs, recompute: nf.lseRescore },
    dq: { abs: nb.dqAbs, recompute: nb.dqRecompute },
    dk: { abs: nb.dkAbs, recompute: nb.dkRecompute },
    dv: { abs: nb.dvAbs, recompute: nb.dvRecompute },
  };

  const rows = zigzagRows(N, comm.rank, W);
  const L = rows.length;
  // Element indices of this rank's rows in a (B, N, H, D) tensor, in the rank's (B, L, H, D) order, and in
  // the (B, H, N) lse, in (B, H, L) order.
  const rowIdx: number[] = [];
  for (let b = 0; b < B; b++)
    for (const g of rows) for (let e = 0; e < H * D; e++) rowIdx.push((b * N + g) * H * D + e);
  const lseIdx: number[] = [];
  for (let bh = 0; bh < B * H; bh++) for (const g of rows) lseIdx.push(bh * N + g);
  const idxOf = (name: CheckOutput): number[] => (name === 'lse' ? lseIdx : rowIdx);
  const pick = (x: ArrayLike<number>, idx: number[]): Float32Array =>
    Float32Array.from(idx, (i) => x[i]!);

  const up = async (x: ArrayLike<number>): Promise<unknown> => {
    const buf = ops.alloc(x.length, 'float32');
    await ops.upload(buf, Float32Array.from(x as ArrayLike<number>));
    return buf;
  };
  const held: unknown[] = [];
  const take = async (x: ArrayLike<number>): Promise<unknown> => {
    const b = await up(x);
    held.push(b);
    return b;
  };
  const fresh = (n: number): unknown => {
    const b = ops.alloc(n, 'float32');
    held.push(b);
    return b;
  };
  const read = async (b: unknown): Promise<Float32Array> =>
    Float32Array.from((await ops.download(b)) as ArrayLike<number>);
  try {
    // Ring: this rank's rows.
    const n = B * L * H * D;
    const [rq, rk, rv, rdout] = await Promise.all(
      [q, k, v, dout].map((t) => take(pick(t.data, rowIdx))),
    );
    const r = { out: fresh(n), lse: fresh(B * H * L), dq: fresh(n), dk: fresh(n), dv: fresh(n) };
    const shape = { B, Nlocal: L, Hq: H, Hk: H, D };
    await ringAttentionForward(
      ops,
      comm,
      shape,
      { q: rq, k: rk, v: rv, out: r.out, lse: r.lse },
      opts,
    );
    await ringAttentionBackward(
      ops,
      comm,
      shape,
      { q: rq, k: rk, v: rv, out: r.out, lse: r.lse, dout: rdout, dq: r.dq, dk: r.dk, dv: r.dv },
      opts,
    );
    const ringGot = {} as Record<CheckOutput, Float32Array>;
    for (const name of CHECK_OUTPUTS) ringGot[name] = await read(r[name]);

    // Single device: the whole sequence on this rank.
    const full = B * N * H * D;
    const [sq, sk, sv, sdout] = await Promise.all([q, k, v, dout].map((t) => take(t.data)));
    const sg = {
      out: fresh(full),
      lse: fresh(B * H * N),
      dq: fresh(full),
      dk: fresh(full),
      dv: fresh(full),
    };
    const view = (b: unknown) => contiguousView(b, [B, N, H, D]);
    await ops.attentionForward(
      { q: view(sq), k: view(sk), v: view(sv), out: view(sg.out), lse: sg.lse },
      opts,
    );
    await ops.attentionBackward(
      {
        dout: view(sdout),
        q: view(sq),
        k: view(sk),
        v: view(sv),
        out: view(sg.out),
        lse: sg.lse,
        dq: view(sg.dq),
        dk: view(sg.dk),
        dv: view(sg.dv),
      },
      opts,
    );
    const singleGot = {} as Record<CheckOutput, Float32Array>;
    for (const name of CHECK_OUTPUTS) singleGot[name] = await read(sg[name]);

    const judge = (
      name: CheckOutput,
      got: ArrayLike<number>,
      idx: number[] | null,
    ): OutputCheck => {
      const ora = idx ? pick(oracle[name], idx) : oracle[name];
      const nai = idx ? pick(naiveOut[name], idx) : naiveOut[name];
      const tol = toleranceFor(computeDType, {
        output: maxAbs(oracle[name]),
        ...magnitudes[name],
      });
      const err = maxErr(got, ora);
      const naiveErr = maxErr(nai, ora);
      return {
        err,
        naiveErr,
        allowed: allowedError(tol, naiveErr),
        pass: withinTolerance(err, naiveErr, tol),
      };
    };
    const ring = {} as RankCheck['ring'];
    const single = {} as RankCheck['single'];
    const ringVsSingle = {} as RankCheck['ringVsSingle'];
    for (const name of CHECK_OUTPUTS) {
      ring[name] = judge(name, ringGot[name], idxOf(name));
      single[name] = judge(name, singleGot[name], null);
      ringVsSingle[name] = maxErr(ringGot[name], pick(singleGot[name], idxOf(name)));
    }
    return { rank: comm.rank, computeDType, ring, single, ringVsSingle };
  } finally {
    for (const b of held) ops.free(b);
  }
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** max |a - b|; NaN anywhere gives NaN (which never passes the rule). */
function maxErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (Number.isNaN(d)) return NaN;
    if (d > m) m = d;
  }
  return m;
}

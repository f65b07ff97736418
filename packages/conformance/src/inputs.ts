/**
 * Fresh random inputs for a case. The inputs depend only on (run seed, case id), so a failure
 * reproduces from the seed it prints even when the run is filtered down to that one case.
 */
import {
  createRng,
  fromFloat32,
  type AttentionOptions,
  type Rng,
  type Tensor,
} from '@flashattn/core';
import { HUGE_LOGIT, optionsOf, type ConformanceCase } from './cases.js';

export interface CaseInputs {
  /** (B, Nq, Hq, D) */
  q: Tensor;
  /** (B, Nk, Hk, D) */
  k: Tensor;
  /** (B, Nk, Hk, D) */
  v: Tensor;
  /** (B, Nq, Hq, D): the upstream gradient of the backward check. */
  dout: Tensor;
  opts: AttentionOptions;
  /** The seed the generator was started from (derived from the run seed and the case id). */
  caseSeed: number;
}

/** Mix a run seed with a case id (FNV-1a over the id, then a murmur3 finaliser). */
export function caseSeedOf(seed: number, id: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function normal(rng: Rng, n: number, std: number): Float32Array {
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) f[i] = rng.normal() * std;
  return f;
}

/**
 * q, k, v, dout ~ N(0, 1) in the case dtype, shaped for the case, with the logit profile applied:
 *  - 'huge-spread': q and k scaled by a so that std(scale * q.k) = a^2 * scale * sqrt(D) = HUGE_LOGIT / 4
 *    (with the default scale 1/sqrt(D)), so the largest |S| of a row is near 1e4 and stays inside
 *    float16's range (65504);
 *  - 'huge-pos' / 'huge-neg': component 0 of every q row set to +-a and of every k row to a with
 *    scale * a^2 = HUGE_LOGIT, so each score is +-1e4 plus an O(1) spread from the other components.
 */
export function makeInputs(c: ConformanceCase, seed: number): CaseInputs {
  const caseSeed = caseSeedOf(seed, c.id);
  const rng = createRng(caseSeed);
  const qShape = [c.batch, c.seqlenQ, c.nheadsQ, c.headDim];
  const kShape = [c.batch, c.seqlenK, c.nheadsK, c.headDim];
  const nq = c.batch * c.seqlenQ * c.nheadsQ * c.headDim;
  const nk = c.batch * c.seqlenK * c.nheadsK * c.headDim;
  const D = c.headDim;
  const scale = 1 / Math.sqrt(D); // the cases use the default softmax scale

  let qf: Float32Array;
  let kf: Float32Array;
  if (c.logits === 'huge-spread') {
    const a = Math.sqrt(HUGE_LOGIT / 4 / (scale * Math.sqrt(D)));
    qf = normal(rng, nq, a);
    kf = normal(rng, nk, a);
  } else {
    qf = normal(rng, nq, 1);
    kf = normal(rng, nk, 1);
    if (c.logits === 'huge-pos' || c.logits === 'huge-neg') {
      const a = Math.sqrt(HUGE_LOGIT / scale);
      const sign = c.logits === 'huge-pos' ? 1 : -1;
      for (let x = 0; x < nq; x += D) qf[x] = sign * a;
      for (let x = 0; x < nk; x += D) kf[x] = a;
    }
  }
  const vf = normal(rng, nk, 1);
  const dof = normal(rng, nq, 1);
  return {
    q: fromFloat32(qf, qShape, c.dtype),
    k: fromFloat32(kf, kShape, c.dtype),
    v: fromFloat32(vf, kShape, c.dtype),
    dout: fromFloat32(dof, qShape, c.dtype),
    opts: optionsOf(c),
    caseSeed,
  };
}

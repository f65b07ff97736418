/**
 * GPT-2 with an explicit forward and backward for every layer (llm.c's train_gpt2.c structure, no
 * autograd). Shapes: B batch, T sequence, C = nEmbd, H = nHead, D = C / H, V = vocabSize, L = nLayer.
 *
 * Per block:  ln1 = LN(x); qkv = ln1 @ Wqkv + b; atty = attention(q, k, v); x2 = x + atty @ Wo + b;
 *             ln2 = LN(x2); fch = ln2 @ Wfc + b; x3 = x2 + GELU(fch) @ Wproj + b.
 * Head:       lnf = LN(x_L); logits = lnf @ wte^T (tied); loss = mean cross-entropy.
 */
import { createRng, type Rng } from '@flashattn/core';
import { cpuAttention, type CausalAttention } from '../attention/causal-attention.js';
import { validateConfig, type GPT2Config } from '../config.js';
import type { FloatArray, Ops } from '../ops/ops.js';
import { numParams, paramSpecs, paramViews, type ParamSpec, type ParamViews } from './params.js';

/** Activations saved by the forward for the backward, one set per block. */
interface LayerActs {
  ln1: FloatArray; ln1Mean: FloatArray; ln1Rstd: FloatArray; // (BT, C), (BT), (BT)
  q: FloatArray; k: FloatArray; v: FloatArray; // (B, T, H, D) each
  atty: FloatArray; // (B, T, H, D) = (BT, C)
  lse: FloatArray; // (B, H, T)
  res2: FloatArray; // (BT, C): x + attention branch
  ln2: FloatArray; ln2Mean: FloatArray; ln2Rstd: FloatArray;
  fch: FloatArray; fchGelu: FloatArray; // (BT, 4C)
  res3: FloatArray; // (BT, C): block output
}

/** Backing buffers, sized for the largest B*T seen (cap tokens); views per call. */
interface Buffers {
  cap: number;
  encoded: FloatArray; // (BT, C)
  layers: Array<Omit<LayerActs, 'lse'>>;
  lse: FloatArray[]; // per block (B, H, T), as returned by the attention
  qkv: FloatArray; // (BT, 3C) scratch
  proj: FloatArray; // (BT, C) scratch for c_proj outputs
  lnf: FloatArray; lnfMean: FloatArray; lnfRstd: FloatArray;
  logits: FloatArray; // (BT, V)
  losses: FloatArray; // (BT)
}

interface GradBuffers {
  cap: number;
  dlogits: FloatArray; // (BT, V)
  dres: FloatArray; // (BT, C) gradient of the residual stream
  dln: FloatArray; // (BT, C)
  datty: FloatArray; // (BT, C)
  dq: FloatArray; dk: FloatArray; dv: FloatArray; // (B, T, H, D)
  dqkv: FloatArray; // (BT, 3C)
  dfchGelu: FloatArray; dfch: FloatArray; // (BT, 4C)
}

export interface GPT2Options {
  config: GPT2Config;
  ops: Ops;
  /**
   * 'flash' (tiled FlashAttention-2, O(N) extra memory) or 'standard' (materialised scores) on the
   * CPU via core's backends, or any CausalAttention (e.g. new BackendAttention(someBackend)).
   */
  attention: 'flash' | 'standard' | CausalAttention;
  /** Seed for the GPT-2 initialisation. Default 0. */
  seed?: number;
}

export class GPT2 {
  readonly config: GPT2Config;
  readonly ops: Ops;
  readonly attention: CausalAttention;
  readonly specs: ParamSpec[];
  readonly numParams: number;
  /** Every parameter, flat, HF order (see params.ts). */
  readonly params: FloatArray;
  /** Gradients, same layout as params. */
  readonly grads: FloatArray;
  private readonly P: ParamViews;
  private readonly G: ParamViews;
  private acts: Buffers | null = null;
  private gbufs: GradBuffers | null = null;
  private last: { tokens: Int32Array; targets: Int32Array; B: number; T: number } | null = null;

  constructor(opts: GPT2Options) {
    validateConfig(opts.config);
    this.config = { ...opts.config };
    this.ops = opts.ops;
    this.attention = typeof opts.attention === 'string' ? cpuAttention(opts.attention) : opts.attention;
    this.specs = paramSpecs(this.config);
    this.numParams = numParams(this.config);
    this.params = this.ops.alloc(this.numParams);
    this.grads = this.ops.alloc(this.numParams);
    this.P = paramViews(this.config, this.params);
    this.G = paramViews(this.config, this.grads);
    this.init(createRng(opts.seed ?? 0));
  }

  /** GPT-2 init: N(0, 0.02) for weights and embeddings, 0.02/sqrt(2L) for residual projections, LN = (1, 0). */
  init(rng: Rng): void {
    const residualStd = 0.02 / Math.sqrt(2 * this.config.nLayer);
    for (const s of this.specs) {
      const view = this.params.subarray(s.offset, s.offset + s.size);
      if (s.init === 'ones') view.fill(1);
      else if (s.init === 'zeros') view.fill(0);
      else {
        const std = s.init === 'residual' ? residualStd : 0.02;
        for (let i = 0; i < view.length; i++) view[i] = rng.normal() * std;
      }
    }
  }

  /** Logits (B, T, V) of the last forward. */
  get logits(): FloatArray {
    if (!this.acts || !this.last) throw new Error('GPT2.logits: run forward first');
    return this.acts.logits.subarray(0, this.last.B * this.last.T * this.config.vocabSize);
  }

  zeroGrad(): void {
    this.grads.fill(0);
  }

  private checkInputs(tokens: Int32Array, targets: Int32Array | null, B: number, T: number): void {
    const { vocabSize: V, maxSeqLen } = this.config;
    if (!Number.isInteger(B) || B < 1) throw new RangeError(`GPT2.forward: B must be a positive integer, got ${B}`);
    if (!Number.isInteger(T) || T < 1 || T > maxSeqLen) {
      throw new RangeError(`GPT2.forward: T must be an integer in [1, ${maxSeqLen}], got ${T}`);
    }
    if (tokens.length !== B * T) throw new RangeError(`GPT2.forward: tokens.length ${tokens.length} != B*T = ${B * T}`);
    for (let i = 0; i < tokens.length; i++) {
      if (!(tokens[i]! >= 0 && tokens[i]! < V)) throw new RangeError(`GPT2.forward: token ${tokens[i]} at ${i} outside [0, ${V})`);
    }
    if (targets) {
      if (targets.length !== B * T) throw new RangeError(`GPT2.forward: targets.length ${targets.length} != B*T = ${B * T}`);
      for (let i = 0; i < targets.length; i++) {
        if (targets[i]! >= V) throw new RangeError(`GPT2.forward: target ${targets[i]} at ${i} >= vocabSize ${V}`);
      }
    }
  }

  private ensureActs(BT: number): Buffers {
    if (this.acts && this.acts.cap >= BT) return this.acts;
    const { nEmbd: C, nLayer: L, vocabSize: V } = this.config;
    const a = (n: number): FloatArray => this.ops.alloc(n);
    const layers = [];
    for (let l = 0; l < L; l++) {
      layers.push({
        ln1: a(BT * C), ln1Mean: a(BT), ln1Rstd: a(BT),
        q: a(BT * C), k: a(BT * C), v: a(BT * C), atty: a(BT * C),
        res2: a(BT * C), ln2: a(BT * C), ln2Mean: a(BT), ln2Rstd: a(BT),
        fch: a(BT * 4 * C), fchGelu: a(BT * 4 * C), res3: a(BT * C),
      });
    }
    this.acts = {
      cap: BT, encoded: a(BT * C), layers, lse: [], qkv: a(BT * 3 * C), proj: a(BT * C),
      lnf: a(BT * C), lnfMean: a(BT), lnfRstd: a(BT), logits: a(BT * V), losses: a(BT),
    };
    return this.acts;
  }

  private ensureGrads(BT: number): GradBuffers {
    if (this.gbufs && this.gbufs.cap >= BT) return this.gbufs;
    const { nEmbd: C, vocabSize: V } = this.config;
    const a = (n: number): FloatArray => this.ops.alloc(n);
    this.gbufs = {
      cap: BT, dlogits: a(BT * V), dres: a(BT * C), dln: a(BT * C), datty: a(BT * C),
      dq: a(BT * C), dk: a(BT * C), dv: a(BT * C), dqkv: a(BT * 3 * C), dfchGelu: a(BT * 4 * C), dfch: a(BT * 4 * C),
    };
    return this.gbufs;
  }

  /**
   * Forward over tokens (B, T). With targets (B, T) (-1 = ignore) returns the mean cross-entropy over
   * the non-ignored targets and, when `grad` is true, keeps what backward() needs; without targets
   * returns NaN and leaves the logits in `this.logits`.
   */
  async forward(tokens: Int32Array, targets: Int32Array | null, B: number, T: number, grad = false): Promise<number> {
    this.checkInputs(tokens, targets, B, T);
    const { nEmbd: C, nHead: H, nLayer: L, vocabSize: V } = this.config;
    const D = C / H;
    const BT = B * T;
    const ops = this.ops;
    const A = this.ensureActs(BT);
    const P = this.P;
    const n = (x: FloatArray, k: number): FloatArray => x.subarray(0, BT * k);
    this.last = null;

    await ops.embeddingForward(n(A.encoded, C), tokens, P.wte, P.wpe, B, T, C);
    let x = n(A.encoded, C); // (BT, C) residual stream
    A.lse = [];
    for (let l = 0; l < L; l++) {
      const w = P.layers[l]!;
      const s = A.layers[l]!;
      const ln1 = n(s.ln1, C);
      await ops.layernormForward(ln1, s.ln1Mean, s.ln1Rstd, x, w.ln1w, w.ln1b, BT, C);
      const qkv = n(A.qkv, 3 * C);
      await ops.matmul(qkv, ln1, w.qkvw, BT, 3 * C, C, { bias: w.qkvb });
      const q = n(s.q, C);
      const k = n(s.k, C);
      const v = n(s.v, C);
      splitQkv(qkv, q, k, v, BT, C); // (BT, 3C) -> 3 x (B, T, H, D)
      const atty = n(s.atty, C);
      A.lse.push(await this.attention.forward(q, k, v, atty, B, T, H, D));
      const proj = n(A.proj, C);
      await ops.matmul(proj, atty, w.attprojw, BT, C, C, { bias: w.attprojb });
      const res2 = n(s.res2, C);
      await ops.add(res2, x, proj, BT * C);
      const ln2 = n(s.ln2, C);
      await ops.layernormForward(ln2, s.ln2Mean, s.ln2Rstd, res2, w.ln2w, w.ln2b, BT, C);
      const fch = n(s.fch, 4 * C);
      await ops.matmul(fch, ln2, w.fcw, BT, 4 * C, C, { bias: w.fcb });
      const fchGelu = n(s.fchGelu, 4 * C);
      await ops.geluForward(fchGelu, fch, BT * 4 * C);
      await ops.matmul(proj, fchGelu, w.fcprojw, BT, C, 4 * C, { bias: w.fcprojb });
      const res3 = n(s.res3, C);
      await ops.add(res3, res2, proj, BT * C);
      x = res3;
    }
    const lnf = n(A.lnf, C);
    await ops.layernormForward(lnf, A.lnfMean, A.lnfRstd, x, P.lnfw, P.lnfb, BT, C);
    const logits = n(A.logits, V);
    await ops.matmul(logits, lnf, P.wte, BT, V, C, { transB: true }); // tied head: lnf @ wte^T
    let loss = NaN;
    if (targets) {
      let count = 0;
      for (let i = 0; i < BT; i++) if (targets[i]! >= 0) count++;
      const scale = count > 0 ? 1 / count : 0;
      const dlogits = grad ? n(this.ensureGrads(BT).dlogits, V) : null;
      const total = await ops.softmaxCrossEntropy(n(A.losses, 1), dlogits, logits, targets, BT, V, scale);
      loss = count > 0 ? total / count : 0;
    }
    this.last = { tokens, targets: targets ?? new Int32Array(0), B, T };
    this.gradReady = grad && targets !== null;
    return loss;
  }

  private gradReady = false;

  /** Accumulate d(mean loss)/d(params) into this.grads for the last forward(..., grad = true). */
  async backward(): Promise<void> {
    if (!this.gradReady || !this.last || !this.acts) {
      throw new Error('GPT2.backward: call forward(tokens, targets, B, T, true) first');
    }
    this.gradReady = false;
    const { tokens, B, T } = this.last;
    const { nEmbd: C, nHead: H, nLayer: L, vocabSize: V } = this.config;
    const D = C / H;
    const BT = B * T;
    const ops = this.ops;
    const A = this.acts;
    const Gb = this.ensureGrads(BT);
    const P = this.P;
    const G = this.G;
    const n = (x: FloatArray, k: number): FloatArray => x.subarray(0, BT * k);

    const dlogits = n(Gb.dlogits, V);
    const lnf = n(A.lnf, C);
    const dln = n(Gb.dln, C);
    // Head: logits = lnf @ wte^T  ->  dlnf = dlogits @ wte,  dwte += dlogits^T @ lnf
    await ops.matmul(dln, dlogits, P.wte, BT, C, V);
    await ops.matmul(G.wte, dlogits, lnf, V, C, BT, { transA: true, accumulate: true });
    const dres = n(Gb.dres, C);
    dres.fill(0);
    const xL = L > 0 ? n(A.layers[L - 1]!.res3, C) : n(A.encoded, C);
    await ops.layernormBackward(dres, G.lnfw, G.lnfb, dln, xL, P.lnfw, A.lnfMean, A.lnfRstd, BT, C);

    for (let l = L - 1; l >= 0; l--) {
      const w = P.layers[l]!;
      const g = G.layers[l]!;
      const s = A.layers[l]!;
      const x = l > 0 ? n(A.layers[l - 1]!.res3, C) : n(A.encoded, C); // block input
      // res3 = res2 + fcproj: dfcproj = dres (dres then also carries d res2)
      const fchGelu = n(s.fchGelu, 4 * C);
      await ops.matmul(g.fcprojw, fchGelu, dres, 4 * C, C, BT, { transA: true, accumulate: true });
      await ops.biasBackward(g.fcprojb, dres, BT, C);
      const dfchGelu = n(Gb.dfchGelu, 4 * C);
      await ops.matmul(dfchGelu, dres, w.fcprojw, BT, 4 * C, C, { transB: true });
      const dfch = n(Gb.dfch, 4 * C);
      dfch.fill(0);
      await ops.geluBackward(dfch, n(s.fch, 4 * C), dfchGelu, BT * 4 * C);
      const ln2 = n(s.ln2, C);
      await ops.matmul(g.fcw, ln2, dfch, C, 4 * C, BT, { transA: true, accumulate: true });
      await ops.biasBackward(g.fcb, dfch, BT, 4 * C);
      await ops.matmul(dln, dfch, w.fcw, BT, C, 4 * C, { transB: true });
      await ops.layernormBackward(dres, g.ln2w, g.ln2b, dln, n(s.res2, C), w.ln2w, s.ln2Mean, s.ln2Rstd, BT, C);
      // res2 = x + attproj: dattproj = dres (dres then carries d x)
      const atty = n(s.atty, C);
      await ops.matmul(g.attprojw, atty, dres, C, C, BT, { transA: true, accumulate: true });
      await ops.biasBackward(g.attprojb, dres, BT, C);
      const datty = n(Gb.datty, C);
      await ops.matmul(datty, dres, w.attprojw, BT, C, C, { transB: true });
      const dq = n(Gb.dq, C);
      const dk = n(Gb.dk, C);
      const dv = n(Gb.dv, C);
      await this.attention.backward(datty, n(s.q, C), n(s.k, C), n(s.v, C), atty, A.lse[l]!, dq, dk, dv, B, T, H, D);
      const dqkv = n(Gb.dqkv, 3 * C);
      mergeQkv(dqkv, dq, dk, dv, BT, C);
      const ln1 = n(s.ln1, C);
      await ops.matmul(g.qkvw, ln1, dqkv, C, 3 * C, BT, { transA: true, accumulate: true });
      await ops.biasBackward(g.qkvb, dqkv, BT, 3 * C);
      await ops.matmul(dln, dqkv, w.qkvw, BT, C, 3 * C, { transB: true });
      await ops.layernormBackward(dres, g.ln1w, g.ln1b, dln, x, w.ln1w, s.ln1Mean, s.ln1Rstd, BT, C);
    }
    await ops.embeddingBackward(G.wte, G.wpe, dres, tokens, B, T, C);
  }
}

/** qkv (BT, 3C) -> q, k, v each (BT, C) = (B, T, H, D). */
export function splitQkv(qkv: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, BT: number, C: number): void {
  for (let i = 0; i < BT; i++) {
    const o = i * 3 * C;
    const d = i * C;
    for (let c = 0; c < C; c++) {
      q[d + c] = qkv[o + c]!;
      k[d + c] = qkv[o + C + c]!;
      v[d + c] = qkv[o + 2 * C + c]!;
    }
  }
}

/** The backward of splitQkv. */
export function mergeQkv(dqkv: FloatArray, dq: FloatArray, dk: FloatArray, dv: FloatArray, BT: number, C: number): void {
  for (let i = 0; i < BT; i++) {
    const o = i * 3 * C;
    const d = i * C;
    for (let c = 0; c < C; c++) {
      dqkv[o + c] = dq[d + c]!;
      dqkv[o + C + c] = dk[d + c]!;
      dqkv[o + 2 * C + c] = dv[d + c]!;
    }
  }
}

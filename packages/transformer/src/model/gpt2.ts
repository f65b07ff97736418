/**
 * GPT-2 with an explicit forward and backward for every layer (llm.c's train_gpt2.c structure, no
 * autograd), written against core's `Ops<Buf>` only: every buffer is the backend's (CPU arrays, GPU
 * buffers, the float64 reference's opaque objects), and the model allocates, views, uploads and
 * downloads through the ops without touching an element itself.
 * Shapes: B batch, T sequence, C = nEmbd, H = nHead, D = C / H, V = vocabSize, L = nLayer.
 *
 * Per block:  ln1 = LN(x); qkv = ln1 @ Wqkv + b (B, T, 3, H, D); atty = attention(q, k, v) read in place
 *             from qkv; x2 = x + atty @ Wo + b; ln2 = LN(x2); fch = ln2 @ Wfc + b;
 *             x3 = x2 + GELU(fch) @ Wproj + b.
 * Head:       lnf = LN(x_L); logits = lnf @ wte^T (tied); loss = mean cross-entropy.
 *             Where the backend asks for it (`Ops.rowMultiple`), the vocabulary is padded to Vp with zero rows
 *             of wte (params.ts): the head multiplies (Vp, C) and the logits rows are Vp apart; the padding
 *             columns are never part of the softmax and get a zero gradient.
 *
 * Precision: parameters (the optimizer's masters) are kept in `paramDType`; activations, gradients and a
 * compute copy of the parameters in `computeDType`. When the two differ (fp32 masters, bf16 compute, as
 * llm.c and PyTorch autocast do) the compute copy is refreshed from the masters by `syncParams()`
 * (the trainer calls it after every optimizer step).
 */
import {
  contiguousView,
  createRng,
  hasDeviceStep,
  hasKvCacheAttention,
  hostFloats,
  OpsInputError,
  packedQkvViews,
  padToMultiple,
  type AttentionOptions,
  type BufferDType,
  type DeviceKvCacheAttention,
  type Ops,
  type Rng,
} from '@flashattn/core';
import { validateConfig, type GPT2Config } from '../config.js';
import { checkIds } from './inputs.js';
import { GPT2KVCache } from './kv-cache.js';
import {
  initialParams,
  numParams,
  paramsLength,
  paramSpecs,
  paramViews,
  type ParamSpec,
  type ParamViews,
} from './params.js';

type FloatDType = Exclude<BufferDType, 'int32'>;

/** Activations saved by the forward for the backward, one set per block. */
interface LayerActs<Buf> {
  ln1: Buf;
  ln1Mean: Buf;
  ln1Rstd: Buf; // (BT, C), (BT), (BT)
  qkv: Buf; // (B, T, 3, H, D): q, k, v read in place by the attention
  atty: Buf; // (B, T, H, D) = (BT, C)
  lse: Buf; // (B, H, T)
  res2: Buf; // (BT, C): x + attention branch
  ln2: Buf;
  ln2Mean: Buf;
  ln2Rstd: Buf;
  fch: Buf;
  fchGelu: Buf; // (BT, 4C)
  res3: Buf; // (BT, C): block output
}

/** Views of one call's size (BT tokens) into the buffers, which are sized for the largest BT seen. */
interface Acts<Buf> {
  tokens: Buf;
  targets: Buf; // (BT) int32
  encoded: Buf; // (BT, C)
  layers: LayerActs<Buf>[];
  proj: Buf; // (BT, C) scratch for c_proj outputs
  lnf: Buf;
  lnfMean: Buf;
  lnfRstd: Buf;
  logits: Buf; // (BT, V)
  losses: Buf; // (BT)
}

interface Grads<Buf> {
  dlogits: Buf; // (BT, V)
  dres: Buf; // (BT, C) gradient of the residual stream
  dln: Buf; // (BT, C)
  datty: Buf; // (BT, C)
  dqkv: Buf; // (B, T, 3, H, D): dq, dk, dv written in place by the attention backward
  dfch: Buf; // (BT, 4C): d GELU(fch), then d fch in place
}

export interface GPT2Options<Buf> {
  config: GPT2Config;
  ops: Ops<Buf>;
  /** Master parameters' dtype. Default 'float32' ('float64' for gradient checks). */
  paramDType?: 'float32' | 'float64';
  /** Activations, gradients and the parameters' compute copy. Default paramDType. */
  computeDType?: FloatDType;
  /** Seed for the GPT-2 initialisation. Default 0. */
  seed?: number;
}

export class GPT2<Buf = unknown> {
  readonly config: GPT2Config;
  readonly ops: Ops<Buf>;
  /** The flat layout of params, grads and the optimizer's moments (offsets include the vocabulary padding). */
  readonly specs: ParamSpec[];
  /** Parameters (without the padding rows). */
  readonly numParams: number;
  /** Elements of the flat buffers: numParams + (paddedVocab - V) * C. */
  readonly paramsLength: number;
  /** Vp: the vocabulary padded to the backend's rowMultiple (V itself when it has none); the logits' row stride. */
  readonly paddedVocab: number;
  readonly paramDType: 'float32' | 'float64';
  readonly computeDType: FloatDType;
  /** Every parameter, flat, HF order (see params.ts): the masters the optimizer updates. */
  readonly params: Buf;
  /** Gradients, same layout as params, in computeDType. */
  readonly grads: Buf;
  /** The parameters the forward reads: params itself, or its computeDType copy. */
  readonly computeParams: Buf;
  private readonly P: ParamViews<Buf>;
  private readonly G: ParamViews<Buf>;
  /** The tied head's weight and its gradient: wte's rows and the padding after them, (Vp, C). */
  private readonly headW: Buf;
  private readonly headG: Buf;
  private cap = 0;
  private buffers: { acts: Acts<Buf>; grads: Grads<Buf> | null } | null = null;
  private last: { B: number; T: number; acts: Acts<Buf>; grad: boolean } | null = null;

  constructor(opts: GPT2Options<Buf>) {
    validateConfig(opts.config);
    this.config = { ...opts.config };
    this.ops = opts.ops;
    this.paramDType = opts.paramDType ?? 'float32';
    this.computeDType = opts.computeDType ?? this.paramDType;
    for (const [name, dt] of [
      ['paramDType', this.paramDType],
      ['computeDType', this.computeDType],
    ] as const) {
      if (!this.ops.dtypes.includes(dt)) {
        throw new OpsInputError(
          `GPT2 options.${name}`,
          `a dtype of ${this.ops.name}: ${this.ops.dtypes.join(', ')}`,
          dt,
        );
      }
    }
    this.paddedVocab = padToMultiple(this.config.vocabSize, this.ops.rowMultiple);
    this.specs = paramSpecs(this.config, this.paddedVocab);
    this.numParams = numParams(this.config);
    this.paramsLength = paramsLength(this.specs);
    this.params = this.ops.alloc(this.paramsLength, this.paramDType);
    this.computeParams =
      this.computeDType === this.paramDType
        ? this.params
        : this.ops.alloc(this.paramsLength, this.computeDType);
    this.grads = this.ops.alloc(this.paramsLength, this.computeDType);
    this.P = paramViews(this.config, this.ops, this.computeParams, this.specs);
    this.G = paramViews(this.config, this.ops, this.grads, this.specs);
    const head = this.paddedVocab * this.config.nEmbd; // wte is the first tensor: offset 0
    this.headW = this.ops.view(this.computeParams, 0, head);
    this.headG = this.ops.view(this.grads, 0, head);
    this.initialised = this.init(createRng(opts.seed ?? 0));
  }

  /** Resolves when the initial weights are on the device (every public method awaits it). */
  private initialised: Promise<void>;

  /** GPT-2 init: N(0, 0.02) for weights and embeddings, 0.02/sqrt(2L) for residual projections, LN = (1, 0). */
  async init(rng: Rng): Promise<void> {
    await this.setParams(initialParams(this.config, this.specs, rng));
  }

  /**
   * Upload master parameters from the host and refresh the compute copy: flat in `specs` layout
   * (paramsLength elements), or, with a padded vocabulary, also the unpadded HF order (numParams elements; the
   * padding rows are written zero).
   */
  async setParams(values: Float32Array | Float64Array): Promise<void> {
    let flat = values;
    if (values.length !== this.paramsLength) {
      if (values.length !== this.numParams) {
        throw new OpsInputError(
          'GPT2.setParams values.length',
          this.numParams === this.paramsLength
            ? String(this.numParams)
            : `${this.paramsLength} (padded layout) or ${this.numParams} (HF order)`,
          values.length,
        );
      }
      flat = new (values.constructor as Float32ArrayConstructor)(this.paramsLength);
      const compact = paramSpecs(this.config);
      this.specs.forEach((s, i) =>
        flat.set(values.subarray(compact[i]!.offset, compact[i]!.offset + s.size), s.offset),
      );
    }
    await this.ops.upload(this.params, flat);
    await this.syncParams();
  }

  /** The master parameters on the host (flat, `specs` layout: paramsLength elements). */
  async getParams(): Promise<Float32Array | Float64Array> {
    await this.initialised;
    return hostFloats(await this.ops.download(this.params), this.paramDType);
  }

  /** The gradients on the host (flat, `specs` layout). */
  async getGrads(): Promise<Float32Array | Float64Array> {
    return hostFloats(await this.ops.download(this.grads), this.computeDType);
  }

  /** computeParams = params (cast), after the optimizer changed the masters. No-op without a copy. */
  async syncParams(): Promise<void> {
    if (this.computeParams !== this.params) await this.ops.copy(this.computeParams, this.params);
  }

  async zeroGrad(): Promise<void> {
    await this.initialised;
    await this.ops.zero(this.grads);
  }

  /** Logits (B*T, Vp) of the last forward, on the device: rows paddedVocab apart, classes [0, V). */
  get logits(): Buf {
    if (!this.last) throw new OpsInputError('GPT2.logits', 'a forward() first', 'no forward yet');
    return this.last.acts.logits;
  }

  /** The last forward's logits on the host, (B*T, V) without the vocabulary padding. */
  async downloadLogits(): Promise<Float32Array | Float64Array> {
    const all = hostFloats(await this.ops.download(this.logits), this.computeDType); // (B*T, Vp)
    const { vocabSize: V } = this.config;
    const Vp = this.paddedVocab;
    if (Vp === V) return all;
    const rows = all.length / Vp;
    const out = new (all.constructor as Float32ArrayConstructor)(rows * V);
    for (let r = 0; r < rows; r++) out.set(all.subarray(r * Vp, r * Vp + V), r * V);
    return out;
  }

  /** One row (V) of the last forward's logits, on the host: batch b, position t. */
  async logitsAt(b: number, t: number): Promise<Float32Array | Float64Array> {
    const last = this.last;
    if (!last) throw new OpsInputError('GPT2.logitsAt', 'a forward() first', 'no forward yet');
    if (!Number.isInteger(b) || b < 0 || b >= last.B)
      throw new OpsInputError('GPT2.logitsAt b', `an integer in [0, ${last.B})`, b);
    if (!Number.isInteger(t) || t < 0 || t >= last.T)
      throw new OpsInputError('GPT2.logitsAt t', `an integer in [0, ${last.T})`, t);
    const V = this.config.vocabSize;
    const row = this.ops.view(last.acts.logits, (b * last.T + t) * this.paddedVocab, V);
    return hostFloats(await this.ops.download(row), this.computeDType); // 16-bit logits: decoded, not raw bits
  }

  /** Buffers for BT tokens: grown (never shrunk) to the largest BT seen, viewed to BT each call. */
  /** The held buffers, allocated (or grown) for at least BT tokens, with gradients when `grad`. */
  private reserve(BT: number, grad: boolean): NonNullable<GPT2<Buf>['buffers']> {
    const ops = this.ops;
    const w = widths(this.config, this.paddedVocab);
    // Per-row statistics (mean, rstd, lse, losses) stay float32, or float64 for the gradient checks.
    const stat: BufferDType = this.computeDType === 'float64' ? 'float64' : 'float32';
    const kind = (k: Kind): BufferDType =>
      k === 'int' ? 'int32' : k === 'stat' ? stat : this.computeDType;
    const alloc = <K extends string>(
      spec: Record<K, [number, Kind]>,
      rows: number,
    ): Record<K, Buf> =>
      Object.fromEntries(
        Object.entries<[number, Kind]>(spec).map(([key, [n, k]]) => [
          key,
          ops.alloc(rows * n, kind(k)),
        ]),
      ) as Record<K, Buf>;
    let held = this.buffers;
    if (!held || this.cap < BT) {
      if (held) this.releaseActivations();
      held = {
        acts: {
          ...alloc(w.acts, BT),
          layers: Array.from({ length: this.config.nLayer }, () => alloc(w.layer, BT)),
        },
        grads: null,
      };
      this.buffers = held;
      this.cap = BT;
    }
    if (grad && !held.grads) held.grads = alloc(w.grads, this.cap);
    return held;
  }

  private views(BT: number, grad: boolean): { acts: Acts<Buf>; grads: Grads<Buf> | null } {
    const ops = this.ops;
    const w = widths(this.config, this.paddedVocab);
    const view = <K extends string>(
      spec: Record<K, [number, Kind]>,
      bufs: Record<K, Buf>,
    ): Record<K, Buf> =>
      Object.fromEntries(
        Object.entries<[number, Kind]>(spec).map(([key, [n]]) => [
          key,
          ops.view(bufs[key as K], 0, BT * n),
        ]),
      ) as Record<K, Buf>;
    const held = this.reserve(BT, grad);
    const acts: Acts<Buf> = {
      ...view(w.acts, held.acts),
      layers: held.acts.layers.map((l) => view(w.layer, l)),
    };
    return { acts, grads: held.grads && view(w.grads, held.grads) };
  }

  /**
   * Forward over tokens (B, T). With targets (B, T) (-1 = ignore) returns the mean cross-entropy over
   * the non-ignored targets and, when `grad` is true, keeps what backward() needs; without targets
   * returns NaN and leaves the logits in `this.logits`.
   */
  async forward(
    tokens: Int32Array,
    targets: Int32Array | null,
    B: number,
    T: number,
    grad = false,
  ): Promise<number> {
    const count = await this.loadBatch(tokens, targets, B, T, grad);
    await this.forwardQueued(B, T, targets !== null, grad, count);
    if (!targets) return NaN;
    return count > 0 ? (await this.ops.sum(this.last!.acts.losses)) / count : 0;
  }

  /**
   * The first half of forward(): check tokens and targets, size the buffers for B * T tokens (allocating on first
   * use) and upload them. Returns the number of non-ignored targets (0 without targets). A graphed training step
   * (train/graphed-step.ts) calls this before each launch of its recorded forwardQueued + backward.
   */
  async loadBatch(
    tokens: Int32Array,
    targets: Int32Array | null,
    B: number,
    T: number,
    grad: boolean,
  ): Promise<number> {
    await this.initialised;
    const { vocabSize: V, maxSeqLen } = this.config;
    if (!Number.isInteger(B) || B < 1)
      throw new OpsInputError('GPT2.forward B', 'a positive integer', B);
    if (!Number.isInteger(T) || T < 1 || T > maxSeqLen) {
      throw new OpsInputError(
        'GPT2.forward T',
        `an integer in [1, ${maxSeqLen}] (the model's positions)`,
        T,
      );
    }
    const BT = B * T;
    checkIds('tokens', tokens, BT, V, false);
    const count = targets ? checkIds('targets', targets, BT, V, true) : 0;
    if (grad && !targets)
      throw new OpsInputError('GPT2.forward targets', 'targets when grad is true', null);
    // only the two views it uploads into (forwardQueued views the rest)
    const { acts } = this.reserve(BT, grad);
    await this.ops.upload(this.ops.view(acts.tokens, 0, BT), tokens);
    if (targets) await this.ops.upload(this.ops.view(acts.targets, 0, BT), targets);
    return count;
  }

  /**
   * The ops of forward() on the batch loadBatch uploaded, queued with no host read: with targets the losses
   * (BT) are left in the activations and, when lossTo (1 element) is given, their sum goes there on the device
   * (DeviceStepOps.sumTo).
   */
  async forwardQueued(
    B: number,
    T: number,
    withTargets: boolean,
    grad: boolean,
    count: number,
    lossTo?: Buf,
  ): Promise<void> {
    const { nEmbd: C, nHead: H, nLayer: L, vocabSize: V } = this.config;
    const BT = B * T;
    const D = C / H;
    const ops = this.ops;
    const { acts: A, grads: Gb } = this.views(BT, grad);
    const P = this.P;
    this.last = null;
    const causal: AttentionOptions = { causal: true };

    await ops.embeddingForward(A.encoded, A.tokens, P.wte, P.wpe, B, T, C);
    let x = A.encoded; // (BT, C) residual stream
    for (let l = 0; l < L; l++) {
      const w = P.layers[l]!;
      const s = A.layers[l]!;
      await ops.layernormForward(s.ln1, s.ln1Mean, s.ln1Rstd, x, w.ln1w, w.ln1b, BT, C);
      await ops.matmul(s.qkv, s.ln1, w.qkvw, BT, 3 * C, C, { bias: w.qkvb });
      const { q, k, v } = packedQkvViews(s.qkv, B, T, H, D);
      await ops.attentionForward(
        { q, k, v, out: contiguousView(s.atty, [B, T, H, D]), lse: s.lse },
        causal,
      );
      await ops.matmul(A.proj, s.atty, w.attprojw, BT, C, C, { bias: w.attprojb });
      await ops.add(s.res2, x, A.proj, BT * C);
      await ops.layernormForward(s.ln2, s.ln2Mean, s.ln2Rstd, s.res2, w.ln2w, w.ln2b, BT, C);
      // fch = ln2 @ Wfc + b, fchGelu = GELU(fch): one matmul with the GELU epilogue
      await ops.matmul(s.fchGelu, s.ln2, w.fcw, BT, 4 * C, C, { bias: w.fcb, geluPre: s.fch });
      await ops.matmul(A.proj, s.fchGelu, w.fcprojw, BT, C, 4 * C, { bias: w.fcprojb });
      await ops.add(s.res3, s.res2, A.proj, BT * C);
      x = s.res3;
    }
    await ops.layernormForward(A.lnf, A.lnfMean, A.lnfRstd, x, P.lnfw, P.lnfb, BT, C);
    const Vp = this.paddedVocab;
    await ops.matmul(A.logits, A.lnf, this.headW, BT, Vp, C, { transB: true }); // tied head: lnf @ wte^T
    if (withTargets) {
      const scale = count > 0 ? 1 / count : 0;
      await ops.softmaxCrossEntropy(
        A.losses,
        grad ? Gb!.dlogits : null,
        A.logits,
        A.targets,
        BT,
        V,
        scale,
        Vp,
      );
      if (lossTo !== undefined) {
        if (!hasDeviceStep(ops))
          throw new OpsInputError(
            'GPT2.forwardQueued lossTo',
            `a backend with DeviceStepOps (sumTo); ${ops.name} has none`,
            'a buffer',
          );
        await ops.sumTo(lossTo, A.losses);
      }
    }
    this.last = { B, T, acts: A, grad };
  }

  /** Accumulate d(mean loss)/d(params) into this.grads for the last forward(..., grad = true). */
  async backward(): Promise<void> {
    const last = this.last;
    if (!last?.grad)
      throw new OpsInputError(
        'GPT2.backward',
        'forward(tokens, targets, B, T, true) first',
        'none',
      );
    last.grad = false;
    const { B, T, acts: A } = last;
    const { nEmbd: C, nHead: H, nLayer: L } = this.config;
    const D = C / H;
    const BT = B * T;
    const ops = this.ops;
    const Gb = this.views(BT, true).grads!;
    const P = this.P;
    const G = this.G;
    const causal: AttentionOptions = { causal: true };

    // Head: logits = lnf @ wte^T  ->  dlnf = dlogits @ wte,  dwte += dlogits^T @ lnf (over the Vp padded rows)
    const Vp = this.paddedVocab;
    await ops.matmul(Gb.dln, Gb.dlogits, this.headW, BT, C, Vp);
    await ops.matmul(this.headG, Gb.dlogits, A.lnf, Vp, C, BT, { transA: true, accumulate: true });
    await ops.zero(Gb.dres);
    const xL = L > 0 ? A.layers[L - 1]!.res3 : A.encoded;
    await ops.layernormBackward(
      Gb.dres,
      G.lnfw,
      G.lnfb,
      Gb.dln,
      xL,
      P.lnfw,
      A.lnfMean,
      A.lnfRstd,
      BT,
      C,
    );

    for (let l = L - 1; l >= 0; l--) {
      const w = P.layers[l]!;
      const g = G.layers[l]!;
      const s = A.layers[l]!;
      const x = l > 0 ? A.layers[l - 1]!.res3 : A.encoded; // block input
      // res3 = res2 + fcproj: dfcproj = dres (dres then also carries d res2)
      await ops.matmul(g.fcprojw, s.fchGelu, Gb.dres, 4 * C, C, BT, {
        transA: true,
        accumulate: true,
      });
      await ops.biasBackward(g.fcprojb, Gb.dres, BT, C);
      // d fch = (dres @ Wproj^T) * GELU'(fch): one matmul with the GELU backward epilogue
      await ops.matmul(Gb.dfch, Gb.dres, w.fcprojw, BT, 4 * C, C, {
        transB: true,
        dgeluPre: s.fch,
      });
      await ops.matmul(g.fcw, s.ln2, Gb.dfch, C, 4 * C, BT, { transA: true, accumulate: true });
      await ops.biasBackward(g.fcb, Gb.dfch, BT, 4 * C);
      await ops.matmul(Gb.dln, Gb.dfch, w.fcw, BT, C, 4 * C, { transB: true });
      await ops.layernormBackward(
        Gb.dres,
        g.ln2w,
        g.ln2b,
        Gb.dln,
        s.res2,
        w.ln2w,
        s.ln2Mean,
        s.ln2Rstd,
        BT,
        C,
      );
      // res2 = x + attproj: dattproj = dres (dres then carries d x)
      await ops.matmul(g.attprojw, s.atty, Gb.dres, C, C, BT, { transA: true, accumulate: true });
      await ops.biasBackward(g.attprojb, Gb.dres, BT, C);
      await ops.matmul(Gb.datty, Gb.dres, w.attprojw, BT, C, C, { transB: true });
      // Attention reads q, k, v in place from qkv and writes dq, dk, dv in place into dqkv.
      const { q, k, v } = packedQkvViews(s.qkv, B, T, H, D);
      const d = packedQkvViews(Gb.dqkv, B, T, H, D);
      const shape = [B, T, H, D] as const;
      await ops.attentionBackward(
        {
          dout: contiguousView(Gb.datty, shape),
          q,
          k,
          v,
          out: contiguousView(s.atty, shape),
          lse: s.lse,
          dq: d.q,
          dk: d.k,
          dv: d.v,
        },
        causal,
      );
      await ops.matmul(g.qkvw, s.ln1, Gb.dqkv, C, 3 * C, BT, { transA: true, accumulate: true });
      await ops.biasBackward(g.qkvb, Gb.dqkv, BT, 3 * C);
      await ops.matmul(Gb.dln, Gb.dqkv, w.qkvw, BT, C, 3 * C, { transB: true });
      await ops.layernormBackward(
        Gb.dres,
        g.ln1w,
        g.ln1b,
        Gb.dln,
        x,
        w.ln1w,
        s.ln1Mean,
        s.ln1Rstd,
        BT,
        C,
      );
    }
    await ops.embeddingBackward(G.wte, G.wpe, Gb.dres, A.tokens, B, T, C);
  }

  /**
   * A KV cache for B sequences of up to `capacity` positions (default and at most maxSeqLen), for
   * forwardCached. Needs a backend that implements core's KV-cache contract.
   */
  createCache(B: number, capacity = this.config.maxSeqLen): GPT2KVCache<Buf> {
    this.kvAttention('GPT2.createCache');
    const { nLayer, nHead, nEmbd, maxSeqLen } = this.config;
    if (!Number.isInteger(B) || B < 1)
      throw new OpsInputError('GPT2.createCache B', 'a positive integer', B);
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > maxSeqLen)
      throw new OpsInputError(
        'GPT2.createCache capacity',
        `an integer in [1, ${maxSeqLen}]`,
        capacity,
      );
    return new GPT2KVCache(this.ops, B, capacity, nLayer, nHead, nEmbd / nHead, this.computeDType);
  }

  /**
   * Inference forward of T new tokens per sequence, tokens (B, T), at positions cache.length ..
   * cache.length + T - 1: each block's attention appends the new keys and values to the cache in place
   * and attends to every cached position (causal, aligned to the end: prefill is T = prompt length,
   * decoding T = 1). Leaves the logits (B*T, Vp) of the new tokens in `this.logits` / `logitsAt` and
   * advances cache.length by T. The training forward/backward are separate and unchanged.
   */
  async forwardCached(
    tokens: Int32Array,
    B: number,
    T: number,
    cache: GPT2KVCache<Buf>,
  ): Promise<void> {
    await this.initialised;
    const attn = this.kvAttention('GPT2.forwardCached');
    const { nEmbd: C, nHead: H, nLayer: L, vocabSize: V } = this.config;
    if (B !== cache.B)
      throw new OpsInputError('GPT2.forwardCached B', `${cache.B} (the cache's batch)`, B);
    const pos = cache.length;
    if (!Number.isInteger(T) || T < 1 || pos + T > cache.capacity) {
      throw new OpsInputError(
        'GPT2.forwardCached T',
        `an integer in [1, ${cache.capacity - pos}] (cache capacity ${cache.capacity}, ${pos} held)`,
        T,
      );
    }
    const BT = B * T;
    checkIds('tokens', tokens, BT, V, false);
    const D = C / H;
    const ops = this.ops;
    const { acts: A } = this.views(BT, false);
    const P = this.P;
    this.last = null;
    const cacheSeqlens = new Int32Array(B).fill(pos);
    await ops.upload(A.tokens, tokens);
    // positions pos .. pos + T - 1: the wpe rows from pos on
    await ops.embeddingForward(
      A.encoded,
      A.tokens,
      P.wte,
      ops.view(P.wpe, pos * C, T * C),
      B,
      T,
      C,
    );
    let x = A.encoded; // (BT, C) residual stream
    for (let l = 0; l < L; l++) {
      const w = P.layers[l]!;
      const s = A.layers[l]!;
      await ops.layernormForward(s.ln1, s.ln1Mean, s.ln1Rstd, x, w.ln1w, w.ln1b, BT, C);
      await ops.matmul(s.qkv, s.ln1, w.qkvw, BT, 3 * C, C, { bias: w.qkvb });
      const { q, k, v } = packedQkvViews(s.qkv, B, T, H, D); // new q, k_new, v_new read in place
      const cacheShape = [B, cache.capacity, H, D] as const;
      await attn.attentionWithKvCache(
        {
          q,
          kCache: contiguousView(cache.k[l]!, cacheShape),
          vCache: contiguousView(cache.v[l]!, cacheShape),
          cacheSeqlens,
          kNew: k,
          vNew: v,
          out: contiguousView(s.atty, [B, T, H, D]),
          lse: s.lse, // (B, H, T), unused here; saves the backend a scratch buffer
        },
        { causal: true },
      );
      await ops.matmul(A.proj, s.atty, w.attprojw, BT, C, C, { bias: w.attprojb });
      await ops.add(s.res2, x, A.proj, BT * C);
      await ops.layernormForward(s.ln2, s.ln2Mean, s.ln2Rstd, s.res2, w.ln2w, w.ln2b, BT, C);
      // fch = ln2 @ Wfc + b, fchGelu = GELU(fch): one matmul with the GELU epilogue
      await ops.matmul(s.fchGelu, s.ln2, w.fcw, BT, 4 * C, C, { bias: w.fcb, geluPre: s.fch });
      await ops.matmul(A.proj, s.fchGelu, w.fcprojw, BT, C, 4 * C, { bias: w.fcprojb });
      await ops.add(s.res3, s.res2, A.proj, BT * C);
      x = s.res3;
    }
    await ops.layernormForward(A.lnf, A.lnfMean, A.lnfRstd, x, P.lnfw, P.lnfb, BT, C);
    await ops.matmul(A.logits, A.lnf, this.headW, BT, this.paddedVocab, C, { transB: true });
    cache.length = pos + T;
    this.last = { B, T, acts: A, grad: false };
  }

  /** True when the backend implements core's KV-cache contract (generate() then uses a cache). */
  get supportsKvCache(): boolean {
    return hasKvCacheAttention(this.ops);
  }

  private kvAttention(op: string): DeviceKvCacheAttention<Buf> {
    const ops = this.ops;
    if (!hasKvCacheAttention(ops)) {
      throw new OpsInputError(
        op,
        `a backend with KV-cache attention (core's DeviceKvCacheAttention)`,
        ops.name,
      );
    }
    return ops as unknown as DeviceKvCacheAttention<Buf>;
  }

  /** Return the activation buffers to the backend (the parameters stay). */
  releaseActivations(): void {
    if (!this.buffers) return;
    freeAll(this.ops, this.buffers.acts);
    if (this.buffers.grads) freeAll(this.ops, this.buffers.grads);
    this.buffers = null;
    this.cap = 0;
    this.last = null;
  }
}

type Kind = 'compute' | 'stat' | 'int';

/** Per-token width and kind of every activation and gradient buffer (a buffer holds rows x width). */
function widths(c: GPT2Config, Vp: number) {
  const { nEmbd: C, nHead: H } = c;
  const layer: Record<keyof LayerActs<unknown>, [number, Kind]> = {
    ln1: [C, 'compute'],
    ln1Mean: [1, 'stat'],
    ln1Rstd: [1, 'stat'],
    qkv: [3 * C, 'compute'],
    atty: [C, 'compute'],
    lse: [H, 'stat'],
    res2: [C, 'compute'],
    ln2: [C, 'compute'],
    ln2Mean: [1, 'stat'],
    ln2Rstd: [1, 'stat'],
    fch: [4 * C, 'compute'],
    fchGelu: [4 * C, 'compute'],
    res3: [C, 'compute'],
  };
  const acts: Record<Exclude<keyof Acts<unknown>, 'layers'>, [number, Kind]> = {
    tokens: [1, 'int'],
    targets: [1, 'int'],
    encoded: [C, 'compute'],
    proj: [C, 'compute'],
    lnf: [C, 'compute'],
    lnfMean: [1, 'stat'],
    lnfRstd: [1, 'stat'],
    logits: [Vp, 'compute'],
    losses: [1, 'stat'],
  };
  const grads: Record<keyof Grads<unknown>, [number, Kind]> = {
    dlogits: [Vp, 'compute'],
    dres: [C, 'compute'],
    dln: [C, 'compute'],
    datty: [C, 'compute'],
    dqkv: [3 * C, 'compute'],
    dfch: [4 * C, 'compute'],
  };
  return { layer, acts, grads };
}

function freeAll(ops: Ops<unknown>, r: object): void {
  for (const [key, val] of Object.entries(r)) {
    if (key === 'layers') (val as object[]).forEach((l) => freeAll(ops, l));
    else ops.free(val);
  }
}

/**
 * IO-complexity model of attention: HBM bytes read and written by standard attention and by
 * FlashAttention-2, forward and backward, their FLOPs, and a roofline runtime prediction.
 *
 * It follows Theorem 2 of Dao et al., "FlashAttention: Fast and Memory-Efficient Exact Attention with
 * IO-Awareness" (2022): with sequence length N, head dimension d and on-chip SRAM of M elements
 * (d <= M <= N d), standard attention makes Theta(N d + N^2) HBM accesses and FlashAttention
 * Theta(N^2 d^2 / M). The counts below are exact for the algorithms as written (per (batch, head),
 * then multiplied by batch * heads), so tests can check the asymptotic laws on exact numbers:
 *
 *   standard forward  (FA1 Algorithm 0)          reads  N d (Q) + 2 N d (K, V) + 2 N^2 (S, P)
 *                                                writes 2 N^2 (S, P) + N d (O)
 *   standard backward (FA1 Algorithm 3)          reads  5 N^2 (P, dP, dS) + 3 N d + 2 N d
 *                                                writes 2 N^2 (dP, dS) + N d (dQ) + 2 N d (dK, dV)
 *   FlashAttention-2 forward  (FA2 Algorithm 1)  reads  N d (Q, once per block row) + 2 N d * Tr (K, V)
 *                                                writes N d (O) + N (L)
 *   FlashAttention-2 backward (FA2 Algorithm 2)  reads  2 N d (K, V once) + 2 N d (dO, O for D)
 *                                                       + Tc * (3 N d + 2 N)   (Q, dO, dQ, L, D)
 *                                                writes N d (dQ = 0) + N (D) + Tc * N d (dQ) + 2 N d
 * (non-causal, N = Nq = Nk, blocks dividing N; the code handles Nq != Nk, ragged last blocks and the
 * causal mask exactly). With Tr = N / Br and Br = Theta(M / d), 2 N d Tr = Theta(N^2 d^2 / M).
 *
 * Units: the paper counts elements; here every count is in bytes. Q, K, V, O, dO, dQ, dK, dV, S, P,
 * dP, dS are stored with `bytesPerElement`; the vectors L (logsumexp) and D = rowsum(dO * O) are
 * float32 (4 bytes), as flash-attn stores them. `sramBytes` is M in bytes; the paper's M in elements
 * is sramBytes / bytesPerElement.
 *
 * Causal masks are bottom-right aligned (core's keyRange). Standard attention still materialises the
 * full S and P (the mask is applied elementwise), so its traffic does not change; FlashAttention-2
 * skips every K/V block that no row of the query block can see, which halves the K/V re-reads for
 * Nq = Nk up to the diagonal blocks: the counts below enumerate the blocks exactly.
 *
 * Not modelled: sliding windows, dropout, GQA's smaller K/V (each query head reads its K/V group's
 * tiles, so the K/V read terms are the same), L2 cache hits, and non-matmul FLOPs (softmax).
 */
import { AttentionInputError, describe } from './errors.js';
import { visiblePairs } from './options.js';

/** Bytes of one float32: the precision of the vectors L and D. */
const VECTOR_BYTES = 4;

/** Sizes of one attention problem for the model. */
export interface AttentionProblem {
  batch: number;
  /** Query heads (each one reads its own copy of K/V tiles, as in the kernels). */
  heads: number;
  seqlenQ: number;
  seqlenK: number;
  headDim: number;
  /** 2 for float16/bfloat16, 4 for float32. */
  bytesPerElement: number;
  causal?: boolean;
}

/** Problem plus on-chip memory and (optionally) block sizes for the IO model. */
export interface IoModelInput extends AttentionProblem {
  /** M: on-chip SRAM available to one thread block, in bytes. */
  sramBytes: number;
  /** Query rows per tile. Default: derived from M (see blockSizesFromSram). Used for both passes. */
  Br?: number;
  /** Key/value rows per tile. Default: derived from M. Used for both passes. */
  Bc?: number;
}

/** One counted term: which algorithm line moves which tensor. */
export interface TrafficTerm {
  /** e.g. 'FA2 Alg. 1 line 7' */
  line: string;
  what: string;
  readBytes: number;
  writeBytes: number;
}

/** HBM traffic of one pass of one algorithm, summed over batch and heads. */
export interface HbmTraffic {
  readBytes: number;
  writeBytes: number;
  /** readBytes + writeBytes: the paper's "HBM accesses", in bytes. */
  totalBytes: number;
  terms: TrafficTerm[];
}

/** The tiling of one FlashAttention-2 pass. */
export interface BlockSchedule {
  Br: number;
  Bc: number;
  /** ceil(Nq / Br) query blocks. */
  Tr: number;
  /** ceil(Nk / Bc) key/value blocks. */
  Tc: number;
  /** Visible (i, j) block pairs per (batch, head): Tr * Tc without a mask. */
  blockPairs: number;
  /** Sum over visible pairs of the rows of K_j: key rows the forward loads per (batch, head). */
  kvRowsLoaded: number;
  /** Sum over visible pairs of the rows of Q_i: query rows the backward loads per (batch, head). */
  qRowsLoaded: number;
  /** Sum over visible pairs of rows(Q_i) * rows(K_j): score entries the tiles compute. */
  tileEntries: number;
}

/** FLOP counts of one pass. */
export interface PassFlops {
  /** FlashAttention convention: fwd 4 * B * H * Nq * Nk * d (halved when causal); bwd 2.5 x fwd. */
  convention: number;
  /** Matmul FLOPs of standard attention: every S entry, masked or not. */
  standardMatmul: number;
  /** Matmul FLOPs of the FlashAttention-2 tiles actually computed (visible blocks, whole tiles). */
  flashMatmul: number;
  /** Matmul FLOPs of the visible (query, key) pairs only: the least any exact kernel must do. */
  visibleMatmul: number;
}

export interface IoModel {
  input: Required<Omit<IoModelInput, 'Br' | 'Bc'>>;
  /** Tiling of FA2 Algorithm 1 (forward) and Algorithm 2 (backward). */
  blocks: { forward: BlockSchedule; backward: BlockSchedule };
  /**
   * How many times the forward reads K and V in full, per (batch, head): Tr without a mask,
   * about (Tr + 1) / 2 with a causal mask and Nq = Nk.
   */
  kvPasses: number;
  forward: { standard: HbmTraffic; flash: HbmTraffic };
  backward: { standard: HbmTraffic; flash: HbmTraffic };
  flops: { forward: PassFlops; backward: PassFlops };
  /**
   * Extra memory beyond inputs and outputs: standard attention keeps S and P (B, H, Nq, Nk) for the
   * backward; FlashAttention-2 keeps only L (B, H, Nq) in float32.
   */
  extraBytes: { standard: number; flash: number };
}

function positiveInt(name: string, x: unknown): number {
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 1) {
    throw new AttentionInputError(name, 'a positive integer', describe(x));
  }
  return x;
}

/**
 * Block sizes from on-chip memory, FA1 Section 3.1 / Algorithm 1 line 1: "Set block sizes
 * Bc = ceil(M / 4d), Br = min(ceil(M / 4d), d)", with M in elements.
 *
 * In FA1 the K/V block (Bc) is the one that stays in SRAM across the inner loop, so it gets the
 * M / 4d rows and the streamed Q block gets min(., d). FA2 keeps that rule for its backward
 * (Algorithm 2 also loops over K/V blocks outside), but its forward (Algorithm 1) swaps the loops:
 * Q_i stays and K_j, V_j stream. Read by role, the rule gives the resident block M / 4d rows, so:
 *   forward:  Br = ceil(M / 4d), Bc = min(Br, d)     (K/V re-read Tr = ceil(N / Br) times)
 *   backward: Bc = ceil(M / 4d), Br = min(Bc, d)     (Q, dO, dQ, L, D re-read Tc times)
 * This is what makes the forward's K/V traffic 2 N d Tr = Theta(N^2 d^2 / M) as Theorem 2 states;
 * with the literal FA1 assignment the FA2 forward would re-read K/V N / min(M / 4d, d) times, which
 * stops depending on M once M >= 4 d^2.
 */
export function blockSizesFromSram(
  sramBytes: number,
  headDim: number,
  bytesPerElement: number,
): { forward: { Br: number; Bc: number }; backward: { Br: number; Bc: number } } {
  const M = sramBytes / bytesPerElement; // the paper's M, in elements
  const resident = Math.max(1, Math.ceil(M / (4 * headDim)));
  const streamed = Math.min(resident, headDim);
  return { forward: { Br: resident, Bc: streamed }, backward: { Br: streamed, Bc: resident } };
}

/**
 * Enumerate the visible (Q_i, K_j) block pairs. Without a mask every pair is visible. With the
 * bottom-right causal mask, query row r sees keys [0, r + Nk - Nq], so block row i (rows
 * [i Br, min((i + 1) Br, Nq))) sees K blocks j with j Bc <= lastRow + Nk - Nq: the first
 * ceil((lastRow + Nk - Nq + 1) / Bc) blocks (none when that is <= 0).
 */
export function blockSchedule(
  seqlenQ: number,
  seqlenK: number,
  Br: number,
  Bc: number,
  causal: boolean,
): BlockSchedule {
  const Tr = Math.ceil(seqlenQ / Br);
  const Tc = Math.ceil(seqlenK / Bc);
  let blockPairs = 0;
  let kvRowsLoaded = 0;
  let qRowsLoaded = 0;
  let tileEntries = 0;
  for (let i = 0; i < Tr; i++) {
    const rowEnd = Math.min((i + 1) * Br, seqlenQ);
    const rows = rowEnd - i * Br;
    let visibleBlocks = Tc;
    if (causal) {
      const lastKey = rowEnd - 1 + seqlenK - seqlenQ; // last key the block's last row sees
      visibleBlocks = lastKey < 0 ? 0 : Math.min(Tc, Math.ceil((lastKey + 1) / Bc));
    }
    const keys = Math.min(seqlenK, visibleBlocks * Bc); // rows of the visible K blocks
    blockPairs += visibleBlocks;
    kvRowsLoaded += keys;
    qRowsLoaded += rows * visibleBlocks;
    tileEntries += rows * keys;
  }
  return { Br, Bc, Tr, Tc, blockPairs, kvRowsLoaded, qRowsLoaded, tileEntries };
}

function traffic(terms: TrafficTerm[], heads: number): HbmTraffic {
  const scaled = terms.map((t) => ({ ...t, readBytes: t.readBytes * heads, writeBytes: t.writeBytes * heads }));
  const readBytes = scaled.reduce((s, t) => s + t.readBytes, 0);
  const writeBytes = scaled.reduce((s, t) => s + t.writeBytes, 0);
  return { readBytes, writeBytes, totalBytes: readBytes + writeBytes, terms: scaled };
}

/** FlashAttention-convention FLOPs: forward 4 B H Nq Nk d, halved when causal; backward 2.5 x forward. */
export function attentionFlops(p: Omit<AttentionProblem, 'bytesPerElement'>): { forward: number; backward: number } {
  const forward = (4 * p.batch * p.heads * p.seqlenQ * p.seqlenK * p.headDim) / (p.causal ? 2 : 1);
  return { forward, backward: 2.5 * forward };
}

/** Validate and run the model. Throws AttentionInputError naming the bad field. */
export function attentionIoModel(input: IoModelInput): IoModel {
  if (input === null || typeof input !== 'object') {
    throw new AttentionInputError('io model input', 'an object', describe(input));
  }
  const batch = positiveInt('batch', input.batch);
  const heads = positiveInt('heads', input.heads);
  const Nq = positiveInt('seqlenQ', input.seqlenQ);
  const Nk = positiveInt('seqlenK', input.seqlenK);
  const d = positiveInt('headDim', input.headDim);
  const e = positiveInt('bytesPerElement', input.bytesPerElement);
  const sramBytes = positiveInt('sramBytes', input.sramBytes);
  if (input.causal !== undefined && typeof input.causal !== 'boolean') {
    throw new AttentionInputError('causal', 'a boolean', describe(input.causal));
  }
  const causal = input.causal ?? false;
  const derived = blockSizesFromSram(sramBytes, d, e);
  const Br = input.Br === undefined ? undefined : positiveInt('Br', input.Br);
  const Bc = input.Bc === undefined ? undefined : positiveInt('Bc', input.Bc);
  const fwd = blockSchedule(Nq, Nk, Br ?? derived.forward.Br, Bc ?? derived.forward.Bc, causal);
  const bwd = blockSchedule(Nq, Nk, Br ?? derived.backward.Br, Bc ?? derived.backward.Bc, causal);
  const BH = batch * heads;
  const S = Nq * Nk * e; // one N x N matrix (S, P, dP or dS)
  const Qb = Nq * d * e; // Q, O, dO or dQ
  const Kb = Nk * d * e; // K, V, dK or dV
  const vec = Nq * VECTOR_BYTES; // L or D

  // FA1 Algorithm 0 (standard attention forward).
  const standardForward = traffic(
    [
      { line: 'FA1 Alg. 0 line 1', what: 'read Q, K; write S = Q K^T', readBytes: Qb + Kb, writeBytes: S },
      { line: 'FA1 Alg. 0 line 2', what: 'read S; write P = softmax(S)', readBytes: S, writeBytes: S },
      { line: 'FA1 Alg. 0 line 3', what: 'read P, V; write O = P V', readBytes: S + Kb, writeBytes: Qb },
    ],
    BH,
  );
  // FA1 Algorithm 3 (standard attention backward; P kept from the forward).
  const standardBackward = traffic(
    [
      { line: 'FA1 Alg. 3 line 1', what: 'read P, dO; write dV = P^T dO', readBytes: S + Qb, writeBytes: Kb },
      { line: 'FA1 Alg. 3 line 2', what: 'read dO, V; write dP = dO V^T', readBytes: Qb + Kb, writeBytes: S },
      { line: 'FA1 Alg. 3 line 3', what: 'read P, dP; write dS', readBytes: 2 * S, writeBytes: S },
      { line: 'FA1 Alg. 3 line 4', what: 'read dS, K; write dQ = dS K', readBytes: S + Kb, writeBytes: Qb },
      { line: 'FA1 Alg. 3 line 5', what: 'read dS, Q; write dK = dS^T Q', readBytes: S + Qb, writeBytes: Kb },
    ],
    BH,
  );
  // FA2 Algorithm 1 (forward): Q_i loaded once per block row, K_j and V_j once per visible (i, j).
  const flashForward = traffic(
    [
      { line: 'FA2 Alg. 1 line 4', what: 'read Q_i (once per block row)', readBytes: Qb, writeBytes: 0 },
      {
        line: 'FA2 Alg. 1 line 7',
        what: 'read K_j, V_j (once per visible block pair)',
        readBytes: 2 * fwd.kvRowsLoaded * d * e,
        writeBytes: 0,
      },
      { line: 'FA2 Alg. 1 line 14', what: 'write O_i', readBytes: 0, writeBytes: Qb },
      { line: 'FA2 Alg. 1 line 15', what: 'write L_i (float32)', readBytes: 0, writeBytes: vec },
    ],
    BH,
  );
  // FA2 Algorithm 2 (backward). Line 9 lists O_i too, but lines 10-16 use D_i (line 4) instead of O,
  // so O_i is not counted there; dQ_i is counted once, as the read-modify-write of line 15.
  const qRows = bwd.qRowsLoaded;
  const flashBackward = traffic(
    [
      { line: 'FA2 Alg. 2 line 3', what: 'write dQ = 0', readBytes: 0, writeBytes: Qb },
      { line: 'FA2 Alg. 2 line 4', what: 'read dO, O; write D = rowsum(dO * O) (float32)', readBytes: 2 * Qb, writeBytes: vec },
      { line: 'FA2 Alg. 2 line 6', what: 'read K_j, V_j (once per K/V block)', readBytes: 2 * Kb, writeBytes: 0 },
      {
        line: 'FA2 Alg. 2 line 9',
        what: 'read Q_i, dO_i, L_i, D_i (once per visible block pair)',
        readBytes: qRows * (2 * d * e + 2 * VECTOR_BYTES),
        writeBytes: 0,
      },
      {
        line: 'FA2 Alg. 2 line 15',
        what: 'read and write dQ_i (once per visible block pair)',
        readBytes: qRows * d * e,
        writeBytes: qRows * d * e,
      },
      { line: 'FA2 Alg. 2 line 18', what: 'write dK_j, dV_j', readBytes: 0, writeBytes: 2 * Kb },
    ],
    BH,
  );

  // FLOPs. Standard: S = Q K^T and O = P V are 2 Nq Nk d each (4 per entry); its backward has four
  // matmuls (dV, dP, dQ, dK: 8 per entry). FA2's backward also recomputes S (10 per entry: 2.5 x).
  const conv = attentionFlops({ batch, heads, seqlenQ: Nq, seqlenK: Nk, headDim: d, causal });
  const visible = visiblePairs(
    { seqlenQ: Nq, seqlenK: Nk },
    { causal, softmaxScale: 1, windowLeft: -1, windowRight: causal ? 0 : -1 },
  );
  const per = (entries: number, perEntry: number): number => BH * entries * d * perEntry;
  const flops = {
    forward: {
      convention: conv.forward,
      standardMatmul: per(Nq * Nk, 4),
      flashMatmul: per(fwd.tileEntries, 4),
      visibleMatmul: per(visible, 4),
    },
    backward: {
      convention: conv.backward,
      standardMatmul: per(Nq * Nk, 8),
      flashMatmul: per(bwd.tileEntries, 10),
      visibleMatmul: per(visible, 10),
    },
  };

  return {
    input: { batch, heads, seqlenQ: Nq, seqlenK: Nk, headDim: d, bytesPerElement: e, sramBytes, causal },
    blocks: { forward: fwd, backward: bwd },
    kvPasses: fwd.kvRowsLoaded / Nk,
    forward: { standard: standardForward, flash: flashForward },
    backward: { standard: standardBackward, flash: flashBackward },
    flops,
    extraBytes: { standard: BH * 2 * S, flash: BH * vec },
  };
}

/** A roofline estimate: the pass is as slow as its slower resource. */
export interface RooflineEstimate {
  flops: number;
  bytes: number;
  computeSeconds: number;
  memorySeconds: number;
  /** max(computeSeconds, memorySeconds) */
  seconds: number;
  bound: 'compute' | 'memory';
  /** flops / bytes */
  arithmeticIntensity: number;
}

/** Roofline: time = max(flops / peak FLOP/s, bytes / bandwidth). */
export function roofline(flops: number, bytes: number, peakFlopsPerSecond: number, bytesPerSecond: number): RooflineEstimate {
  if (!(peakFlopsPerSecond > 0)) throw new AttentionInputError('peakFlopsPerSecond', 'a positive number', peakFlopsPerSecond);
  if (!(bytesPerSecond > 0)) throw new AttentionInputError('bytesPerSecond', 'a positive number', bytesPerSecond);
  const computeSeconds = flops / peakFlopsPerSecond;
  const memorySeconds = bytes / bytesPerSecond;
  return {
    flops,
    bytes,
    computeSeconds,
    memorySeconds,
    seconds: Math.max(computeSeconds, memorySeconds),
    bound: computeSeconds >= memorySeconds ? 'compute' : 'memory',
    arithmeticIntensity: flops / bytes,
  };
}

/** What the roofline needs from a device (see device-profiles.ts for A100 and H100). */
export interface RooflineDevice {
  name: string;
  /** HBM bandwidth, bytes per second. */
  hbmBytesPerSecond: number;
  /** Peak dense matmul FLOP/s by compute precision. */
  peakFlopsPerSecond: { float16: number; bfloat16: number; float32: number };
}

export interface RuntimePrediction {
  device: string;
  precision: 'float16' | 'bfloat16' | 'float32';
  forward: { standard: RooflineEstimate; flash: RooflineEstimate };
  backward: { standard: RooflineEstimate; flash: RooflineEstimate };
}

/**
 * Roofline runtimes of both algorithms on `device`: each pass's matmul FLOPs (standard: all of S;
 * flash: the tiles it computes) against its HBM bytes. `precision` picks the peak (default bfloat16
 * for 2-byte elements, float32 for 4-byte ones).
 */
export function predictRuntime(
  model: IoModel,
  device: RooflineDevice,
  precision: RuntimePrediction['precision'] = model.input.bytesPerElement >= 4 ? 'float32' : 'bfloat16',
): RuntimePrediction {
  const peak = device.peakFlopsPerSecond[precision];
  const bw = device.hbmBytesPerSecond;
  const f = model.flops;
  return {
    device: device.name,
    precision,
    forward: {
      standard: roofline(f.forward.standardMatmul, model.forward.standard.totalBytes, peak, bw),
      flash: roofline(f.forward.flashMatmul, model.forward.flash.totalBytes, peak, bw),
    },
    backward: {
      standard: roofline(f.backward.standardMatmul, model.backward.standard.totalBytes, peak, bw),
      flash: roofline(f.backward.flashMatmul, model.backward.flash.totalBytes, peak, bw),
    },
  };
}

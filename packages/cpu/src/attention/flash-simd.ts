/**
 * FlashAttention-2 with wasm SIMD tiles (wasm/flash-simd.mjs) over float32 buffers in the shared wasm
 * memory: the driver that every thread of the pool runs on its share of the work units.
 *
 * Work units, taken from one atomic counter by whichever thread is free, so B = 1 uses every core:
 *   forward   (b, h, i)       one query block Q_i of one head: Algorithm 1, lines 4-15
 *   backward  (b, hk, j)      one key block: dK_j, dV_j over every query block and every query head of
 *                             the group (Algorithm 2's outer loop, the paper's parallelisation)
 *             (b, h, i)       one query block: dQ_i over every key block. FA2 adds dQ with atomics from
 *                             the key-block threads, which makes the sum order (and the bits) depend on
 *                             timing; recomputing S and dP once more per (i, j) tile (5 -> 7 tile
 *                             products) keeps every element's sum order fixed.
 * Each unit is computed by one thread, with the same arithmetic whoever runs it: results are bitwise
 * identical for any thread count (exact resume of training relies on this).
 *
 * Before the units, a pack phase (also one unit per head) copies the operands out of their strided
 * views into zero-padded tiles the kernels read with unit stride: K^T and V^T in (Dp, Bc) blocks, K, V,
 * Q, dO in (rows, Dp), Q^T and dO^T in (Dp, Br) blocks, lse and D = rowsum(dO * O) padded to NqPad.
 * These are O(N D) per head, linear in N like the inputs (no N x N buffer anywhere). Packing every head
 * before the first query block (32 MiB at B = 4, H = 8, N = 1024, D = 128) costs nothing measurable
 * against packing each head next to its use: B = 4 takes 0.96-1.02x four times B = 1, on 1 and 2
 * threads, with and without a 192 MiB cache flush before each call (2026-12-07, quiet, load < 2,
 * apps/bench/src/cpu/batch-per-head.mjs), so the pack stays a phase of its own.
 *
 * Tile sizes: cpu-attention.ts's SIMD_TILES (swept there); the register tile of `gemm` is 6 x 8 with FMA, 4 x 8 without
 * (wasm/flash-simd.mjs has the measurement). Profile at N = 1024, D = 64, one thread (2026-12-07): the
 * gemm tiles ~55% of the forward, softmaxRows ~19%, this driver's JS ~15%; after the base-2 exp, the
 * scaled Q pack and the wasm copies (same day): gemm ~69%, softmaxRows 11-16%, JS ~7% (--cpu-prof).
 * Round 3 (apps/bench/src/cpu/attention-profile.mjs, causal, N = 1024-2048, D = 64 and 128): gemm tiles
 * 73-84% at 43-46 GFLOP/s (the 128-bit FMA peak of the core), softmaxRows 8-16%, the strided row
 * copies and writes 4-5%, JS ~2%: what is left to gain here is small; see BENCHMARKS.md round 3.
 *
 * `flashUnits` is shipped to the workers as source (Function.prototype.toString), so it is
 * self-contained: no imports, no closures over module scope.
 */
import { FLASH_FMA_WASM_BASE64, FLASH_SIMD_WASM_BASE64 } from './flash-simd.wasm.js';

export interface FlashSimdExports {
  gemm(
    c: number,
    ldc: number,
    a: number,
    lda: number,
    b: number,
    ldb: number,
    M: number,
    N: number,
    K: number,
    acc: number,
  ): void;
  softmaxRows(
    s: number,
    lds: number,
    rows: number,
    colsPad: number,
    colsReal: number,
    scale: number,
    lo: number,
    hi: number,
    c0: number,
    m: number,
    l: number,
    acc: number,
    ldacc: number,
    Dv: number,
  ): void;
  probsRows(
    s: number,
    lds: number,
    rows: number,
    colsPad: number,
    colsReal: number,
    scale: number,
    L: number,
    lo: number,
    hi: number,
    c0: number,
  ): void;
  probsCols(
    s: number,
    lds: number,
    rows: number,
    colsPad: number,
    colsReal: number,
    scale: number,
    L: number,
    lo: number,
    hi: number,
    k0: number,
  ): void;
  dsRows(p: number, dp: number, ld: number, rows: number, colsPad: number, D: number): void;
  dsCols(p: number, dp: number, ld: number, rows: number, colsPad: number, D: number): void;
  transposeBlocks(dst: number, src: number, NPad: number, Dp: number, Bk: number): void;
  nonFinite(src: number, n: number): number;
  packStrips(dst: number, src: number, lds: number, kc: number, nc: number): void;
  copyRows(
    dst: number,
    ldd: number,
    src: number,
    lds: number,
    rows: number,
    D: number,
    Dp: number,
  ): void;
  scaleRows(
    dst: number,
    ldd: number,
    src: number,
    lds: number,
    rows: number,
    D: number,
    mul: number,
    ldmul: number,
  ): void;
}

/** Whether this runtime has relaxed SIMD (Node >= 22, or 20 with --experimental-wasm-relaxed-simd). */
export function hasRelaxedSimd(): boolean {
  return WebAssembly.validate(Buffer.from(FLASH_FMA_WASM_BASE64, 'base64'));
}

/**
 * The FMA (relaxed SIMD) module where this runtime validates it and `fma` is not false, else the plain
 * SIMD one. Both give results independent of the thread count; they differ from each other in the last
 * bits (one rounding per multiply-add instead of two), so a training run keeps one for its lifetime.
 */
export function flashSimdModule(fma?: boolean): { module: WebAssembly.Module; fma: boolean } {
  const fmaBytes = Buffer.from(FLASH_FMA_WASM_BASE64, 'base64');
  if (fma !== false && WebAssembly.validate(fmaBytes))
    return { module: new WebAssembly.Module(fmaBytes), fma: true };
  return {
    module: new WebAssembly.Module(Buffer.from(FLASH_SIMD_WASM_BASE64, 'base64')),
    fma: false,
  };
}

/** Where a (B, N, H, D) view lives: byte address of element (0, 0, 0, 0), strides in elements. */
export interface ByteLayout {
  at: number;
  sB: number;
  sN: number;
  sH: number;
}

/** One phase of a forward or backward call: everything in bytes of the shared memory. */
export interface FlashJob {
  pass: 'fwd-pack' | 'fwd' | 'bwd-pack' | 'bwd';
  /** Int32 unit counter (byte address), zeroed by the caller before the fan-out. */
  ctr: number;
  units: number;
  B: number;
  Nq: number;
  Nk: number;
  Hq: number;
  Hk: number;
  D: number;
  /** D rounded up to 4; Br, Bc the tile sizes; NqPad, NkPad = Tr Br, Tc Bc. */
  Dp: number;
  Br: number;
  Bc: number;
  NqPad: number;
  NkPad: number;
  scale: number;
  /** Int32 (NqPad): visible keys [lo, hi) of each query row (core's keyRange), padding lo = hi = 0. */
  lo: number;
  hi: number;
  q: ByteLayout;
  k: ByteLayout;
  v: ByteLayout;
  /** forward: out written; backward: the forward's out (read). */
  out: ByteLayout;
  /** (B, Hq, Nq) float32: forward writes, backward reads. */
  lse: number;
  dout?: ByteLayout;
  dq?: ByteLayout;
  dk?: ByteLayout;
  dv?: ByteLayout;
  /** Packs (see the module comment); absent ones are unused by the pass. */
  kt: number;
  vp: number;
  kp: number;
  vt: number;
  qp: number;
  qt: number;
  dop: number;
  dot: number;
  Lp: number;
  Dvec: number;
  /**
   * Int32 flags, one per (b, kv head, key block): K block has a non-finite value at nf, V block at
   * nf + 4 B Hk Tc (written by the pack phase). Such a block's products with P or dS skip masked
   * entries row by row, since 0 * NaN would leak a NaN the row does not see.
   */
  nf: number;
  /** Per-thread scratch: thread t owns [scratch + t * scratchBytes, + scratchBytes). */
  scratch: number;
  scratchBytes: number;
}

/** Float32 elements of per-thread scratch a pass needs. */
export function flashScratchFloats(Br: number, Bc: number, Dp: number): number {
  // forward: Qi (Br, Dp), S (Br, Bc), acc (Br, Dp), m, l (Br); backward: two (max(Br, Bc))^2 tiles and
  // two (max(Br, Bc), Dp) accumulators.
  const T = Math.max(Br, Bc);
  return 2 * T * T + 2 * T * Dp + 2 * T + 16;
}

/** Run units of `job` from its counter until none is left (thread `thread` of the pool). */
export function flashUnits(
  ex: FlashSimdExports,
  memory: WebAssembly.Memory,
  job: FlashJob,
  thread: number,
): void {
  const f32 = new Float32Array(memory.buffer);
  const i32 = new Int32Array(memory.buffer);
  const j = job;
  const { B, Nq, Nk, Hq, Hk, D, Dp, Br, Bc, NqPad, NkPad, scale } = j;
  const G = Hq / Hk;
  const Tr = NqPad / Br;
  const Tc = NkPad / Bc;
  const ctr = j.ctr / 4;
  const F = 4; // bytes per float
  const T = Math.max(Br, Bc);
  const s0 = j.scratch + thread * j.scratchBytes;
  // Rows per chunk of a block that the mask cuts (forward): two 6-row register tiles of the FMA gemm,
  // three 4-row ones of the plain one. 2026-12-07, N = 1024, D = 64, causal, one thread, 64 x 64 tiles,
  // alternating in one process: chunks of 12 rows 1-3% faster than 6 or 24; the chunks together with
  // the wasm transposes (transposeBlocks, nonFinite) 1.10x faster than whole blocks (D = 64 and 128).
  const DIAG_CHUNK = 12;
  // Q is packed times the softmax scale, in the forward and the backward alike, so that both compute
  // the same scores bit for bit (S_ij = (scale Q_i) K_j^T): the backward's P_ij = exp(S_ij - L_i) is
  // then exactly the forward's where one key decides a row. The kernels read scale 1.
  const mulAt = s0 + (2 * T * T + 2 * T * Dp + 2 * T) * F; // one float of this thread's scratch
  const scaleQ = (at: number, rows: number): void => {
    f32[mulAt / F] = scale;
    ex.scaleRows(at, Dp * F, at, Dp * F, rows, Dp, mulAt, 0);
  };

  // Copy rows [0, N) of head (b, h) of a strided view into (NPad, Dp) rows at `dst` (floats), zero-padded.
  const packRows = (
    src: ByteLayout,
    b: number,
    h: number,
    N: number,
    NPad: number,
    dst: number,
  ): void => {
    ex.copyRows(dst * F, Dp * F, src.at + (b * src.sB + h * src.sH) * F, src.sN * F, N, D, Dp);
    if (NPad > N) f32.fill(0, dst + N * Dp, dst + NPad * Dp);
  };
  // (NPad, Dp) rows at `src` (floats) into blocks (Dp, Bk) at `dst`: block t holds rows t Bk .. + Bk.
  const packBlocksT = (src: number, NPad: number, Bk: number, dst: number): void =>
    ex.transposeBlocks(dst * F, src * F, NPad, Dp, Bk);

  // Write rows [r0, r0 + rows) of an (., Dp) accumulator at `acc` (bytes) times `mul` into a view.
  const writeRows = (
    dst: ByteLayout,
    b: number,
    h: number,
    r0: number,
    rows: number,
    acc: number,
    mul: number,
  ): void => {
    f32[mulAt / F] = mul;
    const at = dst.at + (b * dst.sB + h * dst.sH + r0 * dst.sN) * F;
    ex.scaleRows(at, dst.sN * F, acc, Dp * F, rows, D, mulAt, 0);
  };
  const lo = j.lo / F;
  const hi = j.hi / F;
  const nfK = j.nf / F;
  const nfV = nfK + B * Hk * Tc;
  // Flag each Bc-row block of an (NkPad, Dp) pack that holds a NaN or an infinity.
  const flagBlocks = (src: number, flags: number): void => {
    for (let t = 0; t < Tc; t++) i32[flags + t] = ex.nonFinite((src + t * Bc * Dp) * F, Bc * Dp);
  };

  // acc (rows, Dp) += P (rows, ld ldp) @ X (cols, Dp) over each row's visible keys only (the path for
  // a block with a non-finite value; floats addresses).
  const maskedAccumulate = (
    acc: number,
    p: number,
    ldp: number,
    x: number,
    r0: number,
    rows: number,
    c0: number,
    cols: number,
  ): void => {
    for (let r = 0; r < rows; r++) {
      const a = Math.max(i32[lo + r0 + r]!, c0) - c0;
      const e = Math.min(i32[hi + r0 + r]!, c0 + cols) - c0;
      for (let c = a; c < e; c++) {
        const w = f32[p + r * ldp + c]!;
        for (let d = 0; d < Dp; d++) f32[acc + r * Dp + d] += w * f32[x + c * Dp + d]!;
      }
    }
  };

  for (;;) {
    const u = Atomics.add(i32, ctr, 1);
    if (u >= j.units) break;

    if (j.pass === 'fwd-pack') {
      // One (b, hk): K^T in (Dp, Bc) blocks, V in (NkPad, Dp) rows.
      const b = Math.floor(u / Hk);
      const hk = u - b * Hk;
      const vp = j.vp / F + u * NkPad * Dp;
      packRows(j.k, b, hk, Nk, NkPad, vp); // K rows first, through vp as a staging area
      packBlocksT(vp, NkPad, Bc, j.kt / F + u * NkPad * Dp);
      packRows(j.v, b, hk, Nk, NkPad, vp);
      flagBlocks(vp, nfV + u * Tc);
    } else if (j.pass === 'bwd-pack') {
      if (u < B * Hq) {
        // One (b, h) of the queries: Q, dO rows and their (Dp, Br) transposed blocks, lse, D.
        const b = Math.floor(u / Hq);
        const h = u - b * Hq;
        const qp = j.qp / F + u * NqPad * Dp;
        const dop = j.dop / F + u * NqPad * Dp;
        packRows(j.q, b, h, Nq, NqPad, qp);
        scaleQ(qp * F, Nq);
        packRows(j.dout!, b, h, Nq, NqPad, dop);
        packBlocksT(qp, NqPad, Br, j.qt / F + u * NqPad * Dp);
        packBlocksT(dop, NqPad, Br, j.dot / F + u * NqPad * Dp);
        // Algorithm 2, line 4: D_i = rowsum(dO_i * O_i)
        const oBase = j.out.at / F + b * j.out.sB + h * j.out.sH;
        const Lp = j.Lp / F + u * NqPad;
        const Dv = j.Dvec / F + u * NqPad;
        for (let n = 0; n < NqPad; n++) {
          if (n >= Nq) {
            f32[Lp + n] = 0;
            f32[Dv + n] = 0;
            continue;
          }
          const o = oBase + n * j.out.sN;
          const g = dop + n * Dp;
          let s = 0;
          for (let d = 0; d < D; d++) s += f32[g + d]! * f32[o + d]!;
          f32[Dv + n] = s;
          f32[Lp + n] = f32[j.lse / F + u * Nq + n]!;
        }
      } else {
        // One (b, hk) of the keys: K, V rows and their (Dp, Bc) transposed blocks.
        const w = u - B * Hq;
        const b = Math.floor(w / Hk);
        const hk = w - b * Hk;
        const kp = j.kp / F + w * NkPad * Dp;
        const vp = j.vp / F + w * NkPad * Dp;
        packRows(j.k, b, hk, Nk, NkPad, kp);
        packRows(j.v, b, hk, Nk, NkPad, vp);
        packBlocksT(kp, NkPad, Bc, j.kt / F + w * NkPad * Dp);
        flagBlocks(kp, nfK + w * Tc);
        packBlocksT(vp, NkPad, Bc, j.vt / F + w * NkPad * Dp);
      }
    } else if (j.pass === 'fwd') {
      // Query blocks from the last (longest under a causal mask) to the first, so the tail is short.
      const bh = Math.floor(u / Tr);
      const i = Tr - 1 - (u - bh * Tr);
      const b = Math.floor(bh / Hq);
      const h = bh - b * Hq;
      const bhk = b * Hk + Math.floor(h / G);
      const r0 = i * Br;
      const rows = Math.min(Br, Nq - r0);
      // Scratch: Qi (Br, Dp), S (Br, Bc), acc (Br, Dp), m (Br), l (Br), in bytes.
      const Qi = s0;
      const S = Qi + Br * Dp * F;
      const acc = S + Br * Bc * F;
      const m = acc + Br * Dp * F;
      const l = m + Br * F;
      // line 4: load Q_i; line 5: acc = 0, l_i = 0, m_i = -inf
      // line 4 (Q_i times the scale, see scaleQ: softmaxRows with scale 1 only reads an unmasked row
      // instead of scaling and storing it), copied and scaled in one pass: the same products as
      // copyRows + scaleQ (bit for bit), one pass over the strided rows instead of two.
      f32[mulAt / F] = scale;
      ex.scaleRows(
        Qi,
        Dp * F,
        j.q.at + (b * j.q.sB + h * j.q.sH + r0 * j.q.sN) * F,
        j.q.sN * F,
        rows,
        D,
        mulAt,
        0,
      );
      if (D < Dp)
        for (let r = 0; r < rows; r++) f32.fill(0, Qi / F + r * Dp + D, Qi / F + (r + 1) * Dp);
      f32.fill(0, acc / F, acc / F + rows * Dp);
      f32.fill(0, l / F, l / F + rows);
      f32.fill(-Infinity, m / F, m / F + rows);
      // Only the key blocks some row of Q_i sees (both bounds grow with the row).
      const kLo = i32[lo + r0]!;
      const kHi = i32[hi + r0 + rows - 1]!;
      const jStart = Math.floor(kLo / Bc);
      const jEnd = kHi > kLo ? Math.ceil(kHi / Bc) : jStart;
      for (let jj = jStart; jj < jEnd; jj++) {
        const c0 = jj * Bc;
        const cols = Math.min(Bc, Nk - c0);
        const kt = j.kt + (bhk * NkPad + c0) * Dp * F;
        const vRow = j.vp + (bhk * NkPad + c0) * Dp * F;
        const nfBlock = i32[nfV + bhk * Tc + jj]!;
        // A block that every row sees whole is one chunk; one that the mask cuts (the causal diagonal, a
        // window's edges) goes in chunks of CH rows, each over the columns [ca, cb) that its rows see
        // (lo and hi grow with the row), so the triangle above the diagonal is mostly skipped.
        const whole = i32[lo + r0 + rows - 1]! <= c0 && i32[hi + r0]! >= c0 + cols;
        const CH = whole ? rows : DIAG_CHUNK;
        for (let rc = 0; rc < rows; rc += CH) {
          const n = Math.min(CH, rows - rc);
          const ca = whole ? 0 : Math.max(0, i32[lo + r0 + rc]! - c0) & ~3;
          const cb = whole ? cols : Math.min(cols, i32[hi + r0 + rc + n - 1]! - c0);
          if (cb <= ca) continue; // no row of the chunk sees a key of this block
          const w = cb - ca;
          const Sc = S + (rc * Bc + ca) * F;
          const accc = acc + rc * Dp * F;
          // line 8: S_ij = Q_i K_j^T (Q_i holds the scale)
          ex.gemm(
            Sc,
            Bc * F,
            Qi + rc * Dp * F,
            Dp * F,
            kt + ca * F,
            Bc * F,
            n,
            (w + 3) & ~3,
            Dp,
            0,
          );
          // lines 9-10: m_i, P~_ij, l_i; acc *= exp(m_old - m_new)
          ex.softmaxRows(
            Sc,
            Bc * F,
            n,
            (w + 3) & ~3,
            cols - ca,
            1,
            j.lo + (r0 + rc) * F,
            j.hi + (r0 + rc) * F,
            c0 + ca,
            m + rc * F,
            l + rc * F,
            accc,
            Dp * F,
            Dp / 4,
          );
          // line 10: acc += P~_ij V_j
          if (nfBlock)
            maskedAccumulate(accc / F, S / F + rc * Bc, Bc, vRow / F, r0 + rc, n, c0, cols);
          else ex.gemm(accc, Dp * F, Sc, Bc * F, vRow + ca * Dp * F, Dp * F, n, Dp, w, 1);
        }
      }
      // lines 12-15: O_i = acc / l_i, L_i = m_i + log(l_i); a row that saw no key:
      // out = 0, lse = -inf. The factors 1 / l_i overwrite l_i.
      const lseRow = j.lse / F + bh * Nq + r0;
      let empty = 0;
      for (let r = 0; r < rows; r++) {
        const lr = f32[l / F + r]!;
        if (lr === 0) empty++;
        f32[lseRow + r] = lr === 0 ? -Infinity : f32[m / F + r]! + Math.log(lr);
        f32[l / F + r] = lr === 0 ? 0 : 1 / lr;
      }
      const oAt = j.out.at + (b * j.out.sB + h * j.out.sH + r0 * j.out.sN) * F;
      ex.scaleRows(oAt, j.out.sN * F, acc, Dp * F, rows, D, l, F);
      if (empty > 0)
        for (let r = 0; r < rows; r++)
          if (f32[lseRow + r] === -Infinity) {
            const o = oAt / F + r * j.out.sN;
            f32.fill(0, o, o + D);
          }
    } else if (u < B * Hk * Tc) {
      // Backward, key block unit (b, hk, j): dK_j, dV_j.
      const bhk = Math.floor(u / Tc);
      const jj = u - bhk * Tc;
      const b = Math.floor(bhk / Hk);
      const hk = bhk - b * Hk;
      const c0 = jj * Bc;
      const cols = Math.min(Bc, Nk - c0);
      const c1 = c0 + cols;
      // Scratch: S^T, dP^T (Bc, Br), dK, dV accumulators (Bc, Dp), in bytes.
      const ST = s0;
      const dPT = ST + T * T * F;
      const dK = dPT + T * T * F;
      const dV = dK + T * Dp * F;
      f32.fill(0, dK / F, dK / F + cols * Dp);
      f32.fill(0, dV / F, dV / F + cols * Dp);
      // Query rows that see a key of this block: a contiguous range, since lo and hi grow with the row.
      let qa = 0;
      while (qa < Nq && (i32[hi + qa]! <= c0 || i32[lo + qa]! >= i32[hi + qa]!)) qa++;
      let qb = Nq;
      while (qb > qa && (i32[lo + qb - 1]! >= c1 || i32[lo + qb - 1]! >= i32[hi + qb - 1]!)) qb--;
      const kRow = (bhk * NkPad + c0) * Dp * F;
      for (let h = hk * G; h < (hk + 1) * G; h++) {
        const bh = b * Hq + h;
        for (let i = Math.floor(qa / Br); qa < qb && i < Math.ceil(qb / Br); i++) {
          const r0 = i * Br;
          const rows = Math.min(Br, Nq - r0);
          const rowsPad = (rows + 3) & ~3;
          const qBlk = (bh * NqPad + r0) * Dp * F;
          // line 10-11: S^T = K_j Q_i^T, P^T = exp(scale S^T - L_i)
          ex.gemm(ST, Br * F, j.kp + kRow, Dp * F, j.qt + qBlk, Br * F, cols, rowsPad, Dp, 0);
          ex.probsCols(
            ST,
            Br * F,
            cols,
            rowsPad,
            rows,
            1,
            j.Lp + (bh * NqPad + r0) * F,
            j.lo + r0 * F,
            j.hi + r0 * F,
            c0,
          );
          // line 13: dP^T = V_j dO_i^T
          ex.gemm(dPT, Br * F, j.vp + kRow, Dp * F, j.dot + qBlk, Br * F, cols, rowsPad, Dp, 0);
          // line 12: dV_j += P^T dO_i
          ex.gemm(dV, Dp * F, ST, Br * F, j.dop + qBlk, Dp * F, cols, Dp, rows, 1);
          // line 14: dS^T = P^T * (dP^T - D_i)
          ex.dsCols(ST, dPT, Br * F, cols, rowsPad, j.Dvec + (bh * NqPad + r0) * F);
          // line 16: dK_j += dS^T Q_i (the scale is in the Q pack)
          ex.gemm(dK, Dp * F, dPT, Br * F, j.qp + qBlk, Dp * F, cols, Dp, rows, 1);
        }
      }
      // line 18: write dK_j, dV_j
      writeRows(j.dk!, b, hk, c0, cols, dK, 1);
      writeRows(j.dv!, b, hk, c0, cols, dV, 1);
    } else {
      // Backward, query block unit (b, h, i): dQ_i.
      const w = u - B * Hk * Tc;
      const bh = Math.floor(w / Tr);
      const i = Tr - 1 - (w - bh * Tr);
      const b = Math.floor(bh / Hq);
      const h = bh - b * Hq;
      const bhk = b * Hk + Math.floor(h / G);
      const r0 = i * Br;
      const rows = Math.min(Br, Nq - r0);
      const S = s0;
      const dP = S + T * T * F;
      const dQ = dP + T * T * F;
      f32.fill(0, dQ / F, dQ / F + rows * Dp);
      const qBlk = (bh * NqPad + r0) * Dp * F;
      const kLo = i32[lo + r0]!;
      const kHi = i32[hi + r0 + rows - 1]!;
      const jStart = Math.floor(kLo / Bc);
      const jEnd = kHi > kLo ? Math.ceil(kHi / Bc) : jStart;
      for (let jj = jStart; jj < jEnd; jj++) {
        const c0 = jj * Bc;
        const cols = Math.min(Bc, Nk - c0);
        const colsPad = (cols + 3) & ~3;
        const kRow = (bhk * NkPad + c0) * Dp * F;
        // S = Q_i K_j^T, P = exp(scale S - L_i), dP = dO_i V_j^T, dS = P * (dP - D_i)
        ex.gemm(S, Bc * F, j.qp + qBlk, Dp * F, j.kt + kRow, Bc * F, rows, colsPad, Dp, 0);
        ex.probsRows(
          S,
          Bc * F,
          rows,
          colsPad,
          cols,
          1,
          j.Lp + (bh * NqPad + r0) * F,
          j.lo + r0 * F,
          j.hi + r0 * F,
          c0,
        );
        ex.gemm(dP, Bc * F, j.dop + qBlk, Dp * F, j.vt + kRow, Bc * F, rows, colsPad, Dp, 0);
        ex.dsRows(S, dP, Bc * F, rows, colsPad, j.Dvec + (bh * NqPad + r0) * F);
        // line 15: dQ_i += dS K_j (scale applied at the write)
        if (i32[nfK + bhk * Tc + jj])
          maskedAccumulate(dQ / F, dP / F, Bc, (j.kp + kRow) / F, r0, rows, c0, cols);
        else ex.gemm(dQ, Dp * F, dP, Bc * F, j.kp + kRow, Dp * F, rows, Dp, cols, 1);
      }
      writeRows(j.dq!, b, h, r0, rows, dQ, scale);
    }
  }
}

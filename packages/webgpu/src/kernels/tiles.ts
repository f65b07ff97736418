/**
 * Tile shapes shared by the flash kernels. A workgroup of GX * GY invocations owns a BR x BC tile of
 * S; invocation (ty, tx) holds rows ty*TM + r and columns c*GX + tx (r < TM, c < TN) in registers.
 * Columns are strided by GX so that neighbouring invocations read neighbouring workgroup-memory words
 * (no bank conflicts for scalar loads). The head dimension is padded to DP (a multiple of GX and DK);
 * each invocation owns TD = DP / GX output columns d = c*GX + tx.
 * Products over the head dimension stream DK columns at a time through workgroup memory; products
 * over a key (or query) block stream JK rows at a time.
 */
export interface Tiles {
  /** Rows of the register tile per workgroup (queries in forward / dQ, keys in dK dV). */
  BR: number;
  /** Columns per workgroup tile (keys in forward / dQ, queries in dK dV). */
  BC: number;
  TM: number;
  TN: number;
  /** Head-dimension chunk of the S = Q K^T product. */
  DK: number;
  /** Row chunk of the P V product. */
  JK: number;
  /**
   * Use the vec4 kernel of this pass (flash-forward-v4, flash-backward-dq-v4 or flash-backward-dkdv-v4
   * .wgsl.ts; TM, TN multiples of 4).
   */
  V4?: boolean;
  /**
   * vec4 kernels only: keep a block resident in workgroup memory for the whole kernel - the Q block in the
   * forward, K^T and V^T in the dK/dV pass.
   */
  QR?: boolean;
}

export interface Derived extends Tiles {
  GX: number;
  GY: number;
  /** Invocations per workgroup. */
  NT: number;
  /** Head dim as the kernel sees it (padded). */
  DP: number;
  TD: number;
  /** Row strides (words) of the transposed chunk arrays, padded by 4 against bank conflicts. */
  SR: number;
  SC: number;
}

/** Greatest common divisor (tile arithmetic). */
/** The part of a flash program's pipeline cache key that names its head dim, storage kind and tiles. */
export function tilesKey(headDim: number, kind: string, t: Tiles): string {
  return `d${headDim}-${kind}-${t.BR}x${t.BC}-${t.TM}x${t.TN}-${t.DK}-${t.JK}${t.QR ? '-qr' : ''}`;
}

export function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

export function derive(t: Tiles, headDim: number): Derived {
  const GX = t.BC / t.TN;
  const GY = t.BR / t.TM;
  if (!Number.isInteger(GX) || !Number.isInteger(GY))
    throw new Error(`bad tiles ${JSON.stringify(t)}`);
  const unit = (GX * t.DK) / gcd(GX, t.DK);
  const DP = Math.ceil(headDim / unit) * unit;
  return { ...t, GX, GY, NT: GX * GY, DP, TD: DP / GX, SR: t.BR + 4, SC: t.BC + 4 };
}

/** Emit `body(i)` for i in [0, n), joined: the generators unroll register loops in JS. */
export function unroll(n: number, body: (i: number) => string): string {
  let s = '';
  for (let i = 0; i < n; i++) s += body(i);
  return s;
}

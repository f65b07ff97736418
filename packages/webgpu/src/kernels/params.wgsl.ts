/**
 * The uniform block every attention kernel reads, and the mask rule of core's `keyRange` in WGSL.
 * Query row i sees keys [keyLo(i), keyHi(i)); the diagonal is bottom-right aligned (i + Nk - Nq).
 */

/** Byte size of Params (9 scalars, padded to 16). */
export const PARAMS_BYTES = 48;

export const PARAMS_WGSL = /* wgsl */ `
struct Params {
  B: u32,        // batch
  Nq: u32,       // seqlen_q
  Nk: u32,       // seqlen_k
  Hq: u32,       // nheads_q
  Hk: u32,       // nheads_k (divides Hq: GQA/MQA)
  scale: f32,    // softmaxScale
  wl: i32,       // window left, -1 = unbounded
  wr: i32,       // window right, -1 = unbounded (causal: 0)
  dt: u32,       // storage dtype for the 'any' kind: 0 float32, 1 float16, 2 bfloat16
}
@group(0) @binding(0) var<uniform> p: Params;

fn keyLo(i: i32) -> i32 {
  if (p.wl < 0) { return 0; }
  return max(0, i + i32(p.Nk) - i32(p.Nq) - p.wl);
}
fn keyHi(i: i32) -> i32 {
  if (p.wr < 0) { return i32(p.Nk); }
  return min(i32(p.Nk), i + i32(p.Nk) - i32(p.Nq) + p.wr + 1);
}
`;

/** Pack the Params block. */
export function packParams(v: {
  B: number;
  Nq: number;
  Nk: number;
  Hq: number;
  Hk: number;
  scale: number;
  windowLeft: number;
  windowRight: number;
  dtype?: number;
}): ArrayBuffer {
  const buf = new ArrayBuffer(PARAMS_BYTES);
  const u = new Uint32Array(buf);
  const f = new Float32Array(buf);
  const i = new Int32Array(buf);
  u[0] = v.B;
  u[1] = v.Nq;
  u[2] = v.Nk;
  u[3] = v.Hq;
  u[4] = v.Hk;
  f[5] = v.scale;
  i[6] = v.windowLeft;
  i[7] = v.windowRight;
  u[8] = v.dtype ?? 0;
  return buf;
}

export const LOG2E = '1.4426950408889634';
export const LN2 = '0.6931471805599453';

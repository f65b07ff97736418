/**
 * The uniforms every attention kernel reads (one field list; the program manager writes the struct),
 * the mask rule of core's `keyRange` in WGSL, and the per-block offsets of each strided view (FA2's
 * BlockInfo: one helper, not a prologue per kernel).
 * Query row i sees keys [keyLo(i), keyHi(i)); the diagonal is bottom-right aligned (i + Nk - Nq).
 */
import type { ProgramBinding, UniformField, UniformValue } from '../program.js';
import type { StorageKind } from './storage.wgsl.js';

/** The views an attention kernel may read or write, each a `View` { off, sB, sN, sH } in elements. */
export const ATTENTION_VIEWS = ['q', 'k', 'v', 'o', 'dout', 'dq', 'dk', 'dv'] as const;
export type AttentionViewName = (typeof ATTENTION_VIEWS)[number];

export const ATTENTION_UNIFORMS: readonly UniformField[] = [
  { name: 'B', type: 'u32', comment: 'batch' },
  { name: 'Nq', type: 'u32', comment: 'seqlen_q' },
  { name: 'Nk', type: 'u32', comment: 'seqlen_k' },
  { name: 'Hq', type: 'u32', comment: 'nheads_q' },
  { name: 'Hk', type: 'u32', comment: 'nheads_k (divides Hq: GQA/MQA)' },
  { name: 'scale', type: 'f32', comment: 'softmaxScale' },
  { name: 'wl', type: 'i32', comment: 'window left, -1 = unbounded' },
  { name: 'wr', type: 'i32', comment: 'window right, -1 = unbounded (causal: 0)' },
  {
    name: 'dt',
    type: 'u32',
    comment: "storage dtype for the 'any' kind: 0 float32, 1 float16, 2 bfloat16",
  },
  { name: 'lseOff', type: 'u32', comment: 'element offset of lse (B, Hq, Nq) in its buffer' },
  { name: 'ninf', type: 'f32', comment: '-Infinity (lse of a fully masked row), from the host' },
  ...ATTENTION_VIEWS.map((name) => ({ name, type: 'view' as const })),
];

/** Uniform values of one attention call: the problem, and a view per name (unused ones zero). */
export function attentionUniforms(v: {
  B: number;
  Nq: number;
  Nk: number;
  Hq: number;
  Hk: number;
  scale: number;
  windowLeft: number;
  windowRight: number;
  dtype: number;
  lseOff: number;
  views: Partial<Record<AttentionViewName, readonly [number, number, number, number]>>;
}): Record<string, UniformValue> {
  const out: Record<string, UniformValue> = {
    B: v.B,
    Nq: v.Nq,
    Nk: v.Nk,
    Hq: v.Hq,
    Hk: v.Hk,
    scale: v.scale,
    wl: v.windowLeft,
    wr: v.windowRight,
    dt: v.dtype,
    lseOff: v.lseOff,
    ninf: -Infinity,
  };
  for (const name of ATTENTION_VIEWS) out[name] = v.views[name] ?? [0, 0, 0, 0];
  return out;
}

/** Mask rule (core's keyRange). Kernels include it in their body. */
export const MASK_WGSL = /* wgsl */ `
fn keyLo(i: i32) -> i32 {
  if (p.wl < 0) { return 0; }
  return max(0, i + i32(p.Nk) - i32(p.Nq) - p.wl);
}
fn keyHi(i: i32) -> i32 {
  if (p.wr < 0) { return i32(p.Nk); }
  return min(i32(p.Nk), i + i32(p.Nk) - i32(p.Nq) + p.wr + 1);
}
// NaN test on the bits (a float compare may be folded where the compiler assumes no NaN). A row that saw
// a NaN score has a NaN accumulator (NaN * v is NaN for every v), but its row sum and max need not be NaN
// (max may drop a NaN operand; SwiftShader gave lse = +Infinity), so the forward stores lse = NaN for
// rows whose first accumulator column is NaN
fn isNan(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}
`;

/**
 * lse as the backward reads it, in log2 units: a fully masked row's -Infinity becomes the finite NEG
 * (its scores are all masked, so P = 0 either way; WGSL implementations may assume no infinities in
 * arithmetic, so -Infinity is only stored and compared, never computed with). A NaN lse (a row that saw
 * a NaN score) stays NaN, so its P and the gradients it feeds are NaN as in exact arithmetic.
 */
export const LSE_READ_WGSL = /* wgsl */ `
fn lse2At(i: u32) -> f32 {
  let x = lse[p.lseOff + i];
  return select(x * ${'1.4426950408889634'}, -1.0e30, x <= -1.0e30); // NaN stays NaN
}
// P = exp2(min(t, 0)) for t = s * scale * log2(e) - lse2, with a NaN t giving P = NaN (WGSL's min may
// return either operand of a NaN, and SwiftShader's exp2(NaN) is +Infinity)
fn probability(t: f32) -> f32 {
  return select(exp2(select(t, 0.0, t > 0.0)), t, isNan(t));
}
`;

/** WGSL: element index of (b, 0, h, 0) in view `name` (its offset, batch and head strides). */
export function viewBase(name: AttentionViewName, b: string, h: string): string {
  return `p.${name}.off + ${b} * p.${name}.sB + ${h} * p.${name}.sH`;
}

/** WGSL: distance between consecutive sequence rows of view `name`. */
export function viewRow(name: AttentionViewName): string {
  return `p.${name}.sN`;
}

export const LOG2E = '1.4426950408889634';
export const LN2 = '0.6931471805599453';

/** Forward bindings: q, k, v in storage dtype; o written in f32 (a scratch when out is 16-bit); lse. */
export function forwardBindings(kind: StorageKind): ProgramBinding[] {
  return [
    { name: 'q', type: kind, access: 'read', shape: '(B, Nq, Hq, D), strided' },
    { name: 'k', type: kind, access: 'read', shape: '(B, Nk, Hk, D), strided' },
    { name: 'v', type: kind, access: 'read', shape: '(B, Nk, Hk, D), strided' },
    { name: 'o', type: 'array<f32>', access: 'read_write', shape: '(B, Nq, Hq, D), strided' },
    { name: 'lse', type: 'array<f32>', access: 'read_write', shape: '(B, Hq, Nq) at p.lseOff' },
  ];
}

/**
 * Bindings of the dQ pass ('dq') or the dK/dV pass ('dkdv'; 'dkv': dk and dv in one GPUBuffer, bound
 * once as dk); gradients written in f32.
 */
export function backwardBindings(kind: StorageKind, pass: 'dq' | 'dkdv' | 'dkv'): ProgramBinding[] {
  const grads: ProgramBinding[] =
    pass === 'dq'
      ? [{ name: 'dq', type: 'array<f32>', access: 'read_write', shape: '(B, Nq, Hq, D), strided' }]
      : pass === 'dkv'
        ? [
            {
              name: 'dk',
              type: 'array<f32>',
              access: 'read_write',
              shape: 'dk and dv (B, Nk, Hk, D), strided views of one buffer',
            },
          ]
        : [
            {
              name: 'dk',
              type: 'array<f32>',
              access: 'read_write',
              shape: '(B, Nk, Hk, D), strided',
            },
            {
              name: 'dv',
              type: 'array<f32>',
              access: 'read_write',
              shape: '(B, Nk, Hk, D), strided',
            },
          ];
  return [
    { name: 'q', type: kind, access: 'read', shape: '(B, Nq, Hq, D), strided' },
    { name: 'k', type: kind, access: 'read', shape: '(B, Nk, Hk, D), strided' },
    { name: 'v', type: kind, access: 'read', shape: '(B, Nk, Hk, D), strided' },
    { name: 'dout', type: kind, access: 'read', shape: '(B, Nq, Hq, D), strided' },
    { name: 'lse', type: 'array<f32>', access: 'read', shape: '(B, Hq, Nq) at p.lseOff' },
    { name: 'delta', type: 'array<f32>', access: 'read', shape: '(B, Hq, Nq)' },
    ...grads,
  ];
}

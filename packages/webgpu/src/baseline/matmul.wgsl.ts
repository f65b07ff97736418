/**
 * Batched fp32 GEMM, C = alpha * A B (+ beta * C): the ceiling benchmark and the matmuls of the
 * standard-attention baseline. A workgroup of 256 invocations computes a BM x BN tile of C, streaming
 * BK-deep slices of A and B through workgroup memory; each invocation holds TM x TN accumulators at
 * rows r*16 + ty and columns c*16 + tx (strided: conflict-free scalar reads of workgroup memory).
 *
 * Operands are strided views: A(m, k) at aOff + m * a_rs + k * a_cs, likewise B(k, n) and C(m, n).
 * `aContig` / `bContig` say which index of the operand is contiguous in memory, so the cooperative
 * loads walk that index across neighbouring invocations (coalesced).
 * Batch z = wg.z splits into (z / H, z % H) with separate strides, to address (B, N, H, D) tensors.
 */
import type { ProgramInfo, UniformField, UniformValue } from '../program.js';
import { unroll } from '../kernels/tiles.js';

export interface MatmulSpec {
  BM: number;
  BN: number;
  BK: number;
  /** Contiguous index of A: 'k' for row-major A(m, k), 'm' for A stored transposed. */
  aContig: 'k' | 'm';
  /** Contiguous index of B: 'n' for row-major B(k, n), 'k' for B stored transposed (e.g. K^T). */
  bContig: 'n' | 'k';
  /** Bake sizes and strides in as constants (the ceiling benchmark), instead of reading them from p. */
  consts?: {
    M: number;
    N: number;
    K: number;
    a_rs: number;
    a_cs: number;
    b_rs: number;
    b_cs: number;
    c_rs: number;
    c_cs: number;
  };
}

/** Sizes, per-operand strides (row, column, batch, head), alpha, beta, first batch z0, `local` flags. */
export const MATMUL_UNIFORMS: readonly UniformField[] = [
  ...['M', 'N', 'K', 'H'].map((name) => ({ name, type: 'u32' as const })),
  ...['a', 'b', 'c'].flatMap((o) =>
    ['rs', 'cs', 'b', 'h'].map((x) => ({ name: `${o}_${x}`, type: 'u32' as const })),
  ),
  { name: 'alpha', type: 'f32' },
  { name: 'beta', type: 'f32' },
  { name: 'z0', type: 'u32', comment: 'first flattened batch index of this dispatch' },
  { name: 'local', type: 'u32', comment: 'bit 0/1/2: A/B/C addressed by the local z alone' },
];

export interface MatmulParams {
  /** First flattened batch index of this dispatch: global z = z0 + wg.z. */
  z0: number;
  /** Per operand: true = addressed by the local z alone (z * stride b), e.g. a per-chunk S buffer. */
  local: { a: boolean; b: boolean; c: boolean };
  M: number;
  N: number;
  K: number;
  H: number;
  a: { rs: number; cs: number; b: number; h: number };
  b: { rs: number; cs: number; b: number; h: number };
  c: { rs: number; cs: number; b: number; h: number };
  alpha: number;
  beta: number;
}

export function matmulUniforms(p: MatmulParams): Record<string, UniformValue> {
  const u: Record<string, UniformValue> = {
    M: p.M,
    N: p.N,
    K: p.K,
    H: p.H,
    alpha: p.alpha,
    beta: p.beta,
    z0: p.z0,
  };
  for (const o of ['a', 'b', 'c'] as const) {
    u[`${o}_rs`] = p[o].rs;
    u[`${o}_cs`] = p[o].cs;
    u[`${o}_b`] = p[o].b;
    u[`${o}_h`] = p[o].h;
  }
  u.local = (p.local.a ? 1 : 0) | (p.local.b ? 2 : 0) | (p.local.c ? 4 : 0);
  return u;
}

/** The GEMM as a program: dispatch (ceil(N / BN), ceil(M / BM), batches). */
export function matmulProgram(
  spec: MatmulSpec,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return {
    name: 'matmul',
    cacheKey: `${spec.BM}x${spec.BN}x${spec.BK}-${spec.aContig}${spec.bContig}${spec.consts ? `-${JSON.stringify(spec.consts)}` : ''}`,
    uniforms: MATMUL_UNIFORMS,
    bindings: [
      { name: 'A', type: 'array<f32>', access: 'read' },
      { name: 'Bm', type: 'array<f32>', access: 'read' },
      { name: 'C', type: 'array<f32>', access: 'read_write' },
    ],
    dispatch,
    body: () => matmulWGSL(spec),
  };
}

/** The kernel body (after the bindings the program manager writes). */
export function matmulWGSL(s: MatmulSpec): string {
  const { BM, BN, BK } = s;
  const G = 16; // 16 x 16 invocations
  const NT = G * G;
  const TM = BM / G;
  const TN = BN / G;
  const AS = BM + 4; // row stride of As (BK, AS): As[k][m]
  const BS = BN + 4; // Bs[k][n]
  const loadA =
    s.aContig === 'k'
      ? `let kk = e % ${BK}u; let mm = e / ${BK}u;`
      : `let mm = e % ${BM}u; let kk = e / ${BM}u;`;
  const loadB =
    s.bContig === 'n'
      ? `let nn = e % ${BN}u; let kk = e / ${BN}u;`
      : `let kk = e % ${BK}u; let nn = e / ${BK}u;`;
  const names = ['M', 'N', 'K', 'a_rs', 'a_cs', 'b_rs', 'b_cs', 'c_rs', 'c_cs'] as const;
  const prelude = names
    .map((n) => (s.consts ? `  const ${n}_ = ${s.consts[n]}u;\n` : `  let ${n}_ = p.${n};\n`))
    .join('');
  const code = `
fn off(z: u32, zb: u32, zh: u32, sb: u32, sh: u32, isLocal: bool) -> u32 {
  if (isLocal) { return z * sb; }
  return zb * sb + zh * sh;
}
var<workgroup> As: array<f32, ${BK * AS}>;
var<workgroup> Bs: array<f32, ${BK * BS}>;

@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
${prelude}  let tx = lid % ${G}u;
  let ty = lid / ${G}u;
  let m0 = wg.y * ${BM}u;
  let n0 = wg.x * ${BN}u;
  let zg = p.z0 + wg.z;
  let zb = zg / p.H;
  let zh = zg % p.H;
  let aOff = off(wg.z, zb, zh, p.a_b, p.a_h, (p.local & 1u) != 0u);
  let bOff = off(wg.z, zb, zh, p.b_b, p.b_h, (p.local & 2u) != 0u);
  let cOff = off(wg.z, zb, zh, p.c_b, p.c_h, (p.local & 4u) != 0u);
  var acc: array<f32, ${TM * TN}>;
  for (var k0 = 0u; k0 < p.K; k0 += ${BK}u) {
    for (var e = lid; e < ${BM * BK}u; e += ${NT}u) {
      ${loadA}
      let m = m0 + mm; let k = k0 + kk;
      var x = 0.0;
      if (m < p.M && k < p.K) { x = A[aOff + m * p.a_rs + k * p.a_cs]; }
      As[kk * ${AS}u + mm] = x;
    }
    for (var e = lid; e < ${BN * BK}u; e += ${NT}u) {
      ${loadB}
      let n = n0 + nn; let k = k0 + kk;
      var x = 0.0;
      if (n < p.N && k < p.K) { x = Bm[bOff + k * p.b_rs + n * p.b_cs]; }
      Bs[kk * ${BS}u + nn] = x;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
${unroll(TM, (r) => `      let a${r} = As[kk * ${AS}u + ${r * G}u + ty];\n`)}${unroll(TN, (c) => `      let b${c} = Bs[kk * ${BS}u + ${c * G}u + tx];\n`)}${unroll(
    TM,
    (r) => unroll(TN, (c) => `      acc[${r * TN + c}] = fma(a${r}, b${c}, acc[${r * TN + c}]);\n`),
  )}    }
    workgroupBarrier();
  }
${unroll(TM, (r) =>
  unroll(
    TN,
    (c) => `  { let m = m0 + ${r * G}u + ty; let n = n0 + ${c * G}u + tx;
    if (m < p.M && n < p.N) {
      let i = cOff + m * p.c_rs + n * p.c_cs;
      var y = p.alpha * acc[${r * TN + c}];
      if (p.beta != 0.0) { y += p.beta * C[i]; }
      C[i] = y;
    } }\n`,
  ),
)}}
`;
  // Use the (possibly constant) copies in the body.
  const head = code.slice(0, code.indexOf('fn main('));
  let body = code.slice(code.indexOf('fn main('));
  for (const n of names)
    body = body.replaceAll(`p.${n}`, `${n}_`).replace(`${n}_ = ${n}_;`, `${n}_ = p.${n};`);
  return head + body;
}

/**
 * out (M, N) (+)= op(A) (M, K) @ op(B) (K, N) [+ bias (N)]: the model's GEMM (llm.c's matmul_forward and
 * the three products of matmul_backward). A stored (M, K), or (K, M) with transA; B stored (K, N), or
 * (N, K) with transB (GPT-2's tied head: logits = lnf @ wte^T). Sizes and offsets are uniforms; the
 * pipeline depends only on (G, transA, transB, epilogue, operand sharing): one per shape class.
 *
 * Tiling (the same scheme as the vec4 ceiling kernel baseline/matmul-v4.wgsl.ts): a workgroup of
 * 256 invocations (16 x 16) computes a BM x BM tile of out, BM = 64 G; invocation (ty, tx) owns rows
 * g*64 + ty*4 + i and columns g*64 + tx*4 + j (g < G, i, j < 4). Each BK-deep step stages
 *   As (BK, BM + 4) = op(A)^T  and  Bs (BK, BM) = op(B)
 * in workgroup memory (zero-filled past M, N, K: no bounds checks in the inner loop), loading along
 * whichever index is contiguous in memory (coalesced for every transpose), then every invocation does
 * 16 G^2 FMAs per k with vec4 reads of both tiles.
 * Epilogue: out = acc [+ bias] or out += acc, bounds-checked; or GPT-2's GELU ones (Ops' geluPre / dgeluPre):
 * 'gelu' / 'bias-gelu' store pre = acc [+ bias] and out = GELU_tanh(pre), 'dgelu' out = acc * GELU_tanh'(pre)
 * (the same float32 expressions as gelu-forward / gelu-backward.wgsl.ts, with one read and write fewer).
 */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { unroll } from '../tiles.js';
import { opProgram } from './op-program.js';
import { GELU_WGSL } from './gelu-forward.wgsl.js';

export interface MatmulSpec {
  /** 1: 64 x 64 tiles (4 x 4 per invocation); 2: 128 x 128 (8 x 8). */
  G: 1 | 2;
  BK: number;
  transA: boolean;
  transB: boolean;
  epilogue: 'store' | 'accumulate' | 'bias' | 'gelu' | 'bias-gelu' | 'dgelu';
  /**
   * Read A / B as vec4 through an extra read-only binding (a4 / b4, offset o4_a / o4_b in vec4s):
   * when the operand's contiguous dimension and its offset are multiples of 4 and its GPUBuffer is not
   * also out's (a read-only binding may not alias a writable one). Measured on the H100 (2026-12-07,
   * S = 4096): the scalar-load kernel 15.3 TFLOP/s against 31.7 for the baked vec4 baseline.
   */
  vecA?: boolean;
  vecB?: boolean;
  /** M and N multiples of the tile and K of BK: no bounds checks (the baked baseline has none). */
  full?: boolean;
}

/** Workgroups (x over N, y over M). */
export function matmulGroups(spec: MatmulSpec, M: number, N: number): [number, number, number] {
  const BM = 64 * spec.G;
  return [Math.ceil(N / BM), Math.ceil(M / BM), 1];
}

/** Operands: out (written), a, b, [bias], [pre (written for gelu, read for dgelu)]. */
export function matmulProgram(
  bound: BoundOperands,
  spec: MatmulSpec,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'matmul',
    variant: `g${spec.G}-bk${spec.BK}-${spec.transA ? 't' : 'n'}${spec.transB ? 't' : 'n'}-${spec.epilogue}${spec.vecA ? '-va' : ''}${spec.vecB ? '-vb' : ''}${spec.full ? '-full' : ''}`,
    bound: {
      ...bound,
      bindings: [
        ...bound.bindings,
        ...(spec.vecA
          ? [{ name: 'a4', type: 'array<vec4<f32>>' as const, access: 'read' as const }]
          : []),
        ...(spec.vecB
          ? [{ name: 'b4', type: 'array<vec4<f32>>' as const, access: 'read' as const }]
          : []),
      ],
    },
    uniforms: [
      ...['M', 'N', 'K'].map((name) => ({ name, type: 'u32' as const })),
      ...(spec.vecA
        ? [{ name: 'o4_a', type: 'u32' as const, comment: "a's offset in vec4s" }]
        : []),
      ...(spec.vecB
        ? [{ name: 'o4_b', type: 'u32' as const, comment: "b's offset in vec4s" }]
        : []),
    ],
    dispatch,
    body: matmulWGSL(spec),
  });
}

export function matmulWGSL(s: MatmulSpec): string {
  const { G, BK } = s;
  const BM = 64 * G;
  const AS = BM + 4; // row length of As (BK, AS): padding against bank conflicts of the transposed stores
  const BS = BM;
  const T = 4 * G;
  // A bounds check, left out for full tiles (every check would be true).
  const guard = (cond: string, stmt: string): string =>
    s.full ? stmt : `if (${cond}) { ${stmt} }`;
  // Tile loads: element e of a (BM x BK) tile, walking the contiguous index fastest; stores into As
  // (BK, AS) = op(A)^T and Bs (BK, BS) = op(B).
  const scalarA = s.transA
    ? `let m = e % ${BM}u; let kq = e / ${BM}u;
      let gm = m0 + m; let gk = k0 + kq;
      var x = 0.0;
      ${guard('gm < p.M && gk < p.K', `x = ld_a(gk * p.M + gm);`)}
      let w = kq * ${AS}u + m; As[w / 4u][w % 4u] = x;`
    : `let kq = e % ${BK}u; let m = e / ${BK}u;
      let gm = m0 + m; let gk = k0 + kq;
      var x = 0.0;
      ${guard('gm < p.M && gk < p.K', `x = ld_a(gm * p.K + gk);`)}
      let w = kq * ${AS}u + m; As[w / 4u][w % 4u] = x;`;
  // vec4: the contiguous size is a multiple of 4, so a vec4 is wholly in range or wholly out.
  const vectorA = s.transA
    ? `let m4 = e % ${BM / 4}u; let kq = e / ${BM / 4}u;
      let gm = m0 + 4u * m4; let gk = k0 + kq;
      var x = vec4<f32>();
      ${guard('gm < p.M && gk < p.K', `x = a4[p.o4_a + (gk * p.M + gm) / 4u];`)}
      As[(kq * ${AS}u) / 4u + m4] = x;`
    : `let k4 = e % ${BK / 4}u; let m = e / ${BK / 4}u;
      let gm = m0 + m; let gk = k0 + 4u * k4;
      var x = vec4<f32>();
      ${guard('gm < p.M && gk < p.K', `x = a4[p.o4_a + (gm * p.K + gk) / 4u];`)}
${unroll(
  4,
  (c) => `      { let w = (4u * k4 + ${c}u) * ${AS}u + m; As[w / 4u][w % 4u] = x[${c}]; }
`,
)}`;
  const scalarB = s.transB
    ? `let kq = e % ${BK}u; let n = e / ${BK}u;
      let gn = n0 + n; let gk = k0 + kq;
      var x = 0.0;
      ${guard('gn < p.N && gk < p.K', `x = ld_b(gn * p.K + gk);`)}
      let w = kq * ${BS}u + n; Bs[w / 4u][w % 4u] = x;`
    : `let n = e % ${BM}u; let kq = e / ${BM}u;
      let gn = n0 + n; let gk = k0 + kq;
      var x = 0.0;
      ${guard('gn < p.N && gk < p.K', `x = ld_b(gk * p.N + gn);`)}
      let w = kq * ${BS}u + n; Bs[w / 4u][w % 4u] = x;`;
  const vectorB = s.transB
    ? `let k4 = e % ${BK / 4}u; let n = e / ${BK / 4}u;
      let gn = n0 + n; let gk = k0 + 4u * k4;
      var x = vec4<f32>();
      ${guard('gn < p.N && gk < p.K', `x = b4[p.o4_b + (gn * p.K + gk) / 4u];`)}
${unroll(
  4,
  (c) => `      { let w = (4u * k4 + ${c}u) * ${BS}u + n; Bs[w / 4u][w % 4u] = x[${c}]; }
`,
)}`
    : `let n4 = e % ${BM / 4}u; let kq = e / ${BM / 4}u;
      let gn = n0 + 4u * n4; let gk = k0 + kq;
      var x = vec4<f32>();
      ${guard('gn < p.N && gk < p.K', `x = b4[p.o4_b + (gk * p.N + gn) / 4u];`)}
      Bs[(kq * ${BS}u) / 4u + n4] = x;`;
  const loadA = s.vecA ? vectorA : scalarA;
  const loadB = s.vecB ? vectorB : scalarB;
  const countA = s.vecA ? (BM * BK) / 4 : BM * BK;
  const countB = s.vecB ? (BM * BK) / 4 : BM * BK;
  const store = (v: string): string => {
    switch (s.epilogue) {
      case 'accumulate':
        return `st_out(o, ld_out(o) + ${v});`;
      case 'bias':
        return `st_out(o, ${v} + ld_bias(n));`;
      case 'gelu':
      case 'bias-gelu':
        return `let y = ${v}${s.epilogue === 'bias-gelu' ? ' + ld_bias(n)' : ''}; st_pre(o, y); st_out(o, 0.5 * y * gelu_parts(y).x);`;
      case 'dgelu':
        return `let x = ld_pre(o); let t = gelu_parts(x); st_out(o, (0.5 * t.x + 0.5 * x * t.y * GELU_SCALE * (1.0 + 3.0 * GELU_CUBIC * x * x)) * ${v});`;
      default:
        return `st_out(o, ${v});`;
    }
  };
  const gelu = s.epilogue === 'gelu' || s.epilogue === 'bias-gelu' || s.epilogue === 'dgelu';
  return `${gelu ? GELU_WGSL : ''}
var<workgroup> As: array<vec4<f32>, ${(BK * AS) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(BK * BS) / 4}>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % 16u;
  let ty = lid / 16u;
  let m0 = wg.y * ${BM}u;
  let n0 = wg.x * ${BM}u;
  var acc: array<vec4<f32>, ${T * G}>; // acc[i * G + g]: row i (of T), columns g*64 + tx*4 .. +3
  for (var k0 = 0u; k0 < p.K; k0 += ${BK}u) {
    for (var e = lid; e < ${countA}u; e += 256u) {
      ${loadA}
    }
    for (var e = lid; e < ${countB}u; e += 256u) {
      ${loadB}
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
${unroll(G, (g) => `      let a${g} = As[(kk * ${AS}u + ${g * 64}u) / 4u + ty];\n`)}${unroll(G, (g) => `      let b${g} = Bs[(kk * ${BS}u + ${g * 64}u) / 4u + tx];\n`)}${unroll(
    G,
    (ga) =>
      unroll(4, (i) =>
        unroll(
          G,
          (gb) =>
            `      acc[${(ga * 4 + i) * G + gb}] = fma(vec4<f32>(a${ga}[${i}]), b${gb}, acc[${(ga * 4 + i) * G + gb}]);\n`,
        ),
      ),
  )}    }
    workgroupBarrier();
  }
${unroll(G, (ga) =>
  unroll(4, (i) =>
    unroll(
      G,
      (gb) => `  {
    let m = m0 + ${ga * 64}u + ty * 4u + ${i}u;
    let v = acc[${(ga * 4 + i) * G + gb}];
    if (${s.full ? 'true' : 'm < p.M'}) {
${unroll(4, (j) => `      { let n = n0 + ${gb * 64}u + tx * 4u + ${j}u; if (${s.full ? 'true' : 'n < p.N'}) { let o = m * p.N + n; ${store(`v[${j}]`)} } }\n`)}    }
  }
`,
    ),
  ),
)}}
`;
}

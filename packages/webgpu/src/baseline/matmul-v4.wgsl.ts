/**
 * fp32 GEMM C = A B for the ceiling benchmark only, with vec4 reads of workgroup memory (the same
 * layout idea as flash-forward.wgsl.ts, so that the ceiling the flash kernels are measured against
 * uses the same tricks). Bindings A, Bm, C (no uniforms). Row-major A (M, K), B (K, N), C (M, N), sizes baked in; M, N multiples of
 * BM = BN = 64 * G and K a multiple of BK (no bounds checks: the benchmark picks the sizes).
 *
 * 256 invocations (16 x 16); invocation (ty, tx) owns rows g*64 + ty*4 + i and columns
 * g*64 + tx*4 + j (g < G, i, j < 4): each k step reads G vec4s of A^T (a broadcast across the row
 * group) and G vec4s of B, for 16 G^2 FMAs.
 */
import type { ProgramInfo } from '../program.js';
import { unroll } from '../kernels/tiles.js';

export interface MatmulV4Spec {
  /** 1: 64 x 64 tile, 4 x 4 per invocation; 2: 128 x 128, 8 x 8. */
  G: 1 | 2;
  BK: number;
  M: number;
  N: number;
  K: number;
}

/** As a program: dispatch (N / BM, M / BM, 1). */
export function matmulV4Program(spec: MatmulV4Spec): ProgramInfo {
  const BM = 64 * spec.G;
  return {
    name: 'matmul-v4',
    cacheKey: `g${spec.G}-bk${spec.BK}-${spec.M}x${spec.N}x${spec.K}`,
    uniforms: [],
    bindings: [
      { name: 'A', type: 'array<vec4<f32>>', access: 'read', shape: '(M, K / 4)' },
      { name: 'Bm', type: 'array<vec4<f32>>', access: 'read', shape: '(K, N / 4)' },
      { name: 'C', type: 'array<vec4<f32>>', access: 'read_write', shape: '(M, N / 4)' },
    ],
    dispatch: [spec.N / BM, spec.M / BM, 1],
    body: () => matmulV4WGSL(spec),
  };
}

export function matmulV4WGSL(s: MatmulV4Spec): string {
  const { G, BK, M, N, K } = s;
  const BM = 64 * G;
  const AS = BM + 4; // As (BK, AS) words: A^T
  const BS = BM; // Bs (BK, BS) words
  const T = 4 * G; // rows (and columns) per invocation
  if (M % BM !== 0 || N % BM !== 0 || K % BK !== 0 || BK % 4 !== 0) {
    throw new Error(
      `matmulV4WGSL: M, N must be multiples of ${BM} and K of BK = ${BK} (a multiple of 4); got ${M}, ${N}, ${K}`,
    );
  }
  return `
var<workgroup> As: array<vec4<f32>, ${(BK * AS) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(BK * BS) / 4}>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % 16u;
  let ty = lid / 16u;
  let m0 = wg.y * ${BM}u;
  let n0 = wg.x * ${BM}u;
  var acc: array<vec4<f32>, ${T * G}>; // acc[i * G + g]: row i (of T), columns g*64 + tx*4 .. +3
  for (var k0 = 0u; k0 < ${K}u; k0 += ${BK}u) {
    // A tile (BM, BK) -> As (BK, AS) transposed: one vec4 of a row of A = 4 scalars in 4 rows of As
    for (var e = lid; e < ${(BM * BK) / 4}u; e += 256u) {
      let k4 = e % ${BK / 4}u; let m = e / ${BK / 4}u;
      let x = A[((m0 + m) * ${K}u + k0) / 4u + k4];
${unroll(4, (c) => `      { let w = (k4 * 4u + ${c}u) * ${AS}u + m; As[w / 4u][w % 4u] = x[${c}]; }\n`)}    }
    for (var e = lid; e < ${(BK * BM) / 4}u; e += 256u) {
      let n4 = e % ${BM / 4}u; let k = e / ${BM / 4}u;
      Bs[k * ${BS / 4}u + n4] = Bm[((k0 + k) * ${N}u + n0) / 4u + n4];
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
      (gb) =>
        `  C[((m0 + ${ga * 64}u + ty * 4u + ${i}u) * ${N}u + n0 + ${gb * 64}u) / 4u + tx] = acc[${(ga * 4 + i) * G + gb}];\n`,
    ),
  ),
)}}
`;
}

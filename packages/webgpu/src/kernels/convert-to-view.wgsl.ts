/**
 * dst = src with a dtype conversion, where src is contiguous (B, N, H, D) from element srcOff and dst is
 * a strided (B, N, H, D) view (offset and strides in the uniforms). It writes the 16-bit outputs of the
 * attention kernels (which compute and write f32 scratch) into their views, and serves the device
 * memory's copies and unaligned 16-bit uploads (a flat copy is the view [1, 1, 1, n]).
 * f32 -> 16-bit rounds to nearest even with integer ops, bit for bit like core's host conversion.
 *
 * 16-bit destinations hold two elements per u32 word, and words may be shared with elements outside the
 * view (an odd offset, odd strides, the neighbouring head of a packed buffer). Two modes:
 *   'words':  D, the offset and all strides even, so every word of the view belongs to it whole: one
 *             invocation per word, plain stores;
 *   'halves': anything else: one invocation per element, which clears and sets its half of the word
 *             with atomicAnd / atomicOr (two atomics on disjoint bits commute, so neighbours writing the
 *             other half concurrently, or data outside the view, are never clobbered).
 * Dispatch: 2-D over ceil(count / CONVERT_WG) workgroups (count = words or elements), x at most the
 * device's maxComputeWorkgroupsPerDimension.
 */
import type { ProgramBinding, ProgramInfo, UniformField } from '../program.js';
import { ROUND_FNS } from './storage.wgsl.js';

export const CONVERT_WG = 256;

/** Element layout of the source (read through ld_src) and of the destination. */
export type ConvertKind = 'f32' | 'f16x2' | 'bf16x2';

export const CONVERT_UNIFORMS: readonly UniformField[] = [
  { name: 'n', type: 'u32', comment: 'elements, B * N * H * D' },
  { name: 'N', type: 'u32' },
  { name: 'H', type: 'u32' },
  { name: 'D', type: 'u32' },
  { name: 'srcOff', type: 'u32', comment: 'element offset of the contiguous source' },
  { name: 'dst', type: 'view' },
];

export interface ConvertSpec {
  src: ConvertKind;
  dst: ConvertKind;
  /** 16-bit destinations only; see the file comment. */
  mode: 'words' | 'halves';
}

/** Whether a 16-bit destination view can be written a word at a time. */
export function wordAligned(D: number, off: number, strides: readonly number[]): boolean {
  return D % 2 === 0 && off % 2 === 0 && strides.slice(0, 3).every((s) => s % 2 === 0);
}

export function convertToViewProgram(
  spec: ConvertSpec,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  const dst16 = spec.dst !== 'f32';
  const dstType: ProgramBinding['type'] = !dst16
    ? 'array<f32>'
    : spec.mode === 'halves'
      ? 'array<atomic<u32>>'
      : 'array<u32>';
  return {
    name: 'convert-to-view',
    cacheKey: `${spec.src}-${spec.dst}${dst16 ? `-${spec.mode}` : ''}`,
    uniforms: CONVERT_UNIFORMS,
    bindings: [
      {
        name: 'src',
        type: spec.src,
        access: 'read',
        shape: '(B, N, H, D) contiguous from p.srcOff',
      },
      { name: 'dst', type: dstType, access: 'read_write', shape: '(B, N, H, D) strided view' },
    ],
    dispatch,
    body: () => convertToViewWGSL(spec),
  };
}

export function convertToViewWGSL(spec: ConvertSpec): string {
  const conv = spec.dst === 'bf16x2' ? 'f32_to_bf16_bits' : 'f32_to_f16_bits';
  const dstIndex = `fn dstIndex(e: u32) -> u32 {
  let d = e % p.D; let r = e / p.D;
  let h = r % p.H; let r2 = r / p.H;
  let n = r2 % p.N; let b = r2 / p.N;
  return p.dst.off + b * p.dst.sB + n * p.dst.sN + h * p.dst.sH + d;
}`;
  const head = `${ROUND_FNS}
${dstIndex}
@compute @workgroup_size(${CONVERT_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let t = gid.x + gid.y * nw.x * ${CONVERT_WG}u;`;
  if (spec.dst === 'f32') {
    return `${head}
  if (t >= p.n) { return; }
  dst[dstIndex(t)] = ld_src(p.srcOff + t);
}
`;
  }
  if (spec.mode === 'words') {
    return `${head}
  let e = 2u * t;
  if (e >= p.n) { return; }
  let lo = ${conv}(ld_src(p.srcOff + e));
  let hi = ${conv}(ld_src(p.srcOff + e + 1u));
  dst[dstIndex(e) >> 1u] = lo | (hi << 16u);
}
`;
  }
  return `${head}
  if (t >= p.n) { return; }
  let i = dstIndex(t);
  let shift = (i & 1u) * 16u;
  let bits = ${conv}(ld_src(p.srcOff + t)) << shift;
  atomicAnd(&dst[i >> 1u], ~(0xffffu << shift));
  atomicOr(&dst[i >> 1u], bits);
}
`;
}

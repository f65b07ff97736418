/**
 * Kernel variants and tile sizes chosen from the device's limits. Candidates are listed fastest first;
 * the first whose invocation count and workgroup memory fit the device wins.
 */
import { flashBackwardDkdvSharedBytes } from './kernels/flash-backward-dkdv.wgsl.js';
import { flashBackwardDkdvScalarSharedBytes } from './kernels/flash-backward-dkdv-scalar.wgsl.js';
import { flashBackwardDqSharedBytes } from './kernels/flash-backward-dq.wgsl.js';
import { flashBackwardDqScalarSharedBytes } from './kernels/flash-backward-dq-scalar.wgsl.js';
import { deriveBwdV4 } from './kernels/stage.wgsl.js';
import { deriveForward, flashForwardSharedBytes } from './kernels/flash-forward.wgsl.js';
import { flashForwardScalarSharedBytes } from './kernels/flash-forward-scalar.wgsl.js';
import { derive, type Tiles } from './kernels/tiles.js';

export interface DeviceLimits {
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupSizeX: number;
}

const t = (
  BR: number,
  BC: number,
  TM: number,
  TN: number,
  DK: number,
  JK: number,
  more: Partial<Tiles> = {},
): Tiles => ({
  BR,
  BC,
  TM,
  TN,
  DK,
  JK,
  ...more,
});
const v4 = { V4: true };

// Forward on the H100 (Dawn/Vulkan, fp32, N = 4096, 2026-11-21): 128 x 64 tiles with 8 x 4 per
// invocation, DK = JK = 8: 11.2 / 11.5 TFLOP/s at D = 64 / 128, against 8.5 / 8.3 for 64 x 64 (4 x 4,
// DK 16), 8.9 / 8.6 with DK 32 and 8.9 / 9.8 for 64 x 128 (4 x 8). It needs 47.3 KiB of workgroup
// memory; 64 x 64 (4 x 4) fits SwiftShader (32 KiB, 256 invocations). Smaller ones are fallbacks.
// The vec4 kernel (flash-forward.wgsl.ts; the scalar one is flash-forward-scalar.wgsl.ts) comes first; it is used only where its head-dim padding
// (DP a multiple of 4 * GX) wastes at most 1/8 of the work (D = 64, 128, 256 with GX = 16).
// H100, fp32, non-causal, TFLOP/s at N = 1k / 4k, D = 64 | D = 128 (h100-v4-tune2-2026-11-21.json,
// staging with all loads issued before the stores):
//   v4 128 x 64, 8 x 4, DK = JK = 16    21.0 / 23.6 | 21.7 / 21.8   <- default
//   v4 128 x 64, 8 x 4, DK 16, JK 8     18.6 / 21.3 | 19.3 / 19.5
//   v4 128 x 64, 4 x 4 (512 inv.)       19.0 / 21.0 | 19.5 / 19.9
//   v4 64 x 64, 8 x 4 (128 inv.)        15.0 / 17.0 | 16.2 / 18.0
//   v4 64 x 64, 8 x 4, Q resident       14.5 / 16.2 | (does not fit)
//   scalar 128 x 64, 8 x 4, DK = JK = 8  9.7 / 11.1 | 10.7 / 11.5   (the earlier default)
// and before the staging change (tune1): v4 128 x 64 DK = JK = 8 15.7 / 18.1 | 16.2 / 16.7,
// 128 x 32 12.3 / 14.0 | 12.3 / 12.6, 64 x 128 (4 x 8) 12.3 / 13.6 | 14.0 / 15.3.
const FORWARD: readonly Tiles[] = [
  t(128, 64, 8, 4, 16, 16, v4),
  t(128, 64, 8, 4, 8, 8, v4),
  t(128, 64, 8, 4, 8, 8),
  t(64, 64, 4, 4, 16, 16),
  t(64, 64, 4, 4, 8, 8),
  t(32, 32, 2, 2, 8, 8),
  t(16, 16, 1, 1, 4, 4),
  t(8, 8, 1, 1, 4, 4),
];
// Backward, vec4 kernels first (flash-backward-dq.wgsl.ts, flash-backward-dkdv.wgsl.ts; same
// 1/8 padding rule as the forward). Register budget: the dQ pass holds S, dP (TM x TN each) and dQ_i
// (TM x TD), the dK/dV pass S, dP and two TM x TD accumulators. H100, fp32, non-causal, whole backward
// call TFLOP/s at N = 1k / 4k, D = 64 | D = 128, one pass varied with the other at its run-1 default
// (h100-bwd-v4-run1-2026-11-21.json):
//   dQ   v4 64 x 64, 4 x 4, DK = JK = 16          14.5 / 15.7 | 12.9 / 12.8   <- D = 64
//   dQ   v4 128 x 64, 8 x 4, DK 8, JK 16          13.9 / 14.3 | 13.0 / 13.3   <- D = 128
//   dQ   v4 128 x 64, 4 x 4 (512 inv.), DK 8      14.2 / 15.0 | 12.6 / 13.0
//   dQ   v4 64 x 64, 8 x 4 (128 inv.), DK 16      13.4 / 14.2 | 12.1 / 11.9
//   dKdV v4 64 x 64, 4 x 4, DK = JK = 8           14.0 / 14.7 | 13.0 / 13.3   <- D = 64
//   dKdV v4 64 x 64, 4 x 4, DK 8, JK 16           13.9 / 14.3 |  (no fit)
//   dKdV v4 32 x 64, 4 x 4 (128 inv.), DK = JK = 16  11.8 / 13.8 | 13.6 / 14.2   <- D = 128
//   dKdV v4 32 x 64, 4 x 4, K^T V^T resident      12.6 / 13.1 |  (no fit)
//   dKdV v4 128 x 32, 8 x 4 (128 inv.), DK = JK = 8  12.4 / 12.8 |  9.3 /  9.3
//   scalar pair (the earlier default)             5.8 /  6.5 |  5.8 /  6.3
// and with these defaults (run 2, h100-bwd-v4-2026-11-21.json): defaults 14.7 / 15.8 | 13.6 / 14.1;
//   dQ   v4 64 x 128, 4 x 8, DK 8, JK 16          13.7 / 14.5 | 12.5 / 13.0
//   dQ   v4 128 x 64, 8 x 4, DK = JK = 8          14.0 / 14.4 | 12.2 / 13.7
//   dKdV v4 32 x 128, 4 x 8, DK = JK = 8          11.2 / 13.9 |  9.7 / 11.8
//   dKdV v4 32 x 64, 4 x 4, DK 16, JK 8           14.2 / 15.1 | 12.6 / 12.8
// Model: the scalar dK/dV kernel read 12 scalars of workgroup memory per 16 FMAs in S^T, dP^T (its
// 4 x 2 tile), the vec4 one 4 vec4s per 32; the dQ kernel 16 per 32 -> 4 vec4s per 32.
const DQ: readonly Tiles[] = [
  t(64, 64, 4, 4, 16, 16, v4),
  t(128, 64, 8, 4, 8, 16, v4),
  t(64, 64, 4, 4, 8, 8, v4),
  t(64, 64, 4, 4, 16, 16),
  t(64, 64, 4, 4, 8, 8),
  t(64, 32, 4, 2, 8, 8),
  t(32, 32, 2, 2, 4, 4),
  t(16, 16, 1, 1, 4, 4),
  t(8, 8, 1, 1, 4, 4),
];
// dK/dV holds two register tiles and two P-like tiles, so its query block is half as wide.
const DKDV: readonly Tiles[] = [
  t(64, 64, 4, 4, 8, 8, v4),
  t(32, 64, 4, 4, 16, 16, v4),
  t(32, 64, 4, 4, 8, 8, v4),
  t(64, 32, 4, 2, 16, 16),
  t(64, 32, 4, 2, 8, 8),
  t(32, 32, 2, 2, 8, 8),
  t(32, 16, 2, 1, 4, 4),
  t(16, 16, 1, 1, 4, 4),
  t(8, 8, 1, 1, 4, 4),
];
// Head dims whose measured best differs from the general order: tried first.
const DQ_FIRST: Readonly<Record<number, readonly Tiles[]>> = { 128: [t(128, 64, 8, 4, 8, 16, v4)] };
const DKDV_FIRST: Readonly<Record<number, readonly Tiles[]>> = {
  128: [t(32, 64, 4, 4, 16, 16, v4)],
};

// Software adapters (SwiftShader) compile large unrolled shaders slowly (64 x 64 tiles with 4 x 4 per
// invocation: ~27 s per pipeline on 2 cores; 16 x 16 tiles with 1 x 1: ~3 s), so they get small tiles.
const COMPACT: readonly Tiles[] = [
  t(16, 16, 1, 1, 16, 16),
  t(16, 16, 1, 1, 8, 8),
  t(8, 8, 1, 1, 4, 4),
];

/** How one kernel sizes its tiles: the scalar kernel and, for `V4` tiles, its vec4 sibling. */
interface Sizing {
  bytes: (d: number, t: Tiles) => number;
  v4: {
    derive: (t: Tiles, d: number) => { NT: number; DP: number };
    bytes: (d: number, t: Tiles) => number;
  };
}

const FORWARD_SIZING: Sizing = {
  bytes: flashForwardScalarSharedBytes,
  v4: { derive: deriveForward, bytes: flashForwardSharedBytes },
};
const DQ_SIZING: Sizing = {
  bytes: flashBackwardDqScalarSharedBytes,
  v4: { derive: deriveBwdV4, bytes: flashBackwardDqSharedBytes },
};
const DKDV_SIZING: Sizing = {
  bytes: flashBackwardDkdvScalarSharedBytes,
  v4: { derive: deriveBwdV4, bytes: flashBackwardDkdvSharedBytes },
};

function pick(
  kernel: string,
  list: readonly Tiles[],
  headDim: number,
  lim: DeviceLimits,
  sizing: Sizing,
): Tiles {
  for (const tiles of list) {
    const d = tiles.V4 ? sizing.v4.derive(tiles, headDim) : derive(tiles, headDim);
    if (d.NT > lim.maxComputeInvocationsPerWorkgroup || d.NT > lim.maxComputeWorkgroupSizeX)
      continue;
    if (tiles.V4 && d.DP * 8 > headDim * 9) continue;
    const need = tiles.V4 ? sizing.v4.bytes(headDim, tiles) : sizing.bytes(headDim, tiles);
    if (need > lim.maxComputeWorkgroupStorageSize) continue;
    return tiles;
  }
  throw new Error(`no ${kernel} tile size fits this device for head dim ${headDim}`);
}

export interface Variant {
  forward: Tiles;
  dq: Tiles;
  dkdv: Tiles;
}

export function chooseVariant(headDim: number, lim: DeviceLimits, compact = false): Variant {
  if (compact) {
    return {
      forward: pick('forward', COMPACT, headDim, lim, FORWARD_SIZING),
      dq: pick('dq', COMPACT, headDim, lim, DQ_SIZING),
      dkdv: pick('dkdv', COMPACT, headDim, lim, DKDV_SIZING),
    };
  }
  return {
    forward: pick('forward', FORWARD, headDim, lim, FORWARD_SIZING),
    dq: pick('dq', [...(DQ_FIRST[headDim] ?? []), ...DQ], headDim, lim, DQ_SIZING),
    dkdv: pick('dkdv', [...(DKDV_FIRST[headDim] ?? []), ...DKDV], headDim, lim, DKDV_SIZING),
  };
}

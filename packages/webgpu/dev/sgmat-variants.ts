/**
 * The retired subgroup-matrix forward's shape choice (it was variants.ts' chooseSgmat while the kernel was
 * in the backend's dispatch).
 */
import type { DeviceLimits } from '../src/variants.js';
import { sgmatSharedBytes, type SgmatSpec } from './flash-forward-sgmat.wgsl.js';

// Subgroup-matrix forward shape: QT 16-row Q tiles per workgroup (its one subgroup reuses each staged
// K/V tile for all of them), BC keys per staged tile, QREG = Q's left matrices held in registers.
// The first candidate that fits the workgroup memory wins. H100, f16, N = 4096, TFLOP/s, D = 64 | 128
// (h100-bench-v4-2026-11-21.json; all shapes pass the f16 conformance cases):
//   QT 1, QREG           10.4 | 11.8   <- default
//   QT 1                  9.4 |  9.8
//   QT 2, QREG            8.8 |  6.2
//   QT 1, BC 64, QREG     7.2 |  5.6
//   QT 1, BC 64           6.4 |  4.8
// and QT 2 / 4 (D = 64) 7.7 / 4.2, QT 2 / 3 (D = 128) 5.8 / 5.4 (h100-v4-tune2-2026-11-21.json).
// More rows or keys per subgroup lose: one subgroup's accumulators and staged loads crowd its
// registers, and fewer workgroups fit an SM, so less latency is hidden.
const SGMAT: Readonly<Record<number, readonly Omit<SgmatSpec, 'headDim'>[]>> = {
  64: [{ QT: 1, QREG: true }],
  128: [{ QT: 1, QREG: true }],
};

/** The subgroup-matrix forward's shape for a head dim: the first candidate that fits. */
export function chooseSgmat(headDim: number, lim: DeviceLimits): Omit<SgmatSpec, 'headDim'> {
  for (const c of SGMAT[headDim] ?? [{ QT: 1, QREG: true }]) {
    if (sgmatSharedBytes({ ...c, headDim }) <= lim.maxComputeWorkgroupStorageSize) return c;
  }
  return { QT: 1 };
}

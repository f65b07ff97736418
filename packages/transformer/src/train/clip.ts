/** Global gradient-norm clipping: scale every gradient by min(1, maxNorm / ||g||_2). Returns ||g||_2 before clipping. */
import type { Ops } from '@flashattn/core';

export async function clipGradNorm<Buf>(
  ops: Ops<Buf>,
  grads: Buf,
  maxNorm: number,
): Promise<number> {
  const norm = Math.sqrt(await ops.sumSquares(grads));
  if (Number.isFinite(norm) && norm > maxNorm) await ops.scale(grads, maxNorm / (norm + 1e-6));
  return norm;
}

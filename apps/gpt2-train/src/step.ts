/**
 * The pieces of one optimizer step that the flags change: the compute dtype, gradient accumulation to a
 * total batch, and clipping of the accumulated gradient; plus reading a checkpoint's run settings before
 * the model is built (its dtype decides the model's buffers).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import type { BufferDType, Ops } from '@flashattn/core';
import { UsageError, type Args } from './cli.js';

export type DTypeFlag = NonNullable<Args['dtype']>;

const COMPUTE: Record<DTypeFlag, 'float32' | 'bfloat16' | 'float16'> = {
  fp32: 'float32',
  bf16: 'bfloat16',
  fp16: 'float16',
};

/**
 * The model's compute dtype for --dtype (masters and AdamW state stay float32), or a UsageError naming
 * the backend and the dtypes it has.
 */
export function computeDTypeOf(
  flag: DTypeFlag,
  ops: { name: string; dtypes: readonly BufferDType[] },
): 'float32' | 'bfloat16' | 'float16' {
  const dt = COMPUTE[flag];
  if (!ops.dtypes.includes(dt))
    throw new UsageError(
      `--dtype ${flag}: backend ${ops.name} has no ${dt} buffers (it has ${ops.dtypes.join(', ')}); pass --dtype fp32 or another --backend`,
    );
  return dt;
}

/** Micro-steps per optimizer step: totalBatch / (B * T), which must be a positive integer. */
export function microSteps(totalBatch: number | undefined, B: number, T: number): number {
  if (totalBatch === undefined) return 1;
  const bt = B * T;
  if (totalBatch % bt !== 0 || totalBatch < bt)
    throw new UsageError(
      `--total-batch ${totalBatch} must be a positive multiple of --batch x --seq = ${B} x ${T} = ${bt} tokens (e.g. ${bt * Math.max(1, Math.round(totalBatch / bt))})`,
    );
  return totalBatch / bt;
}

/**
 * After K micro-steps each added the gradient of its own mean loss, grads holds K x the gradient of the
 * step's mean loss. Scale by 1/K and clip the global norm to maxNorm in one pass (one sumSquares read
 * back, at most one scale):
 *   norm = ||grads|| / K;  factor = min(1, maxNorm / (norm + 1e-6)) / K.
 * For K = 1 this is exactly clipGradNorm (the same arithmetic, so runs without --total-batch are
 * unchanged). Returns the norm of the mean gradient before clipping.
 */
export async function accumulatedClip<Buf>(
  ops: Ops<Buf>,
  grads: Buf,
  K: number,
  maxNorm: number,
): Promise<number> {
  const norm = Math.sqrt(await ops.sumSquares(grads)) / K;
  const clip = Number.isFinite(norm) && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
  if (clip !== 1 || K !== 1) await ops.scale(grads, clip / K);
  return norm;
}

/**
 * The `extra.run` settings (JSON) of a checkpoint, read from the safetensors header only (8-byte
 * little-endian header length, then the JSON header with __metadata__), so a resumed run can build its
 * model with the checkpoint's dtype before the weights are read. {} when absent or unreadable (the full
 * load then reports what is wrong).
 */
export function readRunSettings(path: string): Record<string, unknown> {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const len = Buffer.alloc(8);
    if (readSync(fd, len, 0, 8, 0) !== 8) return {};
    const n = Number(len.readBigUInt64LE(0));
    if (n > 100 * 2 ** 20) return {};
    const head = Buffer.alloc(n);
    if (readSync(fd, head, 0, n, 8) !== n) return {};
    const meta = (JSON.parse(head.toString('utf8')) as { __metadata__?: Record<string, string> })
      .__metadata__;
    const run = meta?.['extra.run'];
    return run ? (JSON.parse(run) as Record<string, unknown>) : {};
  } catch {
    return {};
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

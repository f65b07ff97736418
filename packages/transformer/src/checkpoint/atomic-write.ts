/**
 * Crash-safe file replacement: write a temp file in the same directory, fsync it, rename it over the
 * target (atomic on POSIX), then fsync the directory so the rename itself is durable. A process killed
 * at any point leaves either the old file or the new one, never a mix.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** Bytes per write call (default 8 MiB). */
  chunkBytes?: number;
  /** Called after each chunk is written to the temp file (progress, tests). */
  onChunk?: (written: number, total: number) => void;
}

export function writeFileAtomic(path: string, data: Uint8Array, opts: AtomicWriteOptions = {}): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${Date.now()}`);
  const chunk = opts.chunkBytes ?? 8 << 20;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    let pos = 0;
    while (pos < data.length) {
      const n = writeSync(fd, data, pos, Math.min(chunk, data.length - pos));
      pos += n;
      opts.onChunk?.(pos, data.length);
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

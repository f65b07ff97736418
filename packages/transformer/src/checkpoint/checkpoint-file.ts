/**
 * The Node side of checkpoints: files. saveCheckpoint writes atomically (temp file, fsync, rename, fsync
 * directory), loadCheckpoint reads a file; both go through the byte codec of checkpoint.ts
 * (encodeCheckpoint / loadCheckpointBytes), which is all a browser needs.
 */
import { readFileSync } from 'node:fs';
import type { GPT2 } from '../model/gpt2.js';
import { writeFileAtomic, type AtomicWriteOptions } from './atomic-write.js';
import {
  encodeCheckpoint,
  loadCheckpointBytes,
  type CheckpointOptimizer,
  type LoadOptions,
  type TrainState,
} from './checkpoint.js';
import { CheckpointError } from './safetensors.js';

/** Write a checkpoint atomically (temp file, fsync, rename, fsync directory). */
export async function saveCheckpoint<Buf>(
  path: string,
  model: GPT2<Buf>,
  opt: CheckpointOptimizer | null,
  state: TrainState,
  io?: AtomicWriteOptions,
): Promise<void> {
  writeFileAtomic(path, await encodeCheckpoint(model, opt, state), io);
}

/** Read a checkpoint file and load it (loadCheckpointBytes: all-or-nothing, typed CheckpointError). */
export async function loadCheckpoint<Buf>(
  path: string,
  model: GPT2<Buf>,
  opt: CheckpointOptimizer | null = null,
  o: LoadOptions = {},
): Promise<TrainState> {
  let buf: Uint8Array;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new CheckpointError(path, `cannot read (${(e as Error).message})`, { cause: e });
  }
  return loadCheckpointBytes(buf, path, model, opt, o);
}


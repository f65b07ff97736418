#!/usr/bin/env node
/** gpt2-train: train GPT-2 on the Brown corpus on the CPU. `--help` lists the flags. */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs, usage, UsageError, type Args } from './cli.js';
import { CollectiveError } from '@flashattn/core';
import { launch, PEER_FAILED_STATUS, rankEnv } from './parallel/launch.js';
import { runTraining } from './trainer.js';

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`gpt2-train: ${e.message}\n\n${usage()}\n`);
      return 2;
    }
    throw e;
  }
  if (args.help) {
    process.stdout.write(usage() + '\n');
    return 0;
  }
  // --workers N / --gpus N: this process is the launcher; the ranks run this same command.
  if (!rankEnv() && (args.workers > 1 || args.gpus !== undefined)) {
    let gpus: string[] | undefined;
    try {
      gpus = args.gpus !== undefined ? gpuIds(args.gpus) : undefined;
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      process.stderr.write(`gpt2-train: ${e.message}\n`);
      return 2;
    }
    const { status } = await launch({
      script: fileURLToPath(import.meta.url),
      argv: process.argv.slice(2),
      worldSize: gpus?.length ?? args.workers,
      transport: gpus ? 'nccl' : 'cpu',
      timeoutMs: args.collectiveTimeout * 1000,
      ...(gpus ? { gpus } : {}),
    });
    return status;
  }
  let summary;
  try {
    summary = await runTraining(args, { signals: true });
  } catch (e) {
    // A flag value that only the run can judge (--seq past the model, --steps below the checkpoint, an
    // existing checkpoint without --resume/--overwrite): the same status 2 and usage as a parse error.
    if (e instanceof UsageError) {
      process.stderr.write(`gpt2-train: ${e.message}\n\n${usage()}\n`);
      return 2;
    }
    throw e;
  }
  if (args.json)
    process.stdout.write(
      JSON.stringify({ ...summary, history: undefined, sample: undefined }) + '\n',
    );
  return summary.stoppedEarly ? 130 : 0;
}

/** The GPU ids --gpus N|all names: CUDA_VISIBLE_DEVICES's list when set, else nvidia-smi's. */
function gpuIds(spec: NonNullable<Args['gpus']>): string[] {
  const visible = process.env['CUDA_VISIBLE_DEVICES'];
  let ids: string[];
  if (visible !== undefined)
    ids = visible
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  else {
    try {
      const out = execFileSync('nvidia-smi', ['--query-gpu=index', '--format=csv,noheader'], {
        encoding: 'utf8',
      });
      ids = out
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean);
    } catch {
      throw new UsageError(
        `--gpus ${spec}: nvidia-smi did not list the GPUs (no NVIDIA driver here?)`,
      );
    }
  }
  const n = spec === 'all' ? ids.length : Number(spec);
  if (n < 1 || n > ids.length)
    throw new UsageError(
      `--gpus ${spec}: this host has ${ids.length} GPU(s) (${ids.join(', ') || 'none'})`,
    );
  return ids.slice(0, n);
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`gpt2-train: ${e instanceof Error ? e.message : String(e)}\n`);
    // A rank that failed because another one did says so in its status: the launcher blames the other.
    process.exit(e instanceof CollectiveError && e.culprit !== e.rank ? PEER_FAILED_STATUS : 1);
  },
);

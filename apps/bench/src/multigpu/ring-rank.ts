/**
 * One rank of a ring-benchmark job (started by launch-ranks.ts with FLASHATTN_RING_JOB): set up the backend
 * and, for the ring, the communicator, run the job and write <rendezvous>/result-<rank>.json.
 * Out of memory (BackendOutOfMemoryError) is a result, not a crash: the rank records it, aborts the
 * communicator so its peers stop at once (naming it) instead of waiting in a collective, and exits 3.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BackendOutOfMemoryError, rankPlace, type Communicator } from '@flashattn/core';
import { checkRing, type RankCheck } from './ring-check.js';
import { connectRank, createRankOps, type RingBackend } from './ring-ops.js';
import { timeForwardBackward, type PhaseTimes, type RunShape } from './ring-timing.js';

export interface JobCommon {
  backend: RingBackend;
  shape: RunShape;
  seed: number;
  threads?: number;
  memoryLimitBytes?: number;
  /** Testing only (ring-ops.ts). */
  brokenCombine?: boolean;
}
export type RingJob =
  | (JobCommon & { kind: 'check' })
  | (JobCommon & { kind: 'time'; impl: 'ring' | 'flash'; warmup: number; iters: number });

interface RankBase {
  rank: number;
  device: string;
  transport: string | null;
  /** Peak bytes allocated through the ops on this rank (see ring-ops.ts). */
  peakBytes: number;
  /** Peak resident memory of this process (host), bytes. */
  maxRssBytes: number;
}
export type RankResult =
  | (RankBase & { ok: true; check?: RankCheck; times?: PhaseTimes })
  | (RankBase & { ok: false; oom: boolean; error: string });

export const OOM_EXIT = 3;

export async function runRank(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const job = JSON.parse(env['FLASHATTN_RING_JOB']!) as RingJob;
  const place = rankPlace(env);
  if (!place) throw new Error('ring-rank: not started by the launcher (FLASHATTN_RANK is unset)');
  const write = (r: RankResult): void =>
    writeFileSync(join(place.rendezvous, `result-${place.rank}.json`), JSON.stringify(r));
  let setup: Awaited<ReturnType<typeof createRankOps>>;
  try {
    setup = await createRankOps(job.backend, {
      ...(job.threads ? { threads: job.threads } : {}),
      ...(job.memoryLimitBytes !== undefined ? { memoryLimitBytes: job.memoryLimitBytes } : {}),
      ...(job.brokenCombine ? { brokenCombine: true } : {}),
    });
  } catch (e) {
    // No backend here (no GPU, no addon, no cuBLASLt): a result that says so, not only a stack on stderr.
    const oom = e instanceof BackendOutOfMemoryError;
    const error = `${job.backend} backend: ${e instanceof Error ? e.message : String(e)}`;
    write({
      rank: place.rank,
      device: job.backend,
      transport: null,
      peakBytes: 0,
      maxRssBytes: 0,
      ok: false,
      oom,
      error,
    });
    process.stderr.write(`rank ${place.rank}: ${error}\n`);
    return 1;
  }
  let comm: Communicator<unknown> | null = null;
  const base = (): RankBase => ({
    rank: place.rank,
    device: (setup.ops as { name?: string }).name ?? job.backend,
    transport: comm?.name ?? null,
    peakBytes: setup.profile.allocations().peakBytes,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
  });
  try {
    const needsComm = job.kind === 'check' || job.impl === 'ring';
    if (needsComm) comm = await connectRank(job.backend, setup.ops, place);
    if (job.kind === 'check') {
      const check = await checkRing(setup, comm!, job.shape, job.seed);
      write({ ...base(), ok: true, check });
    } else {
      const times = await timeForwardBackward(setup.ops, comm, job.shape, job);
      write({ ...base(), ok: true, times });
    }
    await comm?.destroy();
    return 0;
  } catch (e) {
    const oom = e instanceof BackendOutOfMemoryError;
    write({ ...base(), ok: false, oom, error: e instanceof Error ? e.message : String(e) });
    if (comm) {
      comm.abort(oom ? `rank ${place.rank} ran out of memory` : `rank ${place.rank} failed`);
      await comm.destroy().catch(() => undefined);
    }
    process.stderr.write(
      `rank ${place.rank}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    return oom ? OOM_EXIT : 1;
  } finally {
    await setup.dispose();
  }
}

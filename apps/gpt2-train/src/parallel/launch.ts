/**
 * The launcher: `gpt2-train --workers N` (or `--gpus N|all` with --backend cuda) starts one process per
 * rank, running this same CLI with the same flags, and tells each its place through the environment:
 *   FLASHATTN_RANK, FLASHATTN_WORLD_SIZE, FLASHATTN_RENDEZVOUS (a fresh directory: the CPU transport's
 *   sockets live there; NCCL's unique id is written there by rank 0), FLASHATTN_COLLECTIVE_TIMEOUT_MS,
 *   FLASHATTN_TRANSPORT (cpu | nccl), NCCL_NVLS_ENABLE=0 (NVLink multicast off: the device notes say
 *   why), and for NCCL CUDA_VISIBLE_DEVICES = the rank's GPU.
 * It forwards SIGINT / SIGTERM to every rank (they agree on the step to stop at, checkpoint and exit
 * 130), waits for all, and reports which rank failed first and how. A rank that dies makes the others
 * fail within the collective timeout (they name it, and exit with PEER_FAILED_STATUS); the launcher kills
 * any rank still running timeout + 10 s after the first failure, so the job never hangs. The rank blamed is
 * the first to fail on its own (a status other than PEER_FAILED_STATUS, or a signal): a peer that noticed
 * the death may be reaped before the dead rank is, so the order of exits alone does not say who was first.
 */
import { rankEnvVars, rankPlace, type RankPlace } from '@flashattn/core';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Transport = 'cpu' | 'nccl';

/** A rank's exit status when a collective failed because of another rank (a CollectiveError naming a peer). */
export const PEER_FAILED_STATUS = 3;

/** This process's place in the job (core's RankPlace). */
export type RankEnv = RankPlace;

/** This process's rank, from the launcher's environment; null when not started by the launcher. */
export function rankEnv(env: NodeJS.ProcessEnv = process.env): RankEnv | null {
  return rankPlace(env);
}

export interface LaunchOptions {
  /** The script every rank runs (this CLI's main.js) and its arguments. */
  script: string;
  argv: readonly string[];
  worldSize: number;
  transport: Transport;
  timeoutMs: number;
  /** GPU ids for NCCL (rank r gets gpus[r]). */
  gpus?: readonly string[];
  stderr?: { write(s: string): boolean };
}

export interface RankExit {
  rank: number;
  pid: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** ms since the launch when it exited. */
  atMs: number;
}

function describe(e: RankExit): string {
  return e.signal ? `was killed by ${e.signal}` : `exited with status ${e.code}`;
}

/** Run the ranks to completion; returns the job's exit status (0, 130 when stopped by SIGINT, else the failure's). */
export async function launch(o: LaunchOptions): Promise<{ status: number; exits: RankExit[] }> {
  const stderr = o.stderr ?? process.stderr;
  const dir = mkdtempSync(join(tmpdir(), 'fa-rdv-'));
  const t0 = Date.now();
  const children: ChildProcess[] = [];
  const exits: RankExit[] = [];
  let firstFailure: RankExit | null = null; // the first to fail on its own
  let firstPeerFailure: RankExit | null = null; // the first to fail because of a peer
  let killer: NodeJS.Timeout | null = null;
  const forward = (sig: NodeJS.Signals) => (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(sig);
  };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    const done = Array.from({ length: o.worldSize }, (_, rank) => {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        ...rankEnvVars({
          rank,
          worldSize: o.worldSize,
          rendezvous: dir,
          timeoutMs: o.timeoutMs,
          transport: o.transport,
          ...(o.gpus ? { gpu: o.gpus[rank] } : {}),
        }),
      };
      // Rank 0 speaks for the job (its stdout and progress); the others' stderr is kept, prefixed.
      // Own process group (detached): a terminal's Ctrl-C reaches the launcher only, which forwards exactly
      // one SIGINT per rank (a second would make the trainer exit at once instead of after the agreed step).
      const child = spawn(process.execPath, [o.script, ...o.argv], {
        env,
        detached: true,
        stdio: ['ignore', rank === 0 ? 'inherit' : 'ignore', rank === 0 ? 'inherit' : 'pipe'],
      });
      children.push(child);
      stderr.write(
        `gpt2-train: rank ${rank} of ${o.worldSize} started (pid ${child.pid}, ${o.transport} transport)\n`,
      );
      if (rank !== 0) {
        let partial = '';
        child.stderr!.on('data', (d: Buffer) => {
          const lines = (partial + d.toString()).split('\n');
          partial = lines.pop()!;
          for (const l of lines) if (l.trim()) stderr.write(`[rank ${rank}] ${l}\n`);
        });
      }
      return new Promise<void>((res) => {
        child.on('close', (code, signal) => {
          const e: RankExit = { rank, pid: child.pid, code, signal, atMs: Date.now() - t0 };
          exits.push(e);
          const failure = (code !== 0 || signal !== null) && code !== 130;
          if (failure && code === PEER_FAILED_STATUS) firstPeerFailure ??= e;
          else if (failure) firstFailure ??= e;
          if (failure && !killer) {
            // The others must fail within the collective timeout; never let the job hang past it.
            killer = setTimeout(() => {
              for (const c of children)
                if (c.exitCode === null && c.signalCode === null) {
                  stderr.write(
                    `gpt2-train: rank ${children.indexOf(c)} still running ${o.timeoutMs + 10_000} ms after rank ${e.rank} failed: killing it\n`,
                  );
                  c.kill('SIGKILL');
                }
            }, o.timeoutMs + 10_000);
          }
          res();
        });
      });
    });
    await Promise.all(done);
  } finally {
    if (killer) clearTimeout(killer);
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    rmSync(dir, { recursive: true, force: true });
  }
  exits.sort((a, b) => a.rank - b.rank);
  const failed = (firstFailure ?? firstPeerFailure) as RankExit | null;
  if (!failed) {
    const stopped = exits.some((e) => e.code === 130);
    return { status: stopped ? 130 : 0, exits };
  }
  const others = exits.filter((e) => e.rank !== failed.rank && (e.code !== 0 || e.signal));
  stderr.write(
    `gpt2-train: rank ${failed.rank} (pid ${failed.pid}) ${describe(failed)} first, ${(failed.atMs / 1000).toFixed(1)} s into the job` +
      (others.length
        ? `; then ${others.map((e) => `rank ${e.rank} ${describe(e)}`).join(', ')}`
        : '') +
      '\n',
  );
  return { status: failed.code && failed.code > 0 ? failed.code : 1, exits };
}

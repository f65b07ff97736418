/**
 * Start one process per rank for one benchmark job and wait for all, the way apps/gpt2-train's launcher
 * does (parallel/launch.ts): the same environment (core's rankEnvVars) plus FLASHATTN_RING_JOB, the
 * job as JSON. Each rank writes <rendezvous>/result-<rank>.json; this returns them (null for a rank that
 * wrote none). A rank that fails makes the others fail within the collective timeout (they name it); any
 * rank still running timeout + 10 s after the first failure, or past `jobTimeoutMs`, is killed: never a hang.
 */
import { rankEnvVars } from '@flashattn/core';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RankExit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** What the rank wrote to stderr (the last 4 kB). */
  stderr: string;
}

export interface JobLaunch {
  script: string;
  worldSize: number;
  transport: 'cpu' | 'nccl';
  timeoutMs: number;
  jobTimeoutMs: number;
  /** GPU ids for NCCL (rank r gets gpus[r]). */
  gpus?: readonly string[];
  job: unknown;
}

export async function launchJob<R>(
  o: JobLaunch,
): Promise<{ results: Array<R | null>; exits: RankExit[] }> {
  // Short path: a Unix socket path is at most ~100 bytes.
  const dir = mkdtempSync(join(tmpdir(), 'fa-ring-'));
  const children: ChildProcess[] = [];
  let killer: NodeJS.Timeout | null = null;
  const killAll = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  const overall = setTimeout(killAll, o.jobTimeoutMs);
  try {
    const exits = await Promise.all(
      Array.from({ length: o.worldSize }, (_, rank) => {
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
          FLASHATTN_RING_JOB: JSON.stringify(o.job),
        };
        const child = spawn(process.execPath, [o.script], {
          env,
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        children.push(child);
        let stderr = '';
        child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
        return new Promise<RankExit>((res) =>
          child.on('close', (code, signal) => {
            if ((code !== 0 || signal) && !killer)
              killer = setTimeout(killAll, o.timeoutMs + 10_000);
            res({ rank, code, signal, stderr });
          }),
        );
      }),
    );
    const results = exits.map(({ rank }) => {
      const f = join(dir, `result-${rank}.json`);
      return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as R) : null;
    });
    return { results, exits };
  } finally {
    clearTimeout(overall);
    if (killer) clearTimeout(killer);
    rmSync(dir, { recursive: true, force: true });
  }
}

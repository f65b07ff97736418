// The launcher's environment contract and the data-parallel flags (the multi-process runs are in
// data-parallel.test.ts).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from '../cli.js';
import { launch, PEER_FAILED_STATUS, rankEnv } from './launch.js';

describe('rankEnv', () => {
  it('is null outside the launcher and reads what the launcher sets', () => {
    expect(rankEnv({})).toBeNull();
    expect(
      rankEnv({
        FLASHATTN_RANK: '2',
        FLASHATTN_WORLD_SIZE: '3',
        FLASHATTN_RENDEZVOUS: '/tmp/x',
        FLASHATTN_COLLECTIVE_TIMEOUT_MS: '5000',
        FLASHATTN_TRANSPORT: 'nccl',
      }),
    ).toEqual({ rank: 2, worldSize: 3, rendezvous: '/tmp/x', timeoutMs: 5000, transport: 'nccl' });
  });

  it('rejects a rank outside the world, naming the variables', () => {
    expect(() =>
      rankEnv({ FLASHATTN_RANK: '3', FLASHATTN_WORLD_SIZE: '3', FLASHATTN_RENDEZVOUS: '/tmp/x' }),
    ).toThrow(/FLASHATTN_RANK=3 FLASHATTN_WORLD_SIZE=3/);
  });
});

describe('data-parallel flags', () => {
  it('parses --workers, --collective-timeout, --bucket-mb with their defaults', () => {
    const d = parseArgs([]);
    expect([d.workers, d.collectiveTimeout, d.bucketMb, d.gpus]).toEqual([1, 60, 25, undefined]);
    const a = parseArgs(['--workers', '3', '--collective-timeout', '2.5', '--bucket-mb', '4']);
    expect([a.workers, a.collectiveTimeout, a.bucketMb]).toEqual([3, 2.5, 4]);
  });

  it('--gpus needs --backend cuda, N or all, and excludes --workers', () => {
    expect(parseArgs(['--backend', 'cuda', '--gpus', 'all']).gpus).toBe('all');
    expect(() => parseArgs(['--gpus', '2'])).toThrow(/--gpus needs --backend cuda/);
    expect(() => parseArgs(['--backend', 'cuda', '--gpus', '0'])).toThrow(UsageError);
    expect(() => parseArgs(['--backend', 'cuda', '--gpus', '2', '--workers', '2'])).toThrow(
      /exclude each other/,
    );
    expect(() => parseArgs(['--workers', '0'])).toThrow(/--workers must be >= 1/);
    expect(() => parseArgs(['--collective-timeout', '0'])).toThrow(/> 0 seconds/);
  });
});

describe('launch: which rank is blamed', () => {
  it('the rank that failed on its own, not a peer that noticed it and was reaped first', async () => {
    // Rank 0 exits at once with the peer-failure status (as a rank whose collective named rank 1 does);
    // rank 1 kills itself with SIGKILL 300 ms later, so its exit is seen second.
    const dir = mkdtempSync(join(tmpdir(), 'gpt2-launch-'));
    const script = join(dir, 'rank.mjs');
    writeFileSync(
      script,
      `if (process.env.FLASHATTN_RANK === '0') process.exit(${PEER_FAILED_STATUS});
       setTimeout(() => process.kill(process.pid, 'SIGKILL'), 300);`,
    );
    let log = '';
    try {
      const { status, exits } = await launch({
        script,
        argv: [],
        worldSize: 2,
        transport: 'cpu',
        timeoutMs: 5000,
        stderr: { write: (x: string) => ((log += x), true) },
      });
      expect(exits.map((e) => [e.rank, e.code, e.signal])).toEqual([
        [0, PEER_FAILED_STATUS, null],
        [1, null, 'SIGKILL'],
      ]);
      expect(log).toMatch(/rank 1 \(pid \d+\) was killed by SIGKILL first/);
      expect(log).toMatch(/then rank 0 exited with status 3/);
      expect(status).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

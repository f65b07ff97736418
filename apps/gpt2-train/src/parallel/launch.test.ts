// The launcher's environment contract and the data-parallel flags (the multi-process runs are in
// data-parallel.test.ts).
import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from '../cli.js';
import { rankEnv } from './launch.js';

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

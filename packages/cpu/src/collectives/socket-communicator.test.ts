// The CPU transport between real processes (one per rank, as one per GPU): every collective against
// results computed here from the ranks' inputs, and the failure contract (a rank that exits, hangs or
// aborts is named by every other rank within the timeout). Runs the built package (dist).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const worker = fileURLToPath(new URL('./test-utils/rank-worker.mjs', import.meta.url));
const dist = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

interface Line {
  rank: number;
  ready?: boolean;
  results?: Record<string, number[]>;
  error?: { name: string; culprit: number | null; failure: string | null; message: string };
  ms?: number;
}

/** Run W ranks of a scenario; kills any rank still running after `killAfterMs` (the hung one). */
async function runRanks(W: number, scenario: string, timeoutMs: number, killAfterMs = 20_000) {
  const dir = mkdtempSync(join(tmpdir(), 'fa-rz-'));
  dirs.push(dir);
  const lines: Line[] = [];
  const codes = await Promise.all(
    Array.from({ length: W }, (_, r) => {
      const child = spawn(
        process.execPath,
        [worker, dir, String(r), String(W), String(timeoutMs), scenario],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      return new Promise<number | null>((res) =>
        child.on('close', (c) => {
          clearTimeout(timer);
          for (const l of out.split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Line);
          res(c);
        }),
      );
    }),
  );
  return { lines, codes };
}

// x(r, i) as the worker makes it, rounded to float32 as its upload does.
const input = (r: number, n: number, off = 0): number[] =>
  Array.from(
    { length: n },
    (_, i) => Math.sin(1 + 7 * r + 0.37 * (i + off)) * 2 ** ((i + off) % 5),
  );
const f32 = (xs: number[]): number[] => xs.map(Math.fround);
/** Sum over ranks in rank order, rounding each addition to float32 (the contract's order and dtype). */
const sum32 = (W: number, n: number, part: (r: number) => number[]): number[] =>
  Array.from({ length: n }, (_, i) => {
    let acc = part(0)[i]!;
    for (let r = 1; r < W; r++) acc = Math.fround(acc + part(r)[i]!);
    return acc;
  });

describe.skipIf(!existsSync(dist))('socket communicator (processes)', () => {
  for (const W of [2, 3]) {
    it(`world ${W}: every collective equals the rank-order reduction computed here, bit for bit`, async () => {
      const { lines, codes } = await runRanks(W, 'ok', 10_000);
      expect(codes).toEqual(Array(W).fill(0));
      const res = lines.filter((l) => l.results).sort((a, b) => a.rank - b.rank);
      expect(res.length).toBe(W);
      const sum = sum32(W, 37, (r) => f32(input(r, 37)));
      const avg64 = Array.from({ length: 37 }, (_, i) => {
        let acc = input(0, 37)[i]!; // float64 buffers: no rounding to float32
        for (let r = 1; r < W; r++) acc += input(r, 37)[i]!;
        return acc / W;
      });
      for (const { rank, results } of res) {
        expect(results!['allReduceSum']).toEqual(sum);
        expect(results!['allReduceAvg64']).toEqual(avg64);
        expect(results!['reduceScatter']).toEqual(
          sum32(W, 5, (r) => f32(input(r, W * 5)).slice(rank * 5, rank * 5 + 5)),
        );
        expect(results!['allGather']).toEqual(
          Array.from({ length: W }, (_, q) => [q, 10 * q, q === 0 ? 0 : -q]).flat(),
        );
        expect(results!['broadcast']).toEqual(f32(input(W - 1, 4)));
        expect(results!['ring']).toEqual([0, ...f32(input((rank - 1 + W) % W, 6)), 0]);
      }
    });
  }

  it('a rank that exits: every other rank throws CollectiveError naming it, at once', async () => {
    const { lines, codes } = await runRanks(3, 'exit', 5_000);
    expect(codes[2]).toBe(3);
    for (const r of [0, 1]) {
      const l = lines.find((x) => x.rank === r && x.error);
      expect(l?.error, JSON.stringify(lines)).toMatchObject({
        name: 'CollectiveError',
        culprit: 2,
        failure: 'peer-exited',
      });
      expect(l!.error!.message).toContain('rank 2 exited');
      expect(codes[r]).toBe(1);
    }
  });

  it('a rank that hangs: the others throw CollectiveError naming it (timeout), not hang', async () => {
    const { lines, codes } = await runRanks(3, 'hang', 1_000, 3_000);
    expect(codes[2]).toBeNull(); // killed by the test: it really hung
    for (const r of [0, 1]) {
      const l = lines.find((x) => x.rank === r && x.error);
      expect(l?.error, JSON.stringify(lines)).toMatchObject({
        name: 'CollectiveError',
        culprit: 2,
        failure: 'timeout',
      });
      expect(codes[r]).toBe(1);
    }
  });

  it('abort(reason) on one rank: every rank throws naming that rank', async () => {
    const { lines } = await runRanks(3, 'abort', 5_000);
    for (const r of [0, 1, 2]) {
      const l = lines.find((x) => x.rank === r && x.error);
      expect(l?.error, JSON.stringify(lines)).toMatchObject({ culprit: 1, failure: 'aborted' });
      expect(l!.error!.message).toContain('rank 1 gives up');
    }
  });
});

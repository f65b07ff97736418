// The ring-attention benchmark as a CI-sized smoke test on CPU ranks (W = 2 processes, the socket transport,
// CpuOps, one thread each): the built CLI (dist/) is run as users run it, and its JSON report is checked --
// the correctness check passed (ring and single-device flash within the conformance rule against the float64
// oracle), every run and search field is present and consistent with the FlashAttention FLOP convention
// recomputed here, and the search under a simulated 4 MiB per rank ends at BackendOutOfMemoryError. A
// deliberately broken lse combine must fail the check (and nothing is timed); a length that the zig-zag
// split cannot take is refused naming the flag. No timing is asserted.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { RingBenchReport, RunReport } from './ring-bench.js';

const cli = fileURLToPath(new URL('../../dist/multigpu/ring-bench.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ring-bench-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): {
  status: number | null;
  stderr: string;
  stdout: string;
  report: RingBenchReport | null;
} {
  const json = join(dir, `r-${Math.random().toString(36).slice(2)}.json`);
  const r = spawnSync(process.execPath, [cli, ...args, '--json', json], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return {
    status: r.status,
    stderr: r.stderr,
    stdout: r.stdout,
    report: existsSync(json) ? (JSON.parse(readFileSync(json, 'utf8')) as RingBenchReport) : null,
  };
}

const [W, H, D, B] = [2, 2, 128, 1];
const base = [
  '--backend',
  'cpu',
  '--world',
  String(W),
  '--heads',
  String(H),
  '--head-dim',
  String(D),
  '--threads',
  '1',
  '--check-n',
  '64',
];

if (!existsSync(cli))
  console.warn(
    `ring-bench smoke test skipped: ${cli} not built (pnpm --filter @flashattn/bench build)`,
  );

// Why CudaOps cannot run here (undefined where it can: then this case is the GPU run's, not this test's).
const noCudaOps = await import('@flashattn/cuda').then(
  (m) => m.cudaOpsUnavailableReason(),
  (e: unknown) => `@flashattn/cuda did not load: ${String(e)}`,
);
if (noCudaOps === undefined)
  console.warn('ring-bench "--backend cuda where CudaOps cannot run" skipped: CudaOps runs here');

describe.skipIf(!existsSync(cli))('ring-bench on CPU ranks (W = 2, socket transport)', () => {
  it('checks against the float64 oracle, times flash and the ring, and finds the longest N under a simulated memory', () => {
    const limitMiB = 4;
    const r = run([
      ...base,
      '--n',
      '128,256',
      '--iters',
      '1',
      '--search',
      '--search-from',
      '128',
      '--memory-limit-mib',
      String(limitMiB),
    ]);
    expect(r.status, r.stderr).toBe(0);
    const rep = r.report!;
    expect(rep).toMatchObject({
      backend: 'cpu',
      world: W,
      B,
      H,
      D,
      causal: true,
      storage: 'float32',
    });

    // The check: ring and single-device flash within the rule for every output.
    expect(rep.check.pass).toBe(true);
    expect(rep.check.N).toBe(64);
    for (const name of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
      for (const side of [rep.check.ring!, rep.check.single!]) {
        expect(side[name].pass, name).toBe(true);
        expect(side[name].err, name).toBeLessThanOrEqual(side[name].allowed);
        expect(side[name].naiveErr, name).toBeGreaterThan(0);
      }
      expect(Number.isFinite(rep.check.ringVsSingle![name])).toBe(true);
    }

    // Timed runs: FLOPs in the FlashAttention convention, recomputed here.
    expect(rep.runs.map((x) => x.N)).toEqual([128, 256]);
    for (const { N, flash, ring } of rep.runs) {
      const fwd = (4 * B * H * N * N * D) / 2;
      for (const [x, ranks] of [
        [flash!, 1],
        [ring, W],
      ] as Array<[RunReport, number]>) {
        expect(x.status).toBe('ok');
        expect(x.ranks).toBe(ranks);
        expect(x.fwdMs!).toBeGreaterThan(0);
        expect(x.bwdMs!).toBeGreaterThan(0);
        expect(x.totalMs!).toBeCloseTo(x.fwdMs! + x.bwdMs!, 9);
        expect(x.tflopsPerRank!.fwd).toBeCloseTo(fwd / (x.fwdMs! * 1e-3) / 1e12 / ranks, 9);
        expect(x.tflopsPerRank!.bwd).toBeCloseTo((2.5 * fwd) / (x.bwdMs! * 1e-3) / 1e12 / ranks, 9);
        expect(x.tflopsPerRank!.total).toBeCloseTo(
          (3.5 * fwd) / (x.totalMs! * 1e-3) / 1e12 / ranks,
          9,
        );
        // At least q, k, v, dout, out, dq, dk, dv (B, N / ranks, H, D) float32 were held on each rank.
        expect(x.peakBytesPerRank!).toBeGreaterThanOrEqual(8 * B * (N / ranks) * H * D * 4);
        expect(x.peakBytesPerRank!).toBeLessThanOrEqual(limitMiB * 2 ** 20);
      }
      expect(flash!.commFwdMs ?? null).toBeNull();
      expect(ring.commFwdMs!).toBeGreaterThan(0);
      expect(ring.commBwdMs!).toBeGreaterThan(0);
    }

    // The search ends at the simulated memory's BackendOutOfMemoryError, one doubling past the longest N.
    for (const s of [rep.search!.flash!, rep.search!.ring!]) {
      expect(s.stoppedBy).toBe('oom');
      expect(s.longestN).toBeGreaterThanOrEqual(128);
      expect(s.longest!.status).toBe('ok');
      expect(s.longest!.N).toBe(s.longestN);
      expect(s.stop!.status).toBe('oom');
      expect(s.stop!.N).toBe(2 * s.longestN!);
      expect(s.stop!.error).toMatch(/simulated 4194304-byte memory/);
      expect(s.trials.map((t) => t.N)).toEqual(
        Array.from({ length: s.trials.length }, (_, i) => 128 * 2 ** i),
      );
    }
    expect(rep.search!.ring!.ranks).toBe(W);
    // The printed tables carry the same figures.
    expect(r.stdout).toMatch(/check at N = 64: PASS/);
    expect(r.stdout).toMatch(/longest N/);
  }, 120_000);

  it('the search stops at --search-max, or before a trial predicted to pass --search-seconds, and says so', () => {
    const r = run([
      ...base,
      '--no-time',
      '--search',
      '--search-from',
      '128',
      '--search-max',
      '256',
      '--search-impl',
      'flash',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const flash = r.report!.search!.flash!;
    expect(r.report!.runs).toEqual([]);
    expect(r.report!.search!.ring).toBeNull();
    expect([flash.stoppedBy, flash.longestN, flash.stop]).toEqual(['max', 256, null]);
    expect(flash.trials.map((t) => t.N)).toEqual([128, 256]);
    const t = run([
      ...base,
      '--no-time',
      '--search',
      '--search-from',
      '128',
      '--search-seconds',
      '0',
      '--search-impl',
      'ring',
    ]);
    expect(t.status, t.stderr).toBe(0);
    const ring = t.report!.search!.ring!;
    expect([ring.stoppedBy, ring.longestN, ring.stop]).toEqual(['time', 128, null]);
    expect(ring.trials).toHaveLength(1);
  }, 120_000);

  it('a deliberately broken lse combine (partials averaged) fails the check, and nothing is timed', () => {
    const r = run([...base, '--n', '128', '--broken-combine']);
    expect(r.status).toBe(1);
    const rep = r.report!;
    expect(rep.check.pass).toBe(false);
    expect(rep.check.ring!.out.pass).toBe(false);
    expect(rep.check.single!.out.pass).toBe(true); // single-device flash does not combine
    expect(rep.runs).toEqual([]);
    expect(r.stdout).toMatch(/check at N = 64: FAIL/);
  }, 120_000);

  it.skipIf(noCudaOps === undefined)(
    '--backend cuda where CudaOps cannot run: the check fails naming the backend and why, no hang, no crash',
    () => {
      const r = run([...base.slice(2), '--backend', 'cuda', '--n', '128', '--timeout', '10']);
      expect(r.status).toBe(1);
      expect(r.report!.check.pass).toBe(false);
      expect(r.report!.check.error).toMatch(/rank \d: cuda backend: .*unavailable/);
      expect(r.report!.runs).toEqual([]);
    },
    60_000,
  );

  it('a length the zig-zag split cannot take is a usage error naming the flag', () => {
    const r = run([...base, '--n', '130']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /--n: expected a multiple of 2 x --world = 4 \(the zig-zag split\), got 130/,
    );
    expect(r.report).toBeNull();
  });
});

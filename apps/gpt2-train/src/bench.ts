/**
 * Training throughput and peak memory, flash vs standard attention, at seq 256 and 1024, for the tiny
 * config. Each case runs in a fresh process (so peak RSS is that case's own) with a fixed 2048
 * tokens per step; tokens/s excludes the first step (JIT warm-up).
 *   pnpm --filter gpt2-train build && pnpm --filter gpt2-train bench [-- --steps 5]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('./main.js', import.meta.url));
const stepsArg = process.argv.indexOf('--steps');
const steps = stepsArg >= 0 ? Number(process.argv[stepsArg + 1]) : 5;
const cases: Array<{ seq: number; batch: number }> = [
  { seq: 256, batch: 8 },
  { seq: 1024, batch: 2 },
];
const dir = mkdtempSync(join(tmpdir(), 'gpt2-bench-'));
const rows: string[] = [];
console.log(
  `CPU: ${cpus()[0]?.model} x ${cpus().length}; node ${process.version}; ${new Date().toISOString()}; load avg at start ${loadavg()[0]!.toFixed(1)}`,
);
for (const { seq, batch } of cases) {
  for (const attention of ['flash', 'standard'] as const) {
    const out = execFileSync(
      process.execPath,
      [
        main,
        '--config',
        'tiny',
        '--attention',
        attention,
        '--seq',
        String(seq),
        '--batch',
        String(batch),
        '--steps',
        String(steps),
        '--eval-every',
        '0',
        '--ckpt-every',
        '0',
        '--sample-tokens',
        '0',
        '--val-batches',
        '1',
        '--json',
        '--out',
        join(dir, `${attention}-${seq}`),
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const s = JSON.parse(out.trim().split('\n').pop()!) as {
      tokensPerSecSteady: number;
      peakRssMiB: number;
    };
    rows.push(
      `| ${seq} | ${batch} | ${attention} | ${Math.round(s.tokensPerSecSteady)} | ${s.peakRssMiB.toFixed(0)} |`,
    );
    console.log(rows[rows.length - 1]);
  }
}
rmSync(dir, { recursive: true, force: true });
console.log(
  `\n| seq | batch | attention | tokens/s (steps 2..${steps}) | peak RSS (MiB) |\n|---|---|---|---|---|\n${rows.join('\n')}`,
);
console.log(`load avg at end ${loadavg()[0]!.toFixed(1)}`);

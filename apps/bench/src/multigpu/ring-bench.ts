/**
 * Ring attention benchmark (issue #15): causal attention at D = 128 (default) over W ranks, one process per
 * rank (launch-ranks.ts; NCCL on GPUs, the CPU socket transport on CPU ranks), every buffer float32.
 *   node dist/multigpu/ring-bench.js --backend cuda --world 8 --heads 16 --n 16384,65536 --search
 * Jobs, each a fresh set of rank processes (so an out-of-memory trial cannot poison the next):
 *   1. check: at --check-n, ring attention on W ranks and single-device flash on each rank against the
 *      float64 oracle under the conformance rule (ring-check.ts). Nothing is timed if it fails (exit 1).
 *   2. for each --n: forward and backward timed, single-device flash on 1 rank (--single) and the ring on W
 *      ranks, reported as TFLOP/s per rank in the FlashAttention convention: forward 4 B H N^2 D / 2 (causal),
 *      backward 2.5x that, divided by the ranks that shared it; the ring's sendRecv sequence alone beside it.
 *   3. --search: from --search-from, N doubled until the run fails with BackendOutOfMemoryError, for
 *      single-device flash on 1 rank and for the ring on W ranks: the longest N that ran forward + backward
 *      and the peak bytes allocated through the ops per rank (and the process's peak RSS). Doubling also stops
 *      at --search-max, or when the next trial would take more than --search-seconds (4x the last trial's
 *      time: causal work grows as N^2) -- reported as such, never as out of memory.
 * --memory-limit-mib simulates a device of that size on each rank (allocations through the ops past it are
 * BackendOutOfMemoryError): the CPU smoke test's way to reach the end of the search.
 * Writes the report as JSON (--json) and prints the tables; the check's figures go with it.
 */
import { cpus } from 'node:os';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ArgsError, parseArgs, type ArgSchema, type ParsedArgs } from '../lib/args.js';
import { backwardFlops, forwardFlops, tflopsPerSecond } from '../lib/flops.js';
import { isMain } from '../lib/is-main.js';
import { formatTable } from '../lib/table.js';
import { launchJob, type RankExit } from './launch-ranks.js';
import { CHECK_OUTPUTS, type CheckOutput, type RankCheck } from './ring-check.js';
import { runRank, type RankResult, type RingJob } from './ring-rank.js';
import type { RunShape } from './ring-timing.js';

export const RING_BENCH_SCHEMA = {
  backend: {
    type: 'enum',
    values: ['cpu', 'cuda'],
    default: 'cpu',
    help: 'cpu: CpuOps + socket transport; cuda: CudaOps + NCCL',
  },
  world: {
    type: 'int',
    min: 1,
    default: 2,
    help: 'ranks W of the ring (processes; GPUs for cuda)',
  },
  batch: { type: 'int', min: 1, default: 1, help: 'B' },
  heads: { type: 'int', min: 1, default: 16, help: 'H (query and key heads)' },
  headDim: { type: 'int', min: 1, default: 128, help: 'D' },
  n: {
    type: 'intList',
    min: 2,
    default: [16384],
    help: 'sequence lengths N to time (multiples of 2W)',
  },
  checkN: {
    type: 'int',
    min: 2,
    default: 256,
    help: 'N of the correctness check (a multiple of 2W)',
  },
  time: {
    type: 'boolean',
    default: true,
    help: 'time the --n lengths (--no-time: the check, then only the search)',
  },
  single: {
    type: 'boolean',
    default: true,
    help: 'time single-device flash (1 rank) at each --n beside the ring',
  },
  warmup: { type: 'int', min: 0, default: 1, help: 'untimed runs before the timed ones' },
  iters: { type: 'int', min: 1, default: 3, help: 'timed runs (median reported)' },
  search: {
    type: 'boolean',
    default: false,
    help: 'find the longest N that runs forward + backward, 1 rank vs W',
  },
  searchFrom: {
    type: 'int',
    min: 2,
    default: 4096,
    help: 'first N of the search (a multiple of 2W)',
  },
  searchMax: { type: 'int', min: 2, default: 1 << 24, help: 'no trial past this N' },
  searchSeconds: {
    type: 'number',
    min: 0,
    default: 150,
    help: 'stop doubling when the next trial would take longer than this (s)',
  },
  searchImpl: {
    type: 'enum',
    values: ['both', 'flash', 'ring'],
    default: 'both',
    help: 'which searches to run (flash on 1 rank, the ring on W; split them to fit a time limit)',
  },
  memoryLimitMib: {
    type: 'number',
    min: 0,
    help: 'simulated device memory per rank (MiB; for CPU smoke runs)',
  },
  threads: { type: 'int', min: 1, help: 'CPU threads per rank (default: cores / W)' },
  timeout: { type: 'int', min: 1, default: 120, help: 'collective timeout (s)' },
  jobTimeout: {
    type: 'int',
    min: 1,
    default: 580,
    help: 'any job (one set of rank processes) is killed after this (s)',
  },
  seed: { type: 'int', default: 1, help: 'random inputs' },
  json: { type: 'string', help: 'write the report here' },
  brokenCombine: {
    type: 'boolean',
    default: false,
    help: 'testing only: an lse combine that ignores the lse (the check must fail)',
  },
} as const satisfies ArgSchema;

export type RingBenchArgs = ParsedArgs<typeof RING_BENCH_SCHEMA>;

export interface RunReport {
  impl: 'ring' | 'flash';
  ranks: number;
  N: number;
  status: 'ok' | 'oom' | 'failed';
  /** The first failing rank's message (oom / failed). */
  error?: string;
  fwdMs?: number;
  bwdMs?: number;
  totalMs?: number;
  /** FLOPs of the whole problem (FlashAttention convention) / ranks / time. */
  tflopsPerRank?: { fwd: number; bwd: number; total: number };
  /** The ring's sendRecv sequence alone (forward: W - 1 K/V hops; backward: W - 1 K/V + W dK/dV hops). */
  commFwdMs?: number | null;
  commBwdMs?: number | null;
  /** Largest over ranks of the peak bytes allocated through the ops. */
  peakBytesPerRank?: number;
  maxRssBytes?: number;
  device?: string;
  transport?: string | null;
}

export interface SearchReport {
  impl: 'ring' | 'flash';
  ranks: number;
  longestN: number | null;
  longest: RunReport | null;
  stoppedBy: 'oom' | 'max' | 'time' | 'failed';
  /** The trial that stopped it (oom / failed). */
  stop: RunReport | null;
  trials: RunReport[];
}

export interface CheckReport {
  N: number;
  pass: boolean;
  computeDType: string | null;
  /** Per output, the worst rank: error vs the float64 oracle, the naive error, what the rule allows. */
  ring: Record<
    CheckOutput,
    { err: number; naiveErr: number; allowed: number; pass: boolean }
  > | null;
  single: Record<
    CheckOutput,
    { err: number; naiveErr: number; allowed: number; pass: boolean }
  > | null;
  ringVsSingle: Record<CheckOutput, number> | null;
  error?: string;
}

export interface RingBenchReport {
  date: string;
  command: string;
  backend: 'cpu' | 'cuda';
  world: number;
  B: number;
  H: number;
  D: number;
  causal: true;
  storage: 'float32';
  memoryLimitBytes: number | null;
  check: CheckReport;
  runs: Array<{ N: number; flash: RunReport | null; ring: RunReport }>;
  search: { flash: SearchReport | null; ring: SearchReport | null } | null;
}

type Log = (line: string) => void;

/** The GPU ids CUDA_VISIBLE_DEVICES lists, or undefined when it is not set. */
function gpuList(env: NodeJS.ProcessEnv): string[] | undefined {
  return env['CUDA_VISIBLE_DEVICES']
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Parse and check the flags that depend on each other (lengths vs the zig-zag split). */
export function parseRingArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): RingBenchArgs {
  const a = parseArgs(argv, RING_BENCH_SCHEMA);
  const split = 2 * a.world;
  const bad = (flag: string, v: number): never => {
    throw new ArgsError(
      flag,
      `${flag}: expected a multiple of 2 x --world = ${split} (the zig-zag split), got ${v}`,
    );
  };
  if (a.time) for (const n of a.n) if (n % split !== 0) bad('--n', n);
  if (a.checkN % split !== 0) bad('--check-n', a.checkN);
  if (a.search && a.searchFrom % split !== 0) bad('--search-from', a.searchFrom);
  const visible = gpuList(env);
  if (a.backend === 'cuda' && visible && visible.length < a.world)
    throw new ArgsError(
      '--world',
      `--world: ${a.world} GPUs asked for, CUDA_VISIBLE_DEVICES lists ${visible.length} (${visible.join(',')})`,
    );
  return a;
}

export async function runRingBench(
  a: RingBenchArgs,
  log: Log,
  command = '',
): Promise<RingBenchReport> {
  const script = fileURLToPath(import.meta.url);
  const W = a.world;
  const memoryLimitBytes =
    a.memoryLimitMib !== undefined ? Math.floor(a.memoryLimitMib * 2 ** 20) : undefined;
  // Rank r on GPU r of CUDA_VISIBLE_DEVICES's list, else of 0..W-1.
  const gpus =
    a.backend === 'cuda'
      ? (gpuList(process.env) ?? Array.from({ length: W }, (_, i) => String(i)))
      : undefined;
  const threadsFor = (ranks: number): number =>
    a.threads ?? Math.max(1, Math.floor(cpus().length / ranks));
  const shape = (N: number): RunShape => ({ B: a.batch, H: a.heads, D: a.headDim, N });
  const job = async (j: RingJob, ranks: number) =>
    launchJob<RankResult>({
      script,
      worldSize: ranks,
      transport: a.backend === 'cuda' ? 'nccl' : 'cpu',
      timeoutMs: a.timeout * 1000,
      jobTimeoutMs: a.jobTimeout * 1000,
      ...(gpus ? { gpus } : {}),
      job: j,
    });
  const common = (N: number, ranks: number) => ({
    backend: a.backend,
    shape: shape(N),
    seed: a.seed,
    ...(a.backend === 'cpu' ? { threads: threadsFor(ranks) } : {}),
    ...(memoryLimitBytes !== undefined ? { memoryLimitBytes } : {}),
    ...(a.brokenCombine ? { brokenCombine: true } : {}),
  });

  // 1. The check.
  log(`check: ring on ${W} ranks and single-device flash vs the float64 oracle at N = ${a.checkN}`);
  const c = await job({ kind: 'check', ...common(a.checkN, W) }, W);
  const check = summarizeCheck(a.checkN, c.results, c.exits);
  log(
    check.pass
      ? `check passed (compute ${check.computeDType})`
      : `check FAILED: ${check.error ?? 'outside the conformance rule'}`,
  );

  const timed = async (
    impl: 'ring' | 'flash',
    N: number,
    warmup: number,
    iters: number,
  ): Promise<RunReport> => {
    const ranks = impl === 'ring' ? W : 1;
    const r = await job({ kind: 'time', impl, warmup, iters, ...common(N, ranks) }, ranks);
    const rep = summarizeRun(impl, ranks, shape(N), r.results, r.exits);
    log(`${impl} N = ${N} on ${ranks} rank(s): ${describeRun(rep)}`);
    // The whole record too, so a run cut off by a time limit before the JSON report still left its figures.
    log(`run ${JSON.stringify(rep)}`);
    return rep;
  };

  const runs: RingBenchReport['runs'] = [];
  let search: RingBenchReport['search'] = null;
  if (check.pass) {
    // 2. Timed runs.
    for (const N of a.time ? a.n : []) {
      const flash = a.single ? await timed('flash', N, a.warmup, a.iters) : null;
      const ring = await timed('ring', N, a.warmup, a.iters);
      runs.push({ N, flash, ring });
    }
    // 3. The longest N.
    if (a.search) {
      const find = async (impl: 'ring' | 'flash'): Promise<SearchReport> => {
        const trials: RunReport[] = [];
        let longest: RunReport | null = null;
        for (let N = a.searchFrom; ; N *= 2) {
          if (N > a.searchMax) return done('max', null);
          const lastMs = longest?.totalMs;
          if (lastMs !== undefined && (4 * lastMs) / 1000 > a.searchSeconds)
            return done('time', null);
          const r = await timed(impl, N, 0, 1);
          trials.push(r);
          if (r.status !== 'ok') return done(r.status, r);
          longest = r;
        }
        function done(stoppedBy: SearchReport['stoppedBy'], stop: RunReport | null): SearchReport {
          return {
            impl,
            ranks: impl === 'ring' ? W : 1,
            longestN: longest?.N ?? null,
            longest,
            stoppedBy,
            stop,
            trials,
          };
        }
      };
      const which = a.searchImpl;
      const flash = which === 'ring' ? null : await find('flash');
      const ring = which === 'flash' ? null : await find('ring');
      search = { flash, ring };
    }
  }
  return {
    date: new Date().toISOString(),
    command,
    backend: a.backend,
    world: W,
    B: a.batch,
    H: a.heads,
    D: a.headDim,
    causal: true,
    storage: 'float32',
    memoryLimitBytes: memoryLimitBytes ?? null,
    check,
    runs,
    search,
  };
}

function firstFailure(results: Array<RankResult | null>, exits: RankExit[]): string {
  for (const r of results) if (r && !r.ok && r.oom) return `rank ${r.rank}: ${r.error}`;
  for (const r of results) if (r && !r.ok) return `rank ${r.rank}: ${r.error}`;
  const e = exits.find((x) => x.code !== 0 || x.signal);
  return e
    ? `rank ${e.rank} ${e.signal ? `killed by ${e.signal}` : `exited ${e.code}`} without a result: ${e.stderr.trim().split('\n').slice(-3).join(' | ')}`
    : 'no rank wrote a result';
}

export function summarizeCheck(
  N: number,
  results: Array<RankResult | null>,
  exits: RankExit[],
): CheckReport {
  const checks = results.map((r) => (r?.ok ? r.check : undefined));
  if (checks.some((x) => x === undefined))
    return {
      N,
      pass: false,
      computeDType: null,
      ring: null,
      single: null,
      ringVsSingle: null,
      error: firstFailure(results, exits),
    };
  const all = checks as RankCheck[];
  const worst = (side: 'ring' | 'single') =>
    Object.fromEntries(
      CHECK_OUTPUTS.map((name) => {
        const per = all.map((x) => x[side][name]);
        const w = per.reduce((m, x) =>
          x.err / (x.allowed || 1) > m.err / (m.allowed || 1) || !x.pass ? x : m,
        );
        return [name, { ...w, pass: per.every((x) => x.pass) }];
      }),
    ) as NonNullable<CheckReport['ring']>;
  const ring = worst('ring');
  const single = worst('single');
  const ringVsSingle = Object.fromEntries(
    CHECK_OUTPUTS.map((name) => [name, Math.max(...all.map((x) => x.ringVsSingle[name]))]),
  ) as Record<CheckOutput, number>;
  const pass = CHECK_OUTPUTS.every((n) => ring[n].pass && single[n].pass);
  return { N, pass, computeDType: all[0]!.computeDType, ring, single, ringVsSingle };
}

export function summarizeRun(
  impl: 'ring' | 'flash',
  ranks: number,
  s: RunShape,
  results: Array<RankResult | null>,
  exits: RankExit[],
): RunReport {
  const base = { impl, ranks, N: s.N };
  const oks = results.filter((r): r is Extract<RankResult, { ok: true }> => r?.ok === true);
  if (oks.length !== ranks || !oks[0]?.times) {
    const oom = results.some((r) => r && !r.ok && r.oom);
    return { ...base, status: oom ? 'oom' : 'failed', error: firstFailure(results, exits) };
  }
  const t = oks[0].times; // rank 0's: the phases are bracketed by barriers (the slowest rank's time)
  const p = { batch: s.B, heads: s.H, seqlenQ: s.N, seqlenK: s.N, headDim: s.D, causal: true };
  const fwdF = forwardFlops(p);
  const bwdF = backwardFlops(p);
  const totalMs = t.fwdMs + t.bwdMs;
  return {
    ...base,
    status: 'ok',
    fwdMs: t.fwdMs,
    bwdMs: t.bwdMs,
    totalMs,
    tflopsPerRank: {
      fwd: tflopsPerSecond(fwdF, t.fwdMs) / ranks,
      bwd: tflopsPerSecond(bwdF, t.bwdMs) / ranks,
      total: tflopsPerSecond(fwdF + bwdF, totalMs) / ranks,
    },
    commFwdMs: t.commFwdMs,
    commBwdMs: t.commBwdMs,
    peakBytesPerRank: Math.max(...oks.map((r) => r.peakBytes)),
    maxRssBytes: Math.max(...oks.map((r) => r.maxRssBytes)),
    device: oks[0].device,
    transport: oks[0].transport,
  };
}

const MiB = 2 ** 20;
/** A text table from headers and rows of cells (first column left-aligned). */
const table = (headers: readonly string[], rows: readonly string[][]): string =>
  formatTable(
    headers.map((header, j) => ({
      header,
      cell: (r: string[]) => r[j]!,
      align: j === 0 ? ('left' as const) : ('right' as const),
    })),
    rows,
  );
const f = (x: number | null | undefined, d = 2): string =>
  x === null || x === undefined ? '-' : x.toFixed(d);

function describeRun(r: RunReport): string {
  if (r.status !== 'ok') return `${r.status}: ${r.error}`;
  return `fwd ${f(r.fwdMs)} ms, bwd ${f(r.bwdMs)} ms, ${f(r.tflopsPerRank!.total, 3)} TFLOP/s per rank, peak ${f(r.peakBytesPerRank! / MiB, 1)} MiB per rank`;
}

/** The report as text tables (what the CLI prints last). */
export function formatRingReport(r: RingBenchReport): string {
  const out: string[] = [];
  out.push(
    `ring attention, ${r.backend}, W = ${r.world}, B = ${r.B}, H = ${r.H}, D = ${r.D}, causal, float32 storage` +
      (r.memoryLimitBytes !== null
        ? `, simulated memory ${f(r.memoryLimitBytes / MiB, 1)} MiB per rank`
        : ''),
  );
  const c = r.check;
  out.push(
    `check at N = ${c.N}: ${c.pass ? 'PASS' : 'FAIL'}${c.computeDType ? ` (compute ${c.computeDType})` : ''}${c.error ? `: ${c.error}` : ''}`,
  );
  if (c.ring && c.single && c.ringVsSingle)
    out.push(
      table(
        ['output', 'ring err', 'single err', 'naive err', 'allowed', '|ring - single|'],
        CHECK_OUTPUTS.map((n) => [
          n,
          c.ring![n].err.toExponential(2),
          c.single![n].err.toExponential(2),
          c.ring![n].naiveErr.toExponential(2),
          c.ring![n].allowed.toExponential(2),
          c.ringVsSingle![n].toExponential(2),
        ]),
      ),
    );
  if (r.runs.length) {
    const row = (x: RunReport | null): string[] =>
      !x
        ? ['-', '-', '-', '-', '-', '-']
        : x.status !== 'ok'
          ? [x.status, '-', '-', '-', '-', '-']
          : [
              f(x.fwdMs),
              f(x.bwdMs),
              f(x.tflopsPerRank!.fwd, 3),
              f(x.tflopsPerRank!.bwd, 3),
              f(x.tflopsPerRank!.total, 3),
              f(x.peakBytesPerRank! / MiB, 1),
            ];
    out.push(
      table(
        [
          'N',
          'impl',
          'ranks',
          'fwd ms',
          'bwd ms',
          'fwd TF/s/rank',
          'bwd TF/s/rank',
          'total TF/s/rank',
          'peak MiB/rank',
          'comm fwd+bwd ms',
        ],
        r.runs.flatMap(({ N, flash, ring }) => [
          ...(flash ? [[String(N), 'flash', '1', ...row(flash), '-']] : []),
          [
            String(N),
            'ring',
            String(r.world),
            ...row(ring),
            ring.status === 'ok' && ring.commFwdMs != null
              ? f(ring.commFwdMs + (ring.commBwdMs ?? 0))
              : '-',
          ],
        ]),
      ),
    );
  }
  if (r.search) {
    out.push(
      table(
        [
          'impl',
          'ranks',
          'longest N',
          'fwd+bwd ms',
          'total TF/s/rank',
          'peak MiB/rank',
          'stopped by',
          'next trial',
        ],
        [r.search.flash, r.search.ring]
          .filter((s) => s !== null)
          .map((s) => [
            s.impl,
            String(s.ranks),
            s.longestN === null ? 'none' : String(s.longestN),
            f(s.longest?.totalMs),
            f(s.longest?.tflopsPerRank?.total, 3),
            s.longest ? f(s.longest.peakBytesPerRank! / MiB, 1) : '-',
            s.stoppedBy,
            s.stop ? `N = ${s.stop.N}: ${(s.stop.error ?? '').slice(0, 80)}` : '-',
          ]),
      ),
    );
  }
  return out.join('\n');
}

async function main(): Promise<number> {
  let a: RingBenchArgs;
  try {
    a = parseRingArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof ArgsError || (e instanceof Error && e.name === 'HelpRequested')) {
      const { usage } = await import('../lib/args.js');
      const help = e.name === 'HelpRequested';
      (help ? process.stdout : process.stderr).write(
        `${help ? '' : `ring-bench: ${e.message}\n\n`}${usage(RING_BENCH_SCHEMA, 'ring-bench')}\n`,
      );
      return help ? 0 : 2;
    }
    throw e;
  }
  const command = `node ring-bench.js ${process.argv.slice(2).join(' ')}`;
  const report = await runRingBench(a, (l) => process.stderr.write(`ring-bench: ${l}\n`), command);
  if (a.json) writeFileSync(a.json, JSON.stringify(report, null, 2) + '\n');
  process.stdout.write(formatRingReport(report) + '\n');
  return report.check.pass ? 0 : 1;
}

if (isMain(import.meta.url)) {
  const run = process.env['FLASHATTN_RING_JOB'] ? runRank() : main();
  run.then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(
        `ring-bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
      );
      process.exit(1);
    },
  );
}

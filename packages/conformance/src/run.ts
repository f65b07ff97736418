/**
 * runConformance(backend, opts): run a case matrix against a backend, compare forward (out, lse) and
 * backward (dq, dk, dv) with the float64 oracle under the tolerance rule (core's testing/tolerance.ts,
 * exported from `@flashattn/core/testing`), and return a
 * structured report. A failing case never throws; assertConformance turns failures into an Error.
 */
import {
  attentionReference64,
  attentionReferenceBackward64,
  freshSeed,
  toFloat32,
  zeros,
  type AttentionBackend,
  type AttentionForwardResult,
  type AttentionGradients,
  type DType,
  type Reference64,
  type ReferenceGrads64,
  type Tensor,
} from '@flashattn/core';
import {
  casesFor,
  matchesFilter,
  type CaseFilter,
  type ConformanceCase,
  type MatrixName,
} from './cases.js';
import {
  allowedError,
  coords,
  errorRatio,
  maskInfo,
  maxDeviation,
  naiveAttention,
  toleranceFor,
  withinTolerance,
  type MaskInfo,
  type NaiveResult,
  type Tolerance,
} from '@flashattn/core/testing';
import { makeInputs, type CaseInputs } from './inputs.js';

export type OutputName = 'out' | 'lse' | 'dq' | 'dk' | 'dv';

/** One output of one case under the tolerance rule. */
export interface OutputCheck {
  readonly output: OutputName;
  /** max |backend - oracle| (Infinity if the backend produced NaN/Inf where a number was due). */
  readonly errBackend: number;
  /** max |naive - oracle|. */
  readonly errNaive: number;
  /** 2 * errNaive + floor. */
  readonly allowed: number;
  /** errBackend / errNaive. */
  readonly ratio: number;
  readonly tolerance: Tolerance;
  readonly pass: boolean;
  /** Where the largest backend error is, e.g. `b=0 n=3 h=1 d=7`. */
  readonly worstAt: string;
  /** Set when the naive baseline is the float32-scores variant (a 16-bit case; see core's NaiveVariant). */
  readonly naiveScores?: 'float32';
}

export type CaseStatus = 'pass' | 'fail' | 'skip';

export interface CaseResult {
  readonly case: ConformanceCase;
  readonly backend: string;
  /** The run seed; the inputs are derived from (seed, case.id). */
  readonly seed: number;
  readonly caseSeed: number;
  readonly computeDType: DType;
  readonly status: CaseStatus;
  readonly pass: boolean;
  readonly skipReason?: string;
  /** Tolerance checks, out and lse first, then dq, dk, dv. */
  readonly checks: readonly OutputCheck[];
  /** Exact-check failures and exceptions, one line each. */
  readonly problems: readonly string[];
  /** Largest errBackend / errNaive over the checks (0 if none). */
  readonly maxRatio: number;
  readonly timeMs: {
    readonly forward: number;
    readonly backward: number;
    readonly oracle: number;
    readonly naive: number;
    readonly total: number;
  };
  /** One line on pass/skip; the full, reproducible failure report on fail. */
  readonly message: string;
}

export interface ConformanceReport {
  readonly backend: string;
  /** Matrix name, or 'custom' when explicit cases were given. */
  readonly matrix: string;
  readonly seed: number;
  readonly results: readonly CaseResult[];
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  /** True when no case failed. */
  readonly pass: boolean;
  readonly timeMs: number;
}

export interface RunCaseOptions {
  /** Run seed; default core's freshSeed(). */
  seed?: number;
  /** Check the backward too (default true). */
  backward?: boolean;
}

export interface RunConformanceOptions extends RunCaseOptions {
  /** Named matrix (default 'ci'); ignored when `cases` is given. */
  matrix?: MatrixName;
  /** Explicit case list instead of a named matrix. */
  cases?: readonly ConformanceCase[];
  /** Keep only matching cases (substring of the id, RegExp, or predicate). */
  filter?: CaseFilter;
  /** Called after each case (progress output). */
  onCase?: (result: CaseResult) => void;
}

/** Why a backend cannot run a case, from its capabilities; undefined if it can. */
export function unsupportedReason(
  backend: AttentionBackend,
  c: ConformanceCase,
): string | undefined {
  const caps = backend.capabilities;
  if (!caps.dtypes.includes(c.dtype)) {
    return `${backend.name} does not support dtype ${c.dtype} (supports ${caps.dtypes.join(', ')})`;
  }
  if (c.headDim > caps.maxHeadDim) {
    return `${backend.name} supports head dims up to ${caps.maxHeadDim}, case has ${c.headDim}`;
  }
  return undefined;
}

// ---- oracle and naive results, cached per (case, inputs), shared by every backend in this process.

interface Expected {
  oracle: Reference64;
  oracleGrads?: ReferenceGrads64;
  oracleMs: number;
}
const CACHE_LIMIT = 64;
const oracleCache = new Map<string, Expected>();
const naiveCache = new Map<string, { naive: NaiveResult; naiveMs: number }>();

function remember<T>(cache: Map<string, T>, key: string, value: T): T {
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  cache.set(key, value);
  return value;
}

function expectedFor(c: ConformanceCase, inp: CaseInputs, backward: boolean): Expected {
  const key = `${c.id}|${inp.caseSeed}`;
  const hit = oracleCache.get(key);
  if (hit && (hit.oracleGrads || !backward)) return hit;
  const t0 = performance.now();
  const oracle = attentionReference64(inp.q, inp.k, inp.v, inp.opts);
  // The float64 backward recomputes S and P from q, k; out and lse are only validated, so zeros do.
  const oracleGrads = backward
    ? attentionReferenceBackward64(
        inp.dout,
        inp.q,
        inp.k,
        inp.v,
        zeros(inp.q.shape, inp.q.dtype),
        new Float32Array(oracle.lse.length),
        inp.opts,
      )
    : undefined;
  return remember(oracleCache, key, { oracle, oracleGrads, oracleMs: performance.now() - t0 });
}

function naiveFor(c: ConformanceCase, inp: CaseInputs, cdt: DType, backward: boolean) {
  const key = `${c.id}|${inp.caseSeed}|${cdt}`;
  const hit = naiveCache.get(key);
  if (hit && (hit.naive.backward || !backward)) return hit;
  const t0 = performance.now();
  const naive = naiveAttention(inp.q, inp.k, inp.v, inp.opts, cdt, backward ? inp.dout : undefined);
  return remember(naiveCache, key, { naive, naiveMs: performance.now() - t0 });
}

// ---- one case

const QNAMES = ['b', 'n', 'h', 'd'] as const;
const LSE_NAMES = ['b', 'h', 'n'] as const;
const MAX_PROBLEMS_PER_CHECK = 4;

function errText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

function checkTensorMeta(
  name: string,
  t: unknown,
  dtype: DType,
  shape: readonly number[],
  problems: string[],
): t is Tensor {
  const tt = t as Partial<Tensor> | undefined;
  if (!tt || typeof tt !== 'object' || !tt.shape || !tt.data) {
    problems.push(`${name}: expected a Tensor, got ${String(t)}`);
    return false;
  }
  let ok = true;
  if (tt.dtype !== dtype) {
    problems.push(`${name}.dtype: expected ${dtype} (the input dtype), got ${String(tt.dtype)}`);
    ok = false;
  }
  if (tt.shape.length !== shape.length || tt.shape.some((s, a) => s !== shape[a])) {
    problems.push(`${name}.shape: expected [${shape.join(', ')}], got [${tt.shape.join(', ')}]`);
    ok = false;
  }
  if (ok && tt.data.length !== shape.reduce((a, b) => a * b, 1)) {
    problems.push(
      `${name}.data.length: expected ${shape.reduce((a, b) => a * b, 1)}, got ${tt.data.length}`,
    );
    ok = false;
  }
  return ok;
}

function check(
  output: OutputName,
  actual: ArrayLike<number>,
  oracle: ArrayLike<number>,
  naive: ArrayLike<number>,
  magnitude: number,
  recompute: number,
  cdt: DType,
  skip: (x: number) => boolean,
  shape: readonly number[],
  names: readonly string[],
  problems: string[],
): OutputCheck {
  let maxOracle = 0;
  for (let x = 0; x < oracle.length; x++) {
    if (!skip(x) && Math.abs(oracle[x]!) > maxOracle) maxOracle = Math.abs(oracle[x]!);
  }
  const tolerance = toleranceFor(cdt, { output: maxOracle, abs: magnitude, recompute });
  const dB = maxDeviation(actual, oracle, skip);
  const dN = maxDeviation(naive, oracle, skip);
  const allowed = allowedError(tolerance, dN.maxErr);
  const worstAt = dB.at >= 0 ? coords(dB.at, shape, names) : '-';
  if (dN.nonFinite > 0) {
    // The rule would allow anything; the case does not fit the compute dtype's range.
    problems.push(
      `${output}: the naive ${cdt} baseline overflowed (${dN.nonFinite} non-finite values); case out of range`,
    );
  }
  if (dB.nonFinite > 0) {
    problems.push(
      `${output}: ${dB.nonFinite} non-finite value(s), first ${actual[dB.at]} at ${worstAt}`,
    );
  }
  return {
    output,
    errBackend: dB.maxErr,
    errNaive: dN.maxErr,
    allowed,
    ratio: errorRatio(dB.maxErr, dN.maxErr),
    tolerance,
    pass: withinTolerance(dB.maxErr, dN.maxErr, tolerance),
    worstAt,
  };
}

/** Exact checks: rows in `rows` of a (.., N, H, D) tensor must be exactly 0. */
function checkZeroRows(
  name: string,
  data: ArrayLike<number>,
  shape: readonly number[],
  rows: Uint8Array,
  what: string,
  problems: string[],
): void {
  const [, N, H, D] = shape as [number, number, number, number];
  let bad = 0;
  for (let x = 0; x < data.length; x++) {
    const n = Math.floor(x / (H * D)) % N;
    if (rows[n] && data[x] !== 0) {
      if (bad < MAX_PROBLEMS_PER_CHECK) {
        problems.push(
          `${name} at ${coords(x, shape, QNAMES)} (${what}): expected exactly 0, got ${data[x]}`,
        );
      }
      bad++;
    }
  }
  if (bad > MAX_PROBLEMS_PER_CHECK)
    problems.push(`${name}: ... ${bad - MAX_PROBLEMS_PER_CHECK} more nonzero (${what})`);
}

function checkLseRows(
  lse: Float32Array,
  shape: readonly number[],
  mask: MaskInfo,
  problems: string[],
): void {
  const N = shape[2]!;
  let bad = 0;
  for (let x = 0; x < lse.length; x++) {
    const masked = mask.maskedRows[x % N] === 1;
    const v = lse[x]!;
    const ok = masked ? v === -Infinity : Number.isFinite(v);
    if (!ok) {
      if (bad < MAX_PROBLEMS_PER_CHECK) {
        problems.push(
          `lse at ${coords(x, shape, LSE_NAMES)}: expected ${masked ? '-Infinity (fully masked row)' : 'a finite number'}, got ${v}`,
        );
      }
      bad++;
    }
  }
  if (bad > MAX_PROBLEMS_PER_CHECK)
    problems.push(`lse: ... ${bad - MAX_PROBLEMS_PER_CHECK} more wrong`);
}

function fmt(x: number): string {
  if (x === 0 || !Number.isFinite(x)) return String(x);
  return x.toExponential(2);
}

/** The command line that reruns exactly this case with the same inputs. */
export function reproduceHint(seed: number, c: ConformanceCase): string {
  return (
    `reproduce: runConformance(backend, { seed: ${seed}, filter: '${c.id}' }) ` +
    `or FLASHATTN_CONFORMANCE_SEED=${seed} vitest run -t '${c.id}'`
  );
}

function describeCheck(ch: OutputCheck): string {
  const verdict = ch.pass ? 'ok  ' : 'FAIL';
  return (
    `  ${verdict} ${ch.output.padEnd(3)} err ${fmt(ch.errBackend)} ${ch.pass ? '<=' : '>'} allowed ${fmt(ch.allowed)}` +
    ` = 2 x naive${ch.naiveScores ? ' (float32 S)' : ''} ${fmt(ch.errNaive)} + floor ${fmt(ch.tolerance.floor)}` +
    ` (rounding ${fmt(ch.tolerance.rounding)} + accumulation ${fmt(ch.tolerance.accumulation)}` +
    (ch.tolerance.recompute > 0
      ? ` + ${ch.output === 'out' ? 'score rounding' : ch.output === 'lse' ? 'score order' : 'recompute'} ${fmt(ch.tolerance.recompute)})`
      : ')') +
    `; ratio ${Number.isFinite(ch.ratio) ? ch.ratio.toFixed(2) : ch.ratio}; worst at ${ch.worstAt}`
  );
}

/** Multi-line text of one case result (what a failing test prints). */
export function formatCaseResult(r: CaseResult): string {
  const head =
    `conformance ${r.status === 'fail' ? 'FAILED' : r.status === 'skip' ? 'skipped' : 'passed'}: ` +
    `backend=${r.backend} case="${r.case.id}" seed=${r.seed} (case seed ${r.caseSeed}) compute=${r.computeDType}`;
  if (r.status === 'skip') return `${head}: ${r.skipReason}`;
  const lines = [head, ...r.checks.map(describeCheck), ...r.problems.map((p) => `  FAIL ${p}`)];
  if (r.status === 'fail') lines.push(`  ${reproduceHint(r.seed, r.case)}`);
  return lines.join('\n');
}

/** Run one case against a backend. Never throws for a wrong result or a backend exception. */
export async function runCase(
  backend: AttentionBackend,
  c: ConformanceCase,
  opts: RunCaseOptions = {},
): Promise<CaseResult> {
  const seed = (opts.seed ?? freshSeed()) >>> 0;
  const backward = opts.backward ?? true;
  const tStart = performance.now();
  const inp = makeInputs(c, seed);
  const skipReason = unsupportedReason(backend, c);
  const timeMs = { forward: 0, backward: 0, oracle: 0, naive: 0, total: 0 };
  let cdt: DType = c.dtype;
  const problems: string[] = [];
  const checks: OutputCheck[] = [];

  const finish = (status: CaseStatus, reason?: string): CaseResult => {
    timeMs.total = performance.now() - tStart;
    const maxRatio = checks.reduce(
      (m, ch) => (ch.ratio > m || Number.isNaN(ch.ratio) ? ch.ratio : m),
      0,
    );
    const partial = {
      case: c,
      backend: backend.name,
      seed,
      caseSeed: inp.caseSeed,
      computeDType: cdt,
      status,
      pass: status !== 'fail',
      ...(reason !== undefined ? { skipReason: reason } : {}),
      checks,
      problems,
      maxRatio,
      timeMs,
      message: '',
    };
    return { ...partial, message: formatCaseResult(partial) };
  };

  if (skipReason) return finish('skip', skipReason);
  try {
    cdt = backend.capabilities.computeDType(c.dtype);
  } catch (e) {
    problems.push(`capabilities.computeDType(${c.dtype}) threw ${errText(e)}`);
    return finish('fail');
  }

  const { q, k, v, dout } = inp;
  const qShape = q.shape;
  const kShape = k.shape;
  const lseShape = [c.batch, c.nheadsQ, c.seqlenQ];
  const mask = maskInfo(c.seqlenQ, c.seqlenK, c.headDim, inp.opts);
  const rowOf = (x: number): number => Math.floor(x / (c.nheadsQ * c.headDim)) % c.seqlenQ;
  const keyOf = (x: number): number => Math.floor(x / (c.nheadsK * c.headDim)) % c.seqlenK;
  const skipMaskedRow = (x: number): boolean => mask.maskedRows[rowOf(x)] === 1;
  const skipMaskedLse = (x: number): boolean => mask.maskedRows[x % c.seqlenQ] === 1;
  const skipUnseenKey = (x: number): boolean => mask.unseenKeys[keyOf(x)] === 1;

  // Forward.
  let fwd: AttentionForwardResult | undefined;
  try {
    const t0 = performance.now();
    fwd = await backend.forward(q, k, v, inp.opts);
    timeMs.forward = performance.now() - t0;
  } catch (e) {
    problems.push(`forward threw ${errText(e)}`);
  }

  const expected = expectedFor(c, inp, backward);
  timeMs.oracle = expected.oracleMs;
  const { naive, naiveMs } = naiveFor(c, inp, cdt, backward);
  timeMs.naive = naiveMs;
  // Each check as a function of the naive baseline, so a failing 16-bit check can be judged again against
  // the float32-scores baseline (below).
  type Judge = (n: NaiveResult, into: string[]) => OutputCheck;
  const judges: Judge[] = [];
  const judge = (j: Judge): OutputCheck => {
    judges.push(j);
    return j(naive, problems);
  };

  let fwdOk = false;
  if (fwd) {
    const outOk = checkTensorMeta('out', fwd.out, q.dtype, qShape, problems);
    const lseOk =
      fwd.lse instanceof Float32Array && fwd.lse.length === lseShape.reduce((a, b) => a * b, 1);
    if (!lseOk) {
      problems.push(
        `lse: expected a Float32Array of length ${lseShape.reduce((a, b) => a * b, 1)} (B, Hq, Nq), got ${String(fwd.lse?.constructor?.name)} of length ${String(fwd.lse?.length)}`,
      );
    }
    if (outOk) {
      const outF = toFloat32(fwd.out);
      checks.push(
        judge((n, into) =>
          check(
            'out',
            outF,
            expected.oracle.out,
            n.forward.out,
            n.forward.outAbs,
            n.forward.outRescore,
            cdt,
            skipMaskedRow,
            qShape,
            QNAMES,
            into,
          ),
        ),
      );
      if (mask.anyMaskedRow)
        checkZeroRows('out', outF, qShape, mask.maskedRows, 'fully masked row', problems);
    }
    if (lseOk) {
      const lseOut = fwd.lse;
      checks.push(
        judge((n, into) =>
          check(
            'lse',
            lseOut,
            expected.oracle.lse,
            n.forward.lse,
            n.forward.lseAbs,
            n.forward.lseRescore,
            cdt,
            skipMaskedLse,
            lseShape,
            LSE_NAMES,
            into,
          ),
        ),
      );
      checkLseRows(fwd.lse, lseShape, mask, problems);
    }
    fwdOk = outOk && lseOk;
  }

  // Backward, fed with the backend's own out and lse, as a user would call it.
  if (backward && fwd && fwdOk) {
    let grads: AttentionGradients | undefined;
    try {
      const t0 = performance.now();
      grads = await backend.backward(dout, q, k, v, fwd.out, fwd.lse, inp.opts);
      timeMs.backward = performance.now() - t0;
    } catch (e) {
      problems.push(`backward threw ${errText(e)}`);
    }
    const og = expected.oracleGrads!;
    if (grads) {
      if (checkTensorMeta('dq', grads.dq, q.dtype, qShape, problems)) {
        const dq = toFloat32(grads.dq);
        checks.push(
          judge((n, into) =>
            check(
              'dq',
              dq,
              og.dq,
              n.backward!.dq,
              n.backward!.dqAbs,
              n.backward!.dqRecompute,
              cdt,
              skipMaskedRow,
              qShape,
              QNAMES,
              into,
            ),
          ),
        );
        if (mask.anyMaskedRow)
          checkZeroRows('dq', dq, qShape, mask.maskedRows, 'fully masked row', problems);
      }
      for (const name of ['dk', 'dv'] as const) {
        if (!checkTensorMeta(name, grads[name], q.dtype, kShape, problems)) continue;
        const g = toFloat32(grads[name]);
        checks.push(
          judge((n, into) => {
            const ng = n.backward!;
            return check(
              name,
              g,
              og[name],
              ng[name],
              name === 'dk' ? ng.dkAbs : ng.dvAbs,
              name === 'dk' ? ng.dkRecompute : ng.dvRecompute,
              cdt,
              skipUnseenKey,
              kShape,
              QNAMES,
              into,
            );
          }),
        );
        if (mask.anyUnseenKey)
          checkZeroRows(name, g, kShape, mask.unseenKeys, 'key seen by no query', problems);
      }
    }
  }

  // A 16-bit case is judged against the worse of two same-precision baselines: S rounded to c (PyTorch's math
  // SDPA, the default) or kept in float32 (fused kernels); see core's NaiveVariant for why. The second is only
  // computed when a check fails against the first.
  if (cdt !== 'float32' && checks.some((ch) => !ch.pass)) {
    const t0 = performance.now();
    const alt = naiveAttention(q, k, v, inp.opts, cdt, backward ? dout : undefined, {
      scores: 'float32',
    });
    timeMs.naive += performance.now() - t0;
    for (let i = 0; i < checks.length; i++) {
      if (checks[i]!.pass) continue;
      const again = judges[i]!(alt, []);
      if (again.allowed > checks[i]!.allowed) checks[i] = { ...again, naiveScores: 'float32' };
    }
  }

  const pass = problems.length === 0 && checks.every((ch) => ch.pass);
  return finish(pass ? 'pass' : 'fail');
}

/**
 * Run a matrix (default 'ci') against a backend. Cases the backend's capabilities exclude are
 * reported as skipped with the reason. Never throws for a failing case.
 */
export async function runConformance(
  backend: AttentionBackend,
  opts: RunConformanceOptions = {},
): Promise<ConformanceReport> {
  const seed = (opts.seed ?? freshSeed()) >>> 0;
  const matrix = opts.cases ? 'custom' : (opts.matrix ?? 'ci');
  const cases = (opts.cases ?? casesFor(opts.matrix ?? 'ci')).filter((c) =>
    matchesFilter(c, opts.filter),
  );
  const t0 = performance.now();
  const results: CaseResult[] = [];
  for (const c of cases) {
    const r = await runCase(backend, c, { seed, backward: opts.backward ?? true });
    results.push(r);
    opts.onCase?.(r);
  }
  const count = (s: CaseStatus): number => results.filter((r) => r.status === s).length;
  return {
    backend: backend.name,
    matrix,
    seed,
    results,
    passed: count('pass'),
    failed: count('fail'),
    skipped: count('skip'),
    pass: count('fail') === 0,
    timeMs: performance.now() - t0,
  };
}

/** A summary table: one row per case with status, max ratio and times. */
export function formatReport(report: ConformanceReport): string {
  const rows = report.results.map((r) => {
    const ratio =
      r.status === 'skip'
        ? '-'
        : Number.isFinite(r.maxRatio)
          ? r.maxRatio.toFixed(2)
          : String(r.maxRatio);
    return `${r.status.padEnd(4)}  ${r.case.id.padEnd(44)} ratio ${ratio.padStart(6)}  fwd ${r.timeMs.forward.toFixed(1).padStart(8)} ms  bwd ${r.timeMs.backward.toFixed(1).padStart(8)} ms`;
  });
  return [
    `conformance ${report.backend} [${report.matrix}] seed=${report.seed}: ${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped (${(report.timeMs / 1000).toFixed(1)} s)`,
    ...rows,
  ].join('\n');
}

/** Thrown by assertConformance; `failures` holds the failing case results. */
export class ConformanceError extends Error {
  readonly failures: readonly CaseResult[];
  constructor(failures: readonly CaseResult[]) {
    super(
      `${failures.length} conformance case(s) failed:\n` +
        failures.map((f) => f.message).join('\n\n'),
    );
    this.name = 'ConformanceError';
    this.failures = failures;
  }
}

/** Throw a ConformanceError (message: seed, case and errors of each failure) if anything failed. */
export function assertConformance(result: ConformanceReport | CaseResult): void {
  const results = 'results' in result ? result.results : [result];
  const failures = results.filter((r) => r.status === 'fail');
  if (failures.length > 0) throw new ConformanceError(failures);
}

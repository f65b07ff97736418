/**
 * runOpsConformance(ops, opts): every ops case in every float dtype the backend lists, compared with
 * core's float64 reference ops under the repo's one tolerance rule (@flashattn/core/testing):
 *
 *   err_backend <= 2 * err_naive + u(c) max|X_oracle| + u_acc max|X|_abs,   c = ops.computeDType(dtype)
 *
 * plus exact checks: inputs unchanged, nothing written outside a view, no NaN/Inf. Then a few bad
 * calls that must throw OpsInputError and write nothing. Never throws for a failing backend.
 */
import {
  OpsInputError,
  freshSeed,
  hasDeviceStep,
  type BufferDType,
  type Ops,
} from '@flashattn/core';
import {
  allowedError,
  errorRatio,
  maxDeviation,
  toleranceFor,
  withinTolerance,
  type Tolerance,
} from '@flashattn/core/testing';
import { caseSeedOf } from '../inputs.js';
import { createRng } from '@flashattn/core';
import { opsCasesFor, type OpsCase, type OpsMatrixName } from './cases.js';
import {
  FLOAT_BUFFER_DTYPES,
  coarser,
  hostArrayFor,
  roundToDType,
  valuesOf,
  type ComputeDTypeLike,
} from './dtypes.js';
import { precisionOf } from './naive.js';
import { DEVICE_STEP_OPS, type OpName, type OpProblem } from './problems.js';

export interface OpsOutputCheck {
  readonly output: string;
  readonly errBackend: number;
  readonly errNaive: number;
  readonly allowed: number;
  readonly ratio: number;
  readonly tolerance: Tolerance;
  readonly pass: boolean;
  /** Flat index of the worst element. */
  readonly worstAt: number;
}

export type OpsCaseStatus = 'pass' | 'fail' | 'skip';

export interface OpsCaseResult {
  /** `<case id> <dtype>`, e.g. `matmul M5 N7 K3 transA f32`. */
  readonly id: string;
  readonly case: OpsCase;
  readonly op: OpName | 'input-checks';
  readonly dtype: ComputeDTypeLike;
  readonly computeDType: ComputeDTypeLike;
  readonly backend: string;
  readonly seed: number;
  readonly status: OpsCaseStatus;
  readonly checks: readonly OpsOutputCheck[];
  readonly problems: readonly string[];
  readonly message: string;
}

export interface OpsConformanceReport {
  readonly backend: string;
  readonly matrix: string;
  readonly seed: number;
  readonly results: readonly OpsCaseResult[];
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  readonly pass: boolean;
  /** Ops with at least one failed case (what a broken backend must be named by). */
  readonly failedOps: readonly (OpName | 'input-checks')[];
  readonly timeMs: number;
}

export interface RunOpsConformanceOptions {
  /** 'ci' (default) or 'full'. */
  matrix?: OpsMatrixName;
  cases?: readonly OpsCase[];
  seed?: number;
  /** Substring of `<case id> <dtype tag>` or a predicate. */
  filter?: string | ((id: string) => boolean);
  /** Run the bad-input checks (default true). */
  inputChecks?: boolean;
  onCase?: (r: OpsCaseResult) => void;
}

const u64 = 2 ** -53;
const TAG: Record<ComputeDTypeLike, string> = {
  float64: 'f64',
  float32: 'f32',
  float16: 'f16',
  bfloat16: 'bf16',
};

/** The float dtypes of a backend the suite runs in. */
export function opsFloatDTypes(ops: Pick<Ops<unknown>, 'dtypes'>): ComputeDTypeLike[] {
  return FLOAT_BUFFER_DTYPES.filter((d) => ops.dtypes.includes(d));
}

const errText = (e: unknown): string =>
  e instanceof Error ? `${e.name}: ${e.message}` : String(e);
const fmt = (x: number): string =>
  x === 0 || !Number.isFinite(x) ? String(x) : x.toExponential(2);

/** Where the suite put one problem buffer. */
interface Placed<Buf> {
  buf: Buf;
  /** The buffer downloaded to check padding (the arena view), and where this buffer lies in it. */
  arena?: { buf: Buf; dtype: BufferDType; offset: number; length: number };
}

const LEAD = 5; // elements before the first view of an arena
const GAP = 3; // elements between views
const ROOT_OFFSET = 2; // the arena is itself a view at this offset of its allocation

async function placeBuffers<Buf>(
  ops: Ops<Buf>,
  pr: OpProblem,
  views: boolean,
  roots: Buf[],
): Promise<{
  bufs: Record<string, Buf>;
  placed: Record<string, Placed<Buf>>;
  arenas: { buf: Buf; dtype: BufferDType; covered: Uint8Array }[];
}> {
  const bufs: Record<string, Buf> = {};
  const placed: Record<string, Placed<Buf>> = {};
  const arenas: { buf: Buf; dtype: BufferDType; covered: Uint8Array }[] = [];
  const names = Object.keys(pr.buffers);
  if (!views) {
    for (const n of names) {
      const b = pr.buffers[n]!;
      const buf = ops.alloc(b.data.length, b.dtype);
      roots.push(buf);
      if (b.data.length > 0) await ops.upload(buf, hostArrayFor(b.dtype, b.data));
      bufs[n] = buf;
      placed[n] = { buf };
    }
    return { bufs, placed, arenas };
  }
  // One arena per dtype: an allocation, a view of it at ROOT_OFFSET, and each buffer a view of that view
  // (views of views) at LEAD + ..., separated by GAP elements of NaN (int32: a sentinel).
  const byDtype = new Map<BufferDType, string[]>();
  for (const n of names)
    byDtype.set(pr.buffers[n]!.dtype, [...(byDtype.get(pr.buffers[n]!.dtype) ?? []), n]);
  for (const [dtype, ns] of byDtype) {
    let length = LEAD;
    const offsets: number[] = [];
    for (const n of ns) {
      offsets.push(length);
      length += pr.buffers[n]!.data.length + GAP;
    }
    const host = new Float64Array(length).fill(dtype === 'int32' ? 0x7fffffff : NaN);
    const covered = new Uint8Array(length);
    ns.forEach((n, i) => {
      host.set(pr.buffers[n]!.data, offsets[i]);
      covered.fill(1, offsets[i], offsets[i]! + pr.buffers[n]!.data.length);
    });
    const root = ops.alloc(length + ROOT_OFFSET, dtype);
    roots.push(root);
    const arena = ops.view(root, ROOT_OFFSET, length);
    await ops.upload(arena, hostArrayFor(dtype, host));
    ns.forEach((n, i) => {
      const len = pr.buffers[n]!.data.length;
      bufs[n] = ops.view(arena, offsets[i]!, len);
      placed[n] = { buf: bufs[n]!, arena: { buf: arena, dtype, offset: offsets[i]!, length: len } };
    });
    if (dtype !== 'int32') arenas.push({ buf: arena, dtype, covered });
  }
  return { bufs, placed, arenas };
}

/** Run one case in one dtype. */
export async function runOpsCase<Buf>(
  ops: Ops<Buf>,
  c: OpsCase,
  dtype: ComputeDTypeLike,
  opts: { seed?: number } = {},
): Promise<OpsCaseResult> {
  const seed = (opts.seed ?? freshSeed()) >>> 0;
  const id = `${c.id} ${TAG[dtype]}`;
  const problems: string[] = [];
  const checks: OpsOutputCheck[] = [];
  let cdt: ComputeDTypeLike = dtype;
  const finish = (status: OpsCaseStatus, reason?: string): OpsCaseResult => {
    const head =
      `ops conformance ${status === 'fail' ? 'FAILED' : status === 'skip' ? 'skipped' : 'passed'}: ` +
      `backend=${ops.name} case="${id}" op=${c.op} seed=${seed} compute=${cdt}`;
    const lines = [head + (reason ? `: ${reason}` : '')];
    for (const ch of checks) {
      lines.push(
        `  ${ch.pass ? 'ok  ' : 'FAIL'} ${ch.output} err ${fmt(ch.errBackend)} ${ch.pass ? '<=' : '>'} allowed ${fmt(ch.allowed)}` +
          ` = 2 x naive ${fmt(ch.errNaive)} + floor ${fmt(ch.tolerance.floor)} (rounding ${fmt(ch.tolerance.rounding)}` +
          ` + accumulation ${fmt(ch.tolerance.accumulation)}${ch.tolerance.recompute > 0 ? ` + float64 oracle ${fmt(ch.tolerance.recompute)}` : ''}); ratio ${Number.isFinite(ch.ratio) ? ch.ratio.toFixed(2) : ch.ratio}; worst at [${ch.worstAt}]`,
      );
    }
    for (const p of problems) lines.push(`  FAIL ${p}`);
    if (status === 'fail') {
      lines.push(
        `  reproduce: runOpsConformance(ops, { seed: ${seed}, filter: '${id}' }) or FLASHATTN_CONFORMANCE_SEED=${seed} vitest run -t '${id}'`,
      );
    }
    return {
      id,
      case: c,
      op: c.op,
      dtype,
      computeDType: cdt,
      backend: ops.name,
      seed,
      status,
      checks,
      problems,
      message: lines.join('\n'),
    };
  };
  if (!ops.dtypes.includes(dtype)) return finish('skip', `${ops.name} has no ${dtype} buffers`);
  if (DEVICE_STEP_OPS.has(c.op) && !hasDeviceStep(ops))
    return finish('skip', `${ops.name} has no DeviceStepOps (sumTo, adamwFrom)`);

  const rng = createRng(caseSeedOf(seed, id));
  const pr = c.build({ rng, dt: dtype, mag: c.mag });
  try {
    cdt = ops.computeDType(pr.computeOf ?? dtype) as ComputeDTypeLike;
  } catch (e) {
    problems.push(`computeDType(${dtype}) threw ${errText(e)}`);
    return finish('fail');
  }
  const roots: Buf[] = [];
  try {
    const { bufs, placed, arenas } = await placeBuffers(ops, pr, c.views, roots);
    let scalar: number | void;
    try {
      scalar = await pr.call(ops, bufs);
    } catch (e) {
      problems.push(`${c.op} threw ${errText(e)}`);
      return finish('fail');
    }
    const oracle = pr.oracle();
    const naive = pr.naive(precisionOf(cdt));
    for (const [name, ref] of Object.entries(oracle)) {
      let actual: Float64Array;
      let storage: ComputeDTypeLike;
      if (name === 'result') {
        if (typeof scalar !== 'number') {
          problems.push(`${c.op} returned ${String(scalar)}, expected a number`);
          continue;
        }
        actual = Float64Array.of(scalar);
        storage = 'float64';
      } else {
        const b = pr.buffers[name]!;
        storage = b.dtype as ComputeDTypeLike;
        actual = valuesOf(b.dtype, await ops.download(bufs[name]!));
      }
      const naiveV = naive.values[name]!.map((x) => roundToDType(x, storage));
      let maxOracle = 0;
      for (const x of ref) maxOracle = Math.max(maxOracle, Math.abs(x));
      // The oracle is itself float64: when the backend computes in float64 too, the oracle's own error,
      // up to gamma_n |X|_abs (n = naive.terms roundings in any order), is no longer negligible and
      // joins the floor as its third term. For narrower compute dtypes it is below 1e-9 of the floor.
      const cOut = coarser(cdt, storage);
      const nu = naive.terms * u64;
      const oracleOwn = cOut === 'float64' ? (nu / (1 - nu)) * naive.abs[name]! : 0;
      const tolerance = toleranceFor(cOut, {
        output: maxOracle,
        abs: naive.abs[name]!,
        recompute: oracleOwn,
      });
      if (actual.length !== ref.length) {
        problems.push(`${name}: ${actual.length} values, expected ${ref.length}`);
        continue;
      }
      const dB = maxDeviation(actual, ref);
      const dN = maxDeviation(naiveV, ref);
      if (dN.nonFinite > 0)
        problems.push(`${name}: the naive ${cdt} baseline overflowed; case out of range`);
      if (dB.nonFinite > 0)
        problems.push(
          `${name}: ${dB.nonFinite} non-finite value(s), first ${actual[dB.at]} at [${dB.at}]`,
        );
      checks.push({
        output: name,
        errBackend: dB.maxErr,
        errNaive: dN.maxErr,
        allowed: allowedError(tolerance, dN.maxErr),
        ratio: errorRatio(dB.maxErr, dN.maxErr),
        tolerance,
        pass: withinTolerance(dB.maxErr, dN.maxErr, tolerance),
        worstAt: dB.at,
      });
    }
    // Inputs must be unchanged (bit for bit), padding between views untouched.
    for (const [name, b] of Object.entries(pr.buffers)) {
      if (b.output || name in oracle) continue;
      const now = valuesOf(b.dtype, await ops.download(placed[name]!.buf));
      const changed = now.findIndex(
        (x, i) => !Object.is(x, b.data[i]!) && !(x === 0 && b.data[i] === 0),
      );
      if (changed >= 0)
        problems.push(
          `input ${name} changed at [${changed}]: ${b.data[changed]} -> ${now[changed]}`,
        );
    }
    for (const a of arenas) {
      const raw = valuesOf(a.dtype, await ops.download(a.buf));
      const bad = raw.findIndex((x, i) => !a.covered[i] && !Number.isNaN(x));
      if (bad >= 0) {
        problems.push(
          `${a.dtype} element ${bad} of the shared buffer lies outside every view but was written (${raw[bad]}): an offset or length is ignored`,
        );
      }
    }
  } catch (e) {
    problems.push(`setup or readback threw ${errText(e)}`);
  } finally {
    for (const r of roots) {
      try {
        ops.free(r);
      } catch (e) {
        problems.push(`free threw ${errText(e)}`);
      }
    }
  }
  const pass = problems.length === 0 && checks.every((ch) => ch.pass);
  return finish(pass ? 'pass' : 'fail');
}

// ---- bad inputs: OpsInputError naming the argument, and nothing written

interface BadCall {
  what: string;
  /** A substring the error's `argument` must contain. */
  argument: string;
  run<Buf>(
    ops: Ops<Buf>,
    mk: (n: number, dt: BufferDType) => Promise<Buf>,
    dt: BufferDType,
  ): Promise<{ call: () => unknown; watch: Buf[] }>;
}

const BAD_CALLS: readonly BadCall[] = [
  {
    what: 'matmul with out one element short',
    argument: 'out',
    async run(ops, mk, dt) {
      const out = await mk(3 * 4 - 1, dt);
      const a = await mk(3 * 5, dt);
      const b = await mk(5 * 4, dt);
      return { call: () => ops.matmul(out, a, b, 3, 4, 5), watch: [out, a, b] };
    },
  },
  {
    what: 'matmul with an int32 a',
    argument: 'a',
    async run(ops, mk, dt) {
      const out = await mk(3 * 4, dt);
      const a = await mk(3 * 5, 'int32');
      const b = await mk(5 * 4, dt);
      return { call: () => ops.matmul(out, a, b, 3, 4, 5), watch: [out, b] };
    },
  },
  {
    what: 'matmul with a bias and accumulate',
    argument: 'opts',
    async run(ops, mk, dt) {
      const out = await mk(3 * 4, dt);
      const a = await mk(3 * 5, dt);
      const b = await mk(5 * 4, dt);
      const bias = await mk(4, dt);
      return {
        call: () => ops.matmul(out, a, b, 3, 4, 5, { accumulate: true, bias }),
        watch: [out],
      };
    },
  },
  {
    what: 'geluForward with n past the end of inp',
    argument: 'inp',
    async run(ops, mk, dt) {
      const out = await mk(9, dt);
      const inp = await mk(8, dt);
      return { call: () => ops.geluForward(out, inp, 9), watch: [out, inp] };
    },
  },
  {
    what: 'add with out longer than n (the contract takes exact lengths: pass a view)',
    argument: 'out',
    async run(ops, mk, dt) {
      const out = await mk(9, dt);
      const a = await mk(8, dt);
      const b = await mk(8, dt);
      return { call: () => ops.add(out, a, b, 8), watch: [out, a, b] };
    },
  },
  {
    what: 'scale by Infinity',
    argument: 's',
    async run(ops, mk, dt) {
      const x = await mk(4, dt);
      return { call: () => ops.scale(x, Infinity), watch: [x] };
    },
  },
  {
    what: 'softmaxCrossEntropy with float targets',
    argument: 'targets',
    async run(ops, mk, dt) {
      const losses = await mk(2, ops.dtypes.includes('float32') ? 'float32' : dt);
      const dl = await mk(2 * 5, dt);
      const logits = await mk(2 * 5, dt);
      const targets = await mk(2, dt);
      return {
        call: () => ops.softmaxCrossEntropy(losses, dl, logits, targets, 2, 5, 1),
        watch: [losses, dl],
      };
    },
  },
  {
    what: 'layernormForward with rstd one element short',
    argument: 'rstd',
    async run(ops, mk, dt) {
      const st = dt === 'float64' ? 'float64' : 'float32';
      const out = await mk(3 * 4, dt);
      const mean = await mk(3, st);
      const rstd = await mk(2, st);
      const inp = await mk(3 * 4, dt);
      const w = await mk(4, dt);
      const b = await mk(4, dt);
      return {
        call: () => ops.layernormForward(out, mean, rstd, inp, w, b, 3, 4),
        watch: [out, mean, rstd],
      };
    },
  },
  {
    what: 'view past the end of its buffer',
    argument: '',
    async run(ops, mk, dt) {
      const buf = await mk(10, dt);
      return { call: () => ops.view(buf, 4, 7), watch: [buf] };
    },
  },
  {
    what: 'view of a view past the end of the outer view',
    argument: '',
    async run(ops, mk, dt) {
      const buf = await mk(10, dt);
      const outer = ops.view(buf, 2, 6);
      return { call: () => ops.view(outer, 3, 4), watch: [buf] };
    },
  },
];

/** The bad-input checks in one dtype: each call must throw OpsInputError and change no buffer. */
export async function runOpsInputChecks<Buf>(
  ops: Ops<Buf>,
  dtype: ComputeDTypeLike,
  seed: number,
): Promise<OpsCaseResult> {
  const problems: string[] = [];
  const rng = createRng(caseSeedOf(seed, `input-checks ${dtype}`));
  for (const bad of BAD_CALLS) {
    const roots: Buf[] = [];
    const contents = new Map<Buf, Float64Array>();
    const mk = async (n: number, dt: BufferDType): Promise<Buf> => {
      const b = ops.alloc(n, dt);
      roots.push(b);
      const v = Float64Array.from({ length: n }, () =>
        dt === 'int32' ? rng.int(3) : roundToDType(rng.normal(), dt as ComputeDTypeLike),
      );
      if (n > 0) await ops.upload(b, hostArrayFor(dt, v));
      contents.set(b, v);
      return b;
    };
    try {
      const { call, watch } = await bad.run(ops, mk, dtype);
      let thrown: unknown;
      try {
        await call();
      } catch (e) {
        thrown = e;
      }
      if (thrown === undefined) problems.push(`${bad.what}: no error`);
      else if (!(thrown instanceof OpsInputError))
        problems.push(`${bad.what}: threw ${errText(thrown)}, expected OpsInputError`);
      else if (!thrown.argument.includes(bad.argument)) {
        problems.push(
          `${bad.what}: OpsInputError names '${thrown.argument}', expected it to name '${bad.argument}'`,
        );
      }
      for (const w of watch) {
        const dt = ops.dtypeOf(w);
        const now = valuesOf(dt, await ops.download(w));
        const was = contents.get(w)!;
        if (now.some((x, i) => x !== was[i]))
          problems.push(`${bad.what}: a buffer changed although the call was rejected`);
      }
    } catch (e) {
      problems.push(`${bad.what}: setup threw ${errText(e)}`);
    } finally {
      for (const r of roots) ops.free(r);
    }
  }
  const id = `input-checks ${TAG[dtype]}`;
  const status: OpsCaseStatus = problems.length ? 'fail' : 'pass';
  const head = `ops conformance ${status === 'fail' ? 'FAILED' : 'passed'}: backend=${ops.name} case="${id}" seed=${seed}`;
  return {
    id,
    case: {
      id: 'input-checks',
      op: 'matmul',
      mag: { std: 1 },
      views: false,
      build: () => {
        throw new Error('not a numeric case');
      },
    },
    op: 'input-checks',
    dtype,
    computeDType: dtype,
    backend: ops.name,
    seed,
    status,
    checks: [],
    problems,
    message: [head, ...problems.map((p) => `  FAIL ${p}`)].join('\n'),
  };
}

function matches(id: string, f: RunOpsConformanceOptions['filter']): boolean {
  if (f === undefined) return true;
  return typeof f === 'string' ? id.includes(f) : f(id);
}

/** Every case (default matrix 'ci') in every float dtype of the backend, then the input checks. */
export async function runOpsConformance<Buf>(
  ops: Ops<Buf>,
  opts: RunOpsConformanceOptions = {},
): Promise<OpsConformanceReport> {
  const seed = (opts.seed ?? freshSeed()) >>> 0;
  const cases = opts.cases ?? opsCasesFor(opts.matrix ?? 'ci');
  const t0 = performance.now();
  const results: OpsCaseResult[] = [];
  for (const dt of opsFloatDTypes(ops)) {
    for (const c of cases) {
      if (!matches(`${c.id} ${TAG[dt]}`, opts.filter)) continue;
      const r = await runOpsCase(ops, c, dt, { seed });
      results.push(r);
      opts.onCase?.(r);
    }
    if ((opts.inputChecks ?? true) && matches(`input-checks ${TAG[dt]}`, opts.filter)) {
      const r = await runOpsInputChecks(ops, dt, seed);
      results.push(r);
      opts.onCase?.(r);
    }
  }
  const count = (s: OpsCaseStatus): number => results.filter((r) => r.status === s).length;
  return {
    backend: ops.name,
    matrix: opts.cases ? 'custom' : (opts.matrix ?? 'ci'),
    seed,
    results,
    passed: count('pass'),
    failed: count('fail'),
    skipped: count('skip'),
    pass: count('fail') === 0,
    failedOps: [...new Set(results.filter((r) => r.status === 'fail').map((r) => r.op))],
    timeMs: performance.now() - t0,
  };
}

/** Thrown by assertOpsConformance with every failed case's message. */
export class OpsConformanceError extends Error {
  readonly failures: readonly OpsCaseResult[];
  constructor(failures: readonly OpsCaseResult[]) {
    super(
      `${failures.length} ops conformance case(s) failed:\n` +
        failures.map((f) => f.message).join('\n\n'),
    );
    this.name = 'OpsConformanceError';
    this.failures = failures;
  }
}

export function assertOpsConformance(r: OpsConformanceReport | OpsCaseResult): void {
  const results = 'results' in r ? r.results : [r];
  const failures = results.filter((x) => x.status === 'fail');
  if (failures.length > 0) throw new OpsConformanceError(failures);
}

/** One line per case: status, worst ratio, id. */
export function formatOpsReport(r: OpsConformanceReport): string {
  return [
    `ops conformance ${r.backend} [${r.matrix}] seed=${r.seed}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped (${(r.timeMs / 1000).toFixed(1)} s)`,
    ...r.results.map((x) => {
      const worst = x.checks.reduce((m, ch) => Math.max(m, ch.errBackend / (ch.allowed || 1)), 0);
      return `${x.status.padEnd(4)}  ${x.id.padEnd(48)} err/allowed ${worst.toFixed(2)}`;
    }),
  ].join('\n');
}

export { TAG as OPS_DTYPE_TAG };

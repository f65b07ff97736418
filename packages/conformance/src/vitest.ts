/**
 * `describeConformance`: register the conformance suite in a backend package's vitest run, one test per
 * case (so CI counts show them), with the backend created once before and disposed after.
 *
 *   describeConformance('cpu-flash', () => createCpuBackend({ kind: 'flash' }), { matrix: 'ci' });
 *   describeConformance('webgpu', createWebGpuBackend, { matrix: 'smoke', skip: noAdapter ? 'no WebGPU adapter' : undefined });
 */
import { DTYPES, freshSeed, type AttentionBackend, type Ops } from '@flashattn/core';
import { afterAll, beforeAll, describe, it } from 'vitest';
import {
  casesFor,
  matchesFilter,
  type CaseFilter,
  type ConformanceCase,
  type MatrixName,
} from './cases.js';
import {
  DEVICE_LAYOUTS,
  deviceAttentionBackend,
  type AttentionDevice,
  type DeviceLayout,
} from './device-attention.js';
import { readConformanceEnv } from './env.js';
import { NON_FINITE_SCENARIOS, nonFiniteId, runNonFiniteCase } from './nonfinite.js';
import { opsCasesFor, type OpsCase, type OpsMatrixName } from './ops/cases.js';
import { FLOAT_BUFFER_DTYPES } from './ops/dtypes.js';
import { OPS_DTYPE_TAG, assertOpsConformance, runOpsCase, runOpsInputChecks } from './ops/run.js';
import { assertConformance, runCase, unsupportedReason } from './run.js';

export interface DescribeConformanceOptions {
  /** The matrix this suite runs by default ('ci' if absent). FLASHATTN_CONFORMANCE_MATRIX overrides it. */
  matrix?: MatrixName;
  /** Run seed; default FLASHATTN_CONFORMANCE_SEED, else a fresh one. Printed in the suite title. */
  seed?: number;
  /** An explicit case list instead of a named matrix (the env matrix override does not apply then). */
  cases?: readonly ConformanceCase[];
  /** Keep only matching cases (also FLASHATTN_CONFORMANCE_FILTER, a substring of the case id). */
  filter?: CaseFilter;
  /** Check the backward too (default true). */
  backward?: boolean;
  /** When set, every case is registered as skipped and this reason is printed. */
  skip?: string;
  /** Per-test timeout in ms (default 300 s, 600 s for 'full'). */
  timeoutMs?: number;
  /**
   * Also run the NaN/Infinity propagation scenarios (nonfinite.ts) in every dtype, as tests named
   * `nonfinite <scenario> <dtype>` (default true; skipped with explicit `cases`). 'exact' also requires
   * finite values where a tiled kernel may compute 0 * NaN through masked entries (nonfinite.ts).
   */
  nonFinite?: boolean | 'exact';
}

export function describeConformance(
  name: string,
  createBackend: () => Promise<AttentionBackend> | AttentionBackend,
  opts: DescribeConformanceOptions = {},
): void {
  const env = readConformanceEnv();
  const matrix = opts.cases ? 'custom' : (env.matrix ?? opts.matrix ?? 'ci');
  const seed = (opts.seed ?? env.seed ?? freshSeed()) >>> 0;
  const cases = (opts.cases ?? casesFor(matrix as MatrixName)).filter(
    (c) => matchesFilter(c, opts.filter) && matchesFilter(c, env.filter),
  );
  const timeout = opts.timeoutMs ?? (matrix === 'full' ? 600_000 : 300_000);
  const title = `conformance ${name} [${matrix}] seed=${seed}`;

  const strFilter = typeof opts.filter === 'string' ? opts.filter : undefined;
  const nonFinite =
    (opts.nonFinite ?? true) &&
    !opts.cases &&
    (opts.filter === undefined || strFilter !== undefined)
      ? DTYPES.flatMap((dt) =>
          NON_FINITE_SCENARIOS.map((sc) => ({ dt, sc, id: nonFiniteId(sc, dt) })),
        ).filter(
          (x) =>
            (strFilter === undefined || x.id.includes(strFilter)) &&
            (env.filter === undefined || x.id.includes(env.filter)),
        )
      : [];
  if (opts.skip !== undefined) {
    console.warn(`${title}: all ${cases.length + nonFinite.length} cases skipped: ${opts.skip}`);
    describe.skip(`${title} (skipped: ${opts.skip})`, () => {
      for (const c of cases) it(c.id, () => undefined);
      for (const x of nonFinite) it(x.id, () => undefined);
    });
    return;
  }

  describe(title, () => {
    let backend: AttentionBackend | undefined;
    beforeAll(async () => {
      backend = await createBackend();
    }, timeout);
    afterAll(async () => {
      await backend?.dispose();
    }, timeout);

    for (const c of cases) {
      it(
        c.id,
        async (ctx) => {
          if (!backend) throw new Error(`${title}: createBackend() did not produce a backend`);
          const reason = unsupportedReason(backend, c);
          if (reason !== undefined) {
            console.warn(`${title} ${c.id}: skipped: ${reason}`);
            ctx.skip(reason);
          }
          const r = await runCase(backend, c, { seed, backward: opts.backward ?? true });
          const ratios = r.checks.map(
            (ch) => `${ch.output} ${Number.isFinite(ch.ratio) ? ch.ratio.toFixed(2) : ch.ratio}`,
          );
          console.log(
            `${r.status} ${name} ${c.id}: err/naive ${ratios.join(', ')}; fwd ${r.timeMs.forward.toFixed(1)} ms, bwd ${r.timeMs.backward.toFixed(1)} ms`,
          );
          assertConformance(r);
        },
        timeout,
      );
    }
    for (const x of nonFinite) {
      it(
        x.id,
        async (ctx) => {
          if (!backend) throw new Error(`${title}: createBackend() did not produce a backend`);
          if (!backend.capabilities.dtypes.includes(x.dt)) {
            ctx.skip(`${backend.name} does not support dtype ${x.dt}`);
          }
          const r = await runNonFiniteCase(backend, x.sc, x.dt, seed, {
            exact: opts.nonFinite === 'exact',
          });
          if (r.status === 'fail') throw new Error(r.message);
        },
        timeout,
      );
    }
  });
}

export interface DescribeDeviceAttentionConformanceOptions extends DescribeConformanceOptions {
  /** Layouts to run (default all three: contiguous, padded, packed). */
  layouts?: readonly DeviceLayout[];
  /** Gaps and offsets of the padded and packed layouts rounded up to this many elements (default 1). */
  align?: number;
  /** Dispose the device after the last layout (default true; calls `dispose()` if it has one). */
  disposeDevice?: boolean;
}

/**
 * The attention conformance suite on a device backend (`DeviceMemory<Buf> & DeviceAttention<Buf>`),
 * once per layout: contiguous buffers, padded strides at non-zero offsets, and q, k, v / dq, dk, dv
 * packed in one (B, N, 3, H, D) buffer (see device-attention.ts). The device is created once.
 *
 *   describeDeviceAttentionConformance('cuda', () => createCudaOps(), { matrix: 'ci', skip: noGpu });
 */
export function describeDeviceAttentionConformance<Buf>(
  name: string,
  createDevice: () =>
    | Promise<AttentionDevice<Buf> & { dispose?(): void | Promise<void> }>
    | (AttentionDevice<Buf> & { dispose?(): void | Promise<void> }),
  opts: DescribeDeviceAttentionConformanceOptions = {},
): void {
  const { layouts = DEVICE_LAYOUTS, disposeDevice = true, align, ...rest } = opts;
  let device: Promise<AttentionDevice<Buf> & { dispose?(): void | Promise<void> }> | undefined;
  const get = () => (device ??= Promise.resolve(createDevice()));
  describe(`device attention ${name}`, () => {
    afterAll(async () => {
      if (device && disposeDevice) await (await device).dispose?.();
    });
    for (const layout of layouts) {
      describeConformance(
        `${name} [${layout}]`,
        async () =>
          deviceAttentionBackend(await get(), {
            layout,
            align,
            name: `${name} [${layout}${align && align > 1 ? `, align ${align}` : ''}]`,
          }),
        rest,
      );
    }
  });
}

export interface DescribeOpsConformanceOptions {
  /** 'ci' (default) or 'full'; FLASHATTN_CONFORMANCE_MATRIX=full selects 'full'. */
  matrix?: OpsMatrixName;
  /** Run seed; default FLASHATTN_CONFORMANCE_SEED, else a fresh one. */
  seed?: number;
  /** Substring of `<case id> <dtype tag>` (also FLASHATTN_CONFORMANCE_FILTER). */
  filter?: string;
  /** When set, every case is registered as skipped with this reason. */
  skip?: string;
  /** Per-test timeout in ms (default 120 s). */
  timeoutMs?: number;
}

/**
 * The ops conformance suite (ops/run.ts) as vitest tests: one per (case, float dtype) plus the
 * bad-input checks per dtype. Dtypes the backend does not list are skipped with the reason.
 *
 *   describeOpsConformance('cpu', () => new CpuOps(), { matrix: 'ci' });
 */
export function describeOpsConformance<Buf>(
  name: string,
  createOps: () => Promise<Ops<Buf>> | Ops<Buf>,
  opts: DescribeOpsConformanceOptions = {},
): void {
  const env = readConformanceEnv();
  const matrix: OpsMatrixName = env.matrix === 'full' ? 'full' : (opts.matrix ?? 'ci');
  const seed = (opts.seed ?? env.seed ?? freshSeed()) >>> 0;
  const timeout = opts.timeoutMs ?? 120_000;
  const keep = (id: string): boolean =>
    (opts.filter === undefined || id.includes(opts.filter)) &&
    (env.filter === undefined || id.includes(env.filter));
  const title = `ops conformance ${name} [${matrix}] seed=${seed}`;
  const ids: { id: string; dt: (typeof FLOAT_BUFFER_DTYPES)[number]; c?: OpsCase }[] = [];
  for (const dt of FLOAT_BUFFER_DTYPES) {
    for (const c of opsCasesFor(matrix)) ids.push({ id: `${c.id} ${OPS_DTYPE_TAG[dt]}`, dt, c });
    ids.push({ id: `input-checks ${OPS_DTYPE_TAG[dt]}`, dt });
  }
  const tests = ids.filter((t) => keep(t.id));
  if (opts.skip !== undefined) {
    console.warn(`${title}: all ${tests.length} cases skipped: ${opts.skip}`);
    describe.skip(`${title} (skipped: ${opts.skip})`, () => {
      for (const t of tests) it(t.id, () => undefined);
    });
    return;
  }
  describe(title, () => {
    let ops: Ops<Buf> | undefined;
    beforeAll(async () => {
      ops = await createOps();
    }, timeout);
    afterAll(async () => {
      await ops?.dispose();
    }, timeout);
    for (const t of tests) {
      it(
        t.id,
        async (ctx) => {
          if (!ops) throw new Error(`${title}: createOps() did not produce ops`);
          if (!ops.dtypes.includes(t.dt)) {
            console.warn(`${title} ${t.id}: skipped: ${ops.name} has no ${t.dt} buffers`);
            ctx.skip(`${ops.name} has no ${t.dt} buffers`);
          }
          const r = t.c
            ? await runOpsCase(ops, t.c, t.dt, { seed })
            : await runOpsInputChecks(ops, t.dt, seed);
          assertOpsConformance(r);
        },
        timeout,
      );
    }
  });
}
export {
  describeInferenceConformance,
  type DescribeInferenceConformanceOptions,
} from './inference-vitest.js';

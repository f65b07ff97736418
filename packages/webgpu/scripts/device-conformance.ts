/**
 * Conformance on a real GPU through Dawn (the H100 runs in BENCHMARKS.md), on the device API
 * (`DeviceMemory<WebGPUBuffer> & DeviceAttention<WebGPUBuffer>`) in one of @flashattn/conformance's layouts
 * (contiguous, padded, packed) or on the host-tensor API ('host'). Bundled with esbuild for the device
 * machine (scripts/bundle.sh).
 *
 *   node device-conformance.mjs ./dawn.node out.json [seed] [matrix] [layout] [override JSON]
 * matrix: `ci`, `full` (288 cases) or `short` (ci plus every full case with Nq, Nk <= 129). layout:
 * contiguous | padded | packed | host (default packed). The override forces tiles: a forward Tiles object
 * ('{"BR":128,"BC":64,"TM":8,"TN":4,"DK":16,"JK":16,"V4":true}') or '{"bwd":{"64":{"dq":{...},"dkdv":{...}}}}'.
 * CONF_FILTER=<substring of the case id> keeps only matching cases (device-run.sh runs one process per
 * head dim and layout, " d64 " etc., in parallel).
 */
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import {
  casesFor,
  deviceAttentionBackend,
  DEVICE_LAYOUTS,
  formatCaseResult,
  runConformance,
  runNonFiniteChecks,
  type ConformanceCase,
  type DeviceLayout,
} from '@flashattn/conformance';
import { createWebGPUBackend, DEFAULT_DAWN_FLAGS } from '../src/index.js';
import type { Tiles } from '../src/kernels.js';

async function main(): Promise<void> {
  const [
    dawnPath,
    outPath = 'conformance.json',
    seedArg = '20261206',
    matrix = 'full',
    layout = 'packed',
    tilesArg,
  ] = process.argv.slice(2);
  if (layout !== 'host' && !DEVICE_LAYOUTS.includes(layout as DeviceLayout)) {
    throw new Error(`layout must be host or one of ${DEVICE_LAYOUTS.join(', ')}, got ${layout}`);
  }
  const override = tilesArg ? (JSON.parse(tilesArg) as Record<string, unknown>) : undefined;
  const bwd =
    override && 'bwd' in override
      ? (override.bwd as Record<string, { dq?: Tiles; dkdv?: Tiles }>)
      : undefined;
  const forward = override && !bwd ? (override as unknown as Tiles) : undefined;
  const dawn = createRequire(import.meta.url)(dawnPath ?? 'webgpu') as {
    create: (f: string[]) => GPU;
  };
  const gpu = dawn.create([...DEFAULT_DAWN_FLAGS]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no adapter');
  const pool =
    matrix === 'ci'
      ? casesFor('ci')
      : matrix === 'full'
        ? casesFor('full')
        : [
            ...casesFor('ci'),
            ...casesFor('full').filter((c) => c.seqlenQ <= 129 && c.seqlenK <= 129),
          ];
  const seen = new Set<string>();
  const cases: ConformanceCase[] = [];
  const filter = process.env.CONF_FILTER;
  for (const c of pool) {
    if (!seen.has(c.id) && (!filter || c.id.includes(filter))) cases.push(c);
    seen.add(c.id);
  }
  const be = await createWebGPUBackend({
    adapter,
    ...(forward ? { tiles: { forward } } : {}),
    ...(bwd ? { tiles: (D: number) => bwd[String(D)] } : {}),
  });
  const target =
    layout === 'host' ? be : deviceAttentionBackend(be, { layout: layout as DeviceLayout });
  let fails = 0;
  const report = await runConformance(target, {
    cases,
    seed: Number(seedArg),
    onCase: (r) => {
      if (r.status !== 'pass' && ++fails <= 5) console.log(formatCaseResult(r));
    },
  });
  // NaN / Infinity propagation (conformance's nonfinite scenarios), in the d32 process of each layout
  const nonFinite =
    !filter || filter.includes('d32')
      ? await runNonFiniteChecks(target, { seed: Number(seedArg) })
      : [];
  for (const r of nonFinite) if (r.status !== 'pass') console.log(r.message);
  const summary = {
    backend: be.name,
    layout,
    matrix,
    filter: filter ?? null,
    forwardTiles: { 64: be.variant(64).forward, 128: be.variant(128).forward },
    nativeF16: be.nativeF16,
    compact: be.compact,
    seed: report.seed,
    cases: cases.length,
    passed: report.passed,
    failed: report.failed,
    skipped: report.skipped,
    seconds: report.timeMs / 1000,
    failedIds: report.results.filter((r) => r.status === 'fail').map((r) => r.case.id),
    nonFinite: {
      passed: nonFinite.filter((r) => r.status === 'pass').length,
      of: nonFinite.length,
    },
  };
  console.log(
    `conformance [${layout}]${filter ? ` [${filter.trim()}]` : ''} on ${be.name}: ${report.passed}/${cases.length} passed, ` +
      `${report.failed} failed, ${report.skipped} skipped (${summary.seconds.toFixed(0)} s)` +
      (nonFinite.length ? `; nonfinite ${summary.nonFinite.passed}/${nonFinite.length}` : ''),
  );
  be.dispose();
  writeFileSync(outPath, JSON.stringify(summary, null, 1));
  void gpu;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});

/**
 * Conformance on a real GPU through Dawn (the H100 run in BENCHMARKS.md): the `ci` matrix plus every
 * case of the `full` matrix with both sequence lengths <= 129 (all dtypes and head dims; the longer
 * cases only cost float64-oracle time on the host). Bundled with esbuild for the device machine.
 *
 *   node device-conformance.mjs ./dawn.node out.json [seed] [plain|ci|sgmat|both] [override JSON]
 * The override forces the forward's tiles (plain, ci) or the subgroup-matrix kernel's shape (sgmat),
 * e.g. '{"BR":128,"BC":64,"TM":8,"TN":4,"DK":16,"JK":16,"V4":true}' or '{"QT":1,"QREG":true}';
 * '{"bwd":{"64":{"dq":{...},"dkdv":{...}}}}' forces the backward tiles per head dim instead.
 * `ci` runs the ci matrix only (no subgroup-matrix part); `full` the whole full matrix (288 cases, default
 * tiles, no subgroup-matrix part). CONF_FILTER=<substring of the case id> keeps only matching cases
 * (device-run.sh fullmatrix runs one process per head dim, " d64 " etc., in parallel).
 * `sgmat` runs the float16 cases with the subgroup-matrix forward (a separate process, so a hang in
 * the experimental path can be cut off by a timeout without losing the plain results).
 */
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import {
  casesFor,
  formatCaseResult,
  runConformance,
  type ConformanceCase,
} from '@flashattn/conformance';
import { createWebGPUBackend, DEFAULT_DAWN_FLAGS, type Tiles } from '../src/index.js';

async function main(): Promise<void> {
  const [dawnPath, outPath = 'conformance.json', seedArg = '20261121', which = 'both', tilesArg] =
    process.argv.slice(2);
  const override = tilesArg ? (JSON.parse(tilesArg) as Record<string, unknown>) : undefined;
  const bwd = override && 'bwd' in override ? (override.bwd as Record<string, { dq?: Tiles; dkdv?: Tiles }>) : undefined;
  const forward = override && !bwd && which !== 'sgmat' ? (override as unknown as Tiles) : undefined;
  const sgmatSpec = override && which === 'sgmat' ? override : undefined;
  const dawn = createRequire(import.meta.url)(dawnPath ?? 'webgpu') as {
    create: (f: string[]) => GPU;
  };
  const gpu = dawn.create([...DEFAULT_DAWN_FLAGS]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no adapter');
  const seen = new Set<string>();
  const cases: ConformanceCase[] = [];
  const extra =
    which === 'ci' ? [] : casesFor('full').filter((c) => which === 'full' || (c.seqlenQ <= 129 && c.seqlenK <= 129));
  const filter = process.env.CONF_FILTER;
  for (const c of [...(which === 'full' ? [] : casesFor('ci')), ...extra]) {
    if (!seen.has(c.id) && (!filter || c.id.includes(filter))) cases.push(c);
    seen.add(c.id);
  }
  const all: Record<string, unknown> = {};
  if (which !== 'sgmat') {
    const be = await createWebGPUBackend({
      adapter,
      ...(forward ? { tiles: { forward } } : {}),
      ...(bwd ? { tiles: (D: number) => bwd[String(D)] } : {}),
    });
    let fails = 0;
    const report = await runConformance(be, {
      cases,
      seed: Number(seedArg),
      onCase: (r) => {
        if (r.status !== 'pass') {
          fails++;
          if (fails <= 5) console.log(formatCaseResult(r));
        }
      },
    });
    const summary = {
      backend: be.name,
      forwardTiles: { 64: be.variant(64).forward, 128: be.variant(128).forward },
      backwardTiles: Object.fromEntries(
        [32, 64, 80, 96, 128, 256].map((D) => [D, { dq: be.variant(D).dq, dkdv: be.variant(D).dkdv }]),
      ),
      nativeF16: be.nativeF16,
      compact: be.compact,
      seed: report.seed,
      cases: cases.length,
      passed: report.passed,
      failed: report.failed,
      skipped: report.skipped,
      seconds: report.timeMs / 1000,
      failedIds: report.results.filter((r) => r.status === 'fail').map((r) => r.case.id),
    };
    console.log(
      `conformance on ${be.name}: ${report.passed}/${cases.length} passed, ${report.failed} failed, ${report.skipped} skipped (${summary.seconds.toFixed(0)} s)`,
    );
    be.dispose();
    all.fp32 = summary;
  }

  // The subgroup-matrix (tensor core) forward: the float16 cases, on a fresh adapter (one device each).
  if (which === 'sgmat' || which === 'both')
    try {
      const adapter2 =
        which === 'sgmat'
          ? adapter
          : await gpu.requestAdapter({ powerPreference: 'high-performance' });
      const sg = await createWebGPUBackend({
        adapter: adapter2!,
        subgroupMatrix: true,
        ...(sgmatSpec ? { sgmatSpec: () => sgmatSpec } : {}),
      });
      const f16 = cases.filter((c) => c.dtype === 'float16');
      let sgFails = 0;
      const rep = await runConformance(sg, {
        cases: f16,
        seed: Number(seedArg),
        onCase: (r) => {
          if (r.status !== 'pass' && ++sgFails <= 3) console.log(formatCaseResult(r));
        },
      });
      all.sgmat = {
        backend: sg.name,
        spec: sgmatSpec ?? 'default (chooseSgmat)',
        active: sg.subgroupMatrix,
        cases: f16.length,
        passed: rep.passed,
        failed: rep.failed,
        skipped: rep.skipped,
        seconds: rep.timeMs / 1000,
        failedIds: rep.results.filter((r) => r.status === 'fail').map((r) => r.case.id),
      };
      console.log(
        `conformance on ${sg.name} (subgroup matrix active: ${sg.subgroupMatrix}): ${rep.passed}/${f16.length} passed, ${rep.failed} failed`,
      );
      sg.dispose();
    } catch (e) {
      all.sgmat = { error: String(e) };
      console.log(`subgroup-matrix conformance: ${String(e)}`);
    }
  writeFileSync(outPath, JSON.stringify(all, null, 1));
  void gpu;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});

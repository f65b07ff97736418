/**
 * The ops conformance suite on the WebGPU ops through Dawn, for the GPU machine (ops-device.sh): every
 * case of the matrix (default 'full': ci plus GPT-2-sized shapes, C = 768, V = 50257) in float32 and the
 * bad-input checks, one line per case, and the report as JSON.
 *
 *   node ops-conformance.mjs [matrix] [out.json] [seed]
 * Exit status 1 when a case fails.
 */
import { writeFileSync } from 'node:fs';
import { formatOpsReport, runOpsConformance, type OpsMatrixName } from '@flashattn/conformance';
import { createWebGpuOps } from '@flashattn/webgpu';

async function main(): Promise<void> {
  const [matrix = 'full', out = 'ops-conformance.json', seedArg] = process.argv.slice(2);
  const ops = await createWebGpuOps();
  try {
    const report = await runOpsConformance(ops, {
      matrix: matrix as OpsMatrixName,
      ...(seedArg ? { seed: Number(seedArg) } : {}),
      onCase: (r) => {
        if (r.status === 'fail') console.log(r.message);
      },
    });
    console.log(formatOpsReport(report));
    writeFileSync(
      out,
      JSON.stringify(
        { ...report, results: report.results.map((r) => ({ ...r, case: r.case.id })) },
        null,
        2,
      ),
    );
    process.exitCode = report.pass ? 0 : 1;
  } finally {
    await ops.dispose();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

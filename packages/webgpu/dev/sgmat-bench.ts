/**
 * Benchmark of the retired subgroup-matrix forward against the production forward on the same float16
 * buffers (non-causal, B = 16384 / N, H = 2048 / D), on a GPU with subgroup matrices. Bundle it like the
 * conformance script (esbuild, --external:webgpu) and run it on the device machine:
 *   node sgmat-bench.mjs ./dawn.node
 */
import { createRequire } from 'node:module';
import { DEFAULT_DAWN_FLAGS } from '../src/index.js';
import { createSgmatBackend, timeSgmat } from './sgmat.js';

const dawn = createRequire(import.meta.url)(process.argv[2] ?? 'webgpu') as {
  create: (f: string[]) => GPU;
};
const gpu = dawn.create([...DEFAULT_DAWN_FLAGS]);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
if (!adapter) throw new Error('no adapter');
const sg = await createSgmatBackend({ adapter });
if (!sg.active) console.log(`subgroup-matrix forward unavailable: ${sg.reason}`);
else {
  for (const D of [64, 128]) {
    for (const N of [1024, 4096, 16384]) {
      const flops = 4 * 16384 * (2048 / D) * N * D; // 4 B H N^2 D with B N = 16384
      const t = await timeSgmat(sg, D, N);
      console.log(
        `f16 fwd D=${D} N=${N}: subgroup-matrix ${(flops / t.sgmatMs / 1e9).toFixed(2)} TFLOP/s, ` +
          `production ${(flops / t.productionMs / 1e9).toFixed(2)} TFLOP/s`,
      );
    }
  }
}
sg.dispose();
void gpu;

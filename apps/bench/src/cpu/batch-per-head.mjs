// Is a batch of B = 4 slower per (batch, head) than B = 1? Both on one CpuOps build, same process,
// alternating, medians; optionally a 192 MiB pass over other memory before every call (FLUSH=1), so
// that every call starts with the caches as cold as after an onnxruntime run in attention-vs-ort.
//   node --experimental-wasm-relaxed-simd apps/bench/src/cpu/batch-per-head.mjs D,THREADS,CAUSAL,ROUNDS [N] [BUILD]
// BUILD: "dist" (the working tree's build, default) or a name under packages/cpu/node_modules/.ab/.
// Prints the B = 4 time over 4x the B = 1 time (1.00 = the same cost per head).
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const [spec = '128,1,1,7', nArg = '1024', build = 'dist'] = process.argv.slice(2);
const [D, T, causal, R] = spec.split(',').map(Number);
const N = Number(nArg);
const H = 8;
const dir = build === 'dist' ? 'dist' : `node_modules/.ab/${build}`;
const { CpuOps } = await import(`${root}packages/cpu/${dir}/index.js`);
const { contiguousView, createRng } = await import(`${root}packages/core/dist/index.js`);
const med = (x) => [...x].sort((a, b) => a - b)[(x.length - 1) >> 1];
const junk = new Float32Array(48 << 20); // 192 MiB
const flush = () => {
  if (process.env.FLUSH) for (let i = 0; i < junk.length; i += 16) junk[i] += 1;
};
const runs = [];
for (const B of [1, 4]) {
  const ops = new CpuOps({ threads: T });
  const n = B * N * H * D;
  const rng = createRng(B);
  const up = () => {
    const b = ops.alloc(n, 'float32');
    for (let i = 0; i < n; i++) b[i] = rng.normal();
    return contiguousView(b, [B, N, H, D]); // (B, N, H, D), row stride H D
  };
  const [q, k, v, out] = [up(), up(), up(), up()];
  const lse = ops.alloc(B * H * N, 'float32'); // (B, H, N)
  const f = () => ops.attentionForward({ q, k, v, out, lse }, { causal: causal === 1 });
  for (let i = 0; i < 3; i++) await f();
  runs.push({ ops, f, ms: [] });
}
for (let r = 0; r < R; r++)
  for (const s of runs) {
    flush();
    const t0 = performance.now();
    await s.f();
    s.ms.push(performance.now() - t0);
  }
const [one, four] = runs.map((s) => med(s.ms));
console.log(
  `${build} D=${D} N=${N} H=${H} threads=${T} ${causal === 1 ? 'causal' : 'full'}${process.env.FLUSH ? ' flush' : ''}: ` +
    `B=1 ${one.toFixed(1)} ms, B=4 ${four.toFixed(1)} ms, B=4 / (4 x B=1) ${(four / 4 / one).toFixed(2)}; load ${loadavg()[0].toFixed(2)}`,
);
for (const s of runs) await s.ops.dispose();

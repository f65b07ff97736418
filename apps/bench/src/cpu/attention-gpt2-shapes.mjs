// The attention forward at the GPT-2 trainer's shapes (tiny: B = 8, N = 64, H = 4, D = 32; small: B = 8,
// N = 256, H = 6, D = 64; causal): native and wasm, 1 and 2 threads, medians of 101 alternating calls.
// Small problems are where the native call's fixed cost (~130 us) and the start of its second thread
// could lose to the wasm path.
//   node --experimental-wasm-relaxed-simd apps/bench/src/cpu/attention-gpt2-shapes.mjs
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const { CpuOps } = await import(`${root}packages/cpu/dist/index.js`);
const { contiguousView, createRng } = await import(`${root}packages/core/dist/index.js`);
for (const [B, N, H, D] of [
  [8, 64, 4, 32],
  [8, 256, 6, 64],
]) {
  const mk = (threads, native) => {
    const ops = new CpuOps({ threads, native });
    const rng = createRng(1);
    const sh = [B, N, H, D];
    const up = () => {
      const b = ops.alloc(B * N * H * D, 'float32');
      for (let i = 0; i < b.length; i++) b[i] = rng.normal();
      return contiguousView(b, sh);
    };
    const q = up(),
      k = up(),
      v = up(),
      out = up();
    const lse = ops.alloc(B * H * N, 'float32');
    return {
      n: `${native ? 'native' : 'wasm'} T=${threads}`,
      ops,
      f: () => ops.attentionForward({ q, k, v, out, lse }, { causal: true }),
    };
  };
  const im = [mk(2, true), mk(2, false), mk(1, true), mk(1, false)];
  for (const x of im) for (let i = 0; i < 20; i++) await x.f();
  const t = im.map(() => []);
  for (let r = 0; r < 101; r++)
    for (let i = 0; i < im.length; i++) {
      const t0 = performance.now();
      await im[i].f();
      t[i].push(performance.now() - t0);
    }
  const med = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
  console.log(
    `B=${B} N=${N} H=${H} D=${D} causal: ` +
      im.map((x, i) => `${x.n} ${(med(t[i]) * 1000).toFixed(0)} us`).join(', ') +
      `; load ${loadavg()[0].toFixed(2)}`,
  );
  for (const x of im) await x.ops.dispose();
}

// The fixed cost of one attention forward call and whether small problems gain from a second thread:
// the native forward (one libuv pool thread + threads - 1 std::threads started per call) against the
// wasm one (the ThreadPool's workers), 1 and 2 threads each, causal, medians of 201 alternating calls.
//   node --experimental-wasm-relaxed-simd apps/bench/src/cpu/attention-fixed-cost.mjs [--gpt2]
// --gpt2: the GPT-2 trainer's shapes instead (tiny: B = 8, N = 64, H = 4, D = 32; small: B = 8, N = 256,
// H = 6, D = 64), medians of 101 alternating calls after 20 warm-ups, two threads first: where the native
// call's fixed cost (~130 us) and its second thread's start could lose to the wasm path.
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const { CpuOps } = await import(`${root}packages/cpu/dist/index.js`);
const { contiguousView, createRng } = await import(`${root}packages/core/dist/index.js`);
const gpt2 = process.argv.includes('--gpt2');
const shapes = gpt2
  ? [
      [8, 64, 4, 32],
      [8, 256, 6, 64],
    ]
  : [
      [1, 16, 1, 16],
      [1, 64, 8, 64],
      [1, 256, 8, 64],
    ];
const [warmup, rounds] = gpt2 ? [20, 101] : [30, 201];
for (const [B, N, H, D] of shapes) {
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
      name: `${native ? 'native' : 'wasm'} T=${threads}`,
      ops,
      f: () => ops.attentionForward({ q, k, v, out, lse }, { causal: true }),
    };
  };
  const impls = gpt2
    ? [mk(2, true), mk(2, false), mk(1, true), mk(1, false)]
    : [mk(1, true), mk(2, true), mk(1, false), mk(2, false)];
  for (const x of impls) for (let i = 0; i < warmup; i++) await x.f();
  const t = impls.map(() => []);
  for (let r = 0; r < rounds; r++)
    for (let i = 0; i < impls.length; i++) {
      const t0 = performance.now();
      await impls[i].f();
      t[i].push(performance.now() - t0);
    }
  const med = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
  console.log(
    `B=${B} N=${N} H=${H} D=${D} causal: ` +
      impls.map((x, i) => `${x.name} ${(med(t[i]) * 1000).toFixed(0)} us`).join(', ') +
      `; load ${loadavg()[0].toFixed(2)}`,
  );
  for (const x of impls) await x.ops.dispose();
}

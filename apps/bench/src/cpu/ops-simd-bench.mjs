// The SIMD layernorm / GELU / softmax cross-entropy / AdamW of @flashattn/cpu (ops-simd.ts) against its
// scalar kernels on GPT-2-small-sized operands: the same ops on a CpuOps with SIMD (float32 buffers in
// the wasm memory) and one without, alternating, one thread, median CPU time of 5.
//   node --experimental-wasm-relaxed-simd apps/bench/src/cpu/ops-simd-bench.mjs
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
const root = fileURLToPath(new URL('../../../../', import.meta.url));
const { CpuOps } = await import(`${root}packages/cpu/dist/index.js`);
const mk = (simd) => new CpuOps({ threads: 1, simd });
const A = mk(true),
  B = mk(false);
const med = (x) => {
  const s = [...x].sort((a, b) => a - b);
  return s[(s.length - 1) >> 1];
};
const rnd = (o, n) => {
  const a = o.alloc(n, 'float32');
  for (let i = 0; i < n; i++) a[i] = Math.random() - 0.5;
  return a;
};
const N = 2048,
  C = 768,
  V = 8192,
  n4 = N * 4 * C,
  P = 10_000_000;
const setups = (o) => {
  const x = rnd(o, N * C),
    w = rnd(o, C),
    b = rnd(o, C),
    out = rnd(o, N * C),
    mean = rnd(o, N),
    rstd = rnd(o, N).map(Math.abs);
  const r2 = o.alloc(N, 'float32');
  r2.set(rstd);
  const g = rnd(o, n4),
    gi = rnd(o, n4),
    go = rnd(o, n4);
  const lg = rnd(o, N * V),
    dl = o.alloc(N * V, 'float32'),
    ls = o.alloc(N, 'float32');
  const t = new Int32Array(N).map((_, i) => i % V);
  const p = rnd(o, P),
    gr = rnd(o, P),
    m = rnd(o, P),
    v = o.alloc(P, 'float32');
  return {
    'layernorm fwd 2048x768': () => o.layernormForward(out, mean, r2, x, w, b, N, C),
    'layernorm bwd 2048x768': () => o.layernormBackward(out, w, b, x, x, w, mean, r2, N, C),
    'gelu fwd 2048x3072': () => o.geluForward(gi, g, n4),
    'gelu bwd 2048x3072': () => o.geluBackward(gi, g, go, n4),
    'xent 2048x8192': () => o.softmaxCrossEntropy(ls, dl, lg, t, N, V, 1 / N),
    'adamw 10M': () =>
      o.adamw(p, gr, m, v, {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weightDecay: 0.1,
        t: 5,
      }),
  };
};
const sa = setups(A),
  sb = setups(B);
for (const k of Object.keys(sa)) {
  const t = [[], []];
  for (let r = 0; r < 5; r++)
    for (const [i, f] of [
      [0, sa[k]],
      [1, sb[k]],
    ]) {
      const c0 = process.cpuUsage();
      f();
      const c = process.cpuUsage(c0);
      t[i].push((c.user + c.system) / 1e3);
    }
  console.log(
    `${k}: simd ${med(t[0]).toFixed(2)} ms, scalar ${med(t[1]).toFixed(2)} ms (CPU time, median of 5), ${(med(t[1]) / med(t[0])).toFixed(1)}x; load ${loadavg()[0].toFixed(1)}`,
  );
}
await A.dispose();
await B.dispose();

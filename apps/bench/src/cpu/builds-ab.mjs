// Two builds of @flashattn/cpu (builds-ab.sh) in one process, alternating call by call, medians of wall
// and CPU time: the before/after figures of BENCHMARKS.md's CPU section (ratios of medians from one
// process hold up better on a shared machine than two separate runs). Prints max |A - B| of the results.
//   node --experimental-wasm-relaxed-simd apps/bench/src/cpu/builds-ab.mjs attention A B N D Bt T CAUSAL ROUNDS [--bwd]
//   node --experimental-wasm-relaxed-simd apps/bench/src/cpu/builds-ab.mjs matmul A B T ROUNDS
// A, B: names under packages/cpu/node_modules/.ab/ (or "dist" for the working tree's build).
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const argv = process.argv.slice(2);
const bwd = argv.includes('--bwd');
const [mode, nameA, nameB, ...nums] = argv.filter((a) => a !== '--bwd');
const load = async (name) =>
  import(`${root}packages/cpu/${name === 'dist' ? 'dist' : `node_modules/.ab/${name}`}/index.js`);
const { contiguousView, createRng } = await import(`${root}packages/core/dist/index.js`);
const med = (x) => [...x].sort((a, b) => a - b)[(x.length - 1) >> 1];

/** Alternate a() and b() `rounds` times; medians of wall and CPU ms. */
async function alternate(fs, rounds) {
  const wall = [[], []];
  const cpu = [[], []];
  for (let r = 0; r < rounds; r++)
    for (let i = 0; i < 2; i++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await fs[i]();
      wall[i].push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpu[i].push((c.user + c.system) / 1e3);
    }
  return { wall: wall.map(med), cpu: cpu.map(med) };
}

const maxDiff = (a, b) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

if (mode === 'attention') {
  const [N, D, B, T, C, R] = nums.map(Number);
  const H = 8;
  const causal = C === 1;
  const n = B * N * H * D;
  const randn = (len, seed) => {
    const r = createRng(seed);
    return Float32Array.from({ length: len }, () => r.normal());
  };
  const host = [randn(n, 1), randn(n, 2), randn(n, 3), randn(n, 4)];
  const setup = async (name) => {
    const { CpuOps } = await load(name);
    const ops = new CpuOps({ threads: T });
    const up = (x) => {
      const b = ops.alloc(x.length, 'float32');
      b.set(x);
      return contiguousView(b, [B, N, H, D]);
    };
    const [q, k, v, dout] = host.map(up);
    const fresh = () => contiguousView(ops.alloc(n, 'float32'), [B, N, H, D]);
    const [out, dq, dk, dv] = [fresh(), fresh(), fresh(), fresh()];
    const lse = ops.alloc(B * H * N, 'float32');
    const fwd = () => ops.attentionForward({ q, k, v, out, lse }, { causal });
    await fwd();
    const call = bwd
      ? () => ops.attentionBackward({ dout, q, k, v, out, lse, dq, dk, dv }, { causal })
      : fwd;
    return { ops, call, result: (bwd ? dq : out).buffer };
  };
  const x = [await setup(nameA), await setup(nameB)];
  for (const s of x) for (let i = 0; i < 3; i++) await s.call();
  const { wall, cpu } = await alternate([x[0].call, x[1].call], R);
  console.log(
    `${bwd ? 'bwd' : 'fwd'} N=${N} D=${D} B=${B} T=${T} ${causal ? 'causal' : 'full'} ${nameA} -> ${nameB}: ` +
      `wall ${wall[0].toFixed(1)} -> ${wall[1].toFixed(1)} ms (${(wall[0] / wall[1]).toFixed(2)}x), ` +
      `CPU ${cpu[0].toFixed(1)} -> ${cpu[1].toFixed(1)} ms (${(cpu[0] / cpu[1]).toFixed(2)}x); ` +
      `max |A - B| ${maxDiff(x[0].result, x[1].result).toExponential(1)}; load ${loadavg()[0].toFixed(1)}`,
  );
  for (const s of x) await s.ops.dispose();
} else if (mode === 'matmul') {
  const [T, R] = nums.map(Number);
  const shapes = [
    ['tiny qkv', 2048, 384, 128],
    ['tiny fc', 2048, 512, 128],
    ['tiny head', 2048, 8192, 128],
    ['small qkv', 2048, 2304, 768],
    ['small fc', 2048, 3072, 768],
    ['small proj', 2048, 768, 3072],
  ];
  const opss = [];
  for (const name of [nameA, nameB]) opss.push(new (await load(name)).CpuOps({ threads: T }));
  const rng = createRng(5);
  for (const [shape, M, N, K] of shapes) {
    const a = Float32Array.from({ length: M * K }, () => rng.normal());
    const b = Float32Array.from({ length: K * N }, () => rng.normal());
    const fs = opss.map((ops) => {
      const [A, Bm, Cm] = [
        ops.alloc(M * K, 'float32'),
        ops.alloc(K * N, 'float32'),
        ops.alloc(M * N, 'float32'),
      ];
      A.set(a);
      Bm.set(b);
      return { C: Cm, f: () => ops.matmul(Cm, A, Bm, M, N, K) };
    });
    for (const s of fs) for (let i = 0; i < 2; i++) await s.f();
    const { wall, cpu } = await alternate([fs[0].f, fs[1].f], R);
    const gf = (ms) => ((2 * M * N * K) / ms / 1e6).toFixed(1);
    console.log(
      `matmul ${shape} ${M}x${N}x${K} T=${T} ${nameA} -> ${nameB}: GFLOP/s (wall) ${gf(wall[0])} -> ${gf(wall[1])} ` +
        `(${(wall[0] / wall[1]).toFixed(2)}x; CPU-time ratio ${(cpu[0] / cpu[1]).toFixed(2)}x); ` +
        `max |A - B| ${maxDiff(fs[0].C, fs[1].C).toExponential(1)}; load ${loadavg()[0].toFixed(1)}`,
    );
  }
  for (const o of opss) await o.dispose();
} else {
  console.error(
    'usage: builds-ab.mjs attention A B N D B T CAUSAL ROUNDS [--bwd] | matmul A B T ROUNDS',
  );
  process.exit(2);
}

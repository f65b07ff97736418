/**
 * The tile sweep of the CPU attention (packages/cpu's SIMD_TILES): two CpuOps with different tiles (or
 * the default against one setting) in one process, alternating call by call, medians of wall and CPU
 * time. On a shared machine the ratio of medians from one process is steadier than two separate runs.
 * Both must give results within float32 rounding of each other (printed: max |A - B| of out or dq).
 *
 *   node apps/bench/dist/cpu/attention-tiles.js N D B THREADS CAUSAL(0|1) ROUNDS TILES_A [TILES_B] [--bwd]
 *   e.g. node --experimental-wasm-relaxed-simd apps/bench/dist/cpu/attention-tiles.js 1024 64 1 1 1 11 96,96 64,64
 * TILES = "Br,Bc" or "default".
 */
import { loadavg } from 'node:os';
import { contiguousView, createRng } from '@flashattn/core';
import { CpuOps } from '@flashattn/cpu';

const argv = process.argv.slice(2);
const bwd = argv.includes('--bwd');
const pos = argv.filter((a) => a !== '--bwd');
if (pos.length < 7) {
  console.error('usage: attention-tiles.js N D B THREADS CAUSAL ROUNDS TILES_A [TILES_B] [--bwd]');
  process.exit(2);
}
const [N, D, B, T, C, R] = pos.slice(0, 6).map(Number) as [
  number,
  number,
  number,
  number,
  number,
  number,
];
const tiles = [pos[6]!, pos[7] ?? 'default'];
const H = 8;
const causal = C === 1;
const n = B * N * H * D;
const shape = [B, N, H, D] as const;
const randn = (len: number, seed: number): Float32Array => {
  const r = createRng(seed);
  return Float32Array.from({ length: len }, () => r.normal());
};
const host = [randn(n, 1), randn(n, 2), randn(n, 3), randn(n, 4)];

async function setup(t: string) {
  const [Br, Bc] = t.split(',').map(Number);
  const ops = new CpuOps({
    threads: T,
    ...(t === 'default' ? {} : { attentionTiles: { Br: Br!, Bc: Bc! } }),
  });
  const up = (x: Float32Array) => {
    const b = ops.alloc(x.length, 'float32') as Float32Array;
    b.set(x);
    return contiguousView(b, shape);
  };
  const [q, k, v, dout] = host.map(up) as [
    ReturnType<typeof up>,
    ReturnType<typeof up>,
    ReturnType<typeof up>,
    ReturnType<typeof up>,
  ];
  const fresh = () => contiguousView(ops.alloc(n, 'float32') as Float32Array, shape);
  const [out, dq, dk, dv] = [fresh(), fresh(), fresh(), fresh()];
  const lse = ops.alloc(B * H * N, 'float32');
  const fwd = () => ops.attentionForward({ q, k, v, out, lse }, { causal });
  await fwd();
  const call = bwd
    ? () => ops.attentionBackward({ dout, q, k, v, out, lse, dq, dk, dv }, { causal })
    : fwd;
  return { ops, call, result: (bwd ? dq : out).buffer as Float32Array };
}

const impls = [await setup(tiles[0]!), await setup(tiles[1]!)];
for (const x of impls) for (let i = 0; i < 3; i++) await x.call();
let maxDiff = 0;
for (let i = 0; i < n; i++)
  maxDiff = Math.max(maxDiff, Math.abs(impls[0]!.result[i]! - impls[1]!.result[i]!));
const wall: number[][] = [[], []];
const cpu: number[][] = [[], []];
for (let r = 0; r < R; r++)
  for (let i = 0; i < 2; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await impls[i]!.call();
    wall[i]!.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu[i]!.push((c.user + c.system) / 1e3);
  }
const med = (x: number[]): number => [...x].sort((a, b) => a - b)[(x.length - 1) >> 1]!;
const [wa, wb, ca, cb] = [med(wall[0]!), med(wall[1]!), med(cpu[0]!), med(cpu[1]!)];
console.log(
  `${bwd ? 'bwd' : 'fwd'} N=${N} D=${D} B=${B} T=${T} ${causal ? 'causal' : 'full'} tiles ${tiles[0]} vs ${tiles[1]}: ` +
    `wall ${wa.toFixed(1)} / ${wb.toFixed(1)} ms, CPU ${ca.toFixed(1)} / ${cb.toFixed(1)} ms, time ratio A/B ${(wa / wb).toFixed(3)} ` +
    `(CPU ${(ca / cb).toFixed(3)}); max |A - B| ${maxDiff.toExponential(1)}; load ${loadavg()[0]!.toFixed(1)}`,
);
for (const x of impls) await x.ops.dispose();

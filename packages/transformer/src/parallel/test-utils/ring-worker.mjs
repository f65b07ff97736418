// One rank of the ring-attention test (the built package, the CPU transport, CpuOps' FlashAttention-2
// forward and backward and its kv-cache contract's attentionCombine):
//   node ring-worker.mjs <rendezvous> <rank> <W> <B> <N> <Hq> <Hk> <D> [broken]
// broken: a deliberately wrong combine (every split's lse read as 0: the partials averaged, not weighted by
// exp(lse_s - lse)).
// Reads <rendezvous>/inputs.bin (float32 q (B,N,Hq,D), k, v (B,N,Hk,D), dout (B,N,Hq,D)), takes its
// zig-zag rows, runs ring forward + backward non-causal then causal, and writes
// <rendezvous>/out-<causal>-<rank>.bin: float32 out, lse (B,Hq,2c), dq, dk, dv of its rows.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CpuOps, createSocketCommunicator } from '@flashattn/cpu';
import { ringAttentionBackward, ringAttentionForward, zigzagRows } from '../../../dist/index.js';

const [dir, ...nums] = process.argv.slice(2);
const broken = nums[7] === 'broken';
const [rank, W, B, N, Hq, Hk, D] = nums.slice(0, 7).map(Number);
const ops = new CpuOps({ threads: 1 });
if (broken) {
  const combine = ops.attentionCombine.bind(ops);
  ops.attentionCombine = (args) =>
    combine({ ...args, lsePartial: new Float32Array(args.lsePartial.length) });
}
const raw = readFileSync(join(dir, 'inputs.bin')); // may sit in Buffer's pool: copy out its bytes
const all = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
const sizes = [B * N * Hq * D, B * N * Hk * D, B * N * Hk * D, B * N * Hq * D];
const parts = [];
let at = 0;
for (const s of sizes) parts.push(all.subarray(at, (at += s)));
const rows = zigzagRows(N, rank, W);
const L = rows.length;
/** This rank's rows of a (B, N, H, D) tensor: (B, L, H, D). */
const local = (x, H) => {
  const o = new Float32Array(B * L * H * D);
  for (let b = 0; b < B; b++)
    rows.forEach((g, i) =>
      o.set(x.subarray((b * N + g) * H * D, (b * N + g + 1) * H * D), (b * L + i) * H * D),
    );
  return o;
};
const up = async (x) => {
  const buf = ops.alloc(x.length, 'float32');
  await ops.upload(buf, x);
  return buf;
};
try {
  const comm = await createSocketCommunicator({
    ops,
    rank,
    worldSize: W,
    rendezvous: dir,
    timeoutMs: 30_000,
  });
  const q = await up(local(parts[0], Hq));
  const k = await up(local(parts[1], Hk));
  const v = await up(local(parts[2], Hk));
  const dout = await up(local(parts[3], Hq));
  const shape = { B, Nlocal: L, Hq, Hk, D };
  for (const causal of [false, true]) {
    const out = ops.alloc(B * L * Hq * D, 'float32');
    const lse = ops.alloc(B * Hq * L, 'float32');
    const dq = ops.alloc(B * L * Hq * D, 'float32');
    const dk = ops.alloc(B * L * Hk * D, 'float32');
    const dv = ops.alloc(B * L * Hk * D, 'float32');
    await ringAttentionForward(ops, comm, shape, { q, k, v, out, lse }, { causal });
    await ringAttentionBackward(
      ops,
      comm,
      shape,
      { q, k, v, out, lse, dout, dq, dk, dv },
      { causal },
    );
    const res = [];
    for (const b of [out, lse, dq, dk, dv]) res.push(...(await ops.download(b)));
    writeFileSync(join(dir, `out-${causal}-${rank}.bin`), Float32Array.from(res));
  }
  await comm.destroy();
} catch (e) {
  process.stderr.write(`rank ${rank}: ${e?.stack ?? e}\n`);
  process.exitCode = 1;
} finally {
  await ops.dispose();
}

// One rank of the socket-communicator tests (run from the built package):
//   node rank-worker.mjs <rendezvous> <rank> <worldSize> <timeoutMs> <scenario>
// Prints one JSON line { rank, results } on success, or { rank, error: { name, culprit, failure, message } }.
// Inputs are a function of (rank, i) so the test computes the expected results on its own.
import { CollectiveError } from '@flashattn/core';
import { CpuOps, createSocketCommunicator } from '../../../dist/index.js';

const [dir, rankS, worldS, timeoutS, scenario] = process.argv.slice(2);
const rank = Number(rankS);
const W = Number(worldS);
const ops = new CpuOps({ threads: 1 });
const say = (o) => process.stdout.write(JSON.stringify({ rank, ...o }) + '\n');
// Inputs: x(rank, i) = sin(1 + 7 rank + 0.37 i) * 2^(i % 5), rounded to float32 by the upload.
const input = (r, n, off = 0) => Float64Array.from({ length: n }, (_, i) => Math.sin(1 + 7 * r + 0.37 * (i + off)) * 2 ** ((i + off) % 5));
const t0 = Date.now();
try {
  const comm = await createSocketCommunicator({ ops, rank, worldSize: W, rendezvous: dir, timeoutMs: Number(timeoutS) });
  say({ ready: true });
  if (scenario === 'exit' && rank === W - 1) process.exit(3);
  if (scenario === 'hang' && rank === W - 1) setInterval(() => {}, 1000);
  else if (scenario === 'abort' && rank === 1) {
    comm.abort('rank 1 gives up');
    await comm.allReduce(ops.alloc(4, 'float32'), 'sum');
  } else {
    if (scenario === 'wait-for-kill') await new Promise((r) => setTimeout(r, 300));
    const results = {};
    const n = 37; // not a multiple of the world size: shards of unequal length
    const a = ops.alloc(n, 'float32');
    await ops.upload(a, input(rank, n));
    await comm.allReduce(a, 'sum');
    results.allReduceSum = Array.from(await ops.download(a));
    const d = ops.alloc(n, 'float64');
    await ops.upload(d, input(rank, n));
    await comm.allReduce(d, 'avg');
    results.allReduceAvg64 = Array.from(await ops.download(d));
    const big = ops.alloc(W * 5, 'float32');
    await ops.upload(big, input(rank, W * 5));
    const rs = ops.alloc(5, 'float32');
    await comm.reduceScatter(rs, big, 'sum');
    results.reduceScatter = Array.from(await ops.download(rs));
    const g = ops.alloc(3, 'int32');
    await ops.upload(g, Int32Array.from([rank, 10 * rank, -rank]));
    const gall = ops.alloc(3 * W, 'int32');
    await comm.allGather(gall, g);
    results.allGather = Array.from(await ops.download(gall));
    const b = ops.alloc(4, 'float32');
    await ops.upload(b, input(rank, 4));
    await comm.broadcast(b, W - 1);
    results.broadcast = Array.from(await ops.download(b));
    // The ring: send to rank + 1, receive from rank - 1, into a view of a larger buffer.
    const s = ops.alloc(6, 'float32');
    await ops.upload(s, input(rank, 6));
    const r = ops.alloc(8, 'float32');
    await comm.sendRecv(s, (rank + 1) % W, ops.view(r, 1, 6), (rank - 1 + W) % W);
    results.ring = Array.from(await ops.download(r));
    await comm.barrier();
    await comm.destroy();
    say({ results });
  }
} catch (e) {
  const ms = Date.now() - t0;
  say({ error: { name: e?.name, culprit: e instanceof CollectiveError ? e.culprit : null, failure: e?.failure ?? null, message: String(e?.message ?? e) }, ms });
  process.exitCode = 1;
} finally {
  await ops.dispose();
}

/**
 * The cost of the WebGPU varlen route (packages/webgpu/src/inference/varlen.ts: the flash programs
 * driven once per sequence on offset views): varlen forward and forward + backward over B sequences
 * of L tokens each, against one batched attentionForward / attentionBackward of the same (B, L)
 * problem (the same arithmetic in one dispatch per pass). The ratio is the price of one submission
 * (and, in the forward, the lse copies) per sequence. Causal, Hq = Hk = H, float32, wall time per call
 * after a warm-up, each call awaited.
 *
 *   node varlen-bench.mjs [--batches 1,8,32] [--len 64] [--heads 4] [--head-dim 32] [--reps 5] [--json f]
 */
import { writeFileSync } from 'node:fs';
import { contiguousView, createRng } from '@flashattn/core';
import {
  createWebGPUBackend,
  type WebGPUAttentionBackend,
  type WebGPUBuffer,
} from '@flashattn/webgpu';
import { fmt, formatTable, parseArgsOrExit, type ArgSchema } from '../lib/index.js';

const SCHEMA = {
  batches: { type: 'intList', default: [1, 8, 32], min: 1, help: 'sequences B' },
  len: { type: 'int', default: 64, min: 1, help: 'tokens per sequence L' },
  heads: { type: 'int', default: 4, min: 1, help: 'H' },
  headDim: { type: 'int', default: 32, min: 1, max: 256, help: 'D' },
  reps: { type: 'int', default: 5, min: 1, help: 'timed calls' },
  json: { type: 'string', help: 'write the rows as JSON here' },
} as const satisfies ArgSchema;
const args = parseArgsOrExit(process.argv.slice(2), SCHEMA, 'varlen-bench');

interface Row {
  B: number;
  L: number;
  varlenFwdMs: number;
  batchedFwdMs: number;
  varlenFwdBwdMs: number;
  batchedFwdBwdMs: number;
}

async function timeMs(be: WebGPUAttentionBackend, fn: () => Promise<void>): Promise<number> {
  await fn();
  await be.runtime.idle();
  const t0 = performance.now();
  for (let r = 0; r < args.reps; r++) await fn();
  await be.runtime.idle();
  return (performance.now() - t0) / args.reps;
}

async function main(): Promise<void> {
  const be = await createWebGPUBackend();
  const { len: L, heads: H, headDim: D } = args;
  const rows: Row[] = [];
  console.log(
    `${be.name}: varlen (per-sequence launches) vs one batched call, L=${L} H=${H} D=${D}, causal f32`,
  );
  try {
    for (const B of args.batches) {
      const n = B * L * H * D;
      const rng = createRng(B);
      const owned: WebGPUBuffer[] = [];
      const buf = async (random: boolean) => {
        const b = be.alloc(n, 'float32');
        owned.push(b);
        if (random)
          await be.upload(
            b,
            Float32Array.from({ length: n }, () => rng.normal()),
          );
        return b;
      };
      const [q, k, v, dout] = [await buf(true), await buf(true), await buf(true), await buf(true)];
      const [out, dq, dk, dv] = [
        await buf(false),
        await buf(false),
        await buf(false),
        await buf(false),
      ];
      const lse = be.alloc(B * H * L, 'float32');
      owned.push(lse);
      const packed = (b: WebGPUBuffer) => contiguousView(b, [1, B * L, H, D]);
      const batched = (b: WebGPUBuffer) => contiguousView(b, [B, L, H, D]);
      const cu = Int32Array.from({ length: B + 1 }, (_, i) => i * L);
      const opts = { causal: true };
      const vfwd = () =>
        be.varlenAttentionForward(
          {
            q: packed(q),
            k: packed(k),
            v: packed(v),
            cuSeqlensQ: cu,
            cuSeqlensK: cu,
            maxSeqlenQ: L,
            maxSeqlenK: L,
            out: packed(out),
            lse,
          },
          opts,
        ) as Promise<void>;
      const vbwd = () =>
        be.varlenAttentionBackward(
          {
            dout: packed(dout),
            q: packed(q),
            k: packed(k),
            v: packed(v),
            out: packed(out),
            lse,
            cuSeqlensQ: cu,
            cuSeqlensK: cu,
            maxSeqlenQ: L,
            maxSeqlenK: L,
            dq: packed(dq),
            dk: packed(dk),
            dv: packed(dv),
          },
          opts,
        ) as Promise<void>;
      const bfwd = () =>
        be.attentionForward(
          { q: batched(q), k: batched(k), v: batched(v), out: batched(out), lse },
          opts,
        ) as Promise<void>;
      const bbwd = () =>
        be.attentionBackward(
          {
            dout: batched(dout),
            q: batched(q),
            k: batched(k),
            v: batched(v),
            out: batched(out),
            lse,
            dq: batched(dq),
            dk: batched(dk),
            dv: batched(dv),
          },
          opts,
        ) as Promise<void>;
      try {
        const row: Row = {
          B,
          L,
          varlenFwdMs: await timeMs(be, vfwd),
          batchedFwdMs: await timeMs(be, bfwd),
          varlenFwdBwdMs: await timeMs(be, async () => (await vfwd(), await vbwd())),
          batchedFwdBwdMs: await timeMs(be, async () => (await bfwd(), await bbwd())),
        };
        rows.push(row);
      } finally {
        for (const b of owned) be.free(b);
      }
    }
    console.log(
      formatTable<Row>(
        [
          { header: 'B', cell: (r) => String(r.B) },
          { header: 'L', cell: (r) => String(r.L) },
          { header: 'varlen fwd ms', cell: (r) => fmt(r.varlenFwdMs) },
          { header: 'batched fwd ms', cell: (r) => fmt(r.batchedFwdMs) },
          { header: 'varlen fwd+bwd ms', cell: (r) => fmt(r.varlenFwdBwdMs) },
          { header: 'batched fwd+bwd ms', cell: (r) => fmt(r.batchedFwdBwdMs) },
          { header: 'fwd+bwd ratio', cell: (r) => fmt(r.varlenFwdBwdMs / r.batchedFwdBwdMs) },
        ],
        rows,
      ),
    );
    if (args.json)
      writeFileSync(
        args.json,
        JSON.stringify({ date: new Date().toISOString(), backend: be.name, rows }, null, 1),
      );
  } finally {
    be.dispose();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

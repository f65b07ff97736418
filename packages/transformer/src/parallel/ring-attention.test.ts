// Ring attention between real processes (the CPU transport; CpuOps' flash forward/backward and its lse
// combine on each rank, see test-utils/ring-worker.mjs): out, lse, dq, dk, dv of the zig-zag-split sequence, reassembled, against core's float64
// oracle of single-process attention, under the conformance tolerance rule (core/testing: error <=
// 2x a naive float32 implementation's error + the derived floor), causal and not, world 2 and 4.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  attentionReference64,
  attentionReferenceBackward64,
  createRng,
  randomTensor,
  tensor,
  type Tensor,
} from '@flashattn/core';
import {
  naiveAttention,
  toleranceFor,
  withinTolerance,
  allowedError,
} from '@flashattn/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { zigzagRows } from './ring-attention.js';

const worker = fileURLToPath(new URL('./test-utils/ring-worker.mjs', import.meta.url));
const dist = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const maxAbs = (a: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
};
const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

async function runRing(
  W: number,
  B: number,
  N: number,
  Hq: number,
  Hk: number,
  D: number,
  inputs: Tensor[],
  broken = false,
) {
  const dir = mkdtempSync(join(tmpdir(), 'fa-ring-'));
  dirs.push(dir);
  const flat = new Float32Array(inputs.reduce((s, t) => s + t.data.length, 0));
  let at = 0;
  for (const t of inputs) {
    flat.set(t.data as Float32Array, at);
    at += t.data.length;
  }
  writeFileSync(join(dir, 'inputs.bin'), flat);
  let stderr = '';
  const codes = await Promise.all(
    Array.from({ length: W }, (_, r) => {
      const c = spawn(
        process.execPath,
        [worker, dir, ...[r, W, B, N, Hq, Hk, D].map(String), ...(broken ? ['broken'] : [])],
        { stdio: ['ignore', 'inherit', 'pipe'] },
      );
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => c.kill('SIGKILL'), 60_000);
      return new Promise<number | null>((res) =>
        c.on('close', (code) => (clearTimeout(timer), res(code))),
      );
    }),
  );
  expect(codes, stderr).toEqual(Array(W).fill(0));
  // Reassemble the global (B, N, H, D) / (B, Hq, N) results from each rank's zig-zag rows.
  return (causal: boolean) => {
    const g = {
      out: new Float32Array(B * N * Hq * D),
      lse: new Float32Array(B * Hq * N),
      dq: new Float32Array(B * N * Hq * D),
      dk: new Float32Array(B * N * Hk * D),
      dv: new Float32Array(B * N * Hk * D),
    };
    for (let r = 0; r < W; r++) {
      const rows = zigzagRows(N, r, W);
      const L = rows.length;
      const raw = readFileSync(join(dir, `out-${causal}-${r}.bin`)); // may sit in Buffer's pool
      const f = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
      let o = 0;
      const take = (n: number): Float32Array => f.subarray(o, (o += n));
      const rowsInto = (dst: Float32Array, src: Float32Array, H: number): void => {
        for (let b = 0; b < B; b++)
          rows.forEach((gr, i) =>
            dst.set(
              src.subarray((b * L + i) * H * D, (b * L + i + 1) * H * D),
              (b * N + gr) * H * D,
            ),
          );
      };
      rowsInto(g.out, take(B * L * Hq * D), Hq);
      const lse = take(B * Hq * L);
      for (let bh = 0; bh < B * Hq; bh++)
        rows.forEach((gr, i) => (g.lse[bh * N + gr] = lse[bh * L + i]!));
      rowsInto(g.dq, take(B * L * Hq * D), Hq);
      rowsInto(g.dk, take(B * L * Hk * D), Hk);
      rowsInto(g.dv, take(B * L * Hk * D), Hk);
    }
    return g;
  };
}

describe.skipIf(!existsSync(dist))('ring attention (zig-zag, CPU transport)', () => {
  for (const [W, B, c, Hq, Hk, D] of [
    [2, 2, 3, 2, 1, 8], // GQA, batch 2, chunks of 3 rows
    [4, 1, 2, 2, 2, 16],
  ] as const) {
    const N = 2 * W * c;
    it(`world ${W}: B=${B} N=${N} Hq=${Hq} Hk=${Hk} D=${D}, causal and not: out, lse, dq, dk, dv within the conformance rule`, async () => {
      const rng = createRng(1000 + W);
      const q = randomTensor(rng, [B, N, Hq, D]);
      const k = randomTensor(rng, [B, N, Hk, D]);
      const v = randomTensor(rng, [B, N, Hk, D]);
      const dout = randomTensor(rng, [B, N, Hq, D]);
      const results = await runRing(W, B, N, Hq, Hk, D, [q, k, v, dout]);
      for (const causal of [false, true]) {
        const failures = check(results(causal), causal, q, k, v, dout);
        expect(failures, failures.join('\n')).toEqual([]);
      }
    }, 90_000);
  }

  it('a deliberately broken combine (partials averaged) fails the same check', async () => {
    const [W, B, c, Hq, Hk, D] = [2, 1, 2, 1, 1, 8];
    const N = 2 * W * c;
    const rng = createRng(77);
    const [q, k, v, dout] = [Hq, Hk, Hk, Hq].map((H) => randomTensor(rng, [B, N, H, D]));
    const results = await runRing(W, B, N, Hq, Hk, D, [q!, k!, v!, dout!], true);
    expect(
      check(results(false), false, q!, k!, v!, dout!).some((f) => f.startsWith('full out')),
    ).toBe(true);
  }, 90_000);

  it('zigzagRows: rank r holds chunks r and 2W-1-r; N not a multiple of 2W is a typed error', () => {
    expect(zigzagRows(8, 0, 2)).toEqual([0, 1, 6, 7]);
    expect(zigzagRows(8, 1, 2)).toEqual([2, 3, 4, 5]);
    expect(() => zigzagRows(10, 0, 4)).toThrow(/multiple of 2 \* worldSize = 8/);
  });
});

/** The outputs that break the conformance rule against the float64 oracle (empty = all pass). */
function check(
  got: Record<'out' | 'lse' | 'dq' | 'dk' | 'dv', Float32Array>,
  causal: boolean,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  dout: Tensor,
): string[] {
  const [B, N, Hq, D] = q.shape as [number, number, number, number];
  const failures: string[] = [];
  const opts = { causal };
  const ref = attentionReference64(q, k, v, opts);
  const grads = attentionReferenceBackward64(
    dout,
    q,
    k,
    v,
    tensor(Float32Array.from(ref.out), [B, N, Hq, D]),
    Float32Array.from(ref.lse),
    opts,
  );
  const naive = naiveAttention(q, k, v, opts, 'float32', dout);
  const nb = naive.backward!;
  const checks: Array<
    [string, ArrayLike<number>, ArrayLike<number>, ArrayLike<number>, number, number]
  > = [
    ['out', got.out, ref.out, naive.forward.out, naive.forward.outAbs, naive.forward.outRescore],
    ['lse', got.lse, ref.lse, naive.forward.lse, naive.forward.lseAbs, naive.forward.lseRescore],
    ['dq', got.dq, grads.dq, nb.dq, nb.dqAbs, nb.dqRecompute],
    ['dk', got.dk, grads.dk, nb.dk, nb.dkAbs, nb.dkRecompute],
    ['dv', got.dv, grads.dv, nb.dv, nb.dvAbs, nb.dvRecompute],
  ];
  for (const [name, x, oracle, nx, abs, recompute] of checks) {
    const tol = toleranceFor('float32', { output: maxAbs(oracle), abs, recompute });
    const err = maxErr(x, oracle);
    const errNaive = maxErr(nx, oracle);
    if (!withinTolerance(err, errNaive, tol))
      failures.push(
        `${causal ? 'causal' : 'full'} ${name}: error ${err} > allowed ${allowedError(tol, errNaive)} (naive ${errNaive})`,
      );
  }
  return failures;
}

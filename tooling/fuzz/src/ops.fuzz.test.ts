// Fuzzes core's Ops<Buf> contract on both implementations: @flashattn/cpu's CpuOps (float32) and core's
// createReferenceOps (float64). Each case is one op call with small random sizes and data:
//  - valid: CpuOps' result must match the float64 oracle (the reference ops on float64 buffers holding the
//    same values) within the float32 forward-error bound of that op (below);
//  - one broken argument (a size that is negative, fractional, NaN or a string; a buffer of the wrong
//    length, dtype or not a buffer at all; a token id out of range; a non-finite scale): OpsInputError
//    naming that argument, from both implementations.
import fc from 'fast-check';
import {
  createReferenceOps,
  OpsInputError,
  type BufferDType,
  type HostArray,
  type Ops,
} from '@flashattn/core';
import { CpuOps } from '@flashattn/cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { SEED, expectInputError, fuzz } from './fuzz.js';

const cpu = new CpuOps({ threads: 1 }) as unknown as Ops<unknown>;
const ref = createReferenceOps() as unknown as Ops<unknown>;
afterAll(async () => {
  await cpu.dispose();
  await ref.dispose();
});
const U32 = 2 ** -24; // unit roundoff of float32
// Each float32 rounding is x(1 + d) + e with |d| <= U32 and |e| <= ETA (the subnormal range's absolute error);
// a bound below counts its roundings r and adds r * ETA.
const ETA = 2 ** -150;

type Param =
  | { kind: 'float' | 'int'; len: number; values?: number[] }
  | { kind: 'size'; value: number }
  | { kind: 'number'; value: number };
interface OpCall {
  op: 'matmul' | 'add' | 'biasBackward' | 'embeddingForward' | 'geluForward' | 'scale';
  names: string[];
  params: Param[];
  /** Indices of the outputs among params (compared against the oracle). */
  outputs: number[];
  /** Elementwise bound for output o at element i, from the inputs (host copies). */
  bound?: (o: number, i: number, host: number[][]) => number;
}

const vals = (n: number): fc.Arbitrary<number[]> =>
  fc.array(fc.float({ min: -4, max: 4, noNaN: true, noDefaultInfinity: true }).map(Math.fround), {
    minLength: n,
    maxLength: n,
  });

const dim = fc.integer({ min: 0, max: 5 });
const pos = fc.integer({ min: 1, max: 5 });

const call: fc.Arbitrary<OpCall> = fc.oneof(
  // out (M, N) = a (M, K) @ b (K, N): |err| <= (K + 1) u32 sum_k |a_ik b_kj| (the classic gamma_K bound,
  // plus one rounding of the stored result).
  fc.tuple(dim, dim, dim).chain(([M, N, K]) =>
    fc.tuple(vals(M * K), vals(K * N)).map(([a, b]) => ({
      op: 'matmul' as const,
      names: ['out', 'a', 'b', 'M', 'N', 'K'],
      params: [
        { kind: 'float' as const, len: M * N },
        { kind: 'float' as const, len: M * K, values: a },
        { kind: 'float' as const, len: K * N, values: b },
        { kind: 'size' as const, value: M },
        { kind: 'size' as const, value: N },
        { kind: 'size' as const, value: K },
      ],
      outputs: [0],
      bound: (_o: number, i: number, h: number[][]) => {
        const r = Math.floor(i / N);
        const c = i % N;
        let s = 0;
        for (let k = 0; k < K; k++) s += Math.abs(h[1]![r * K + k]! * h[2]![k * N + c]!);
        return (K + 1) * (U32 * s + ETA);
      },
    })),
  ),
  // out = a + b: one rounding.
  dim.chain((n) =>
    fc.tuple(vals(n), vals(n)).map(([a, b]) => ({
      op: 'add' as const,
      names: ['out', 'a', 'b', 'n'],
      params: [
        { kind: 'float' as const, len: n },
        { kind: 'float' as const, len: n, values: a },
        { kind: 'float' as const, len: n, values: b },
        { kind: 'size' as const, value: n },
      ],
      outputs: [0],
      bound: (_o: number, i: number, h: number[][]) => U32 * Math.abs(h[1]![i]! + h[2]![i]!) + ETA,
    })),
  ),
  // dbias (N) += column sums of dout (M, N): M additions.
  fc.tuple(dim, dim).chain(([M, N]) =>
    vals(M * N).map((d) => ({
      op: 'biasBackward' as const,
      names: ['dbias', 'dout', 'M', 'N'],
      params: [
        { kind: 'float' as const, len: N },
        { kind: 'float' as const, len: M * N, values: d },
        { kind: 'size' as const, value: M },
        { kind: 'size' as const, value: N },
      ],
      outputs: [0],
      bound: (_o: number, j: number, h: number[][]) => {
        let s = 0;
        for (let r = 0; r < M; r++) s += Math.abs(h[1]![r * N + j]!);
        return (M + 1) * (U32 * s + ETA);
      },
    })),
  ),
  // out (B*T, C) = wte[tokens] + wpe[t]: one rounding.
  fc.tuple(pos, pos, pos, pos).chain(([B, T, C, V]) =>
    fc
      .tuple(
        fc.array(fc.integer({ min: 0, max: V - 1 }), { minLength: B * T, maxLength: B * T }),
        vals(V * C),
        vals(T * C),
      )
      .map(([tokens, wte, wpe]) => ({
        op: 'embeddingForward' as const,
        names: ['out', 'tokens', 'wte', 'wpe', 'B', 'T', 'C'],
        params: [
          { kind: 'float' as const, len: B * T * C },
          { kind: 'int' as const, len: B * T, values: tokens },
          { kind: 'float' as const, len: V * C, values: wte },
          { kind: 'float' as const, len: T * C, values: wpe },
          { kind: 'size' as const, value: B },
          { kind: 'size' as const, value: T },
          { kind: 'size' as const, value: C },
        ],
        outputs: [0],
        bound: (_o: number, i: number, h: number[][]) => {
          const row = Math.floor(i / C);
          const c = i % C;
          return U32 * Math.abs(h[2]![h[1]![row]! * C + c]! + h[3]![(row % T) * C + c]!) + ETA;
        },
      })),
  ),
  // gelu: only its argument checking is fuzzed here (its accuracy has its own test in @flashattn/cpu).
  dim.chain((n) =>
    vals(n).map((x) => ({
      op: 'geluForward' as const,
      names: ['out', 'inp', 'n'],
      params: [
        { kind: 'float' as const, len: n },
        { kind: 'float' as const, len: n, values: x },
        { kind: 'size' as const, value: n },
      ],
      outputs: [],
    })),
  ),
  // x *= s: one rounding.
  fc.tuple(dim, fc.float({ min: -8, max: 8, noNaN: true }).map(Math.fround)).chain(([n, s]) =>
    vals(n).map((x) => ({
      op: 'scale' as const,
      names: ['x', 's'],
      params: [
        { kind: 'float' as const, len: n, values: x },
        { kind: 'number' as const, value: s },
      ],
      outputs: [0],
      bound: (_o: number, i: number, h: number[][]) => U32 * Math.abs(h[0]![i]! * s) + ETA,
    })),
  ),
);

/** Materialise the params on one ops implementation; returns the argument list. */
async function materialise(ops: Ops<unknown>, c: OpCall, dtype: BufferDType): Promise<unknown[]> {
  const args: unknown[] = [];
  for (const p of c.params) {
    if (p.kind === 'size' || p.kind === 'number') args.push(p.value);
    else {
      const buf = ops.alloc(p.len, p.kind === 'int' ? 'int32' : dtype);
      if (p.values)
        await ops.upload(
          buf,
          (p.kind === 'int' ? Int32Array : Float64Array).from(p.values) as HostArray,
        );
      args.push(buf);
    }
  }
  return args;
}

async function invoke(ops: Ops<unknown>, op: OpCall['op'], args: unknown[]): Promise<void> {
  const f = (ops as unknown as Record<string, (...a: unknown[]) => unknown>)[op]!;
  await f.apply(ops, args);
}

const sizeJunk = fc.constantFrom<unknown>(-1, 1.5, NaN, Infinity, '3', undefined, null, 2 ** 60);
const bufJunk = fc.constantFrom<unknown>(null, undefined, {}, [1, 2], 'buf', 7);

describe(`ops fuzz (seed ${SEED})`, () => {
  it('valid calls: CpuOps matches the float64 reference ops within the float32 bound of each op', async () => {
    const n = await fuzz('ops valid', call, 800, async (c) => {
      const a = await materialise(cpu, c, 'float32');
      const b = await materialise(ref, c, 'float64');
      const host = await Promise.all(
        b.map(async (x, i) =>
          c.params[i]!.kind === 'float' || c.params[i]!.kind === 'int'
            ? Array.from(await ref.download(x))
            : [],
        ),
      );
      await invoke(cpu, c.op, a);
      await invoke(ref, c.op, b);
      for (const o of c.outputs) {
        const got = await cpu.download(a[o]);
        const want = await ref.download(b[o]);
        expect(got.length).toBe(want.length);
        for (let i = 0; i < want.length; i++) {
          const err = Math.abs(got[i]! - want[i]!);
          const allowed = c.bound!(o, i, host);
          if (!(err <= allowed))
            throw new Error(
              `${c.op} ${c.names[o]}[${i}]: cpu ${got[i]} vs float64 ${want[i]}, |err| ${err} > bound ${allowed}`,
            );
        }
      }
      for (const x of [...a]) if (typeof x === 'object') cpu.free(x);
    });
    expect(n).toBeGreaterThan(0);
  });

  it('one broken argument throws OpsInputError naming it, on CpuOps and on the reference ops', async () => {
    const arb = call.chain((c) => {
      const idx = fc.integer({ min: 0, max: c.params.length - 1 });
      return fc.tuple(
        fc.constant(c),
        idx,
        sizeJunk,
        bufJunk,
        fc.constantFrom('len+1', 'len-1', 'int32', 'float', 'junk' as const),
        fc.boolean(),
      );
    });
    const n = await fuzz('ops invalid', arb, 2500, async ([c, i, sj, bj, how, onRef]) => {
      const ops = onRef ? ref : cpu;
      const p = c.params[i]!;
      const args = await materialise(ops, c, onRef ? 'float64' : 'float32');
      const name = c.names[i]!;
      const bufferNames = c.names.filter(
        (_, j) => c.params[j]!.kind === 'float' || c.params[j]!.kind === 'int',
      );
      let names = [`${c.op} ${name}`];
      if (p.kind === 'size') {
        args[i] = sj;
        // A bad size may be caught as the size itself or as the buffer length it no longer matches.
        names = [names[0]!, ...bufferNames.map((b) => `${c.op} ${b}`)];
      } else if (p.kind === 'number') {
        // NaN and non-numbers only: CpuOps also rejects +-Infinity, the reference ops accept it (a contract
        // gap reported with this test; core's Ops doc does not say which is right).
        args[i] = [NaN, '2', null, undefined][Math.abs(Math.floor((sj as number) || 0)) % 4];
      } else if (how === 'junk') {
        args[i] = bj;
      } else if (how === 'int32' || how === 'float') {
        // the other kind of buffer: a float one where int32 token ids go, an int32 one where floats go
        args[i] = ops.alloc(p.len, p.kind === 'int' ? (onRef ? 'float64' : 'float32') : 'int32');
      } else {
        const len = p.len + (how === 'len+1' ? 1 : -1);
        if (len < 0 || c.op === 'scale') return; // an empty buffer cannot be shorter; scale takes any length
        // The flat ops with a count n (add, gelu) may take longer buffers on the reference ops ("at least
        // n"), CpuOps wants exactly n: only a shorter buffer is an error on both.
        if (how === 'len+1' && (c.op === 'add' || c.op === 'geluForward')) return;
        // wte holds any number of rows (V = length / C) and wpe at least T rows: their lengths are free.
        if (c.op === 'embeddingForward' && (name === 'wte' || name === 'wpe')) return;
        args[i] = ops.alloc(len, p.kind === 'int' ? 'int32' : onRef ? 'float64' : 'float32');
      }
      if (p.kind === 'size' && c.op === 'embeddingForward' && sj === undefined) return; // identical to omitting it
      await expectInputError(
        () => invoke(ops, c.op, args),
        OpsInputError,
        names,
        `${onRef ? 'reference' : 'cpu'} ${c.op} with ${name} broken`,
      );
    });
    expect(n).toBeGreaterThan(0);
  });

  it('a token id out of range throws OpsInputError naming the token', async () => {
    const arb = fc.tuple(
      fc.integer({ min: 1, max: 4 }),
      fc.constantFrom(-1, 4, 5, 1000, -(2 ** 31)),
      fc.boolean(),
    );
    const n = await fuzz('ops tokens', arb, 200, async ([V, bad, onRef]) => {
      const ops = onRef ? ref : cpu;
      const dt = onRef ? 'float64' : 'float32';
      const B = 1,
        T = 2,
        C = 3;
      const tokens = ops.alloc(B * T, 'int32');
      await ops.upload(tokens, Int32Array.from([0, bad < V && bad >= 0 ? V : bad]));
      const args = [
        ops.alloc(B * T * C, dt),
        tokens,
        ops.alloc(V * C, dt),
        ops.alloc(T * C, dt),
        B,
        T,
        C,
      ];
      await expectInputError(
        () => invoke(ops, 'embeddingForward', args),
        OpsInputError,
        ['embeddingForward tokens'],
        `embedding token ${bad} of V=${V}`,
      );
    });
    expect(n).toBeGreaterThan(0);
  });
});

/**
 * Conformance of the inference contracts, part 2: variable-length (packed) attention, forward and
 * backward, on any device backend implementing core's `DeviceMemory<Buf> & DeviceVarlenAttention<Buf>`.
 *
 * A scenario packs B sequences of ragged lengths (including 0 and 1) into (1, total, H, D) views -
 * q, k, v in one packed (1, total, 3, H, D) buffer when the sequences are self-attention with Hq = Hk,
 * else separate buffers - runs the forward, then the backward on the forward's out and lse, and checks
 * per sequence against core's float64 oracles (varlenReference64 / varlenReferenceBackward64) under the
 * one tolerance rule, with the naive baseline run on that sequence alone in the backend's compute
 * dtype. Exactly: rows that see no key (out = 0, lse = -Infinity, dq = 0), keys no query sees and
 * sequences without queries (dk = dv = 0), and no write outside the output views. Outputs start NaN.
 * `runVarlenRejections` checks the typed errors for bad cu_seqlens and max lengths.
 */
import {
  AttentionInputError,
  contiguousView,
  createRng,
  packedQkvViews,
  tensor,
  varlenReference64,
  varlenReferenceBackward64,
  type AttentionOptions,
  type DType,
  type DeviceMemory,
  type DeviceVarlenAttention,
  type StridedView,
} from '@flashattn/core';
import { maskInfo, naiveAttention } from '@flashattn/core/testing';
import { caseSeedOf } from './inputs.js';
import {
  GUARD,
  decodeRaw,
  gatherView,
  guardProblems,
  inferenceResult,
  nanRaw,
  placeGuarded,
  randomData,
  ruleCheck,
  type InferenceCheck,
  type InferenceResult,
} from './kv-cache.js';

export type VarlenDevice<Buf> = DeviceMemory<Buf> &
  DeviceVarlenAttention<Buf> & {
    readonly name?: string;
    readonly attentionCapabilities: { computeDType(d: DType): DType };
  };

export interface VarlenScenario {
  id: string;
  lensQ: readonly number[];
  lensK: readonly number[];
  Hq: number;
  Hk: number;
  D: number;
  opts: AttentionOptions;
  dtype: DType;
}

const vl = (
  s: Omit<VarlenScenario, 'id' | 'dtype'> & { dtype?: DType },
  name: string,
): VarlenScenario => ({
  dtype: 'float32',
  ...s,
  id: `varlen ${name} q[${s.lensQ.join(',')}] k[${s.lensK.join(',')}] h${s.Hq}/${s.Hk} d${s.D}${s.opts.causal ? ' causal' : ''}${s.opts.windowSize ? ` window${s.opts.windowSize.join(':')}` : ''}${s.opts.softmaxScale !== undefined ? ` scale${s.opts.softmaxScale}` : ''}`,
});

/** Ragged self-attention and cross-attention batches, lengths 0 and 1, GQA, causal and windows. */
export const VARLEN_SCENARIOS: readonly VarlenScenario[] = [
  vl(
    {
      lensQ: [4, 9],
      lensK: [4, 9],
      Hq: 2,
      Hk: 2,
      D: 8,
      opts: { causal: true, softmaxScale: 0.2 },
    },
    'self-softmax-scale',
  ),
  vl(
    {
      lensQ: [5, 0, 1, 17, 3],
      lensK: [5, 0, 1, 17, 3],
      Hq: 2,
      Hk: 2,
      D: 16,
      opts: { causal: true },
    },
    'self-packed',
  ),
  vl({ lensQ: [7, 1, 12], lensK: [7, 1, 12], Hq: 4, Hk: 2, D: 8, opts: {} }, 'self-gqa'),
  vl(
    { lensQ: [3, 0, 9, 2], lensK: [8, 4, 0, 2], Hq: 4, Hk: 1, D: 16, opts: { causal: true } },
    'cross-mqa-ragged',
  ),
  vl(
    {
      lensQ: [20, 6],
      lensK: [20, 6],
      Hq: 2,
      Hk: 2,
      D: 32,
      opts: { causal: true, windowSize: [4, 0] },
    },
    'self-window',
  ),
  vl(
    { lensQ: [9, 4], lensK: [5, 11], Hq: 2, Hk: 2, D: 8, opts: { windowSize: [2, 3] } },
    'cross-window-both-sides',
  ),
  vl(
    {
      lensQ: [6, 1, 10],
      lensK: [6, 1, 10],
      Hq: 2,
      Hk: 1,
      D: 16,
      opts: { causal: true },
      dtype: 'bfloat16',
    },
    'self-bf16',
  ),
];

const cumulative = (lens: readonly number[]): Int32Array => {
  const cu = new Int32Array(lens.length + 1);
  lens.forEach((l, i) => (cu[i + 1] = cu[i]! + l));
  return cu;
};

/** Run one varlen scenario (forward, then backward). Never throws for a wrong result. */
export async function runVarlenScenario<Buf>(
  dev: VarlenDevice<Buf>,
  s: VarlenScenario,
  seed: number,
  opts: { backward?: boolean } = {},
): Promise<InferenceResult> {
  const name = dev.name ?? 'device';
  const checks: InferenceCheck[] = [];
  const problems: string[] = [];
  try {
    const rng = createRng(caseSeedOf(seed, s.id));
    const { Hq, Hk, D, dtype } = s;
    const cuQ = cumulative(s.lensQ);
    const cuK = cumulative(s.lensK);
    const tq = cuQ[cuQ.length - 1]!;
    const tk = cuK[cuK.length - 1]!;
    const packed = Hq === Hk && s.lensQ.every((l, i) => l === s.lensK[i]);
    type V = Omit<StridedView<unknown>, 'buffer'>;
    let qv: V, kv: V, vv: V;
    let raws: Array<{ raw: Float32Array | Uint16Array; values: Float32Array }>;
    if (packed) {
      const p = packedQkvViews(null, 1, tq, Hq, D);
      [qv, kv, vv] = [p.q, p.k, p.v];
      raws = [randomData(rng, tq * 3 * Hq * D, dtype)];
    } else {
      qv = contiguousView(null, [1, tq, Hq, D]);
      kv = contiguousView(null, [1, tk, Hk, D]);
      vv = kv;
      raws = [
        randomData(rng, tq * Hq * D, dtype),
        randomData(rng, tk * Hk * D, dtype),
        randomData(rng, tk * Hk * D, dtype),
      ];
    }
    const dout = randomData(rng, tq * Hq * D, dtype);
    const hv = (v: V, i: number): StridedView<Float32Array> => ({
      ...v,
      buffer: raws[packed ? 0 : i]!.values,
    });
    const meta = {
      cuSeqlensQ: cuQ,
      cuSeqlensK: cuK,
      maxSeqlenQ: Math.max(0, ...s.lensQ),
      maxSeqlenK: Math.max(0, ...s.lensK),
    };
    const hostQ = hv(qv, 0);
    const hostK = hv(kv, 1);
    const hostV = hv(vv, 2);
    const scratch = (n: number, H: number) =>
      contiguousView(new Float32Array(n * H * D), [1, n, H, D]);
    const ref = varlenReference64(
      {
        q: hostQ,
        k: hostK,
        v: hostV,
        ...meta,
        out: scratch(tq, Hq),
        lse: new Float32Array(Hq * tq),
      },
      s.opts,
    );
    const grads = varlenReferenceBackward64(
      {
        q: hostQ,
        k: hostK,
        v: hostV,
        ...meta,
        dout: contiguousView(dout.values, [1, tq, Hq, D]),
        out: scratch(tq, Hq),
        lse: new Float32Array(Hq * tq),
        dq: scratch(tq, Hq),
        dk: scratch(tk, Hk),
        dv: scratch(tk, Hk),
      },
      s.opts,
    );

    // Device side.
    const up = async (raw: Float32Array | Uint16Array) => {
      const b = dev.alloc(raw.length, dtype);
      await dev.upload(b, raw);
      return b;
    };
    const bufs = await Promise.all(raws.map((r) => up(r.raw)));
    const dv = (v: V, i: number): StridedView<Buf> => ({ ...v, buffer: bufs[packed ? 0 : i]! });
    const out = await placeGuarded(dev, dtype, nanRaw(dtype, tq * Hq * D));
    const lse = await placeGuarded(dev, 'float32', nanRaw('float32', Hq * tq));
    const fwd = { q: dv(qv, 0), k: dv(kv, 1), v: dv(vv, 2), ...meta };
    await dev.varlenAttentionForward(
      { ...fwd, out: contiguousView(out.buf, [1, tq, Hq, D]), lse: lse.buf },
      s.opts,
    );
    problems.push(
      ...(await guardProblems(dev, out.root, dtype, 'out')),
      ...(await guardProblems(dev, lse.root, 'float32', 'lse')),
    );
    const gotOut = decodeRaw(dtype, await dev.download(out.root)).subarray(GUARD, -GUARD);
    const gotLse = decodeRaw('float32', await dev.download(lse.root)).subarray(GUARD, -GUARD);

    let grad: { dq: Float32Array; dk: Float32Array; dv: Float32Array } | null = null;
    if (opts.backward ?? true) {
      const dq = await placeGuarded(dev, dtype, nanRaw(dtype, tq * Hq * D));
      const dk = await placeGuarded(dev, dtype, nanRaw(dtype, tk * Hk * D));
      const dvb = await placeGuarded(dev, dtype, nanRaw(dtype, tk * Hk * D));
      await dev.varlenAttentionBackward(
        {
          ...fwd,
          dout: contiguousView(await up(dout.raw), [1, tq, Hq, D]),
          out: contiguousView(out.buf, [1, tq, Hq, D]),
          lse: lse.buf,
          dq: contiguousView(dq.buf, [1, tq, Hq, D]),
          dk: contiguousView(dk.buf, [1, tk, Hk, D]),
          dv: contiguousView(dvb.buf, [1, tk, Hk, D]),
        },
        s.opts,
      );
      for (const [nm, g] of [
        ['dq', dq],
        ['dk', dk],
        ['dv', dvb],
      ] as const)
        problems.push(...(await guardProblems(dev, g.root, dtype, nm)));
      const get = async (r: Buf) => decodeRaw(dtype, await dev.download(r)).subarray(GUARD, -GUARD);
      grad = { dq: await get(dq.root), dk: await get(dk.root), dv: await get(dvb.root) };
    }

    const c = dev.attentionCapabilities.computeDType(dtype);
    const qAll = gatherView(hostQ.buffer, hostQ);
    const kAll = gatherView(hostK.buffer, hostK);
    const vAll = gatherView(hostV.buffer, hostV);
    for (let b = 0; b < s.lensQ.length; b++) {
      const [q0, q1, k0, k1] = [cuQ[b]!, cuQ[b + 1]!, cuK[b]!, cuK[b + 1]!];
      const Nq = q1 - q0;
      const Nk = k1 - k0;
      const o = gotOut.subarray(q0 * Hq * D, q1 * Hq * D);
      const l = new Float32Array(Hq * Nq);
      const lr = new Float64Array(Hq * Nq);
      for (let h = 0; h < Hq; h++) {
        l.set(gotLse.subarray(h * tq + q0, h * tq + q1), h * Nq);
        lr.set(ref.lse.subarray(h * tq + q0, h * tq + q1), h * Nq);
      }
      const gk = grad
        ? [grad.dk.subarray(k0 * Hk * D, k1 * Hk * D), grad.dv.subarray(k0 * Hk * D, k1 * Hk * D)]
        : [];
      if (Nq === 0) {
        if (gk.some((g) => g.some((y) => y !== 0)))
          problems.push(`sequence ${b} has no query: dk and dv must be exactly 0`);
        continue;
      }
      const mask = maskInfo(Nq, Math.max(Nk, 1), D, s.opts);
      const rowMasked = (i: number) => Nk === 0 || mask.maskedRows[i] === 1;
      const keyUnseen = (j: number) => mask.unseenKeys[j] === 1;
      for (let i = 0; i < Nq; i++) {
        if (!rowMasked(i)) continue;
        for (let h = 0; h < Hq; h++) {
          if (l[h * Nq + i] !== -Infinity)
            problems.push(
              `sequence ${b} row ${i} head ${h} sees no key: lse must be -Infinity, got ${l[h * Nq + i]}`,
            );
          const at = (i * Hq + h) * D;
          if (o.subarray(at, at + D).some((y) => y !== 0))
            problems.push(`sequence ${b} row ${i} head ${h} sees no key: out must be exactly 0`);
          if (
            grad &&
            grad.dq
              .subarray((q0 + i) * Hq * D + h * D, (q0 + i) * Hq * D + (h + 1) * D)
              .some((y) => y !== 0)
          ) {
            problems.push(`sequence ${b} row ${i} head ${h} sees no key: dq must be exactly 0`);
          }
        }
      }
      for (let j = 0; j < Nk; j++) {
        if (!keyUnseen(j)) continue;
        if (gk.some((g) => g.subarray(j * Hk * D, (j + 1) * Hk * D).some((y) => y !== 0)))
          problems.push(`sequence ${b} key ${j} is seen by no query: dk and dv must be exactly 0`);
      }
      if (Nk === 0) continue;
      const T = (x: Float32Array, r0: number, r1: number, H: number) =>
        tensor(x.slice(r0 * H * D, r1 * H * D), [1, r1 - r0, H, D]);
      const n = naiveAttention(
        T(qAll, q0, q1, Hq),
        T(kAll, k0, k1, Hk),
        T(vAll, k0, k1, Hk),
        s.opts,
        c,
        grad ? T(dout.values, q0, q1, Hq) : undefined,
      );
      const rowSkip = (e: number) => rowMasked(Math.floor(e / (Hq * D)));
      const lseSkip = (e: number) => rowMasked(e % Nq);
      const keySkip = (e: number) => keyUnseen(Math.floor(e / (Hk * D)));
      checks.push(
        ruleCheck(
          'out',
          b,
          o,
          ref.out.subarray(q0 * Hq * D, q1 * Hq * D),
          n.forward.out,
          n.forward.outAbs,
          n.forward.outRescore,
          c,
          rowSkip,
        ),
        ruleCheck(
          'lse',
          b,
          l,
          lr,
          n.forward.lse,
          n.forward.lseAbs,
          n.forward.lseRescore,
          c,
          lseSkip,
        ),
      );
      if (grad && n.backward) {
        const nb = n.backward;
        checks.push(
          ruleCheck(
            'dq',
            b,
            grad.dq.subarray(q0 * Hq * D, q1 * Hq * D),
            grads.dq.subarray(q0 * Hq * D, q1 * Hq * D),
            nb.dq,
            nb.dqAbs,
            nb.dqRecompute,
            c,
            rowSkip,
          ),
          ruleCheck(
            'dk',
            b,
            gk[0]!,
            grads.dk.subarray(k0 * Hk * D, k1 * Hk * D),
            nb.dk,
            nb.dkAbs,
            nb.dkRecompute,
            c,
            keySkip,
          ),
          ruleCheck(
            'dv',
            b,
            gk[1]!,
            grads.dv.subarray(k0 * Hk * D, k1 * Hk * D),
            nb.dv,
            nb.dvAbs,
            nb.dvRecompute,
            c,
            keySkip,
          ),
        );
      }
    }
  } catch (e) {
    problems.push(
      `varlen attention threw ${(e as Error)?.name}: ${(e as Error)?.message ?? String(e)}`,
    );
  }
  return inferenceResult(s.id, name, seed, checks, problems);
}

/** Bad cu_seqlens / max lengths: AttentionInputError naming the argument, out left untouched. */
export async function runVarlenRejections<Buf>(
  dev: VarlenDevice<Buf>,
  seed: number,
): Promise<InferenceResult> {
  const name = dev.name ?? 'device';
  const problems: string[] = [];
  const [Hq, D] = [2, 8];
  const total = 6;
  const rng = createRng(caseSeedOf(seed, 'varlen rejections'));
  const data = randomData(rng, total * Hq * D, 'float32');
  const q = dev.alloc(total * Hq * D, 'float32');
  await dev.upload(q, data.raw);
  const view = contiguousView(q, [1, total, Hq, D]);
  const cases: Array<[string, number[], number, string]> = [
    ['decreasing offsets', [0, 4, 3, 6], 6, 'cuSeqlensQ[2]'],
    ['first offset not 0', [1, 3, 6], 6, 'cuSeqlensQ[0]'],
    ['last offset not the total', [0, 3, 5], 6, 'cuSeqlensQ[2]'],
    ['a sequence longer than maxSeqlenQ', [0, 1, 6], 4, 'maxSeqlenQ'],
  ];
  for (const [what, cu, maxQ, arg] of cases) {
    const out = await placeGuarded(dev, 'float32', nanRaw('float32', total * Hq * D));
    let threw: unknown = null;
    try {
      await dev.varlenAttentionForward(
        {
          q: view,
          k: view,
          v: view,
          cuSeqlensQ: Int32Array.from(cu),
          cuSeqlensK: Int32Array.from([0, 3, 3, 6].slice(0, cu.length - 1).concat([6])),
          maxSeqlenQ: maxQ,
          maxSeqlenK: 6,
          out: contiguousView(out.buf, [1, total, Hq, D]),
          lse: dev.alloc(Hq * total, 'float32'),
        },
        { causal: true },
      );
    } catch (e) {
      threw = e;
    }
    if (!(threw instanceof AttentionInputError))
      problems.push(
        `${what}: expected AttentionInputError naming ${arg}, got ${threw === null ? 'no error' : String(threw)}`,
      );
    else if (threw.argument !== arg)
      problems.push(`${what}: the error names '${threw.argument}', expected '${arg}'`);
    const got = (await dev.download(out.root)) as Float32Array;
    if (!got.every((y) => Number.isNaN(y))) problems.push(`${what}: the rejected call wrote out`);
  }
  return inferenceResult('varlen rejections', name, seed, [], problems);
}

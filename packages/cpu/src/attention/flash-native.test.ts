// The native AVX2 forward (native/flash_forward_avx2.cc through flash-native.ts): the path CpuOps
// takes by default; results bitwise independent of the thread count; deliberately broken variants
// (mask off by one, no rescale of acc) fail the conformance suite while the correct kernel passes the
// same cases; the event loop runs while it computes; bad input gives typed errors, never a crash.
// Its conformance on every layout, 1 and 2 threads, is ops/cpu-ops.conformance.test.ts (the default
// forward). Skipped, saying why, where the addon is not built or the CPU lacks AVX2 / FMA.
import { AttentionInputError, contiguousView, freshSeed } from '@flashattn/core';
import { deviceAttentionBackend, makeCase, runConformance } from '@flashattn/conformance';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CpuOps } from '../ops/cpu-ops.js';
import { NATIVE_TILES } from './cpu-attention.js';
import { threadCaseInputs, type ThreadCase } from './test-utils/thread-cases.js';
import {
  loadNativeAddon,
  nativeAddon,
  nativeAttentionInfo,
  type NativeForwardArgs,
} from './flash-native.js';
import { eventLoopTurnsDuring } from '../test-utils/event-loop.js';

const info = nativeAttentionInfo();
const skip = info.available ? false : `native forward unavailable: ${info.reason ?? '?'}`;
if (skip) console.warn(`flash-native.test: skipped: ${skip}`);
const seed = freshSeed();

// Lengths off the 48 x 128 tiles and the 6-row register tiles, Nq != Nk, GQA, D not a multiple of 8,
// causal and a window; the packed case reads q, k, v in place from one (B, N, 3, H, D) buffer.
const CASES: ThreadCase[] = [
  { name: 'packed causal', B: 2, Nq: 203, Nk: 203, Hq: 3, Hk: 3, D: 20, opts: { causal: true } },
  { name: 'gqa', B: 1, Nq: 70, Nk: 200, Hq: 4, Hk: 2, D: 18, opts: {} },
  { name: 'window', B: 1, Nq: 150, Nk: 97, Hq: 2, Hk: 1, D: 40, opts: { windowSize: [20, 5] } },
];

async function forward(ops: CpuOps, c: ThreadCase, s: number): Promise<Float32Array[]> {
  const { q, k, v, out, outBuf, lse } = threadCaseInputs(ops, c, s);
  await ops.attentionForward({ q, k, v, out, lse }, c.opts);
  expect(ops.attentionPath).toBe('native');
  return [outBuf.slice(), lse.slice()];
}

// The fallback's reasons, on any machine: a missing file, and an addon on a CPU without AVX2 (a stand-in
// module whose cpuFeatures() says so).
describe('native addon loading: the wasm forward runs, and the reason is said', () => {
  it('FLASHATTN_CPU_ADDON naming a missing file', () => {
    const r = loadNativeAddon('/nonexistent/flashattn_cpu.node');
    expect(r.addon).toBeNull();
    expect(r.info).toEqual({
      available: false,
      reason: 'FLASHATTN_CPU_ADDON=/nonexistent/flashattn_cpu.node does not exist',
    });
  });
  it('no local build and no prebuilt package (outside linux-x64 or before the build)', () => {
    const r = loadNativeAddon('', '/nonexistent/build/Release/flashattn_cpu.node');
    // In this workspace the prebuilt package is linked but holds no binary until it is packed.
    expect(r.addon).toBeNull();
    expect(r.info.reason).toMatch(/no native addon: @flashattn\/cpu-\w+-\w+ is not installed/);
  });
  it('a CPU without AVX2: the addon loads, the forward is not used', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flashattn-cpu-'));
    const file = join(dir, 'no-avx2.cjs');
    writeFileSync(file, 'module.exports = { cpuFeatures: () => ({ avx2: false, fma: true }) };');
    try {
      const r = loadNativeAddon(file);
      expect(r.addon).toBeNull();
      expect(r.info).toEqual({ available: false, path: file, reason: 'this CPU lacks AVX2' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(skip)(`native AVX2 forward (seed ${seed})`, () => {
  it('is the default forward, and the name says so', () => {
    const ops = new CpuOps({ threads: 1 });
    expect(ops.name).toContain('native avx2 forward');
    void ops.dispose();
    const wasm = new CpuOps({ threads: 1, native: false });
    expect(wasm.name).not.toContain('native');
    void wasm.dispose();
  });

  for (const c of CASES) {
    it(`${c.name}: bitwise the same on 1, 2 and 3 threads`, async () => {
      const results: Float32Array[][] = [];
      for (const threads of [1, 2, 3]) {
        const ops = new CpuOps({ threads });
        try {
          results.push(await forward(ops, c, seed));
        } finally {
          await ops.dispose();
        }
      }
      const [one, ...rest] = results;
      for (const r of rest)
        r.forEach((x, i) => {
          expect(
            x.every((y, j) => Object.is(y, one![i]![j])),
            `output ${i} differs from 1 thread`,
          ).toBe(true);
        });
      expect(one![0]!.some((x) => x !== 0 && Number.isFinite(x))).toBe(true);
    }, 60_000);
  }

  // float32 cases with more than one key block (a growing row max needs the rescale), causal ones (an
  // off-by-one mask shows), GQA / MQA, Nq != Nk, lengths off the tiles; normal logits.
  const spec = { dtype: 'float32', logits: 'normal', batch: 1, causal: false } as const;
  const cases = [
    makeCase({ ...spec, headDim: 64, nheadsQ: 4, nheadsK: 2, seqlenQ: 127, seqlenK: 300 }),
    makeCase({
      ...spec,
      headDim: 64,
      batch: 2,
      nheadsQ: 2,
      nheadsK: 2,
      seqlenQ: 129,
      seqlenK: 127,
      causal: true,
    }),
    makeCase({
      ...spec,
      headDim: 32,
      nheadsQ: 1,
      nheadsK: 1,
      seqlenQ: 1000,
      seqlenK: 1000,
      causal: true,
    }),
    makeCase({
      ...spec,
      headDim: 128,
      nheadsQ: 4,
      nheadsK: 1,
      seqlenQ: 300,
      seqlenK: 300,
      causal: true,
    }),
    makeCase({
      ...spec,
      headDim: 24,
      nheadsQ: 1,
      nheadsK: 1,
      seqlenQ: 17,
      seqlenK: 1000,
      causal: true,
    }),
  ];
  const causal = cases.filter((c) => c.causal);
  // more than one key block: the only ones where a missing rescale can show
  const multiBlock = cases.filter((c) => c.seqlenK > NATIVE_TILES.Bc);

  it('the correct kernel passes those cases (control)', async () => {
    const ops = new CpuOps({ threads: 2 });
    try {
      const r = await runConformance(deviceAttentionBackend(ops, { layout: 'padded' }), {
        cases,
        seed,
        backward: false,
      });
      expect(r.failed, r.results.map((x) => x.message).join('\n')).toBe(0);
      expect(r.passed).toBe(cases.length);
      expect(ops.attentionPath).toBe('native');
    } finally {
      await ops.dispose();
    }
  }, 120_000);

  for (const [variant, name, which] of [
    [1, 'mask off by one', causal],
    [2, 'no rescale of acc', multiBlock],
  ] as const) {
    it(`broken variant "${name}" fails every case it touches`, async () => {
      const ops = new CpuOps({ threads: 2, nativeVariant: variant });
      try {
        const r = await runConformance(deviceAttentionBackend(ops, { layout: 'padded' }), {
          cases: which,
          seed,
          backward: false,
        });
        expect(ops.attentionPath).toBe('native');
        expect(r.pass).toBe(false);
        expect(r.failed).toBe(which.length);
        for (const x of r.results) expect(x.message).toMatch(/out|lse/);
      } finally {
        await ops.dispose();
      }
    }, 120_000);
  }

  it('leaves the event loop free while it computes', async () => {
    const ops = new CpuOps({ threads: 2 });
    try {
      const c: ThreadCase = {
        name: 'big',
        B: 1,
        Nq: 2048,
        Nk: 2048,
        Hq: 8,
        Hk: 8,
        D: 64,
        opts: {},
      };
      const ticks = await eventLoopTurnsDuring(() => forward(ops, c, seed));
      expect(ticks).toBeGreaterThan(1);
    } finally {
      await ops.dispose();
    }
  }, 60_000);

  it('bad input: typed errors from CpuOps, TypeErrors from the addon, the process goes on', async () => {
    const ops = new CpuOps({ threads: 2 });
    try {
      const buf = ops.alloc(2 * 8 * 2 * 16, 'float32') as Float32Array;
      const q = contiguousView(buf, [2, 8, 2, 16]);
      const lse = ops.alloc(2 * 2 * 8, 'float32') as Float32Array;
      // a view past the end of its buffer
      const bad = { ...q, shape: [2, 9, 2, 16] as const };
      await expect(
        ops.attentionForward({ q: bad, k: q, v: q, out: q, lse }),
      ).rejects.toBeInstanceOf(AttentionInputError);
      await expect(
        ops.attentionForward({ q, k: q, v: q, out: q, lse: lse.subarray(1) }),
      ).rejects.toBeInstanceOf(AttentionInputError);
    } finally {
      await ops.dispose();
    }
    const addon = nativeAddon()!;
    const x = new Float32Array(new SharedArrayBuffer(4 * 64));
    const good: NativeForwardArgs = {
      B: 1,
      Nq: 4,
      Nk: 4,
      Hq: 1,
      Hk: 1,
      D: 16,
      scale: 0.25,
      Br: 96,
      Bc: 64,
      threads: 2,
      variant: 0,
      q: x,
      qLayout: [0, 64, 16, 16],
      k: x,
      kLayout: [0, 64, 16, 16],
      v: x,
      vLayout: [0, 64, 16, 16],
      out: new Float32Array(64),
      outLayout: [0, 64, 16, 16],
      lse: new Float32Array(4),
      lo: new Int32Array([0, 0, 0, 0]),
      hi: new Int32Array([1, 2, 3, 4]),
    };
    await addon.forward(good); // the control: these arguments are accepted
    const wrong: Array<[string, Record<string, unknown>, RegExp]> = [
      ['no object', null as unknown as Record<string, unknown>, /expected an object/],
      ['D', { D: 0 }, /D: expected an integer/],
      ['Nq', { Nq: 2.5 }, /Nq: expected an integer/],
      ['Hq', { Hq: 3, Hk: 2 }, /Hq: expected a multiple of Hk/],
      ['q', { q: new Float64Array(64) }, /q: expected a Float32Array/],
      ['k extent', { kLayout: [1, 64, 16, 16] }, /k: the view ends at element 65/],
      ['layout', { vLayout: [0, 64, 16] }, /vLayout: expected \[offset, sB, sN, sH\]/],
      ['lse', { lse: new Float32Array(3) }, /lse: expected B Hq Nq = 4 elements/],
      ['hi', { hi: new Int32Array([1, 0, 3, 4]) }, /hi: expected non-decreasing/],
      [
        'lo',
        { lo: new Int32Array([0, 0, 0, 9]) },
        /lo: expected non-decreasing values in \[0, Nk\]/,
      ],
      ['Bc', { Bc: 40 }, /Bc: expected a multiple of 16/],
      ['scale', { scale: Number.NaN }, /scale: expected a positive finite number/],
    ];
    for (const [what, patch, message] of wrong) {
      const args = patch === null ? null : { ...good, ...patch };
      expect(() => addon.forward(args as unknown as NativeForwardArgs), what).toThrow(TypeError);
      expect(() => addon.forward(args as unknown as NativeForwardArgs), what).toThrow(message);
    }
  });
});

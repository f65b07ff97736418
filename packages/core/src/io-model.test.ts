/**
 * The IO model against hand-derived counts (written out below from the algorithms, not from the
 * code) and the scaling laws of FlashAttention's Theorem 2.
 */
import { describe, expect, it } from 'vitest';
import { A100_SXM4_80GB, H100_SXM5_80GB } from './device-profiles.js';
import { AttentionInputError } from './errors.js';
import {
  attentionFlops,
  attentionIoModel,
  blockSchedule,
  blockSizesFromSram,
  predictRuntime,
  roofline,
  type IoModelInput,
} from './io-model.js';

const KiB = 1024;
const base = (over: Partial<IoModelInput> = {}): IoModelInput => ({
  batch: 1,
  heads: 1,
  seqlenQ: 1024,
  seqlenK: 1024,
  headDim: 64,
  bytesPerElement: 2,
  sramBytes: 64 * KiB,
  ...over,
});

describe('block sizes from M (FA1 Algorithm 1 line 1, assigned by loop role)', () => {
  it('gives the resident block ceil(M / 4d) rows and the streamed block min(that, d)', () => {
    // H100: M = 228 KiB / 2 bytes = 116736 elements; M / 4d = 116736 / 256 = 456.
    expect(blockSizesFromSram(228 * KiB, 64, 2)).toEqual({
      forward: { Br: 456, Bc: 64 },
      backward: { Br: 64, Bc: 456 },
    });
    // Tiny M: 1 KiB of float16 = 512 elements, 512 / 256 = 2 rows, so min(2, d) = 2.
    expect(blockSizesFromSram(1 * KiB, 64, 2)).toEqual({ forward: { Br: 2, Bc: 2 }, backward: { Br: 2, Bc: 2 } });
    // ceil: 1000 elements / (4 * 64) = 3.9 -> 4
    expect(blockSizesFromSram(4000, 64, 4).forward.Br).toBe(4);
  });
});

describe('HBM traffic against hand counts', () => {
  it('standard attention: Algorithm 0 forward and Algorithm 3 backward', () => {
    const B = 2, H = 3, N = 128, d = 64, e = 2;
    const m = attentionIoModel(base({ batch: B, heads: H, seqlenQ: N, seqlenK: N, bytesPerElement: e }));
    // forward reads Q, K | S | P, V ; writes S | P | O
    expect(m.forward.standard.readBytes).toBe(B * H * e * (N * d + N * d + N * N + N * N + N * d));
    expect(m.forward.standard.writeBytes).toBe(B * H * e * (N * N + N * N + N * d));
    // backward reads P, dO | dO, V | P, dP | dS, K | dS, Q ; writes dV | dP | dS | dQ | dK
    expect(m.backward.standard.readBytes).toBe(B * H * e * (5 * N * N + 5 * N * d));
    expect(m.backward.standard.writeBytes).toBe(B * H * e * (2 * N * N + 3 * N * d));
    // Theorem 2, standard: Theta(N d + N^2), here exactly 4 N^2 + 4 N d elements forward.
    expect(m.forward.standard.totalBytes).toBe(B * H * e * (4 * N * N + 4 * N * d));
  });

  it('FlashAttention-2 forward (Algorithm 1): Q once, K/V Tr times, O and L once', () => {
    // M = 64 KiB of float16 = 32768 elements; Br = 32768 / (4 * 64) = 128; Tr = 1024 / 128 = 8.
    const N = 1024, d = 64, e = 2, Tr = 8;
    const m = attentionIoModel(base());
    expect(m.blocks.forward.Br).toBe(128);
    expect(m.blocks.forward.Tr).toBe(Tr);
    expect(m.kvPasses).toBe(Tr);
    expect(m.forward.flash.readBytes).toBe(e * (N * d + 2 * N * d * Tr));
    expect(m.forward.flash.writeBytes).toBe(e * N * d + 4 * N); // O, and L in float32
  });

  it('FlashAttention-2 backward (Algorithm 2): K/V once, Q/dO/dQ/L/D Tc times', () => {
    // backward: Bc = 128 (resident), Br = min(128, 64) = 64; Tc = 8.
    const N = 1024, d = 64, e = 2, Tc = 8;
    const m = attentionIoModel(base());
    expect([m.blocks.backward.Br, m.blocks.backward.Bc, m.blocks.backward.Tc]).toEqual([64, 128, Tc]);
    const reads = e * (2 * N * d) + e * (2 * N * d) + Tc * (e * 3 * N * d + 4 * 2 * N);
    const writes = e * N * d + 4 * N + Tc * e * N * d + e * 2 * N * d;
    expect(m.backward.flash.readBytes).toBe(reads);
    expect(m.backward.flash.writeBytes).toBe(writes);
  });

  it('totals are the sums of the per-line terms', () => {
    const m = attentionIoModel(base({ causal: true, batch: 2, heads: 4 }));
    for (const t of [m.forward.standard, m.forward.flash, m.backward.standard, m.backward.flash]) {
      expect(t.readBytes).toBe(t.terms.reduce((s, x) => s + x.readBytes, 0));
      expect(t.writeBytes).toBe(t.terms.reduce((s, x) => s + x.writeBytes, 0));
      expect(t.totalBytes).toBe(t.readBytes + t.writeBytes);
      for (const x of t.terms) expect(x.line).toMatch(/^FA[12] Alg\. \d line \d+$/);
    }
  });
});

describe('Theorem 2 scaling laws', () => {
  it('doubling M halves the K/V re-reads exactly when the blocks divide N', () => {
    const kv = (M: number): number => attentionIoModel(base({ seqlenQ: 4096, seqlenK: 4096, sramBytes: M })).kvPasses;
    expect(kv(32 * KiB)).toBe(64); // Br = 64
    expect(kv(64 * KiB)).toBe(32); // Br = 128
    expect(kv(128 * KiB)).toBe(16); // Br = 256
    const kvBytes = (M: number): number =>
      attentionIoModel(base({ seqlenQ: 4096, seqlenK: 4096, sramBytes: M })).forward.flash.terms.find((t) =>
        t.line.endsWith('line 7'),
      )!.readBytes;
    expect(kvBytes(64 * KiB)).toBe(kvBytes(32 * KiB) / 2);
    // The backward's re-reads (Q, dO, dQ, L, D per K/V block) halve too: Tc = N / Bc, Bc = M / 4d.
    const bwdPairs = (M: number): number =>
      attentionIoModel(base({ seqlenQ: 4096, seqlenK: 4096, sramBytes: M })).blocks.backward.Tc;
    expect(bwdPairs(64 * KiB)).toBe(bwdPairs(32 * KiB) / 2);
  });

  it('doubling M halves the K/V re-reads asymptotically when they do not divide', () => {
    const N = 5000;
    for (const M of [24 * KiB, 40 * KiB, 100 * KiB]) {
      const a = attentionIoModel(base({ seqlenQ: N, seqlenK: N, sramBytes: M })).kvPasses;
      const b = attentionIoModel(base({ seqlenQ: N, seqlenK: N, sramBytes: 2 * M })).kvPasses;
      // Tr = ceil(N / Br): within one block of N / Br, so the ratio is 1/2 up to 1 / Tr.
      expect(Math.abs(b / a - 0.5)).toBeLessThanOrEqual(1 / b);
    }
  });

  it('standard attention grows as N^2: the ratio at 2N vs N tends to 4', () => {
    const total = (N: number): number =>
      attentionIoModel(base({ seqlenQ: N, seqlenK: N })).forward.standard.totalBytes;
    let prev = 0;
    for (let N = 256; N <= 16384; N *= 2) {
      const r = total(2 * N) / total(N);
      expect(r).toBeGreaterThan(prev); // approaches 4 from below as N^2 dominates N d
      expect(r).toBeLessThan(4);
      prev = r;
    }
    // (4 (2N)^2 + 4 (2N) d) / (4 N^2 + 4 N d) = (4N + 2d) / (N + d) at N = 16384, d = 64
    expect(prev).toBeCloseTo((4 * 16384 + 2 * 64) / (16384 + 64), 12);
    expect(prev).toBeGreaterThan(3.98);
  });

  it('FlashAttention grows as N^2 d^2 / M (once N d >> M)', () => {
    // Forward traffic / (N^2 d^2 e / M) -> 8 (K and V, 2 N d e each, Tr = N 4d / M times), for every
    // N, d, M with N d >= 16 M (where the N d terms are small) and blocks that divide N.
    const ratios: number[] = [];
    for (const d of [32, 64, 128]) {
      for (const Mk of [16, 64, 256]) {
        for (const N of [16384, 65536]) {
          const M = Mk * KiB;
          if (N * d * 2 < 16 * M) continue;
          const m = attentionIoModel(base({ seqlenQ: N, seqlenK: N, headDim: d, sramBytes: M }));
          ratios.push(m.forward.flash.totalBytes / ((N * N * d * d * 2) / (M / 2)));
        }
      }
    }
    expect(ratios.length).toBeGreaterThan(10);
    for (const r of ratios) {
      expect(r).toBeGreaterThanOrEqual(8);
      expect(r).toBeLessThan(8 * 1.15);
    }
  });

  it('FlashAttention moves fewer bytes than standard attention at realistic sizes (H100 SRAM)', () => {
    for (const N of [1024, 2048, 4096, 8192, 16384]) {
      for (const d of [64, 128]) {
        for (const causal of [false, true]) {
          const m = attentionIoModel(
            base({ seqlenQ: N, seqlenK: N, headDim: d, causal, batch: 4, heads: 16, sramBytes: H100_SXM5_80GB.sramBytesPerSM }),
          );
          expect(m.forward.flash.totalBytes).toBeLessThan(m.forward.standard.totalBytes);
          expect(m.backward.flash.totalBytes).toBeLessThan(m.backward.standard.totalBytes);
          expect(m.extraBytes.flash).toBeLessThan(m.extraBytes.standard);
        }
      }
    }
  });
});

describe('causal block counting', () => {
  it('visits the lower triangle of blocks: (Tr + 1) / 2 K/V passes when Nq = Nk', () => {
    const m = attentionIoModel(base({ seqlenQ: 4096, seqlenK: 4096, Br: 128, Bc: 128, causal: true }));
    const Tr = 32;
    expect(m.blocks.forward.blockPairs).toBe((Tr * (Tr + 1)) / 2);
    expect(m.kvPasses).toBe((Tr + 1) / 2);
    const full = attentionIoModel(base({ seqlenQ: 4096, seqlenK: 4096, Br: 128, Bc: 128 }));
    expect(full.kvPasses).toBe(Tr);
    // Standard attention materialises all of S and P either way.
    expect(m.forward.standard.totalBytes).toBe(full.forward.standard.totalBytes);
  });

  it('aligns the mask bottom-right for Nq != Nk, both ways', () => {
    // Nq = 100, Nk = 300, blocks of 50: query block 0 sees keys 0..249 (5 blocks), block 1 all 6.
    const wide = blockSchedule(100, 300, 50, 50, true);
    expect([wide.blockPairs, wide.kvRowsLoaded]).toEqual([11, 550]);
    // Nq = 300, Nk = 100: rows 0..199 see no key; block 4 (rows 200..249) sees block 0 only, block 5 both.
    const tall = blockSchedule(300, 100, 50, 50, true);
    expect([tall.blockPairs, tall.kvRowsLoaded, tall.qRowsLoaded]).toEqual([3, 150, 150]);
    // ragged last blocks: Nq = Nk = 130, blocks of 64: rows 128..129 see all 3 K blocks (130 keys).
    const ragged = blockSchedule(130, 130, 64, 64, true);
    expect(ragged.kvRowsLoaded).toBe(64 + 128 + 130);
    expect(ragged.tileEntries).toBe(64 * 64 + 64 * 128 + 2 * 130);
  });
});

describe('FLOPs', () => {
  it('follows the FlashAttention convention: 4 B H Nq Nk d, halved when causal, backward 2.5x', () => {
    const p = { batch: 2, heads: 8, seqlenQ: 1024, seqlenK: 512, headDim: 64 };
    expect(attentionFlops(p)).toEqual({ forward: 4 * 2 * 8 * 1024 * 512 * 64, backward: 10 * 2 * 8 * 1024 * 512 * 64 });
    expect(attentionFlops({ ...p, causal: true }).forward).toBe(2 * 2 * 8 * 1024 * 512 * 64);
  });

  it('counts the exact matmul FLOPs of each algorithm', () => {
    const N = 1000, d = 64;
    const m = attentionIoModel(base({ seqlenQ: N, seqlenK: N, causal: true, Br: 64, Bc: 64 }));
    const visible = (N * (N + 1)) / 2; // row i sees keys 0..i
    expect(m.flops.forward.visibleMatmul).toBe(4 * d * visible);
    expect(m.flops.backward.visibleMatmul).toBe(10 * d * visible);
    expect(m.flops.forward.standardMatmul).toBe(4 * d * N * N);
    expect(m.flops.backward.standardMatmul).toBe(8 * d * N * N); // dV, dP, dQ, dK; no recompute
    // Tiles: whole diagonal blocks are computed, so between the visible pairs and the full matrix.
    expect(m.flops.forward.flashMatmul).toBeGreaterThan(m.flops.forward.visibleMatmul);
    expect(m.flops.forward.flashMatmul).toBeLessThan(m.flops.forward.standardMatmul);
    // The convention's "halved" (N^2 / 2) is close to the exact N (N + 1) / 2.
    expect(m.flops.forward.convention / m.flops.forward.visibleMatmul).toBeCloseTo(N / (N + 1), 12);
  });
});

describe('roofline', () => {
  it('is max(compute time, memory time)', () => {
    const c = roofline(1e12, 1e9, 1e14, 1e12); // 10 ms of math, 1 ms of memory
    expect(c.seconds).toBe(0.01);
    expect(c.bound).toBe('compute');
    const mem = roofline(1e9, 1e10, 1e14, 1e12); // 10 us of math, 10 ms of memory
    expect(mem.seconds).toBe(0.01);
    expect(mem.bound).toBe('memory');
    expect(mem.arithmeticIntensity).toBe(0.1);
    expect(() => roofline(1, 1, 0, 1)).toThrow(AttentionInputError);
  });

  it('predicts both passes on a device profile from their FLOPs and bytes', () => {
    const m = attentionIoModel(base({ seqlenQ: 4096, seqlenK: 4096, batch: 8, heads: 16, sramBytes: H100_SXM5_80GB.sramBytesPerSM }));
    const p = predictRuntime(m, H100_SXM5_80GB);
    expect(p.precision).toBe('bfloat16');
    const want = (flops: number, bytes: number): number => Math.max(flops / 989.5e12, bytes / 3.35e12);
    expect(p.forward.flash.seconds).toBe(want(m.flops.forward.flashMatmul, m.forward.flash.totalBytes));
    expect(p.forward.standard.seconds).toBe(want(m.flops.forward.standardMatmul, m.forward.standard.totalBytes));
    expect(p.backward.flash.seconds).toBe(want(m.flops.backward.flashMatmul, m.backward.flash.totalBytes));
    // At N = 4096, d = 64 standard attention is memory-bound and FlashAttention compute-bound.
    expect(p.forward.standard.bound).toBe('memory');
    expect(p.forward.flash.bound).toBe('compute');
    expect(p.forward.flash.seconds).toBeLessThan(p.forward.standard.seconds);
    const a100 = predictRuntime(attentionIoModel(base({ bytesPerElement: 4 })), A100_SXM4_80GB);
    expect(a100.precision).toBe('float32');
  });
});

describe('input validation', () => {
  it('names the bad field, the expectation and the value', () => {
    expect(() => attentionIoModel(base({ headDim: 0 }))).toThrow(/Invalid headDim: expected a positive integer, got 0/);
    expect(() => attentionIoModel(base({ sramBytes: 1.5 }))).toThrow(AttentionInputError);
    expect(() => attentionIoModel(base({ Br: -1 }))).toThrow(/Invalid Br/);
    expect(() => attentionIoModel(base({ causal: 'yes' as unknown as boolean }))).toThrow(/Invalid causal/);
    expect(() => attentionIoModel(null as unknown as IoModelInput)).toThrow(/Invalid io model input/);
  });
});

describe('device profiles', () => {
  it('carry their sources and a consistent memory hierarchy', () => {
    for (const dev of [A100_SXM4_80GB, H100_SXM5_80GB]) {
      expect(dev.sources.length).toBeGreaterThanOrEqual(3);
      expect(dev.sramBytesPerSM).toBeLessThan(dev.l1SharedBytesPerSM);
      expect(dev.peakFlopsPerSecond.bfloat16).toBeGreaterThan(dev.tf32FlopsPerSecond);
      expect(dev.tf32FlopsPerSecond).toBeGreaterThan(dev.peakFlopsPerSecond.float32);
    }
  });
});

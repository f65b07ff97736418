// The FLOP count against the formula evaluated by hand (the parameter count written out per tensor here,
// not taken from params.ts), and the peak lookup's device matching.
import { describe, expect, it } from 'vitest';
import { GPT2_124M } from '../config.js';
import {
  flopParams,
  lookupPeakTflops,
  mfu,
  trainingFlops,
  trainingFlopsPerToken,
} from './flops.js';

describe('training FLOPs (FA2 end-to-end convention)', () => {
  it('GPT-2 124M at T = 1024: 6 N + 12 L C T with N = params without wpe', () => {
    // N by hand: wte 50257*768 = 38,597,376; per layer 12*768^2 + 13*768 = 7,087,872; x12 = 85,054,464;
    // ln_f 2*768 = 1,536. Total without wpe = 123,653,376 (124,439,808 with wpe's 1024*768 = 786,432).
    expect(flopParams(GPT2_124M)).toBe(123_653_376);
    // 6 * 123,653,376 = 741,920,256; 12 * 12 * 768 * 1024 = 113,246,208; sum 855,166,464.
    expect(trainingFlopsPerToken(GPT2_124M, 1024)).toBe(855_166_464);
    // causal-half: 741,920,256 + 56,623,104
    expect(trainingFlopsPerToken(GPT2_124M, 1024, { attention: 'causal-half' })).toBe(798_543_360);
    // one B = 16, T = 1024 step: 16,384 tokens
    expect(trainingFlops(GPT2_124M, 1024, 16 * 1024)).toBe(855_166_464 * 16_384);
  });

  it('tiny model by hand: V=8, T_max=4, L=1, H=1, C=2', () => {
    const c = { vocabSize: 8, maxSeqLen: 4, nLayer: 1, nHead: 1, nEmbd: 2 };
    // wte 16, block 12*4 + 13*2 = 74, ln_f 4: N = 94 (wpe's 8 left out)
    expect(flopParams(c)).toBe(94);
    // 6*94 + 12*1*2*3 = 564 + 72
    expect(trainingFlopsPerToken(c, 3)).toBe(636);
  });

  it('MFU: FLOPs per second over the peak', () => {
    // 1e15 FLOPs in 2 s against 1000 TFLOP/s = 0.5
    expect(mfu(1e15, 2, 1000)).toBeCloseTo(0.5, 12);
  });
});

describe('peak lookup', () => {
  it('H100 / H200 SXM by name, bf16 989.5 and fp32 67; PCIe and unknown devices give a note', () => {
    expect(
      lookupPeakTflops('NVIDIA H100 80GB HBM3 (compute capability 9.0, 1 device)', 'bfloat16'),
    ).toMatchObject({ tflops: 989.5, device: 'H100' });
    expect(lookupPeakTflops('NVIDIA H200', 'float32')).toMatchObject({
      tflops: 67,
      device: 'H200',
    });
    expect(lookupPeakTflops('NVIDIA H100 PCIe', 'bfloat16').tflops).toBeNull();
    const cpu = lookupPeakTflops('cpu (float32, 2 threads)', 'float32');
    expect(cpu.tflops).toBeNull();
    expect(cpu.tflops === null && cpu.note).toContain('--peak-tflops');
  });
});

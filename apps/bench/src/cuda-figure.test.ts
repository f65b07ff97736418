import { describe, expect, it } from 'vitest';
import { parseCudaRows } from './cuda-figure.js';

describe('parseCudaRows', () => {
  it('reads the CUDA table of BENCHMARKS.md and ignores other sections', () => {
    const md = [
      '## WebGPU',
      '| bf16 | 64 | no | 8 x 2048 (32) | 1 / 2 / 3 | 4 / 5 / 6 | 7 / 8 / 9 | x |',
      '## CUDA addon vs PyTorch SDPA (H100)',
      '| dtype | D | causal | B x N (H) | ours | torch flash | torch cuDNN | ours / flash | ours / cuDNN |',
      '| bf16 | 128 | yes | 4 x 4096 (16) | 274 / 182 / 209 | 269 / 233 / 261 | 557 / 429 / 464 | 1.02 / 0.78 / 0.80 | 0.49 / 0.42 / 0.45 |',
      '## Next',
      '| bf16 | 32 | no | 1 x 2 (3) | 1 / 1 / 1 | 1 / 1 / 1 | 1 / 1 / 1 | x |',
    ].join('\n');
    const rows = parseCudaRows(md);
    expect(rows).toEqual([
      { dtype: 'bf16', D: 128, causal: true, batch: 4, N: 4096, ours: [274, 182, 209], flash: [269, 233, 261], cudnn: [557, 429, 464] },
    ]);
  });

  it('throws when there is no CUDA section', () => {
    expect(() => parseCudaRows('## CPU\n')).toThrow(/no "## CUDA" section/);
  });
});

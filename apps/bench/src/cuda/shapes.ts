/** The benchmark shapes of issue 4: batch x N = 16384 tokens, hidden 2048 (H = 2048 / D), plus batch-1 large N. */
export interface BenchShape {
  batch: number;
  seqlen: number;
  nheads: number;
  headDim: number;
  causal: boolean;
}

export function benchShapes(quick = false, seqlens?: readonly number[]): BenchShape[] {
  const out: BenchShape[] = [];
  for (const headDim of [64, 128]) {
    for (const causal of [false, true]) {
      const ns = seqlens ?? (quick ? [2048, 8192] : [512, 1024, 2048, 4096, 8192, 16384]);
      for (const seqlen of ns)
        out.push({ batch: 16384 / seqlen, seqlen, nheads: 2048 / headDim, headDim, causal });
      if (!quick && !seqlens)
        out.push({ batch: 1, seqlen: 32768, nheads: 2048 / headDim, headDim, causal });
    }
  }
  return out;
}

import { describe, expect, it } from 'vitest';
import { untag } from './corpus.js';
import { unigramBaselines } from './dataset.js';
import { formatProgress } from './progress.js';
import { buildVocab, EOT, gpt2Encode, GPT2_VOCAB } from './vocab.js';

describe('GPT-2 BPE and the compact vocabulary', () => {
  it('uses the real GPT-2 ids (r50k_base)', () => {
    // 'Hello' = 15496 and ' world' = 995 in GPT-2's vocabulary.
    expect(gpt2Encode('Hello world')).toEqual([15496, 995]);
  });

  it('full vocabulary: identity mapping, exact round trip', () => {
    const v = buildVocab(0);
    expect(v.size).toBe(GPT2_VOCAB);
    const text = 'The jury said, "No evidence" of irregularities.';
    expect(v.decode(v.encode(text))).toBe(text);
  });

  it('compact vocabulary keeps bytes + EOT + frequent tokens and spells rare tokens as bytes', () => {
    const common = gpt2Encode(' the');
    const counts = new Map([[common[0]!, 100]]);
    const v = buildVocab(258, counts); // 256 bytes + EOT + ' the'
    expect(v.size).toBe(258);
    expect(v.fromGpt2[EOT]).toBeGreaterThanOrEqual(0);
    expect(v.fromGpt2[common[0]!]).toBeGreaterThanOrEqual(0);
    const text = ' the antidisestablishmentarianism café';
    const ids = v.encode(text);
    expect(ids.length).toBe(1 + new TextEncoder().encode(' antidisestablishmentarianism café').length);
    expect(v.decode(ids)).toBe(text); // exact, including the 2-byte é
    for (const id of ids) expect(v.toGpt2[id]).toBeLessThan(GPT2_VOCAB);
  });
});

describe('corpus text and baselines', () => {
  it('strips Brown POS tags and undoes its tokenisation', () => {
    expect(untag("\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, didn't/dod* ./.\n")).toBe('The jury said "no evidence", didn\'t.');
  });

  it('unigram entropy and smoothed cross-entropy follow their formulas', () => {
    const train = Int32Array.from([0, 0, 1, 1]);
    const val = Int32Array.from([0, 2]);
    const b = unigramBaselines(train, val, 3);
    expect(b.entropy).toBeCloseTo(Math.log(2), 12);
    expect(b.valCrossEntropy).toBeCloseTo(-(Math.log(3 / 7) + Math.log(1 / 7)) / 2, 12);
  });

  it('progress line shows step, loss, tokens/s and ETA', () => {
    expect(formatProgress({ step: 5, total: 10, loss: 3.14159, tokensPerSec: 1234.5, etaSec: 75 }, 10)).toBe(
      '[#####-----] step 5/10 | loss 3.1416 | 1,235 tok/s | ETA 1m15s',
    );
  });
});

/**
 * Tokenised train/val splits and the batch loader. Documents are joined with <|endoftext|>.
 * The loader walks the training tokens sequentially (llm.c's DataLoader): batch row b of a step reads
 * tokens[pos + b*T, pos + b*T + T] as inputs and the next-token shifted window as targets; pos advances
 * by B*T and wraps. `pos` is saved in checkpoints so a resumed run sees the same batches.
 */
import { loadBrown } from './corpus.js';
import { buildVocab, EOT, gpt2Encode, type Vocab } from './vocab.js';

export interface Dataset {
  vocab: Vocab;
  train: Int32Array;
  val: Int32Array;
  /** Documents in each split. */
  docs: { train: number; val: number };
  /** Fraction of GPT-2 tokens in the corpus that the compact vocabulary spells as bytes. */
  spelledFraction: number;
}

export function loadDataset(vocabSize: number): Dataset {
  const { train, val } = loadBrown();
  const enc = (docs: { text: string }[]): number[] => {
    const ids: number[] = [];
    for (const d of docs) {
      for (const t of gpt2Encode(d.text)) ids.push(t);
      ids.push(EOT);
    }
    return ids;
  };
  const trainIds = enc(train);
  const valIds = enc(val);
  const counts = new Map<number, number>();
  for (const t of trainIds) counts.set(t, (counts.get(t) ?? 0) + 1);
  const vocab = buildVocab(vocabSize, counts);
  let spelled = 0;
  for (const t of trainIds) if (vocab.fromGpt2[t]! < 0) spelled++;
  return {
    vocab,
    train: vocab.remap(trainIds),
    val: vocab.remap(valIds),
    docs: { train: train.length, val: val.length },
    spelledFraction: spelled / trainIds.length,
  };
}

/** Unigram entropy of `train` and the cross-entropy of that unigram model on `val`, in nats/token. */
export function unigramBaselines(train: Int32Array, val: Int32Array, V: number): { entropy: number; valCrossEntropy: number } {
  const counts = new Float64Array(V);
  for (const t of train) counts[t]!++;
  let entropy = 0;
  for (const c of counts) if (c > 0) entropy -= (c / train.length) * Math.log(c / train.length);
  // Add-one smoothing so a token unseen in train has finite cost on val.
  let ce = 0;
  for (const t of val) ce -= Math.log((counts[t]! + 1) / (train.length + V));
  return { entropy, valCrossEntropy: ce / val.length };
}

export class Loader {
  pos = 0;
  constructor(
    readonly tokens: Int32Array,
    readonly B: number,
    readonly T: number,
  ) {
    if (tokens.length < B * T + 1) throw new RangeError(`split has ${tokens.length} tokens; a batch needs B*T+1 = ${B * T + 1}`);
  }

  /** Inputs and targets (B, T) at the current position; advances. */
  next(): { x: Int32Array; y: Int32Array } {
    const { B, T } = this;
    if (this.pos + B * T + 1 > this.tokens.length) this.pos = 0;
    const x = this.tokens.slice(this.pos, this.pos + B * T);
    const y = this.tokens.slice(this.pos + 1, this.pos + B * T + 1);
    this.pos += B * T;
    return { x, y };
  }
}

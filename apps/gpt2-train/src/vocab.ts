/**
 * Real GPT-2 BPE (r50k_base, via gpt-tokenizer) and, for the CPU-sized configs, a compact vocabulary.
 *
 * The full GPT-2 vocabulary has 50257 entries; its LM head alone would cost 6 * C * 50257 FLOPs per
 * token, far more than the rest of a tiny model. So a compact config keeps:
 *   - the 256 single-byte GPT-2 tokens (every byte has one),
 *   - <|endoftext|> (document separator),
 *   - the (size - 257) most frequent other GPT-2 tokens in the training split,
 * and spells every rarer token as the GPT-2 byte tokens of its bytes. Every compact id is a real GPT-2
 * token id, and decoding is exact (the same bytes come out); only rare words take more tokens.
 * The full config (gpt2-124m) uses the 50257 ids unchanged.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { encode } from 'gpt-tokenizer/encoding/r50k_base';

export const GPT2_VOCAB = 50257;
export const EOT = 50256;

let tokenBytesCache: Uint8Array[] | null = null;

/** Bytes of every GPT-2 token (r50k_base ranks, shipped in gpt-tokenizer's data folder). */
export function gpt2TokenBytes(): Uint8Array[] {
  if (tokenBytesCache) return tokenBytesCache;
  const require = createRequire(import.meta.url);
  const path = require.resolve('gpt-tokenizer/data/r50k_base.tiktoken');
  const out: Uint8Array[] = new Array(GPT2_VOCAB);
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line) continue;
    const [b64, rank] = line.split(' ');
    out[Number(rank)] = new Uint8Array(Buffer.from(b64!, 'base64'));
  }
  out[EOT] = new TextEncoder().encode('<|endoftext|>');
  tokenBytesCache = out;
  return out;
}

export interface Vocab {
  /** Compact vocabulary size (= GPT2_VOCAB when not compact). */
  size: number;
  /** compact id -> GPT-2 id */
  toGpt2: Int32Array;
  /** GPT-2 id -> compact id, or -1 when spelled as bytes. */
  fromGpt2: Int32Array;
  /** Map a GPT-2 token stream to compact ids (rare tokens expanded to byte tokens). */
  remap(ids: ArrayLike<number>): Int32Array;
  encode(text: string): Int32Array;
  decode(ids: ArrayLike<number>): string;
}

export function gpt2Encode(text: string): number[] {
  return encode(text, { allowedSpecial: new Set() });
}

/** size = 0 or >= GPT2_VOCAB: the full vocabulary. Otherwise compact from `counts` (GPT-2 id -> count). */
export function buildVocab(size: number, counts?: Map<number, number>): Vocab {
  const bytes = gpt2TokenBytes();
  const fromGpt2 = new Int32Array(GPT2_VOCAB).fill(-1);
  let toGpt2: Int32Array;
  if (size <= 0 || size >= GPT2_VOCAB) {
    toGpt2 = Int32Array.from({ length: GPT2_VOCAB }, (_, i) => i);
  } else {
    if (size < 258) throw new RangeError(`compact vocab size ${size} < 258 (256 bytes + <|endoftext|> + 1)`);
    const keep: number[] = [];
    for (let id = 0; id < EOT; id++) if (bytes[id]!.length === 1) keep.push(id);
    keep.push(EOT);
    const ranked = [...(counts ?? new Map()).entries()]
      .filter(([id]) => id !== EOT && bytes[id]!.length > 1)
      .sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    for (const [id] of ranked.slice(0, size - keep.length)) keep.push(id);
    toGpt2 = Int32Array.from(keep.sort((a, b) => a - b));
  }
  toGpt2.forEach((g, c) => (fromGpt2[g] = c));
  const byteId = new Int32Array(256);
  for (let id = 0; id < EOT; id++) if (bytes[id]!.length === 1) byteId[bytes[id]![0]!] = fromGpt2[id]!;
  const remap = (ids: ArrayLike<number>): Int32Array => {
    const out: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const c = fromGpt2[ids[i]!]!;
      if (c >= 0) out.push(c);
      else for (const b of bytes[ids[i]!]!) out.push(byteId[b]!);
    }
    return Int32Array.from(out);
  };
  const decoder = new TextDecoder('utf-8');
  return {
    size: toGpt2.length,
    toGpt2,
    fromGpt2,
    remap,
    encode: (text) => remap(gpt2Encode(text)),
    decode(ids) {
      const parts: Uint8Array[] = [];
      for (let i = 0; i < ids.length; i++) parts.push(bytes[toGpt2[ids[i]!]!]!);
      return decoder.decode(Buffer.concat(parts));
    },
  };
}

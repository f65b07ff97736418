/**
 * The page's bundled corpus: two public-domain texts (Lincoln's Gettysburg Address, 1863, and the opening
 * of the US Declaration of Independence, 1776), tokenised in the page one character per token (the
 * vocabulary is the text's distinct characters, sorted): small enough to ship, and a tiny GPT-2 visibly
 * learns it in a few hundred steps.
 */
export const CORPUS = `Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in Liberty, and dedicated to the proposition that all men are created equal.
Now we are engaged in a great civil war, testing whether that nation, or any nation so conceived and so dedicated, can long endure. We are met on a great battle-field of that war. We have come to dedicate a portion of that field, as a final resting place for those who here gave their lives that that nation might live. It is altogether fitting and proper that we should do this.
But, in a larger sense, we can not dedicate -- we can not consecrate -- we can not hallow -- this ground. The brave men, living and dead, who struggled here, have consecrated it, far above our poor power to add or detract. The world will little note, nor long remember what we say here, but it can never forget what they did here. It is for us the living, rather, to be dedicated here to the unfinished work which they who fought here have thus far so nobly advanced. It is rather for us to be here dedicated to the great task remaining before us -- that from these honored dead we take increased devotion to that cause for which they gave the last full measure of devotion -- that we here highly resolve that these dead shall not have died in vain -- that this nation, under God, shall have a new birth of freedom -- and that government of the people, by the people, for the people, shall not perish from the earth.
When in the Course of human events, it becomes necessary for one people to dissolve the political bands which have connected them with another, and to assume among the powers of the earth, the separate and equal station to which the Laws of Nature and of Nature's God entitle them, a decent respect to the opinions of mankind requires that they should declare the causes which impel them to the separation.
We hold these truths to be self-evident, that all men are created equal, that they are endowed by their Creator with certain unalienable Rights, that among these are Life, Liberty and the pursuit of Happiness.
`;

export interface Tokenizer {
  vocab: string[];
  encode(s: string): Int32Array;
  decode(ids: readonly number[]): string;
}

/** One token per distinct character of `text` (sorted). */
export function charTokenizer(text: string): Tokenizer {
  const vocab = [...new Set(text)].sort();
  const id = new Map(vocab.map((c, i) => [c, i]));
  return {
    vocab,
    encode: (s) => Int32Array.from(s, (c) => id.get(c) ?? 0),
    decode: (ids) => ids.map((i) => vocab[i] ?? '?').join(''),
  };
}

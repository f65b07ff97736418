// The split sweep's table (decode-sweep.sh): node decode-splits-table.mjs DIR, DIR holding splits-*.json from
// device-run.mjs decode-bench --splits (forced split counts). One line per (layout, B, L): the fraction of copy
// bandwidth at every split count timed, the best count last (and the time of the heuristic's count when a
// heuristic run of the same variant, v<variant>.json, is in DIR, for comparison).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const files = readdirSync(dir).filter((f) => /^splits-.*\.json$/.test(f));
if (files.length === 0) {
  console.log('no split-sweep results');
  process.exit(1);
}
const runs = files.map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
const key = (r) => `${r.layout} ${r.batch} ${r.seqlenK}`;
for (const variant of [...new Set(runs.map((x) => x.variant))]) {
  const rows = runs.filter((x) => x.variant === variant).flatMap((x) => x.results);
  const copy = runs.find((x) => x.variant === variant).copy.gbps;
  console.log(
    `split sweep, variant ${variant}; copy ${copy.toFixed(0)} GB/s; ms (fraction of copy) per forced split count`,
  );
  for (const sh of [...new Set(rows.map(key))]) {
    const rs = rows.filter((r) => key(r) === sh).sort((a, b) => a.numSplits - b.numSplits);
    const best = rs.reduce((a, b) => (b.ms < a.ms ? b : a));
    const [layout, B, L] = sh.split(' ');
    console.log(
      `${layout.padEnd(10)} ${B.padStart(2)} ${L.padStart(6)} | ` +
        rs
          .map(
            (r) => `S${r.numSplits} ${r.ms.toFixed(4)} (${(100 * r.fractionOfCopy).toFixed(0)}%)`,
          )
          .join('  ') +
        ` | best S${best.numSplits}`,
    );
  }
}

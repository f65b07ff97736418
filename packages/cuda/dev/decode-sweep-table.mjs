// The decode sweep's table (decode-sweep.sh): node decode-sweep-table.mjs DIR, DIR holding v<variant>.json from
// device-run.mjs decode-bench --check. One line per shape: each variant's best fraction of copy bandwidth over
// its CTAs-per-SM settings (and that setting's splits); last, each variant's worst and mean at L >= 8k.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const runs = readdirSync(dir)
  .filter((f) => /^v\d+\.json$/.test(f))
  .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')))
  .sort((a, b) => Number(a.variant) - Number(b.variant));
if (runs.length === 0) {
  console.log('no variant results');
  process.exit(1);
}
console.log(
  `${runs[0].device}; copy ${runs[0].copy.gbps.toFixed(0)} GB/s; fraction of copy (splits) per variant`,
);
const key = (r) => `${r.layout} ${r.batch} ${r.seqlenK}`;
const shapes = [...new Set(runs.flatMap((x) => x.results.map(key)))];
console.log('layout      B      L | ' + runs.map((x) => `v${x.variant}`.padStart(11)).join(''));
const stats = runs.map(() => ({ worst: Infinity, sum: 0, n: 0 }));
for (const sh of shapes) {
  const cells = runs.map((x, i) => {
    const rs = x.results.filter((r) => key(r) === sh);
    if (rs.length === 0) return '-'.padStart(11);
    const best = rs.reduce((a, b) => (b.fractionOfCopy > a.fractionOfCopy ? b : a));
    stats[i].worst = Math.min(stats[i].worst, best.fractionOfCopy);
    stats[i].sum += best.fractionOfCopy;
    stats[i].n++;
    return `${(100 * best.fractionOfCopy).toFixed(0)}% (${best.numSplits})`.padStart(11);
  });
  const [layout, B, L] = sh.split(' ');
  console.log(`${layout.padEnd(10)} ${B.padStart(2)} ${L.padStart(6)} | ${cells.join('')}`);
}
console.log(
  'worst / mean        | ' +
    stats
      .map((s) => `${(100 * s.worst).toFixed(0)}/${((100 * s.sum) / s.n).toFixed(0)}%`.padStart(11))
      .join(''),
);
// every setting, for the split choice: fraction per CTAs-per-SM value
for (const x of runs) {
  const byC = {};
  for (const r of x.results) (byC[r.ctasPerSm] ??= []).push(r.fractionOfCopy);
  console.log(
    `v${x.variant}: ` +
      Object.entries(byC)
        .map(
          ([c, fs]) =>
            `${c}/SM mean ${((100 * fs.reduce((a, b) => a + b, 0)) / fs.length).toFixed(1)}%`,
        )
        .join(', '),
  );
}

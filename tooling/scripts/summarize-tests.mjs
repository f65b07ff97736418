#!/usr/bin/env node
// Sums the vitest JSON reports (test-results.json) of every workspace package and prints one plain
// closing line, "tests: N passed, N failed, N skipped", plus the skipped tests' names so CI shows why.
// Exit code 1 when any test failed or when no test ran at all.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
let passed = 0;
let failed = 0;
let skipped = 0;
const skippedNames = [];
for (const group of ['packages', 'apps', 'tooling']) {
  const dir = join(root, group);
  if (!existsSync(dir)) continue;
  for (const name of readdirSync(dir)) {
    const file = join(dir, name, 'test-results.json');
    if (!existsSync(file)) continue;
    const report = JSON.parse(readFileSync(file, 'utf8'));
    let p = 0;
    let f = 0;
    let s = 0;
    for (const suite of report.testResults ?? []) {
      for (const t of suite.assertionResults ?? []) {
        if (t.status === 'passed') p++;
        else if (t.status === 'failed') f++;
        else {
          s++;
          skippedNames.push(`${group}/${name}: ${t.fullName}`);
        }
      }
    }
    console.log(`${group}/${name}: ${p} passed, ${f} failed, ${s} skipped`);
    passed += p;
    failed += f;
    skipped += s;
  }
}
if (skippedNames.length) {
  console.log(`skipped tests (${skippedNames.length}):`);
  for (const n of skippedNames.slice(0, 50)) console.log(`  - ${n}`);
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);

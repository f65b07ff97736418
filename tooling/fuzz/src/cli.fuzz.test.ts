// Fuzzes the gpt2-train CLI: random command lines built from real flags, junk flags and junk values.
// parseArgs either returns arguments that satisfy the schema or throws UsageError naming the flag; the
// built CLI exits 2 with the usage text (no stack trace) on a bad command line and writes nothing.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { parseArgs, SCHEMA, UsageError } from 'gpt2-train/cli';
import { afterAll, describe, expect, it } from 'vitest';
import { SEED, fuzz } from './fuzz.js';

const FLAGS = Object.keys(SCHEMA);
const root = mkdtempSync(join(tmpdir(), 'flashattn-fuzz-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const value = fc.oneof(
  fc.constantFrom(
    '0',
    '1',
    '-1',
    '1.5',
    '1e3',
    'NaN',
    'Infinity',
    '',
    ' ',
    'tiny',
    'flash',
    'standard',
    'true',
    'false',
    '100000',
    '0x10',
    '--',
    '-',
  ),
  fc.integer({ min: -5, max: 5000 }).map(String),
  fc.string({ maxLength: 6 }),
);
const token = fc.oneof(
  fc.constantFrom(...FLAGS).map((f) => `--${f}`),
  fc.tuple(fc.constantFrom(...FLAGS), value).map(([f, v]) => `--${f}=${v}`),
  value,
  fc.constantFrom('--bogus', '-x', '--Steps', '---steps', '--='),
);
const argv = fc.array(token, { maxLength: 8 });

describe(`gpt2-train CLI fuzz (seed ${SEED})`, () => {
  it('parseArgs: a schema-valid Args, or UsageError naming the flag', async () => {
    const n = await fuzz('cli parseArgs', argv, 4000, (a) => {
      let args;
      try {
        args = parseArgs(a);
      } catch (e) {
        if (!(e instanceof UsageError))
          throw new Error(`${JSON.stringify(a)}: expected UsageError, got ${String(e)}`);
        if (!/--[\w-]*|argument '/.test(e.message))
          throw new Error(`${JSON.stringify(a)}: message names no flag: ${e.message}`);
        return;
      }
      for (const [k, spec] of Object.entries(SCHEMA) as Array<
        [string, { kind: unknown; min?: number }]
      >) {
        const key = k.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()) as keyof typeof args;
        const v = args[key];
        if (v === undefined) continue;
        if (
          spec.kind === 'int' &&
          !(Number.isInteger(v) && (spec.min === undefined || (v as number) >= spec.min))
        )
          throw new Error(`${JSON.stringify(a)}: --${k} accepted ${String(v)}`);
        if (
          spec.kind === 'float' &&
          !(Number.isFinite(v) && (spec.min === undefined || (v as number) >= spec.min))
        )
          throw new Error(`${JSON.stringify(a)}: --${k} accepted ${String(v)}`);
      }
    });
    expect(n).toBeGreaterThan(0);
  });

  const main = join(
    dirname(createRequire(import.meta.url).resolve('gpt2-train/package.json')),
    'dist',
    'main.js',
  );
  it('the built CLI exits 2 with usage and writes nothing on a bad command line', async () => {
    expect(existsSync(main)).toBe(true);
    const bad = argv.filter((a) => {
      try {
        parseArgs(a);
        return false;
      } catch {
        return true;
      }
    });
    // Plus values that only the run can judge: --seq past the model's positions.
    const runBad = fc.integer({ min: 1025, max: 10 ** 7 }).map((s) => ['--seq', String(s)]);
    const n = await fuzz('cli process', fc.oneof(bad, runBad), 8, (a) => {
      const cwd = mkdtempSync(join(root, 'run-'));
      const r = spawnSync(process.execPath, [main, ...a, '--out', join(cwd, 'out')], {
        cwd,
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, INIT_CWD: cwd },
      });
      const what = JSON.stringify(a);
      if (r.status !== 2)
        throw new Error(`${what}: exit ${r.status} (${r.signal ?? ''}), stderr ${r.stderr}`);
      if (!/^gpt2-train: .+\n\nUsage: gpt2-train/.test(r.stderr))
        throw new Error(`${what}: stderr is not one line + usage: ${r.stderr}`);
      if (/\n\s+at /.test(r.stderr)) throw new Error(`${what}: stack trace in stderr: ${r.stderr}`);
      if (readdirSync(cwd).length !== 0)
        throw new Error(`${what}: wrote ${readdirSync(cwd).join(', ')}`);
    });
    expect(n).toBeGreaterThan(0);
  });
});

import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isMain, runIfMain } from './is-main.js';

describe('isMain', () => {
  const dir = mkdtempSync(join(tmpdir(), 'is-main-'));
  const script = join(dir, 'bench.mjs');
  const other = join(dir, 'other.mjs');
  writeFileSync(script, '');
  writeFileSync(other, '');
  symlinkSync(dir, join(dir + '-link'));
  const argv1 = process.argv[1];
  afterAll(() => {
    process.argv[1] = argv1!;
    rmSync(dir, { recursive: true, force: true });
    rmSync(dir + '-link', { force: true });
  });
  const url = pathToFileURL(script).href;
  it('the script itself, and the script through a symlinked directory (a bundle linked under another name)', () => {
    process.argv[1] = script;
    expect(isMain(url)).toBe(true);
    process.argv[1] = join(dir + '-link', 'bench.mjs');
    expect(isMain(url)).toBe(true);
  });
  it('another script, a missing one, or none', () => {
    process.argv[1] = other;
    expect(isMain(url)).toBe(false);
    process.argv[1] = join(dir, 'missing.mjs');
    expect(isMain(url)).toBe(false);
    process.argv.length = 1;
    expect(isMain(url)).toBe(false);
  });
});

describe('runIfMain', () => {
  const argv1 = process.argv[1];
  afterAll(() => {
    process.argv[1] = argv1!;
  });
  const dir = mkdtempSync(join(tmpdir(), 'run-if-main-'));
  const script = join(dir, 'cli.mjs');
  writeFileSync(script, '');
  const url = pathToFileURL(script).href;

  it("exits with main's code, process.exitCode or 0, and runs nothing when imported", async () => {
    process.argv[1] = script;
    const codes: number[] = [];
    const exit = (c: number) => void codes.push(c);
    await runIfMain(url, 'cli', async () => 3, { exit });
    await runIfMain(url, 'cli', async () => undefined, { exit });
    process.argv[1] = join(dir, 'other.mjs');
    let ran = false;
    expect(runIfMain(url, 'cli', async () => void (ran = true), { exit })).toBeNull();
    expect(ran).toBe(false);
    expect(codes).toEqual([3, Number(process.exitCode ?? 0)]);
  });

  it('an error is one line naming the script, and exit code 1', async () => {
    process.argv[1] = script;
    const codes: number[] = [];
    const written: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (written.push(s), true)) as typeof process.stderr.write;
    try {
      await runIfMain(url, 'cli', () => Promise.reject(new Error('bad --seq')), {
        exit: (c) => void codes.push(c),
      });
    } finally {
      process.stderr.write = write;
    }
    expect(codes).toEqual([1]);
    expect(written).toEqual(['cli: bad --seq\n']);
  });
});

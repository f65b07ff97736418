import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isMain } from './is-main.js';

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

import { describe, expect, it } from 'vitest';
import { fmt, fmtBytes, formatMarkdownTable, formatTable, type Column } from './table.js';

interface Row {
  name: string;
  ms: number;
}
const cols: Column<Row>[] = [
  { header: 'impl', cell: (r) => r.name, align: 'left' },
  { header: 'time (ms)', cell: (r) => fmt(r.ms) },
];
const rows: Row[] = [
  { name: 'reference', ms: 123.456 },
  { name: 'flash', ms: 7.5 },
];

describe('formatTable', () => {
  it('pads text left and numbers right under a dashed rule', () => {
    expect(formatTable(cols, rows)).toBe(
      ['impl       time (ms)', '---------  ---------', 'reference        123', 'flash            7.5'].join('\n'),
    );
  });

  it('writes Markdown with alignment markers and escaped pipes', () => {
    const md = formatMarkdownTable(cols, [{ name: 'a|b', ms: 1 }]);
    expect(md).toBe(['| impl | time (ms) |', '| :--- | ---: |', '| a\\|b | 1 |'].join('\n'));
  });
});

describe('number formatting', () => {
  it('keeps significant digits and switches to exponents for extreme values', () => {
    expect(fmt(0.000123456)).toBe('1.23e-4');
    expect(fmt(12345.6)).toBe('12300');
    expect(fmt(2.5e9)).toBe('2.50e+9');
    expect(fmt(undefined)).toBe('-');
    expect(fmt(Number.POSITIVE_INFINITY)).toBe('inf');
    expect(fmt(0)).toBe('0');
  });

  it('prints bytes in binary units', () => {
    expect(fmtBytes(512)).toBe('512 B');
    expect(fmtBytes(1536)).toBe('1.50 KiB');
    expect(fmtBytes(4 * 1024 ** 3)).toBe('4.00 GiB');
    expect(fmtBytes(undefined)).toBe('-');
  });
});

/**
 * Plain-text tables for terminals and Markdown for BENCHMARKS.md: columns with a header, numbers
 * right-aligned, text left-aligned.
 */

export interface Column<Row> {
  header: string;
  /** The cell text for a row. */
  cell: (row: Row) => string;
  /** Default: 'right' (numbers). */
  align?: 'left' | 'right';
}

function pad(s: string, w: number, align: 'left' | 'right'): string {
  return align === 'left' ? s.padEnd(w) : s.padStart(w);
}

/** A fixed-width table: header, a dashed rule, one line per row; columns separated by two spaces. */
export function formatTable<Row>(columns: readonly Column<Row>[], rows: readonly Row[]): string {
  const cells = rows.map((r) => columns.map((c) => c.cell(r)));
  const widths = columns.map((c, j) => Math.max(c.header.length, ...cells.map((r) => r[j]!.length)));
  const line = (xs: string[]): string =>
    xs.map((x, j) => pad(x, widths[j]!, columns[j]!.align ?? 'right')).join('  ').trimEnd();
  return [line(columns.map((c) => c.header)), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

/** The same table as GitHub Markdown. */
export function formatMarkdownTable<Row>(columns: readonly Column<Row>[], rows: readonly Row[]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const head = `| ${columns.map((c) => esc(c.header)).join(' | ')} |`;
  const rule = `|${columns.map((c) => ((c.align ?? 'right') === 'right' ? ' ---: ' : ' :--- ')).join('|')}|`;
  const body = rows.map((r) => `| ${columns.map((c) => esc(c.cell(r))).join(' | ')} |`);
  return [head, rule, ...body].join('\n');
}

/** `digits` significant digits, without exponent for ordinary magnitudes; '-' for undefined/NaN. */
export function fmt(x: number | undefined, digits = 3): string {
  if (x === undefined || Number.isNaN(x)) return '-';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e-3 && a < 1e6) return String(Number.parseFloat(x.toPrecision(digits)));
  return x.toExponential(digits - 1);
}

/** Bytes in binary units: '512 B', '1.50 KiB', '3.00 MiB', '4.00 GiB'. */
export function fmtBytes(bytes: number | undefined): string {
  if (bytes === undefined || Number.isNaN(bytes)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(v)} B` : `${v.toFixed(2)} ${units[u]}`;
}

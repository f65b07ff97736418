import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lineChart, PALETTE, parseColor, saveChart } from './chart.js';
import { decodePng, type DecodedPng } from './test-utils/decode-png.js';

/** Rows of column x whose pixel is exactly colour c. */
function rowsWithColor(d: DecodedPng, x: number, c: readonly number[]): number[] {
  const rows: number[] = [];
  for (let y = 0; y < d.height; y++) {
    const p = d.pixel(x, y);
    if (p[0] === c[0] && p[1] === c[1] && p[2] === c[2]) rows.push(y);
  }
  return rows;
}

function countColor(d: DecodedPng, c: readonly number[], x0 = 0, y0 = 0, x1 = d.width, y1 = d.height): number {
  let n = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const p = d.pixel(x, y);
      if (p[0] === c[0] && p[1] === c[1] && p[2] === c[2]) n++;
    }
  }
  return n;
}

const blue = parseColor(PALETTE[0]!);
const orange = parseColor(PALETTE[1]!);

describe('lineChart', () => {
  const chart = lineChart({
    title: 'Two lines',
    xLabel: 'x',
    yLabel: 'y',
    width: 400,
    height: 300,
    series: [
      { name: 'low', points: [[0, 1], [10, 1]], markers: false },
      { name: 'high', points: [[0, 9], [10, 9]], markers: false },
    ],
  });
  const d = decodePng(chart.png);

  it('returns a PNG of the requested size with a white background', () => {
    expect([d.width, d.height]).toEqual([400, 300]);
    expect(d.pixel(0, 0)).toEqual([255, 255, 255, 255]);
    expect(d.pixel(399, 299)).toEqual([255, 255, 255, 255]);
  });

  it('draws each series in its palette colour, higher y higher on the image', () => {
    const mid = 200;
    const lowRows = rowsWithColor(d, mid, blue);
    const highRows = rowsWithColor(d, mid, orange);
    expect(lowRows.length).toBe(2); // 2 px thick horizontal line
    expect(highRows.length).toBe(2);
    expect(Math.max(...highRows)).toBeLessThan(Math.min(...lowRows));
    // y = 1 and y = 9 on a 0..10 axis: the lines sit 80% of the plot height apart, and y = 9 sits
    // 10% below the top of the plot box (the first black row of that column from the top).
    // The plot box's top and bottom edges are the only rows that are black for most of the width.
    const edgeRows: number[] = [];
    for (let y = 0; y < d.height; y++) if (countColor(d, [0, 0, 0], 0, y, d.width, y + 1) > d.width / 2) edgeRows.push(y);
    expect(edgeRows.length).toBe(2);
    const [plotTop, plotBottom] = edgeRows as [number, number];
    const h = plotBottom - plotTop;
    const yHigh = (Math.min(...highRows) + Math.max(...highRows)) / 2;
    const yLow = (Math.min(...lowRows) + Math.max(...lowRows)) / 2;
    expect(Math.abs(yLow - yHigh - 0.8 * h)).toBeLessThanOrEqual(2);
    expect(Math.abs(yHigh - plotTop - 0.1 * h)).toBeLessThanOrEqual(2);
  });

  it('draws the title text in the top band and a legend swatch for each series', () => {
    expect(countColor(d, [0, 0, 0], 0, 0, 400, 24)).toBeGreaterThan(50);
    // Each line is 2 px x ~plot width; legend swatches add 2 x 21 px more of each colour.
    const lineOnly = lineChart({
      width: 400,
      height: 300,
      series: [{ name: 'a', points: [[0, 1], [10, 1]], markers: false }],
    });
    expect(countColor(decodePng(lineOnly.png), blue)).toBeGreaterThan(2 * 300);
  });

  it('writes matching SVG: one polyline per series, escaped names, rotated y label', () => {
    const c = lineChart({ series: [{ name: 'a<b & "c"', points: [[1, 2], [2, 3]] }], yLabel: 'time (ms)' });
    expect(c.svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(c.svg.match(/<polyline /g)?.length).toBe(1);
    expect(c.svg).toContain('a&#60;b &#38; &#34;c&#34;');
    expect(c.svg).toContain('rotate(-90');
    expect(c.svg.trimEnd().endsWith('</svg>')).toBe(true);
  });

  it('breaks lines at points a log axis cannot show', () => {
    const c = lineChart({
      logY: true,
      series: [{ name: 's', points: [[1, 1], [2, 10], [3, 0], [4, 100], [5, 1000], [6, Number.NaN]] }],
    });
    expect(c.svg.match(/<polyline /g)?.length).toBe(2);
    expect(c.svg.match(/<circle /g)?.length).toBe(4);
  });

  it('renders an empty chart and rejects bad options with a clear error', () => {
    expect(decodePng(lineChart({ series: [] }).png).width).toBe(800);
    expect(() => lineChart({ series: [{ name: 'x', points: [], color: 'red' }] })).toThrow(/'#rrggbb'/);
    expect(() => lineChart({ series: [], width: 10 })).toThrow(RangeError);
    expect(() => lineChart({} as never)).toThrow(/series must be an array/);
  });

  it('saves PNG and SVG by file extension', () => {
    const dir = mkdtempSync(join(tmpdir(), 'plot-'));
    const png = saveChart(join(dir, 'a.png'), chart);
    const svg = saveChart(join(dir, 'a.svg'), chart);
    expect(decodePng(new Uint8Array(readFileSync(png))).width).toBe(400);
    expect(readFileSync(svg, 'utf8')).toBe(chart.svg);
    expect(() => saveChart(join(dir, 'a.jpg'), chart)).toThrow(/\.png or \.svg/);
  });
});

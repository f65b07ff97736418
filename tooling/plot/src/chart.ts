/**
 * lineChart: one layout, drawn twice, once as SVG text and once into an RGBA canvas encoded as PNG.
 */
import { writeFileSync } from 'node:fs';
import { GLYPH_HEIGHT, textWidth } from './font.js';
import { encodePng } from './png.js';
import { Canvas, type Clip, type Rgb } from './raster.js';
import { formatTick, linearScale, logScale, type Scale } from './ticks.js';

export interface Series {
  name: string;
  /** [x, y] pairs; non-finite values (and values <= 0 on a log axis) break the line. */
  points: readonly (readonly [number, number])[];
  /** '#rrggbb'; default: the next colour of the palette. */
  color?: string;
  dashed?: boolean;
  /** Dot at each point; default true when the series has at most 40 points. */
  markers?: boolean;
}

export interface LineChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  series: readonly Series[];
  logX?: boolean;
  logY?: boolean;
  /** Pixels; default 800 x 480. */
  width?: number;
  height?: number;
  /** Explicit tick positions (e.g. the N values of a benchmark). */
  xTicks?: readonly number[];
  yTicks?: readonly number[];
}

export interface Chart {
  width: number;
  height: number;
  svg: string;
  /** A complete PNG file (8-bit RGBA). */
  png: Uint8Array;
}

/** matplotlib's 'tab10' colours. */
export const PALETTE: readonly string[] = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd',
  '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
];

const BLACK: Rgb = [0, 0, 0];
const GRID: Rgb = [225, 225, 225];
const TEXT_SCALE = 1; // font pixels per glyph pixel for labels
const TITLE_SCALE = 2;

/** '#rrggbb' -> [r, g, b]; throws on anything else. */
export function parseColor(hex: string): Rgb {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) throw new TypeError(`color must be '#rrggbb', got ${JSON.stringify(hex)}`);
  return [parseInt(m[1]!, 16), parseInt(m[2]!, 16), parseInt(m[3]!, 16)];
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Points usable on these axes, split into runs at every unusable point. */
function runs(points: Series['points'], logX: boolean, logY: boolean): [number, number][][] {
  const out: [number, number][][] = [];
  let cur: [number, number][] = [];
  for (const [x, y] of points) {
    const ok = Number.isFinite(x) && Number.isFinite(y) && (!logX || x > 0) && (!logY || y > 0);
    if (ok) cur.push([x, y]);
    else if (cur.length > 0) {
      out.push(cur);
      cur = [];
    }
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

function scaleFor(values: number[], log: boolean, fixed?: readonly number[]): Scale {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return log ? logScale(lo, hi, fixed) : linearScale(lo, hi, 6, fixed);
}

/** Draw a line chart to SVG and PNG. Throws TypeError on malformed options. */
export function lineChart(opts: LineChartOptions): Chart {
  if (!opts || !Array.isArray(opts.series)) throw new TypeError('lineChart: opts.series must be an array');
  const width = opts.width ?? 800;
  const height = opts.height ?? 480;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 200 || height < 150) {
    throw new RangeError(`lineChart: width/height must be integers >= 200 x 150, got ${width} x ${height}`);
  }
  const logX = opts.logX ?? false;
  const logY = opts.logY ?? false;
  const series = opts.series.map((s, i) => ({
    name: String(s.name),
    color: s.color ?? PALETTE[i % PALETTE.length]!,
    rgb: parseColor(s.color ?? PALETTE[i % PALETTE.length]!),
    dashed: s.dashed ?? false,
    markers: s.markers ?? s.points.length <= 40,
    runs: runs(s.points, logX, logY),
  }));
  const all = series.flatMap((s) => s.runs.flat());
  const xs = scaleFor(all.map((p) => p[0]), logX, opts.xTicks);
  const ys = scaleFor(all.map((p) => p[1]), logY, opts.yTicks);
  const xLabels = xs.ticks.map(formatTick);
  const yLabels = ys.ticks.map(formatTick);

  // Layout (pixels). Glyphs are 5 x 7 at scale 1 with a 6 px advance.
  const charH = GLYPH_HEIGHT * TEXT_SCALE;
  const top = opts.title ? 16 + GLYPH_HEIGHT * TITLE_SCALE : 16;
  const left = 12 + (opts.yLabel ? charH + 10 : 0) + Math.max(...yLabels.map((l) => textWidth(l, TEXT_SCALE)), 0) + 8;
  const bottom = 12 + charH + 8 + (opts.xLabel ? charH + 10 : 0);
  const right = 24;
  const plot: Clip = { x0: left, y0: top, x1: width - right, y1: height - bottom };
  const pw = plot.x1 - plot.x0;
  const ph = plot.y1 - plot.y0;
  const px = (x: number): number => plot.x0 + xs.frac(x) * pw;
  const py = (y: number): number => plot.y1 - ys.frac(y) * ph;

  // Legend: a box in whichever plot corner covers the fewest data points.
  const legendRowH = charH + 6;
  const legendW = 12 + 20 + 6 + Math.max(0, ...series.map((s) => textWidth(s.name, TEXT_SCALE))) + 10;
  const legendH = series.length * legendRowH + 8;
  const corners = [
    { x: plot.x1 - legendW - 8, y: plot.y0 + 8 },
    { x: plot.x0 + 8, y: plot.y0 + 8 },
    { x: plot.x1 - legendW - 8, y: plot.y1 - legendH - 8 },
    { x: plot.x0 + 8, y: plot.y1 - legendH - 8 },
  ];
  const covered = (c: { x: number; y: number }): number =>
    all.filter(([x, y]) => {
      const X = px(x);
      const Y = py(y);
      return X >= c.x && X <= c.x + legendW && Y >= c.y && Y <= c.y + legendH;
    }).length;
  const legend = series.length === 0 ? undefined : corners.reduce((a, c) => (covered(c) < covered(a) ? c : a));

  const canvas = new Canvas(width, height);
  const svg: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="monospace" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
  ];
  const f = (v: number): string => v.toFixed(1);

  // Grid and ticks.
  xs.ticks.forEach((t, i) => {
    const X = Math.round(px(t));
    canvas.line(X, plot.y0, X, plot.y1 - 1, GRID);
    canvas.line(X, plot.y1, X, plot.y1 + 4, BLACK);
    const lw = textWidth(xLabels[i]!, TEXT_SCALE);
    canvas.text(xLabels[i]!, X - lw / 2, plot.y1 + 8, BLACK, TEXT_SCALE);
    svg.push(`<line x1="${X}" y1="${plot.y0}" x2="${X}" y2="${plot.y1}" stroke="#e1e1e1"/>`);
    svg.push(`<line x1="${X}" y1="${plot.y1}" x2="${X}" y2="${plot.y1 + 4}" stroke="#000"/>`);
    svg.push(`<text x="${X}" y="${plot.y1 + 8 + charH}" text-anchor="middle">${xmlEscape(xLabels[i]!)}</text>`);
  });
  ys.ticks.forEach((t, i) => {
    const Y = Math.round(py(t));
    canvas.line(plot.x0, Y, plot.x1 - 1, Y, GRID);
    canvas.line(plot.x0 - 4, Y, plot.x0, Y, BLACK);
    const lw = textWidth(yLabels[i]!, TEXT_SCALE);
    canvas.text(yLabels[i]!, plot.x0 - 8 - lw, Y - charH / 2, BLACK, TEXT_SCALE);
    svg.push(`<line x1="${plot.x0}" y1="${Y}" x2="${plot.x1}" y2="${Y}" stroke="#e1e1e1"/>`);
    svg.push(`<line x1="${plot.x0 - 4}" y1="${Y}" x2="${plot.x0}" y2="${Y}" stroke="#000"/>`);
    svg.push(`<text x="${plot.x0 - 8}" y="${Y + charH / 2}" text-anchor="end">${xmlEscape(yLabels[i]!)}</text>`);
  });

  // Series: lines clipped to the plot area, then markers.
  for (const s of series) {
    for (const run of s.runs) {
      for (let i = 1; i < run.length; i++) {
        const [xa, ya] = run[i - 1]!;
        const [xb, yb] = run[i]!;
        canvas.line(px(xa), py(ya), px(xb), py(yb), s.rgb, 2, plot, s.dashed ? [6, 4] : undefined);
      }
      if (s.markers) for (const [x, y] of run) canvas.fillCircle(px(x), py(y), 3, s.rgb, plot);
      const pts = run.map(([x, y]) => `${f(px(x))},${f(py(y))}`).join(' ');
      svg.push(
        `<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
      );
      if (s.markers) for (const [x, y] of run) svg.push(`<circle cx="${f(px(x))}" cy="${f(py(y))}" r="3" fill="${s.color}"/>`);
    }
  }

  // Axes box.
  canvas.line(plot.x0, plot.y0, plot.x1, plot.y0, BLACK);
  canvas.line(plot.x0, plot.y1, plot.x1, plot.y1, BLACK);
  canvas.line(plot.x0, plot.y0, plot.x0, plot.y1, BLACK);
  canvas.line(plot.x1, plot.y0, plot.x1, plot.y1, BLACK);
  svg.push(`<rect x="${plot.x0}" y="${plot.y0}" width="${pw}" height="${ph}" fill="none" stroke="#000"/>`);

  // Legend.
  if (legend) {
    canvas.fillRect(legend.x, legend.y, legendW, legendH, [255, 255, 255]);
    canvas.line(legend.x, legend.y, legend.x + legendW, legend.y, BLACK);
    canvas.line(legend.x, legend.y + legendH, legend.x + legendW, legend.y + legendH, BLACK);
    canvas.line(legend.x, legend.y, legend.x, legend.y + legendH, BLACK);
    canvas.line(legend.x + legendW, legend.y, legend.x + legendW, legend.y + legendH, BLACK);
    svg.push(`<rect x="${legend.x}" y="${legend.y}" width="${legendW}" height="${legendH}" fill="#fff" stroke="#000"/>`);
    series.forEach((s, i) => {
      const rowY = legend.y + 4 + i * legendRowH + legendRowH / 2;
      const lx = legend.x + 10;
      canvas.line(lx, rowY, lx + 20, rowY, s.rgb, 2, undefined, s.dashed ? [6, 4] : undefined);
      canvas.text(s.name, lx + 26, rowY - charH / 2, BLACK, TEXT_SCALE);
      svg.push(
        `<line x1="${lx}" y1="${rowY}" x2="${lx + 20}" y2="${rowY}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
      );
      svg.push(`<text x="${lx + 26}" y="${rowY + charH / 2}">${xmlEscape(s.name)}</text>`);
    });
  }

  // Title and axis labels.
  if (opts.title) {
    const tw = textWidth(opts.title, TITLE_SCALE);
    canvas.text(opts.title, (width - tw) / 2, 8, BLACK, TITLE_SCALE);
    svg.push(`<text x="${width / 2}" y="${8 + GLYPH_HEIGHT * TITLE_SCALE}" text-anchor="middle" font-size="16">${xmlEscape(opts.title)}</text>`);
  }
  if (opts.xLabel) {
    const tw = textWidth(opts.xLabel, TEXT_SCALE);
    const y = height - 10 - charH;
    canvas.text(opts.xLabel, plot.x0 + (pw - tw) / 2, y, BLACK, TEXT_SCALE);
    svg.push(`<text x="${plot.x0 + pw / 2}" y="${y + charH}" text-anchor="middle">${xmlEscape(opts.xLabel)}</text>`);
  }
  if (opts.yLabel) {
    const tw = textWidth(opts.yLabel, TEXT_SCALE);
    const x = 12;
    canvas.text(opts.yLabel, x, plot.y0 + (ph + tw) / 2, BLACK, TEXT_SCALE, true);
    const cy = plot.y0 + ph / 2;
    svg.push(`<text x="${x + charH}" y="${cy}" text-anchor="middle" transform="rotate(-90 ${x + charH} ${cy})">${xmlEscape(opts.yLabel)}</text>`);
  }
  svg.push('</svg>');
  return { width, height, svg: svg.join('\n') + '\n', png: encodePng(width, height, canvas.rgba) };
}

/** Write a chart to `path`: PNG for '.png', SVG for '.svg'. Returns the path. */
export function saveChart(path: string, chart: Chart): string {
  if (path.toLowerCase().endsWith('.png')) writeFileSync(path, chart.png);
  else if (path.toLowerCase().endsWith('.svg')) writeFileSync(path, chart.svg);
  else throw new TypeError(`saveChart: path must end in .png or .svg, got ${JSON.stringify(path)}`);
  return path;
}

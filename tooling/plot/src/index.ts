/**
 * @flashattn/plot: dependency-free line charts for benchmark figures and loss curves.
 *
 *   import { lineChart, saveChart } from '@flashattn/plot';
 *   const chart = lineChart({
 *     title: 'GPT-2 loss', xLabel: 'step', yLabel: 'loss',
 *     series: [{ name: 'train', points: [[0, 5.1], [100, 3.2]] }, { name: 'val', points: [[100, 3.4]], dashed: true }],
 *     logY: false,
 *   });
 *   saveChart('loss.png', chart); // or chart.svg / chart.png (Uint8Array) directly
 *
 * PNG output is 8-bit RGBA from this package's own encoder (node:zlib deflate + CRC-32) and
 * rasteriser (Bresenham lines, 5 x 7 bitmap font); SVG output draws the same layout with vector text.
 */
export { lineChart, saveChart, parseColor, PALETTE, type Chart, type LineChartOptions, type Series } from './chart.js';
export { encodePng, crc32, PNG_SIGNATURE } from './png.js';
export { Canvas, type Rgb, type Clip } from './raster.js';
export { linearScale, logScale, formatTick, niceStep, type Scale } from './ticks.js';
export { glyphRows, glyphPixel, textWidth, GLYPH_WIDTH, GLYPH_HEIGHT, GLYPH_ADVANCE } from './font.js';

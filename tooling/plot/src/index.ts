export { lineChart, saveChart, parseColor, PALETTE, type Chart, type LineChartOptions, type Series } from './chart.js';
export { encodePng, crc32, PNG_SIGNATURE } from './png.js';
export { Canvas, type Rgb, type Clip } from './raster.js';
export { linearScale, logScale, formatTick, niceStep, type Scale } from './ticks.js';
export { glyphRows, glyphPixel, textWidth, GLYPH_WIDTH, GLYPH_HEIGHT, GLYPH_ADVANCE } from './font.js';

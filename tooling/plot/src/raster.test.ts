import { describe, expect, it } from 'vitest';
import { GLYPH_HEIGHT, textWidth } from './font.js';
import { Canvas } from './raster.js';

const ink = (c: Canvas): { n: number; x0: number; x1: number; y0: number; y1: number } => {
  let n = 0;
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (let y = 0; y < c.height; y++) {
    for (let x = 0; x < c.width; x++) {
      if (c.get(x, y)[0] === 0) {
        n++;
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
    }
  }
  return { n, x0, x1, y0, y1 };
};

describe('Canvas', () => {
  it('draws a diagonal line through both end points, one pixel per step', () => {
    const c = new Canvas(10, 10);
    c.line(1, 1, 8, 8, [0, 0, 0]);
    for (let i = 1; i <= 8; i++) expect(c.get(i, i)).toEqual([0, 0, 0, 255]);
    expect(ink(c).n).toBe(8);
  });

  it('clips lines to the clip rectangle', () => {
    const c = new Canvas(10, 10);
    c.line(0, 5, 9, 5, [0, 0, 0], 1, { x0: 2, y0: 0, x1: 6, y1: 10 });
    expect(ink(c)).toEqual({ n: 4, x0: 2, x1: 5, y0: 5, y1: 5 });
  });

  it('draws text left to right, and rotated text bottom to top', () => {
    const flat = new Canvas(60, 20);
    flat.text('HH', 2, 3, [0, 0, 0]);
    const f = ink(flat);
    expect(f.x1 - f.x0 + 1).toBe(textWidth('HH')); // H spans the full glyph width
    expect(f.y1 - f.y0 + 1).toBe(GLYPH_HEIGHT);
    const rot = new Canvas(20, 60);
    rot.text('HH', 3, 50, [0, 0, 0], 1, true);
    const r = ink(rot);
    expect(r.x1 - r.x0 + 1).toBe(GLYPH_HEIGHT);
    expect(r.y1 - r.y0 + 1).toBe(textWidth('HH'));
    expect(r.y1).toBe(49); // the text starts at the bottom edge and climbs
    expect(r.n).toBe(f.n); // same pixels, turned
  });
});

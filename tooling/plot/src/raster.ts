/**
 * A tiny RGBA rasteriser: filled rectangles, thick lines (Bresenham with a square pen), filled
 * circles, and text in the 5 x 7 bitmap font, horizontal or rotated 90 degrees counter-clockwise.
 * No anti-aliasing: every pixel is either left alone or set to the opaque colour.
 */
import { GLYPH_ADVANCE, GLYPH_HEIGHT, GLYPH_WIDTH, glyphPixel } from './font.js';

/** [r, g, b] with each channel 0..255. */
export type Rgb = readonly [number, number, number];

/** Axis-aligned clip rectangle, inclusive of x0/y0, exclusive of x1/y1. */
export interface Clip {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export class Canvas {
  readonly width: number;
  readonly height: number;
  /** (height, width, 4) RGBA, row-major. */
  readonly rgba: Uint8Array;

  constructor(width: number, height: number, background: Rgb = [255, 255, 255]) {
    this.width = width;
    this.height = height;
    this.rgba = new Uint8Array(width * height * 4);
    for (let i = 0; i < width * height; i++) {
      this.rgba[4 * i] = background[0];
      this.rgba[4 * i + 1] = background[1];
      this.rgba[4 * i + 2] = background[2];
      this.rgba[4 * i + 3] = 255;
    }
  }

  /** Set one pixel (ignored outside the canvas or the clip). */
  set(x: number, y: number, c: Rgb, clip?: Clip): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    if (clip && (x < clip.x0 || y < clip.y0 || x >= clip.x1 || y >= clip.y1)) return;
    const o = 4 * (y * this.width + x);
    this.rgba[o] = c[0];
    this.rgba[o + 1] = c[1];
    this.rgba[o + 2] = c[2];
    this.rgba[o + 3] = 255;
  }

  /** The [r, g, b, a] at (x, y). */
  get(x: number, y: number): [number, number, number, number] {
    const o = 4 * (y * this.width + x);
    return [this.rgba[o]!, this.rgba[o + 1]!, this.rgba[o + 2]!, this.rgba[o + 3]!];
  }

  fillRect(x: number, y: number, w: number, h: number, c: Rgb, clip?: Clip): void {
    for (let yy = Math.round(y); yy < Math.round(y + h); yy++) {
      for (let xx = Math.round(x); xx < Math.round(x + w); xx++) this.set(xx, yy, c, clip);
    }
  }

  /** A line of `thickness` px from (x0, y0) to (x1, y1); `dash` = [on, off] in px for dashed lines. */
  line(
    x0: number,
    y0: number,
    x1: number,
    y1: number,
    c: Rgb,
    thickness = 1,
    clip?: Clip,
    dash?: readonly [number, number],
  ): void {
    let x = Math.round(x0);
    let y = Math.round(y0);
    const xe = Math.round(x1);
    const ye = Math.round(y1);
    const dx = Math.abs(xe - x);
    const dy = -Math.abs(ye - y);
    const sx = x < xe ? 1 : -1;
    const sy = y < ye ? 1 : -1;
    let err = dx + dy;
    const lo = -Math.floor((thickness - 1) / 2);
    const hi = lo + thickness;
    for (let step = 0; ; step++) {
      const on = !dash || step % (dash[0] + dash[1]) < dash[0];
      if (on) {
        for (let oy = lo; oy < hi; oy++) for (let ox = lo; ox < hi; ox++) this.set(x + ox, y + oy, c, clip);
      }
      if (x === xe && y === ye) break;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y += sy;
      }
    }
  }

  fillCircle(cx: number, cy: number, r: number, c: Rgb, clip?: Clip): void {
    for (let y = Math.floor(cy - r); y <= Math.ceil(cy + r); y++) {
      for (let x = Math.floor(cx - r); x <= Math.ceil(cx + r); x++) {
        if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) this.set(x, y, c, clip);
      }
    }
  }

  /**
   * Draw `text` with its top-left corner at (x, y), each font pixel a `scale` x `scale` square.
   * `rotate` draws it rotated 90 degrees counter-clockwise (reading bottom to top), with (x, y)
   * the bottom-left corner of the rotated text.
   */
  text(text: string, x: number, y: number, c: Rgb, scale = 1, rotate = false): void {
    x = Math.round(x);
    y = Math.round(y);
    for (let i = 0; i < text.length; i++) {
      const ch = text[i]!;
      for (let row = 0; row < GLYPH_HEIGHT; row++) {
        for (let col = 0; col < GLYPH_WIDTH; col++) {
          if (!glyphPixel(ch, col, row)) continue;
          const u = (i * GLYPH_ADVANCE + col) * scale; // along the text
          const v = row * scale; // down the glyph
          if (rotate) this.fillRect(x + v, y - u - scale, scale, scale, c);
          else this.fillRect(x + u, y + v, scale, scale, c);
        }
      }
    }
  }
}

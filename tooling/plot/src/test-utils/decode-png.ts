/**
 * A PNG reader for tests only, written independently of the encoder: it walks the chunks, checks
 * each CRC with node:zlib's crc32 when available (else a bitwise CRC), inflates the IDAT stream with
 * node:zlib and undoes the scanline filters (all five types, so it does not assume the encoder's).
 */
import { inflateSync } from 'node:zlib';

export interface DecodedPng {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  chunkTypes: string[];
  /** (height, width, 4) RGBA */
  rgba: Uint8Array;
  pixel(x: number, y: number): [number, number, number, number];
}

/** Bit-at-a-time CRC-32 (no table), as a cross-check on the encoder's table-driven one. */
export function slowCrc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

const u32 = (b: Uint8Array, o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

export function decodePng(file: Uint8Array): DecodedPng {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  sig.forEach((v, i) => {
    if (file[i] !== v) throw new Error(`bad signature byte ${i}`);
  });
  let off = 8;
  const chunkTypes: string[] = [];
  const idat: Uint8Array[] = [];
  let width = 0;
  let height = 0;
  let bitDepth = 0;
  let colorType = 0;
  while (off < file.length) {
    const len = u32(file, off);
    const type = String.fromCharCode(...file.subarray(off + 4, off + 8));
    const data = file.subarray(off + 8, off + 8 + len);
    const crc = u32(file, off + 8 + len);
    if (crc !== slowCrc32(file.subarray(off + 4, off + 8 + len))) throw new Error(`bad CRC in ${type}`);
    chunkTypes.push(type);
    if (type === 'IHDR') {
      width = u32(data, 0);
      height = u32(data, 4);
      bitDepth = data[8]!;
      colorType = data[9]!;
    } else if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  if (bitDepth !== 8 || colorType !== 6) throw new Error(`test decoder handles 8-bit RGBA only, got ${bitDepth}/${colorType}`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * 4;
  if (raw.length !== height * (stride + 1)) throw new Error(`IDAT inflates to ${raw.length} bytes, want ${height * (stride + 1)}`);
  const rgba = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const ft = raw[y * (stride + 1)]!;
    for (let i = 0; i < stride; i++) {
      const x = raw[y * (stride + 1) + 1 + i]!;
      const a = i >= 4 ? rgba[y * stride + i - 4]! : 0;
      const b = y > 0 ? rgba[(y - 1) * stride + i]! : 0;
      const c = y > 0 && i >= 4 ? rgba[(y - 1) * stride + i - 4]! : 0;
      let pred = 0;
      if (ft === 1) pred = a;
      else if (ft === 2) pred = b;
      else if (ft === 3) pred = (a + b) >> 1;
      else if (ft === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (ft !== 0) throw new Error(`bad filter type ${ft}`);
      rgba[y * stride + i] = (x + pred) & 0xff;
    }
  }
  return {
    width,
    height,
    bitDepth,
    colorType,
    chunkTypes,
    rgba,
    pixel: (x, y) => {
      const o = 4 * (y * width + x);
      return [rgba[o]!, rgba[o + 1]!, rgba[o + 2]!, rgba[o + 3]!];
    },
  };
}

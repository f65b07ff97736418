import { describe, expect, it } from 'vitest';
import { crc32, encodePng, PNG_SIGNATURE } from './png.js';
import { decodePng, slowCrc32 } from './test-utils/decode-png.js';

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

describe('crc32', () => {
  it('matches the published CRC-32 check value and the PNG IEND CRC', () => {
    expect(crc32(ascii('123456789'))).toBe(0xcbf43926); // the standard CRC-32 check value
    expect(crc32(ascii('IEND'))).toBe(0xae426082); // the CRC every PNG ends with
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it('agrees with a bitwise CRC on random bytes and continues across splits', () => {
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919 + 13) & 0xff);
    expect(crc32(bytes)).toBe(slowCrc32(bytes));
    expect(crc32(bytes.subarray(400), crc32(bytes.subarray(0, 400)))).toBe(slowCrc32(bytes));
  });
});

describe('encodePng', () => {
  it('writes signature, IHDR, IDAT, IEND and pixels that decode back exactly', () => {
    // 3 x 2 image: red, green, blue / white, black, half-transparent grey
    const px = [
      [255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255],
      [255, 255, 255, 255], [0, 0, 0, 255], [128, 128, 128, 64],
    ];
    const png = encodePng(3, 2, Uint8Array.from(px.flat()));
    expect([...png.subarray(0, 8)]).toEqual([...PNG_SIGNATURE]);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    // IHDR is the first chunk: length 13, type 'IHDR', width 3, height 2, depth 8, RGBA, 0, 0, 0
    expect([...png.subarray(8, 16)]).toEqual([0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
    expect([...png.subarray(16, 29)]).toEqual([0, 0, 0, 3, 0, 0, 0, 2, 8, 6, 0, 0, 0]);
    // The file ends with the fixed 12-byte IEND chunk.
    expect([...png.subarray(png.length - 12)]).toEqual([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);
    const d = decodePng(png);
    expect(d.chunkTypes).toEqual(['IHDR', 'IDAT', 'IEND']);
    expect([d.width, d.height]).toEqual([3, 2]);
    for (let i = 0; i < 6; i++) expect(d.pixel(i % 3, Math.floor(i / 3))).toEqual(px[i]);
  });

  it('rejects sizes that do not match the data', () => {
    expect(() => encodePng(2, 2, new Uint8Array(15))).toThrow(/rgba.length must be 16/);
    expect(() => encodePng(0, 2, new Uint8Array(0))).toThrow(RangeError);
  });
});

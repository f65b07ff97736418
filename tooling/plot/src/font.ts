/**
 * A 5 x 7 bitmap font for printable ASCII (32..126), in the style of the classic HD44780 character
 * ROM, drawn by hand for this package. Each glyph is 7 rows, top to bottom; each row is 5 bits with
 * the most significant bit the leftmost pixel. Characters outside the set draw as '?'.
 */

export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 7;
/** Horizontal advance per character (glyph + 1 px gap) at scale 1. */
export const GLYPH_ADVANCE = 6;

// 95 glyphs, 14 hex digits each (7 rows x 2 digits), in code-point order starting at ' ' (32).
const GLYPHS = [
  '00000000000000', // ' '
  '04040404000004', // !
  '0a0a0a00000000', // "
  '0a0a1f0a1f0a0a', // #
  '040f140e051e04', // $
  '18190204081303', // %
  '0c12140815120d', // &
  '0c040800000000', // '
  '02040808080402', // (
  '08040202020408', // )
  '0004150e150400', // *
  '0004041f040400', // +
  '000000000c0408', // ,
  '0000001f000000', // -
  '00000000000c0c', // .
  '00010204081000', // /
  '0e11131519110e', // 0
  '040c040404040e', // 1
  '0e11010204081f', // 2
  '1f02040201110e', // 3
  '02060a121f0202', // 4
  '1f101e0101110e', // 5
  '0608101e11110e', // 6
  '1f010204080808', // 7
  '0e11110e11110e', // 8
  '0e11110f01020c', // 9
  '000c0c000c0c00', // :
  '000c0c000c0408', // ;
  '02040810080402', // <
  '00001f001f0000', // =
  '08040201020408', // >
  '0e110102040004', // ?
  '0e11010d15150e', // @
  '0e1111111f1111', // A
  '1e11111e11111e', // B
  '0e11101010110e', // C
  '1c12111111121c', // D
  '1f10101e10101f', // E
  '1f10101e101010', // F
  '0e11101711110f', // G
  '1111111f111111', // H
  '0e04040404040e', // I
  '0702020202120c', // J
  '11121418141211', // K
  '1010101010101f', // L
  '111b1515111111', // M
  '11111915131111', // N
  '0e11111111110e', // O
  '1e11111e101010', // P
  '0e11111115120d', // Q
  '1e11111e141211', // R
  '0f10100e01011e', // S
  '1f040404040404', // T
  '1111111111110e', // U
  '11111111110a04', // V
  '1111111515150a', // W
  '11110a040a1111', // X
  '1111110a040404', // Y
  '1f01020408101f', // Z
  '0e08080808080e', // [
  '00100804020100', // backslash
  '0e02020202020e', // ]
  '040a1100000000', // ^
  '0000000000001f', // _
  '08040200000000', // `
  '00000e010f110f', // a
  '1010161911111e', // b
  '00000e1010110e', // c
  '01010d1311110f', // d
  '00000e111f100e', // e
  '0609081c080808', // f
  '000f11110f010e', // g
  '10101619111111', // h
  '04000c0404040e', // i
  '0200060202120c', // j
  '10101214181412', // k
  '0c04040404040e', // l
  '00001a15151111', // m
  '00001619111111', // n
  '00000e1111110e', // o
  '00001e111e1010', // p
  '00000d130f0101', // q
  '00001619101010', // r
  '00000e100e011e', // s
  '08081c08080906', // t
  '0000111111130d', // u
  '00001111110a04', // v
  '0000111115150a', // w
  '0000110a040a11', // x
  '000011110f010e', // y
  '00001f0204081f', // z
  '02040408040402', // {
  '04040404040404', // |
  '08040402040408', // }
  '00000815020000', // ~
];

const ROWS: Uint8Array[] = GLYPHS.map((hex) => {
  const r = new Uint8Array(GLYPH_HEIGHT);
  for (let i = 0; i < GLYPH_HEIGHT; i++) r[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return r;
});

/** The 7 row bitmasks of `ch` (its first code unit); '?' for characters outside printable ASCII. */
export function glyphRows(ch: string): Uint8Array {
  const code = ch.charCodeAt(0);
  const idx = code >= 32 && code <= 126 ? code - 32 : '?'.charCodeAt(0) - 32;
  return ROWS[idx]!;
}

/** True when pixel (col, row) of the glyph for `ch` is set; col in [0, 5), row in [0, 7). */
export function glyphPixel(ch: string, col: number, row: number): boolean {
  return ((glyphRows(ch)[row]! >> (GLYPH_WIDTH - 1 - col)) & 1) === 1;
}

/** Width in pixels of `text` drawn at `scale` (no trailing gap). */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * GLYPH_ADVANCE - 1) * scale;
}

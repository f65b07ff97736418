/**
 * The two Node `Buffer` calls transformer's safetensors codec makes (byteLength / from(string) on save,
 * from(arrayBuffer, offset, length).toString('utf8') on load), on TextEncoder / TextDecoder, installed
 * only where `Buffer` is missing (the browser). Everything else of the codec is plain typed arrays.
 */
class Utf8Bytes extends Uint8Array {
  override toString(): string {
    return new TextDecoder().decode(this);
  }
}

const g = globalThis as { Buffer?: unknown };
g.Buffer ??= {
  byteLength: (s: string): number => new TextEncoder().encode(s).length,
  from: (x: string | ArrayBuffer, offset?: number, length?: number): Utf8Bytes =>
    typeof x === 'string'
      ? new Utf8Bytes(new TextEncoder().encode(x))
      : new Utf8Bytes(x, offset, length),
};

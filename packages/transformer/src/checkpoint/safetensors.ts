/**
 * The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
 * length N, N bytes of JSON { name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__":
 * { string: string } }, then the raw little-endian tensor bytes. Parsing validates every field before
 * returning anything, so a truncated or corrupted file is rejected whole.
 */
import { FlashAttnError } from '@flashattn/core';

export class CheckpointError extends FlashAttnError {
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`checkpoint ${path}: ${message}`, options);
  }
}

export type SafeDType = 'F32' | 'F64' | 'I32';
export type SafeData = Float32Array | Float64Array | Int32Array;

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  data: SafeData;
}

const BYTES: Record<SafeDType, number> = { F32: 4, F64: 8, I32: 4 };

function dtypeOf(data: SafeData): SafeDType {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  return 'I32';
}

/** Serialise tensors (in the given order) and string metadata. */
export function encodeSafetensors(tensors: ReadonlyMap<string, { shape: readonly number[]; data: SafeData }>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of tensors) {
    const dtype = dtypeOf(t.data);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new RangeError(`safetensors: ${name} has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    const bytes = n * BYTES[dtype];
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned (the format allows trailing whitespace).
  let headerBytes = new TextEncoder().encode(json);
  if ((8 + headerBytes.length) % 8 !== 0) {
    json += ' '.repeat(8 - ((8 + headerBytes.length) % 8));
    headerBytes = new TextEncoder().encode(json);
  }
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const [, t] of tensors) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(bytes, pos);
    pos += bytes.length;
  }
  return out;
}

export interface ParsedSafetensors {
  metadata: Record<string, string>;
  tensors: Map<string, SafeTensor>;
}

/** Parse and validate a whole file; throws CheckpointError naming what is wrong. */
export function parseSafetensors(buf: Uint8Array, path = '<buffer>'): ParsedSafetensors {
  const fail = (msg: string): never => {
    throw new CheckpointError(path, msg);
  };
  if (buf.length < 8) fail(`file is ${buf.length} bytes, shorter than the 8-byte header length`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(buf.length - 8)) fail(`header length ${n} exceeds the file (${buf.length} bytes): truncated or not safetensors`);
  const N = Number(n);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + N)),
    ) as Record<string, unknown>;
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header is not a JSON object');
  const dataStart = 8 + N;
  const dataLen = buf.length - dataStart;
  const metadata: Record<string, string> = {};
  const rawMeta = header['__metadata__'];
  if (rawMeta !== undefined) {
    if (rawMeta === null || typeof rawMeta !== 'object') fail('__metadata__ is not an object');
    for (const [k, v] of Object.entries(rawMeta as object)) {
      if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
      metadata[k] = v as string;
    }
  }
  const spans: Array<[number, number, string]> = [];
  const tensors = new Map<string, SafeTensor>();
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e === null || typeof e !== 'object') fail(`entry ${name} is not an object`);
    if (e.dtype !== 'F32' && e.dtype !== 'F64' && e.dtype !== 'I32') fail(`tensor ${name}: unsupported dtype ${String(e.dtype)} (F32, F64, I32 are read)`);
    const dtype = e.dtype as SafeDType;
    if (!Array.isArray(e.shape) || e.shape.some((s) => !Number.isInteger(s) || s < 0)) fail(`tensor ${name}: bad shape`);
    const shape = e.shape as number[];
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0)) fail(`tensor ${name}: bad data_offsets`);
    const [b, en] = offs as [number, number];
    const count = shape.reduce((a, s) => a * s, 1);
    if (en - b !== count * BYTES[dtype]) fail(`tensor ${name}: ${en - b} bytes for shape [${shape.join(', ')}] ${dtype}`);
    if (en > dataLen) fail(`tensor ${name}: data ends at ${en} but the file holds ${dataLen} data bytes (truncated)`);
    spans.push([b, en, name]);
    // Copy into a fresh buffer: aligned for the typed array and detached from buf (a Node Buffer's
    // slice would be a view into Node's shared pool).
    const bytes = new Uint8Array(en - b);
    bytes.set(buf.subarray(dataStart + b, dataStart + en));
    const data = dtype === 'F32' ? new Float32Array(bytes.buffer) : dtype === 'F64' ? new Float64Array(bytes.buffer) : new Int32Array(bytes.buffer);
    tensors.set(name, { dtype, shape, data });
  }
  spans.sort((x, y) => x[0] - y[0]);
  let end = 0;
  for (const [b, en, name] of spans) {
    if (b !== end) fail(`tensor ${name}: data starts at ${b}, expected ${end} (gap or overlap)`);
    end = en;
  }
  if (end !== dataLen) fail(`${dataLen - end} trailing bytes after the last tensor`);
  return { metadata, tensors };
}

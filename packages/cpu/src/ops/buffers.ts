/**
 * The CPU's device buffers are host typed arrays: float32 (in the shared wasm memory when the SIMD
 * matmul is on, else a SharedArrayBuffer), float64 and int32 (SharedArrayBuffers), so worker threads
 * read and write them in place. A view is a subarray. Every op checks its arguments with the helpers
 * here before touching memory, and throws core's OpsInputError naming the argument.
 */
import { OpsInputError, describe, type BufferDType, type HostArray } from '@flashattn/core';

export type CpuFloatBuffer = Float32Array | Float64Array;
export type CpuBuffer = Float32Array | Float64Array | Int32Array;

export const CPU_DTYPES: readonly BufferDType[] = ['float32', 'float64', 'int32'];

export function cpuDTypeOf(buf: unknown): BufferDType | null {
  if (buf instanceof Float32Array) return 'float32';
  if (buf instanceof Float64Array) return 'float64';
  if (buf instanceof Int32Array) return 'int32';
  return null;
}

/** buf is a CPU float buffer (any length). */
export function floatAny(op: string, name: string, buf: unknown): CpuFloatBuffer {
  if (!(buf instanceof Float32Array) && !(buf instanceof Float64Array)) {
    throw new OpsInputError(
      `${op} ${name}`,
      'a float32 or float64 CPU buffer (from alloc or view)',
      describe(buf),
    );
  }
  return buf;
}

/** buf is a CPU float buffer of exactly n elements. */
export function floatBuf(op: string, name: string, buf: unknown, n: number): CpuFloatBuffer {
  floatAny(op, name, buf);
  if ((buf as CpuFloatBuffer).length !== n)
    throw new OpsInputError(`${op} ${name}.length`, String(n), (buf as CpuFloatBuffer).length);
  return buf as CpuFloatBuffer;
}

/** buf is an int32 CPU buffer of exactly n elements. */
export function intBuf(op: string, name: string, buf: unknown, n: number): Int32Array {
  if (!(buf instanceof Int32Array)) {
    throw new OpsInputError(
      `${op} ${name}`,
      'an int32 CPU buffer (from alloc or view)',
      describe(buf),
    );
  }
  if (buf.length !== n) throw new OpsInputError(`${op} ${name}.length`, String(n), buf.length);
  return buf;
}

/** A size argument: a non-negative safe integer. */
export function size(op: string, name: string, x: unknown): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) {
    throw new OpsInputError(`${op} ${name}`, 'a non-negative integer', describe(x));
  }
  return x;
}

/** Same dtype as a reference buffer (ops do not mix float32 and float64 operands). */
export function sameDType(
  op: string,
  name: string,
  buf: CpuFloatBuffer,
  ref: CpuFloatBuffer,
  refName: string,
): void {
  if (buf.constructor !== ref.constructor) {
    throw new OpsInputError(
      `${op} ${name}.dtype`,
      `${cpuDTypeOf(ref)} like ${refName}`,
      cpuDTypeOf(buf),
    );
  }
}

/** Host data for upload into buf: same length; floats into float buffers, Int32Array into int32. */
export function checkUpload(buf: CpuBuffer, data: HostArray): void {
  const dt = cpuDTypeOf(buf);
  const ok =
    dt === 'int32'
      ? data instanceof Int32Array
      : data instanceof Float32Array || data instanceof Float64Array;
  if (!ok) {
    throw new OpsInputError(
      'upload data',
      dt === 'int32'
        ? 'an Int32Array for an int32 buffer'
        : 'a Float32Array or Float64Array for a float buffer',
      describe(data),
    );
  }
  if (data.length !== buf.length)
    throw new OpsInputError('upload data.length', String(buf.length), data.length);
}

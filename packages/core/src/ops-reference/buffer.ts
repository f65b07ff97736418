/**
 * The reference backend's device memory: `ReferenceBuffer`, an opaque handle (a class whose state is
 * private, so code written against `Ops<Buf>` cannot reach into it the way it could with a typed
 * array), over host storage.
 *
 * Storage: float64 and float32 buffers hold their values in a Float64Array; a float32 buffer rounds
 * every value written to it to float32 (Math.fround), so it stores exactly what a float32 device buffer
 * would, while every op computes in float64 on the stored values. int32 buffers hold an Int32Array.
 * A view shares its root's storage; freeing the root makes every view of it unusable.
 */
import { OpsInputError } from '../errors.js';
import type { BufferDType } from '../contracts/ops.js';

/** The dtypes the reference backend allocates. */
export type ReferenceDType = 'float64' | 'float32' | 'int32';
export const REFERENCE_DTYPES: readonly ReferenceDType[] = ['float64', 'float32', 'int32'];

interface Storage {
  readonly dtype: ReferenceDType;
  readonly data: Float64Array | Int32Array;
  freed: boolean;
}

/** Internal state of a buffer: its root storage and the window [offset, offset + length). */
export interface Slot {
  readonly storage: Storage;
  readonly offset: number;
  readonly length: number;
  /** True for a buffer made by alloc (free is allowed), false for a view. */
  readonly root: boolean;
}

let slotOf: (b: ReferenceBuffer) => Slot;

/** A reference-backend buffer or view. Opaque: only the reference ops read or write it. */
export class ReferenceBuffer {
  readonly #slot: Slot;
  /** @internal use `allocReference` / `ops.alloc` */
  constructor(slot: Slot) {
    this.#slot = slot;
  }
  static {
    slotOf = (b) => b.#slot;
  }
  toString(): string {
    const s = this.#slot;
    return `ReferenceBuffer(${s.storage.dtype}, ${s.length}${s.root ? '' : ` @${s.offset}`})`;
  }
}

/** A zeroed buffer of n elements. */
export function allocReference(name: string, n: number, dtype: BufferDType): ReferenceBuffer {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new OpsInputError(`${name} n`, 'a non-negative integer element count', n);
  }
  if (!(REFERENCE_DTYPES as readonly string[]).includes(dtype)) {
    throw new OpsInputError(`${name} dtype`, `one of ${REFERENCE_DTYPES.join(', ')}`, dtype);
  }
  const dt = dtype as ReferenceDType;
  const data = dt === 'int32' ? new Int32Array(n) : new Float64Array(n);
  return new ReferenceBuffer({
    storage: { dtype: dt, data, freed: false },
    offset: 0,
    length: n,
    root: true,
  });
}

/** The slot of a live buffer; an OpsInputError naming `name` for anything else. */
export function slot(name: string, b: unknown): Slot {
  if (!(b instanceof ReferenceBuffer)) {
    throw new OpsInputError(name, 'a ReferenceBuffer from this backend', b);
  }
  const s = slotOf(b);
  if (s.storage.freed) throw new OpsInputError(name, 'a live buffer', 'a freed buffer');
  return s;
}

export function viewReference(
  name: string,
  b: unknown,
  offset: number,
  length: number,
): ReferenceBuffer {
  const s = slot(name, b);
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new OpsInputError(`${name} offset`, 'a non-negative integer', offset);
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new OpsInputError(`${name} length`, 'a non-negative integer', length);
  }
  if (offset + length > s.length) {
    throw new OpsInputError(
      `${name} view`,
      `a range inside the buffer's ${s.length} elements`,
      `[${offset}, ${offset + length})`,
    );
  }
  return new ReferenceBuffer({
    storage: s.storage,
    offset: s.offset + offset,
    length,
    root: false,
  });
}

export function freeReference(name: string, b: unknown): void {
  const s = slot(name, b);
  if (!s.root) throw new OpsInputError(name, 'a buffer from alloc (not a view)', 'a view');
  s.storage.freed = true;
}

/** What one op argument must be: a float or int32 buffer of at least / exactly n elements. */
export type Kind = 'float' | 'int32';

/**
 * Check one argument: live, of the kind, and with exactly `n` elements (`atLeast`: at least n, for
 * the flat ops that take a count n and buffers that may be longer). Returns the slot.
 */
export function arg(name: string, b: unknown, kind: Kind, n: number, atLeast = false): Slot {
  const s = slot(name, b);
  const dt = s.storage.dtype;
  if (kind === 'int32' ? dt !== 'int32' : dt === 'int32') {
    throw new OpsInputError(
      `${name} dtype`,
      kind === 'int32' ? 'int32' : 'a float dtype (float32, float64)',
      dt,
    );
  }
  if (atLeast ? s.length < n : s.length !== n) {
    throw new OpsInputError(
      `${name} length`,
      atLeast ? `at least ${n} elements` : `${n} elements`,
      s.length,
    );
  }
  return s;
}

/** Check a size argument. */
export function size(name: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new OpsInputError(name, 'a non-negative integer', n);
  return n;
}

/** A float64 copy of the first n elements of a slot (n defaults to its length). */
export function read(s: Slot, n = s.length): Float64Array {
  const out = new Float64Array(n);
  const d = s.storage.data;
  for (let i = 0; i < n; i++) out[i] = d[s.offset + i]!;
  return out;
}

/** An Int32Array copy of an int32 slot. */
export function readInt(s: Slot, n = s.length): Int32Array {
  return (s.storage.data as Int32Array).slice(s.offset, s.offset + n);
}

/** Write values into a slot, rounding to its storage dtype (float32: Math.fround; int32: truncation). */
export function write(s: Slot, values: ArrayLike<number>, n = values.length): void {
  const d = s.storage.data;
  const o = s.offset;
  if (s.storage.dtype === 'float32') for (let i = 0; i < n; i++) d[o + i] = Math.fround(values[i]!);
  else for (let i = 0; i < n; i++) d[o + i] = values[i]!;
}

export function dtypeOfSlot(s: Slot): ReferenceDType {
  return s.storage.dtype;
}

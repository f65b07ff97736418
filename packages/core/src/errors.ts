/**
 * Typed errors shared by every backend. Core owns them; backends subclass, never restate.
 */

/** Base class of every error this project throws on purpose. */
export class FlashAttnError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * Bad input to a public entry point. `argument` names the offending argument (`q`, `k.shape[2]`,
 * `opts.softmaxScale`, `matmul a.length`, ...), `expected` and `actual` say what was wanted and what came.
 */
export class InputError extends FlashAttnError {
  readonly argument: string;
  readonly expected: string;
  readonly actual: string;

  constructor(argument: string, expected: string, actual: unknown, detail?: string) {
    const actualText = describe(actual);
    super(
      `Invalid ${argument}: expected ${expected}, got ${actualText}` +
        (detail ? ` (${detail})` : ''),
    );
    this.argument = argument;
    this.expected = expected;
    this.actual = actualText;
  }
}

/** Bad input to an attention call (host `AttentionBackend` or device `DeviceAttention`). */
export class AttentionInputError extends InputError {}

/** Bad input to one of the model's ops (`Ops<Buf>`): a wrong length, dtype, view range or size. */
export class OpsInputError extends InputError {}

/** A backend that cannot run here (no adapter, no driver, package not installed). */
export class BackendUnavailableError extends FlashAttnError {
  readonly backend: string;
  readonly reason: string;

  constructor(backend: string, reason: string, options?: { cause?: unknown }) {
    super(`${backend} backend is unavailable: ${reason}`, options);
    this.backend = backend;
    this.reason = reason;
  }
}

/** A failure reported by a device at run time (out of memory, device lost, kernel error). */
export class BackendExecutionError extends FlashAttnError {
  readonly backend: string;

  constructor(backend: string, message: string, options?: { cause?: unknown }) {
    super(`${backend}: ${message}`, options);
    this.backend = backend;
  }
}

/** The device ran out of memory for this call; the backend stays usable. */
export class BackendOutOfMemoryError extends BackendExecutionError {}

/** Render a value for an error message without dumping huge arrays. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return String(value);
  }
  if (Array.isArray(value)) {
    return value.length <= 8
      ? `[${value.map(describe).join(', ')}]`
      : `array of length ${value.length}`;
  }
  if (ArrayBuffer.isView(value)) {
    return `${value.constructor.name} of length ${(value as unknown as { length: number }).length}`;
  }
  if (typeof value === 'object') return value.constructor?.name ?? 'object';
  return typeof value;
}

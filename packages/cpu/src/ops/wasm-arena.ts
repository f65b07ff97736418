/**
 * A shared WebAssembly.Memory that holds the float32 buffers of the CPU ops, so the SIMD matmul
 * (matmul-simd.wat) can read them in place from the main thread and from the worker (both instantiate
 * the module on this one memory). Bump allocation; nothing is freed (models live as long as the ops).
 */
import { MATMUL_SIMD_WASM_BASE64 } from './matmul-simd.wasm.js';

export interface MatmulSimdExports {
  block4(c: number, a: number, b: number, bias: number, N: number, K: number, j0: number, j1: number, mode: number): void;
  row1(c: number, a: number, b: number, bias: number, N: number, K: number, j0: number, j1: number, mode: number): void;
}

const PAGE = 65536;

export class WasmArena {
  readonly memory: WebAssembly.Memory;
  readonly module: WebAssembly.Module;
  readonly exports: MatmulSimdExports;
  private top = 64; // byte 0.. kept unused so a pointer is never 0
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  /**
   * The buffer object views are made from. The getter of a shared memory's `buffer` may hand out a
   * new SharedArrayBuffer object on each call, so take it once per size and remember every one.
   */
  private buf: ArrayBufferLike;

  constructor(maxBytes = 4 * 2 ** 30) {
    this.memory = new WebAssembly.Memory({ initial: 1, maximum: Math.min(65536, Math.floor(maxBytes / PAGE)), shared: true });
    this.module = new WebAssembly.Module(Buffer.from(MATMUL_SIMD_WASM_BASE64, 'base64'));
    const inst = new WebAssembly.Instance(this.module, { env: { memory: this.memory } });
    this.exports = inst.exports as unknown as MatmulSimdExports;
    this.buf = this.memory.buffer;
    this.buffers.add(this.buf);
  }

  /** A zeroed float32 view of n elements, 16-byte aligned, or null when the memory cannot grow. */
  allocF32(n: number): Float32Array | null {
    const bytes = Math.ceil((n * 4) / 16) * 16;
    const need = this.top + bytes;
    const have = this.buf.byteLength;
    if (need > have) {
      try {
        this.memory.grow(Math.ceil((need - have) / PAGE));
      } catch {
        return null;
      }
      this.buf = this.memory.buffer;
      this.buffers.add(this.buf);
    }
    const view = new Float32Array(this.buf, this.top, n);
    this.top += bytes;
    return view;
  }

  /** Byte address of a view into this memory, or -1 for any other array. */
  ptr(x: Float32Array | Float64Array | null): number {
    if (x === null || !(x instanceof Float32Array) || !this.buffers.has(x.buffer)) return -1;
    return x.byteOffset;
  }

  get bytesUsed(): number {
    return this.top;
  }
}

/**
 * Drive the SIMD kernels over rows [m0, m1) in column panels of NC. Self-contained (shipped to the
 * worker as source). Row i is computed by block4 or row1 depending on where it falls, but both use
 * the same lane order, so results do not depend on the thread split.
 *   NC = 256: a 256 x K float32 panel of Bp is 128 KiB at K = 128, inside L2.
 */
export function simdRows(
  ex: MatmulSimdExports, c: number, a: number, b: number, bias: number, N: number, K: number, m0: number, m1: number, mode: number,
): void {
  const NC = 256;
  for (let j0 = 0; j0 < N; j0 += NC) {
    const j1 = Math.min(N, j0 + NC);
    let i = m0;
    for (; i + 4 <= m1; i += 4) ex.block4(c + i * N * 4, a + i * K * 4, b, bias, N, K, j0, j1, mode);
    for (; i < m1; i++) ex.row1(c + i * N * 4, a + i * K * 4, b, bias, N, K, j0, j1, mode);
  }
}

/**
 * A shared WebAssembly.Memory that holds the float32 buffers of the CPU ops, so the SIMD kernels
 * (wasm/flash-simd.mjs: attention tiles and the matmul's gemm) read them in place from the main thread
 * and from the workers (each instantiates the module on this one memory). Bump allocation; nothing is
 * freed (models live as long as the ops).
 */

const PAGE = 65536;

export class WasmArena {
  readonly memory: WebAssembly.Memory;
  private top = 64; // byte 0.. kept unused so a pointer is never 0
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  /**
   * The buffer object views are made from. The getter of a shared memory's `buffer` may hand out a
   * new SharedArrayBuffer object on each call, so take it once per size and remember every one.
   */
  private buf: ArrayBufferLike;

  constructor(maxBytes = 4 * 2 ** 30) {
    this.memory = new WebAssembly.Memory({
      initial: 1,
      maximum: Math.min(65536, Math.floor(maxBytes / PAGE)),
      shared: true,
    });
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

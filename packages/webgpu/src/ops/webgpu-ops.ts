/**
 * core's `Ops<WebGPUBuffer>` on WebGPU: the model's ops (llm.c's list) as one WGSL program each
 * (kernels/ops/), device memory (memory.ts) and FlashAttention-2 on strided views (attention.ts) over one
 * GPUDevice. float32 everywhere (buffers float32 and int32; WGSL has no f64).
 *
 * Ops only record: dispatches of consecutive ops go into one command encoder (recorder.ts) and are
 * submitted at the syncs (sum, sumSquares, download) or every MAX_DISPATCHES dispatches; only the loss
 * and the gradient norm come back to the host during a step. Arguments are checked on the host before
 * anything is recorded (OpsInputError naming the argument). Device-side errors (out of memory,
 * validation) surface at the next sync as BackendOutOfMemoryError / BackendExecutionError; a lost
 * device fails the pending sync and every later call.
 *
 * Determinism: no float atomics anywhere (WGSL has none); every reduction has a fixed order, so a step
 * gives bit-identical results run to run on one device.
 */
import {
  BackendExecutionError,
  OpsInputError,
  describe,
  matmulEpilogue,
  xentRowStride,
  type AdamWStep,
  type AttentionCombineArgs,
  type AttentionOptions,
  type BackendCapabilities,
  type BufferDType,
  type DeviceAttentionBackwardArgs,
  type DeviceAttentionForwardArgs,
  type HostArray,
  type KvCacheAttentionArgs,
  type KvCacheCapabilities,
  type KvCacheOptions,
  type MatmulOptions,
  type Ops,
} from '@flashattn/core';
import { kindFor, MAX_HEAD_DIM, WebGPUDeviceAttention } from '../attention.js';
import { kvParallelism, WebGPUKvCacheAttention } from '../inference/kv-cache.js';
import {
  createWebGPUBackend,
  type WebGPUAttentionBackend,
  type WebGPUBackendOptions,
} from '../backend.js';
import { adamwProgram } from '../kernels/ops/adamw.wgsl.js';
import { addProgram } from '../kernels/ops/add.wgsl.js';
import { biasBackwardProgram } from '../kernels/ops/bias-backward.wgsl.js';
import {
  CHUNK_ROWS,
  columnDispatch,
  columnPartialsAddProgram,
} from '../kernels/ops/column-sums.js';
import { elementwiseGroups } from '../kernels/ops/elementwise.js';
import {
  EMB_WG,
  embeddingBackwardLinksProgram,
  embeddingBackwardPositionProgram,
  embeddingBackwardRowsProgram,
} from '../kernels/ops/embedding-backward.wgsl.js';
import { embeddingForwardProgram } from '../kernels/ops/embedding-forward.wgsl.js';
import { geluBackwardProgram } from '../kernels/ops/gelu-backward.wgsl.js';
import { geluForwardProgram } from '../kernels/ops/gelu-forward.wgsl.js';
import { layernormBackwardDinpProgram } from '../kernels/ops/layernorm-backward-dinp.wgsl.js';
import { layernormBackwardDwdbProgram } from '../kernels/ops/layernorm-backward-dwdb.wgsl.js';
import { layernormForwardProgram } from '../kernels/ops/layernorm-forward.wgsl.js';
import { matmulGroups, matmulProgram, type MatmulSpec } from '../kernels/ops/matmul.wgsl.js';
import { REDUCE_GROUPS, reduceSumProgram } from '../kernels/ops/reduce-sum.wgsl.js';
import { scaleProgram } from '../kernels/ops/scale.wgsl.js';
import { softmaxCrossEntropyProgram } from '../kernels/ops/softmax-cross-entropy.wgsl.js';
import type { ProgramInfo, UniformValue } from '../program.js';
import { WebGPUBuffer, WebGPUMemory } from '../memory.js';
import type { Runtime } from '../runtime.js';
import { bindOperands, grid, type BoundOperands, type Operand } from './operands.js';
import { Recorder } from './recorder.js';

/** Buffer dtypes of the ops (float32 compute everywhere; int32 tokens and targets). */
export const WEBGPU_OPS_DTYPES: readonly BufferDType[] = ['float32', 'int32'];

export type WebGpuOpsOptions = WebGPUBackendOptions;

/** The matmul's shape class: 128 x 128 tiles once there are enough of them to fill a large GPU. */
export function matmulSpecFor(
  M: number,
  N: number,
  transA: boolean,
  transB: boolean,
  epilogue: MatmulSpec['epilogue'],
): MatmulSpec {
  // 128 x 128 (G = 2, BK = 8: 8.3 KB of workgroup memory) when it still gives >= 64 tiles, else 64 x 64
  // (BK = 16) so that small products still spread over the GPU.
  const big = Math.ceil(M / 128) * Math.ceil(N / 128) >= 64;
  return big
    ? { G: 2, BK: 8, transA, transB, epilogue }
    : { G: 1, BK: 16, transA, transB, epilogue };
}

export async function createWebGpuOps(options: WebGpuOpsOptions = {}): Promise<WebGpuOps> {
  return new WebGpuOps(await createWebGPUBackend(options));
}

export class WebGpuOps implements Ops<WebGPUBuffer> {
  readonly name: string;
  readonly dtypes = WEBGPU_OPS_DTYPES;
  readonly runtime: Runtime;
  readonly recorder: Recorder;
  private readonly mem: WebGPUMemory;
  private readonly att: WebGPUDeviceAttention;
  /** KV-cache attention (inference/kv-cache.ts): GPT-2's cached generation (forwardCached). */
  private readonly kv: WebGPUKvCacheAttention;
  private disposed = false;

  constructor(private readonly backend: WebGPUAttentionBackend) {
    const rt = backend.runtime;
    this.runtime = rt;
    this.name = `${backend.name.replace(/^webgpu/, 'webgpu ops')} (float32)`;
    this.recorder = new Recorder(rt);
    this.mem = new WebGPUMemory(rt);
    this.att = new WebGPUDeviceAttention({
      rt,
      mem: this.mem,
      kindOf: kindFor(backend.nativeF16, backend.compact),
      variant: (D) => backend.variant(D),
      // attention appends its passes to the open batch (q, k, v read in place, no round trip)
      submit: async (record) => {
        record(this.recorder.encoder());
        this.recorder.dispatched(4);
      },
    });
    this.kv = new WebGPUKvCacheAttention({
      rt,
      mem: this.mem,
      kindOf: kindFor(backend.nativeF16, backend.compact),
      maxHeadDim: MAX_HEAD_DIM,
      parallelism: kvParallelism(backend.compact),
    });
  }

  get device(): GPUDevice {
    return this.backend.device;
  }

  get attentionCapabilities(): BackendCapabilities {
    return { ...this.att.attentionCapabilities, dtypes: ['float32'] };
  }

  computeDType(dtype: BufferDType): BufferDType {
    return dtype === 'int32' ? 'int32' : 'float32';
  }

  // ---- checks ----

  private live(): void {
    if (this.disposed) throw new OpsInputError('ops', 'a live WebGpuOps', 'one after dispose()');
    this.runtime.check();
  }

  private buf(op: string, name: string, b: unknown): WebGPUBuffer {
    try {
      return this.mem.check(name, b);
    } catch (e) {
      if (e instanceof OpsInputError)
        throw new OpsInputError(`${op} ${name}`, e.expected, e.actual);
      throw e;
    }
  }

  /** A float32 buffer of exactly n elements (n undefined: any length). */
  private f32(op: string, name: string, b: unknown, n?: number): WebGPUBuffer {
    const x = this.buf(op, name, b);
    if (x.dtype !== 'float32')
      throw new OpsInputError(`${op} ${name}`, 'a float32 buffer', `a ${x.dtype} buffer`);
    if (n !== undefined && x.length !== n)
      throw new OpsInputError(`${op} ${name}.length`, String(n), x.length);
    return x;
  }

  private i32(op: string, name: string, b: unknown, n: number): WebGPUBuffer {
    const x = this.buf(op, name, b);
    if (x.dtype !== 'int32')
      throw new OpsInputError(`${op} ${name}`, 'an int32 buffer', `a ${x.dtype} buffer`);
    if (x.length !== n) throw new OpsInputError(`${op} ${name}.length`, String(n), x.length);
    return x;
  }

  private size(op: string, name: string, x: unknown): number {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0 || x >= 2 ** 32) {
      throw new OpsInputError(`${op} ${name}`, 'a non-negative integer below 2^32', describe(x));
    }
    return x;
  }

  // ---- recording ----

  private groups(n: number): readonly [number, number, number] {
    return grid(n, this.runtime.device.limits.maxComputeWorkgroupsPerDimension);
  }

  /** Record one dispatch of `make(bound)` with the sizes in `uniforms`. */
  private run(
    operands: readonly Operand[],
    make: (bound: BoundOperands) => ProgramInfo,
    uniforms: Readonly<Record<string, UniformValue>>,
    extraBuffers: Readonly<Record<string, GPUBuffer>> = {},
  ): void {
    const bound = bindOperands(operands);
    const info = make(bound);
    if (info.dispatch.some((d) => d === 0)) return;
    this.runtime.programs.run(
      this.recorder.compute(),
      info,
      { ...uniforms, ...bound.values },
      { ...bound.buffers, ...extraBuffers },
    );
    this.recorder.dispatched();
  }

  // ---- memory ----

  alloc(n: number, dtype: BufferDType): WebGPUBuffer {
    this.live();
    this.size('alloc', 'n', n);
    if (!WEBGPU_OPS_DTYPES.includes(dtype)) {
      throw new OpsInputError(
        'alloc dtype',
        `one of ${WEBGPU_OPS_DTYPES.join(', ')} (the WebGPU ops compute in float32)`,
        describe(dtype),
      );
    }
    return this.mem.alloc(n, dtype);
  }

  view(buf: WebGPUBuffer, offset: number, length: number): WebGPUBuffer {
    this.live();
    return this.mem.view(buf, offset, length);
  }

  lengthOf(buf: WebGPUBuffer): number {
    return this.mem.lengthOf(buf);
  }

  dtypeOf(buf: WebGPUBuffer): BufferDType {
    return this.mem.dtypeOf(buf);
  }

  zero(buf: WebGPUBuffer): void {
    this.live();
    const b = this.buf('zero', 'buf', buf);
    if (b.length === 0) return;
    // 4-byte elements: always word aligned
    this.recorder.encoder().clearBuffer(b.gpuBuffer, b.offset * 4, b.length * 4);
  }

  async upload(buf: WebGPUBuffer, data: HostArray): Promise<void> {
    this.live();
    this.recorder.flush(); // the queue's write must come after the work recorded before it
    await this.mem.upload(buf, data);
  }

  async download(buf: WebGPUBuffer): Promise<HostArray> {
    this.live();
    this.buf('download', 'buf', buf);
    await this.recorder.errors();
    return this.mem.download(buf);
  }

  async copy(dst: WebGPUBuffer, src: WebGPUBuffer): Promise<void> {
    this.live();
    this.recorder.flush();
    await this.mem.copy(dst, src);
  }

  free(buf: WebGPUBuffer): void {
    this.buf('free', 'buf', buf);
    if (!this.disposed) this.recorder.flush(); // recorded work may still use it
    this.mem.free(buf);
  }

  // ---- attention: FlashAttention-2 on strided views (q, k, v read in place from the packed qkv) ----

  async attentionForward(
    args: DeviceAttentionForwardArgs<WebGPUBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    this.live();
    await this.att.attentionForward(args, opts);
  }

  async attentionBackward(
    args: DeviceAttentionBackwardArgs<WebGPUBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    this.live();
    await this.att.attentionBackward(args, opts);
  }

  // ---- KV-cache attention (core's DeviceKvCacheAttention; float32 here like every op) ----
  // Each call submits its own command buffer after the open batch (flushed first: queue order).

  get kvCacheCapabilities(): KvCacheCapabilities {
    return { ...this.kv.kvCacheCapabilities, dtypes: ['float32'] };
  }

  async attentionWithKvCache(
    args: KvCacheAttentionArgs<WebGPUBuffer>,
    opts?: KvCacheOptions,
  ): Promise<void> {
    this.live();
    this.recorder.flush();
    await this.kv.attentionWithKvCache(args, opts);
  }

  async attentionCombine(args: AttentionCombineArgs<WebGPUBuffer>): Promise<void> {
    this.live();
    this.recorder.flush();
    await this.kv.attentionCombine(args);
  }

  // ---- the model's ops ----

  matmul(
    out: WebGPUBuffer,
    a: WebGPUBuffer,
    b: WebGPUBuffer,
    M: number,
    N: number,
    K: number,
    opts: MatmulOptions<WebGPUBuffer> = {},
  ): void {
    this.live();
    this.size('matmul', 'M', M);
    this.size('matmul', 'N', N);
    this.size('matmul', 'K', K);
    const o = this.f32('matmul', 'out', out, M * N);
    const A = this.f32('matmul', 'a', a, M * K);
    const B = this.f32('matmul', 'b', b, K * N);
    const bias =
      opts.bias === undefined ? undefined : this.f32('matmul', 'opts.bias', opts.bias, N);
    const fused = matmulEpilogue('matmul', opts);
    // GPT-2's GELU epilogues run in the matmul's own epilogue (matmul.wgsl.ts): pre stored or read there.
    const gelu = fused === 'gelu' || fused === 'dgelu';
    const pre = gelu
      ? this.f32('matmul', `opts.${fused}Pre`, (opts.geluPre ?? opts.dgeluPre)!, M * N)
      : undefined;
    if (M === 0 || N === 0) return;
    const epilogue: MatmulSpec['epilogue'] =
      fused === 'dgelu'
        ? 'dgelu'
        : fused === 'gelu'
          ? bias
            ? 'bias-gelu'
            : 'gelu'
          : opts.accumulate
            ? 'accumulate'
            : bias
              ? 'bias'
              : 'store';
    const transA = opts.transA ?? false;
    const transB = opts.transB ?? false;
    // vec4 reads of an operand whose contiguous size and offset are multiples of 4, bound a second
    // time read-only (allowed unless its GPUBuffer is also out's, which is bound writable)
    const vec = (x: WebGPUBuffer, contiguous: number): boolean =>
      contiguous % 4 === 0 &&
      x.offset % 4 === 0 &&
      x.gpuBuffer !== o.gpuBuffer &&
      !(fused === 'gelu' && x.gpuBuffer === pre!.gpuBuffer); // pre is written there too
    const shape = matmulSpecFor(M, N, transA, transB, epilogue);
    const BM = 64 * shape.G;
    const spec: MatmulSpec = {
      ...shape,
      vecA: vec(A, transA ? M : K),
      vecB: vec(B, transB ? K : N),
      full: M % BM === 0 && N % BM === 0 && K % shape.BK === 0,
    };
    // (a vec4 operand is read only through a4 / b4: its scalar binding would be unused, which the
    // pipeline's 'auto' layout drops and the bind group would then fail to match)
    const operands: Operand[] = [{ name: 'out', buf: o, write: true }];
    if (!spec.vecA) operands.push({ name: 'a', buf: A });
    if (!spec.vecB) operands.push({ name: 'b', buf: B });
    if (bias) operands.push({ name: 'bias', buf: bias });
    if (pre) operands.push({ name: 'pre', buf: pre, write: fused === 'gelu' });
    const extra: Record<string, GPUBuffer> = {};
    const u: Record<string, number> = { M, N, K };
    if (spec.vecA) [extra.a4, u.o4_a] = [A.gpuBuffer, A.offset / 4];
    if (spec.vecB) [extra.b4, u.o4_b] = [B.gpuBuffer, B.offset / 4];
    this.run(operands, (bd) => matmulProgram(bd, spec, matmulGroups(spec, M, N)), u, extra);
  }

  biasBackward(dbias: WebGPUBuffer, dout: WebGPUBuffer, M: number, N: number): void {
    this.live();
    this.size('biasBackward', 'M', M);
    this.size('biasBackward', 'N', N);
    const db = this.f32('biasBackward', 'dbias', dbias, N);
    const g = this.f32('biasBackward', 'dout', dout, M * N);
    if (M === 0) return;
    this.columnSums(
      [['dbias', db]],
      [{ name: 'dout', buf: g }],
      (bd, chunked, d) => biasBackwardProgram(bd, chunked, d),
      M,
      N,
    );
  }

  /**
   * A per-column reduction (column-sums.ts) adding k sums into `outs`: one pass up to CHUNK_ROWS rows,
   * else per-chunk partials in a pooled scratch and column-partials-add.
   */
  private columnSums(
    outs: readonly (readonly [string, WebGPUBuffer])[],
    inputs: readonly Operand[],
    make: (
      bound: BoundOperands,
      chunked: boolean,
      dispatch: readonly [number, number, number],
    ) => ProgramInfo,
    rows: number,
    cols: number,
  ): void {
    const dispatch = columnDispatch(rows, cols);
    const u = { rows, cols, chunk: CHUNK_ROWS };
    if (rows <= CHUNK_ROWS) {
      this.run(
        [...outs.map(([name, buf]) => ({ name, buf, write: true })), ...inputs],
        (bd) => make(bd, false, dispatch),
        u,
      );
      return;
    }
    const chunks = dispatch[1];
    const k = outs.length;
    const scratch = this.runtime.acquire(chunks * k * cols * 4);
    const partials = this.mem.wrap(scratch, 'float32', chunks * k * cols); // (chunks, k, cols)
    this.run(
      [{ name: 'partials', buf: partials, write: true }, ...inputs],
      (bd) => make(bd, true, dispatch),
      u,
    );
    this.run(
      [
        ...outs.map(([, buf], q) => ({ name: `out${q}`, buf, write: true })),
        { name: 'partials', buf: partials },
      ],
      (bd) => columnPartialsAddProgram(bd, k, this.groups(Math.ceil(cols / 256))),
      { chunks, cols },
    );
    this.runtime.release(scratch); // reused only by work recorded later (the queue runs in order)
  }

  /** The checked arguments of both embedding ops. */
  private embeddingArgs(
    op: string,
    [tableName, table]: [string, WebGPUBuffer],
    [posName, pos]: [string, WebGPUBuffer],
    tokens: WebGPUBuffer,
    B: number,
    T: number,
    C: number,
  ): { tok: WebGPUBuffer; wte: WebGPUBuffer; wpe: WebGPUBuffer; V: number } {
    this.live();
    this.size(op, 'B', B);
    this.size(op, 'T', T);
    this.size(op, 'C', C);
    const wte = this.f32(op, tableName, table);
    const wpe = this.f32(op, posName, pos);
    if (wpe.length < T * C)
      throw new OpsInputError(`${op} ${posName}.length`, `>= T * C = ${T * C}`, wpe.length);
    if (C > 0 && wte.length % C !== 0) {
      throw new OpsInputError(
        `${op} ${tableName}.length`,
        `a multiple of C = ${C} (V rows)`,
        wte.length,
      );
    }
    const tok = this.i32(op, 'tokens', tokens, B * T);
    return { tok, wte, wpe, V: C > 0 ? wte.length / C : 0 };
  }

  embeddingForward(
    out: WebGPUBuffer,
    tokens: WebGPUBuffer,
    wte: WebGPUBuffer,
    wpe: WebGPUBuffer,
    B: number,
    T: number,
    C: number,
  ): void {
    const e = this.embeddingArgs('embeddingForward', ['wte', wte], ['wpe', wpe], tokens, B, T, C);
    const o = this.f32('embeddingForward', 'out', out, B * T * C);
    const n = B * T * C;
    if (n === 0) return;
    this.run(
      [
        { name: 'out', buf: o, write: true },
        { name: 'tokens', buf: e.tok },
        { name: 'wte', buf: e.wte },
        { name: 'wpe', buf: e.wpe },
      ],
      (bd) => embeddingForwardProgram(bd, this.groups(elementwiseGroups(n))),
      { n, T, C, V: e.V },
    );
  }

  embeddingBackward(
    dwte: WebGPUBuffer,
    dwpe: WebGPUBuffer,
    dout: WebGPUBuffer,
    tokens: WebGPUBuffer,
    B: number,
    T: number,
    C: number,
  ): void {
    const e = this.embeddingArgs(
      'embeddingBackward',
      ['dwte', dwte],
      ['dwpe', dwpe],
      tokens,
      B,
      T,
      C,
    );
    const g = this.f32('embeddingBackward', 'dout', dout, B * T * C);
    if (B * T * C === 0) return;
    this.run(
      [
        { name: 'dwpe', buf: e.wpe, write: true },
        { name: 'dout', buf: g },
      ],
      (bd) => embeddingBackwardPositionProgram(bd, this.groups(elementwiseGroups(T * C))),
      { n: T * C, B },
    );
    // token rows: links (next position with the same token, owner flag), then owners sum their chains
    const BT = B * T;
    const scratch = this.runtime.acquire(2 * BT * 4);
    const links = this.mem.wrap(scratch, 'int32', 2 * BT); // (BT, 2): [next, owner]
    this.run(
      [
        { name: 'links', buf: links, write: true },
        { name: 'tokens', buf: e.tok },
      ],
      (bd) => embeddingBackwardLinksProgram(bd, this.groups(Math.ceil(BT / EMB_WG))),
      { BT, V: e.V },
    );
    this.run(
      [
        { name: 'dwte', buf: e.wte, write: true },
        { name: 'dout', buf: g },
        { name: 'tokens', buf: e.tok },
        { name: 'links', buf: links },
      ],
      (bd) => embeddingBackwardRowsProgram(bd, this.groups(BT)),
      { BT, C },
    );
    // back to the pool: later work that reuses it is recorded after this, and the queue runs in order
    this.runtime.release(scratch);
  }

  layernormForward(
    out: WebGPUBuffer,
    mean: WebGPUBuffer,
    rstd: WebGPUBuffer,
    inp: WebGPUBuffer,
    w: WebGPUBuffer,
    b: WebGPUBuffer,
    N: number,
    C: number,
  ): void {
    this.live();
    const op = 'layernormForward';
    this.size(op, 'N', N);
    this.size(op, 'C', C);
    const operands: Operand[] = [
      { name: 'out', buf: this.f32(op, 'out', out, N * C), write: true },
      { name: 'mean', buf: this.f32(op, 'mean', mean, N), write: true },
      { name: 'rstd', buf: this.f32(op, 'rstd', rstd, N), write: true },
      { name: 'inp', buf: this.f32(op, 'inp', inp, N * C) },
      { name: 'w', buf: this.f32(op, 'w', w, C) },
      { name: 'b', buf: this.f32(op, 'b', b, C) },
    ];
    if (N === 0) return;
    this.run(operands, (bd) => layernormForwardProgram(bd, this.groups(N)), { N, C });
  }

  layernormBackward(
    dinp: WebGPUBuffer,
    dw: WebGPUBuffer,
    db: WebGPUBuffer,
    dout: WebGPUBuffer,
    inp: WebGPUBuffer,
    w: WebGPUBuffer,
    mean: WebGPUBuffer,
    rstd: WebGPUBuffer,
    N: number,
    C: number,
  ): void {
    this.live();
    const op = 'layernormBackward';
    this.size(op, 'N', N);
    this.size(op, 'C', C);
    const dI = this.f32(op, 'dinp', dinp, N * C);
    const dW = this.f32(op, 'dw', dw, C);
    const dB = this.f32(op, 'db', db, C);
    const g = this.f32(op, 'dout', dout, N * C);
    const x = this.f32(op, 'inp', inp, N * C);
    const W = this.f32(op, 'w', w, C);
    const mu = this.f32(op, 'mean', mean, N);
    const rs = this.f32(op, 'rstd', rstd, N);
    if (N === 0 || C === 0) return;
    this.run(
      [
        { name: 'dinp', buf: dI, write: true },
        { name: 'dout', buf: g },
        { name: 'inp', buf: x },
        { name: 'w', buf: W },
        { name: 'mean', buf: mu },
        { name: 'rstd', buf: rs },
      ],
      (bd) => layernormBackwardDinpProgram(bd, this.groups(N)),
      { N, C },
    );
    this.columnSums(
      [
        ['dw', dW],
        ['db', dB],
      ],
      [
        { name: 'dout', buf: g },
        { name: 'inp', buf: x },
        { name: 'mean', buf: mu },
        { name: 'rstd', buf: rs },
      ],
      (bd, chunked, d) => layernormBackwardDwdbProgram(bd, chunked, d),
      N,
      C,
    );
  }

  geluForward(out: WebGPUBuffer, inp: WebGPUBuffer, n: number): void {
    this.live();
    this.size('geluForward', 'n', n);
    const o = this.f32('geluForward', 'out', out, n);
    const x = this.f32('geluForward', 'inp', inp, n);
    if (n === 0) return;
    this.run(
      [
        { name: 'out', buf: o, write: true },
        { name: 'inp', buf: x },
      ],
      (bd) => geluForwardProgram(bd, this.groups(elementwiseGroups(n))),
      { n },
    );
  }

  geluBackward(dinp: WebGPUBuffer, inp: WebGPUBuffer, dout: WebGPUBuffer, n: number): void {
    this.live();
    this.size('geluBackward', 'n', n);
    const bufs = [
      ['dinp', this.f32('geluBackward', 'dinp', dinp, n)],
      ['inp', this.f32('geluBackward', 'inp', inp, n)],
      ['dout', this.f32('geluBackward', 'dout', dout, n)],
    ] as const;
    if (n === 0) return;
    this.run(
      bufs.map(([name, buf]) => ({ name, buf, write: name === 'dinp' })),
      (bd) => geluBackwardProgram(bd, this.groups(elementwiseGroups(n))),
      { n },
    );
  }

  add(out: WebGPUBuffer, a: WebGPUBuffer, b: WebGPUBuffer, n: number): void {
    this.live();
    this.size('add', 'n', n);
    const bufs = [
      ['out', this.f32('add', 'out', out, n)],
      ['a', this.f32('add', 'a', a, n)],
      ['b', this.f32('add', 'b', b, n)],
    ] as const;
    if (n === 0) return;
    this.run(
      bufs.map(([name, buf]) => ({ name, buf, write: name === 'out' })),
      (bd) => addProgram(bd, this.groups(elementwiseGroups(n))),
      { n },
    );
  }

  softmaxCrossEntropy(
    losses: WebGPUBuffer,
    dlogits: WebGPUBuffer | null,
    logits: WebGPUBuffer,
    targets: WebGPUBuffer,
    N: number,
    V: number,
    dlossScale: number,
    VpArg?: number,
  ): void {
    this.live();
    const op = 'softmaxCrossEntropy';
    this.size(op, 'N', N);
    this.size(op, 'V', V);
    const Vp = xentRowStride(op, V, VpArg);
    if (typeof dlossScale !== 'number' || !Number.isFinite(dlossScale))
      throw new OpsInputError(`${op} dlossScale`, 'a finite number', describe(dlossScale));
    const L = this.f32(op, 'losses', losses, N);
    const x = this.f32(op, 'logits', logits, N * Vp);
    const t = this.i32(op, 'targets', targets, N);
    const d = dlogits === null ? null : this.f32(op, 'dlogits', dlogits, N * Vp);
    if (N === 0) return;
    const operands: Operand[] = [{ name: 'losses', buf: L, write: true }];
    if (d) operands.push({ name: 'dlogits', buf: d, write: true });
    operands.push({ name: 'logits', buf: x }, { name: 'targets', buf: t });
    this.run(operands, (bd) => softmaxCrossEntropyProgram(bd, d !== null, this.groups(N)), {
      N,
      V,
      Vp,
      dlossScale,
    });
  }

  sum(x: WebGPUBuffer): Promise<number> {
    return this.reduce('sum', x, false);
  }

  sumSquares(x: WebGPUBuffer): Promise<number> {
    return this.reduce('sumSquares', x, true);
  }

  /** Two passes into a pooled scratch, then one 4-byte readback: the step's only syncs. */
  private async reduce(op: string, x: WebGPUBuffer, squares: boolean): Promise<number> {
    this.live();
    const b = this.f32(op, 'x', x);
    const n = b.length;
    if (n === 0) return 0;
    const rt = this.runtime;
    const G = Math.min(REDUCE_GROUPS, Math.ceil(n / 256));
    const scratch = rt.acquire((G + 1) * 4); // partials (G) then the result
    try {
      const partials = this.mem.wrap(scratch, 'float32', G + 1);
      const parts = this.mem.view(partials, 0, G);
      const result = this.mem.view(partials, G, 1);
      this.run(
        [
          { name: 'out', buf: parts, write: true },
          { name: 'x', buf: b },
        ],
        (bd) => reduceSumProgram(bd, squares, G),
        { n },
      );
      this.run(
        [
          { name: 'out', buf: result, write: true },
          { name: 'x', buf: parts },
        ],
        (bd) => reduceSumProgram(bd, false, 1),
        { n: G },
      );
      await this.recorder.errors();
      const bytes = await rt.read(scratch, 4, G * 4);
      return new Float32Array(bytes)[0]!;
    } finally {
      rt.release(scratch);
    }
  }

  scale(x: WebGPUBuffer, s: number): void {
    this.live();
    const b = this.f32('scale', 'x', x);
    if (typeof s !== 'number' || !Number.isFinite(s))
      throw new OpsInputError('scale s', 'a finite number', describe(s));
    if (b.length === 0) return;
    this.run(
      [{ name: 'x', buf: b, write: true }],
      (bd) => scaleProgram(bd, this.groups(elementwiseGroups(b.length))),
      { n: b.length, s },
    );
  }

  adamw(
    params: WebGPUBuffer,
    grads: WebGPUBuffer,
    m: WebGPUBuffer,
    v: WebGPUBuffer,
    h: AdamWStep,
  ): void {
    this.live();
    const p = this.f32('adamw', 'params', params);
    const n = p.length;
    const g = this.f32('adamw', 'grads', grads, n);
    const M = this.f32('adamw', 'm', m, n);
    const V = this.f32('adamw', 'v', v, n);
    if (!h || typeof h !== 'object')
      throw new OpsInputError('adamw h', 'an AdamWStep', describe(h));
    for (const k of ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 't'] as const) {
      if (typeof h[k] !== 'number' || !Number.isFinite(h[k]))
        throw new OpsInputError(`adamw h.${k}`, 'a finite number', describe(h[k]));
    }
    if (!Number.isInteger(h.t) || h.t < 1)
      throw new OpsInputError('adamw h.t', 'an integer >= 1', h.t);
    if (n === 0) return;
    this.run(
      [
        { name: 'params', buf: p, write: true },
        { name: 'grads', buf: g },
        { name: 'm', buf: M, write: true },
        { name: 'v', buf: V, write: true },
      ],
      (bd) => adamwProgram(bd, this.groups(elementwiseGroups(n))),
      {
        n,
        lr: h.lr,
        beta1: h.beta1,
        beta2: h.beta2,
        omb1: 1 - h.beta1,
        omb2: 1 - h.beta2,
        eps: h.eps,
        wd: h.weightDecay,
        c1: 1 - h.beta1 ** h.t,
        c2: 1 - h.beta2 ** h.t,
      },
    );
  }

  /**
   * Wait until every recorded op has run on the GPU; throws the batches' errors. The benchmarks' timing
   * point (transformer's profileOps calls it between ops, so per-op times are GPU times).
   */
  async synchronize(): Promise<void> {
    this.live();
    await this.recorder.sync();
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    try {
      if (!this.runtime.lost) await this.recorder.errors();
    } catch {
      // the device is going away: errors of unsynced work have nobody left to report to
    } finally {
      this.disposed = true;
      this.backend.dispose();
    }
  }
}

export { BackendExecutionError };

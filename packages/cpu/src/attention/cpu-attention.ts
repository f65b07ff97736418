/**
 * FlashAttention-2 on the CPU over strided views (core's DeviceAttention contract for CpuOps): core's
 * Algorithm 1 and 2 kernels read q, k, v in place (e.g. from the packed (B, T, 3, H, D) qkv buffer) and
 * write out, lse, dq, dk, dv in place, with no split or merge copies.
 *
 * Threads: the forward splits the (batch, query head) pairs and the backward the (batch, kv head)
 * groups between this thread and worker threads; every pair is computed by one thread with the same
 * algorithm, so results do not depend on the split (exact resume relies on this). Buffers that are not
 * in shared memory run on this thread only. float32 buffers run the float32 kernels, float64 buffers
 * the same algorithm in float64 (the gradient checks' exact twin).
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  AttentionInputError,
  checkStridedView,
  attentionReference,
  attentionReferenceBackward,
  DEFAULT_BLOCK_SIZE_K,
  DEFAULT_BLOCK_SIZE_Q,
  describe,
  deviceAttentionShape,
  flashBackwardKernel,
  flashForwardKernel,
  resolveOptions,
  tensor,
  validateOptions,
  type AttentionOptions,
  type AttentionShape,
  type BackendCapabilities,
  type BackwardKernelIO,
  type DeviceAttentionBackwardArgs,
  type DeviceAttentionForwardArgs,
  type ForwardKernelIO,
  type KernelLayout,
  type StridedView,
} from '@flashattn/core';
import type { CpuBuffer, CpuFloatBuffer } from '../ops/buffers.js';

export const CPU_ATTENTION_CAPABILITIES: BackendCapabilities = {
  dtypes: ['float32'],
  maxHeadDim: 1024,
  computeDType: (d) => d,
};

type Job = { op: 'forward'; args: ForwardJob } | { op: 'backward'; args: BackwardJob };

interface ForwardJob {
  q: CpuFloatBuffer;
  k: CpuFloatBuffer;
  v: CpuFloatBuffer;
  io: ForwardKernelIO;
  shape: AttentionShape;
  opts: AttentionOptions | undefined;
}

interface BackwardJob {
  dO: CpuFloatBuffer;
  q: CpuFloatBuffer;
  k: CpuFloatBuffer;
  v: CpuFloatBuffer;
  O: CpuFloatBuffer;
  L: CpuFloatBuffer;
  io: BackwardKernelIO;
  shape: AttentionShape;
  opts: AttentionOptions | undefined;
}

/** Run one job on this thread (the worker runs the same function on its share). */
function runJob(j: Job): void {
  const precision = j.args.q instanceof Float64Array ? 'float64' : 'float32';
  const o = resolveOptions(j.args.opts, j.args.shape.headDim);
  if (j.op === 'forward') {
    const a = j.args;
    flashForwardKernel(
      a.q,
      a.k,
      a.v,
      a.shape,
      o,
      DEFAULT_BLOCK_SIZE_Q,
      DEFAULT_BLOCK_SIZE_K,
      precision,
      a.io,
    );
  } else {
    const a = j.args;
    flashBackwardKernel(
      a.dO,
      a.q,
      a.k,
      a.v,
      a.O,
      a.L,
      a.shape,
      o,
      DEFAULT_BLOCK_SIZE_Q,
      DEFAULT_BLOCK_SIZE_K,
      precision,
      a.io,
    );
  }
}

const workerSource = (coreUrl: string): string => `
const { parentPort } = require('node:worker_threads');
const corePromise = import(${JSON.stringify(coreUrl)});
parentPort.on('message', async (j) => {
  try {
    const c = await corePromise;
    const a = j.args;
    const precision = a.q instanceof Float64Array ? 'float64' : 'float32';
    const o = c.resolveOptions(a.opts, a.shape.headDim);
    if (j.op === 'forward') c.flashForwardKernel(a.q, a.k, a.v, a.shape, o, c.DEFAULT_BLOCK_SIZE_Q, c.DEFAULT_BLOCK_SIZE_K, precision, a.io);
    else c.flashBackwardKernel(a.dO, a.q, a.k, a.v, a.O, a.L, a.shape, o, c.DEFAULT_BLOCK_SIZE_Q, c.DEFAULT_BLOCK_SIZE_K, precision, a.io);
    parentPort.postMessage({ ok: true });
  } catch (e) {
    parentPort.postMessage({ ok: false, error: String((e && e.stack) || e) });
  }
});
`;

function coreUrl(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('@flashattn/core')).href;
}

const shared = (x: ArrayBufferView): boolean => x.buffer instanceof SharedArrayBuffer;

function layout(v: StridedView<CpuBuffer>): KernelLayout {
  return { offset: v.offset, sB: v.strides[0], sN: v.strides[1], sH: v.strides[2] };
}

/** A float buffer of the attention call: float32 or float64 like q, every view inside its buffer. */
function viewBuffer(
  name: string,
  v: StridedView<CpuBuffer>,
  dtype: 'float32' | 'float64',
): CpuFloatBuffer {
  if (v === null || typeof v !== 'object') {
    throw new AttentionInputError(
      name,
      'a StridedView { buffer, offset, shape, strides }',
      describe(v),
    );
  }
  const b = v.buffer;
  const ok = dtype === 'float32' ? b instanceof Float32Array : b instanceof Float64Array;
  if (!ok)
    throw new AttentionInputError(`${name}.buffer`, `a ${dtype} CPU buffer like q's`, describe(b));
  checkStridedView(name, v, b.length);
  return b as CpuFloatBuffer;
}

function lseBuffer(
  lse: CpuBuffer,
  B: number,
  Hq: number,
  Nq: number,
  dtype: 'float32' | 'float64',
): CpuFloatBuffer {
  const ok = dtype === 'float32' ? lse instanceof Float32Array : lse instanceof Float64Array;
  if (!ok)
    throw new AttentionInputError(
      'lse',
      `a ${dtype} CPU buffer of B * Hq * Nq = ${B * Hq * Nq} elements`,
      describe(lse),
    );
  if (lse.length !== B * Hq * Nq)
    throw new AttentionInputError('lse.length', `B * Hq * Nq = ${B * Hq * Nq}`, lse.length);
  return lse as CpuFloatBuffer;
}

function sameShape(name: string, v: StridedView<unknown>, want: readonly number[]): void {
  if (v.shape.some((x, i) => x !== want[i])) {
    throw new AttentionInputError(
      `${name}.shape`,
      `[${want.join(', ')}]`,
      `[${v.shape.join(', ')}]`,
    );
  }
}

function problem(
  q: StridedView<CpuBuffer>,
  k: StridedView<CpuBuffer>,
  v: StridedView<CpuBuffer>,
  opts: AttentionOptions | undefined,
) {
  if (
    q === null ||
    typeof q !== 'object' ||
    !(q.buffer instanceof Float32Array || q.buffer instanceof Float64Array)
  ) {
    throw new AttentionInputError(
      'q.buffer',
      'a float32 CPU buffer (float64 for gradient checks)',
      describe(q?.buffer),
    );
  }
  const dtype = q.buffer instanceof Float64Array ? 'float64' : 'float32';
  const bufs = {
    q: viewBuffer('q', q, dtype),
    k: viewBuffer('k', k, dtype),
    v: viewBuffer('v', v, dtype),
  };
  const s = deviceAttentionShape({ q, k, v });
  validateOptions(opts);
  const shape: AttentionShape = {
    batch: s.B,
    seqlenQ: s.Nq,
    seqlenK: s.Nk,
    nheadsQ: s.Hq,
    nheadsK: s.Hk,
    headDim: s.D,
  };
  return { dtype, bufs, s, shape } as const;
}

/** (B, N, H, D) elements of a strided view, gathered into a contiguous Float32Array. */
function gather(buf: Float32Array, v: StridedView<CpuBuffer>): Float32Array {
  const [B, N, H, D] = v.shape;
  const out = new Float32Array(B * N * H * D);
  for (let b = 0, o = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++, o += D) {
        const at = v.offset + b * v.strides[0] + n * v.strides[1] + h * v.strides[2];
        out.set(buf.subarray(at, at + D), o);
      }
  return out;
}

/** The inverse of gather: contiguous (B, N, H, D) values into a strided view. */
function scatter(buf: CpuFloatBuffer, v: StridedView<CpuBuffer>, src: Float32Array): void {
  const [B, N, H, D] = v.shape;
  for (let b = 0, o = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++, o += D) {
        buf.set(
          src.subarray(o, o + D),
          v.offset + b * v.strides[0] + n * v.strides[1] + h * v.strides[2],
        );
      }
}

/**
 * 'flash': FlashAttention-2 (Algorithms 1 and 2) in place on the strided views, over worker threads.
 * 'standard': the materialised baseline (core's reference: S and P in float64, results rounded to
 * float32), through contiguous copies of the views; float32 only. It exists to compare training with
 * and without FlashAttention, not for speed.
 */
export type CpuAttentionKind = 'flash' | 'standard';

export class CpuAttention {
  readonly capabilities = CPU_ATTENTION_CAPABILITIES;
  private readonly workers: Worker[] = [];

  constructor(
    threads: number,
    readonly kind: CpuAttentionKind = 'flash',
  ) {
    const src = threads > 1 ? workerSource(coreUrl()) : '';
    for (let i = 1; i < threads; i++) {
      const w = new Worker(src, { eval: true });
      w.unref(); // an idle pool never keeps a finished program alive
      this.workers.push(w);
    }
  }

  /** [lo, hi) shares of n units over this thread and the workers (one share when memory is not shared). */
  private split(n: number, bufs: ArrayBufferView[]): Array<[number, number]> {
    const parts = bufs.every(shared) ? Math.min(n, this.workers.length + 1) : 1;
    const per = Math.ceil(n / Math.max(parts, 1));
    const out: Array<[number, number]> = [];
    for (let lo = 0; lo < n; lo += per) out.push([lo, Math.min(n, lo + per)]);
    return out;
  }

  private post(w: Worker, job: Job): Promise<void> {
    return new Promise((resolve, reject) => {
      const onMsg = (m: { ok: boolean; error?: string }): void => {
        w.off('error', onErr);
        if (m.ok) resolve();
        else reject(new Error(`attention worker: ${m.error}`));
      };
      const onErr = (e: Error): void => {
        w.off('message', onMsg);
        reject(e);
      };
      w.once('message', onMsg);
      w.once('error', onErr);
      w.postMessage(job);
    });
  }

  /** Run shares 1.. on the workers and share 0 here; the workers' promises are awaited even if ours throws. */
  private async fanOut(
    shares: Array<[number, number]>,
    make: (lo: number, hi: number) => Job,
  ): Promise<void> {
    const waits = shares.slice(1).map(([lo, hi], i) => this.post(this.workers[i]!, make(lo, hi)));
    try {
      if (shares.length > 0) runJob(make(shares[0]![0], shares[0]![1]));
    } finally {
      await Promise.all(waits);
    }
  }

  async forward(a: DeviceAttentionForwardArgs<CpuBuffer>, opts?: AttentionOptions): Promise<void> {
    const { dtype, bufs, s, shape } = problem(a.q, a.k, a.v, opts);
    const out = viewBuffer('out', a.out, dtype);
    sameShape('out', a.out, a.q.shape);
    const lse = lseBuffer(a.lse, s.B, s.Hq, s.Nq, dtype);
    if (this.kind === 'standard') {
      const t = (v: StridedView<CpuBuffer>, name: string) =>
        tensor(gather(this.f32(v.buffer), v), v.shape, 'float32', name);
      const r = attentionReference(t(a.q, 'q'), t(a.k, 'k'), t(a.v, 'v'), opts);
      scatter(out, a.out, r.out.data as Float32Array);
      lse.set(r.lse);
      return;
    }
    const shares = this.split(s.B * s.Hq, [bufs.q, bufs.k, bufs.v, out, lse]);
    await this.fanOut(shares, (bhLo, bhHi) => ({
      op: 'forward',
      args: {
        ...bufs,
        shape,
        opts,
        io: {
          q: layout(a.q),
          k: layout(a.k),
          v: layout(a.v),
          out,
          outLayout: layout(a.out),
          lse,
          bhLo,
          bhHi,
        },
      },
    }));
  }

  async backward(
    a: DeviceAttentionBackwardArgs<CpuBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    const { dtype, bufs, s, shape } = problem(a.q, a.k, a.v, opts);
    const dO = viewBuffer('dout', a.dout, dtype);
    const O = viewBuffer('out', a.out, dtype);
    const dq = viewBuffer('dq', a.dq, dtype);
    const dk = viewBuffer('dk', a.dk, dtype);
    const dv = viewBuffer('dv', a.dv, dtype);
    for (const [n, v] of [
      ['dout', a.dout],
      ['out', a.out],
      ['dq', a.dq],
    ] as const)
      sameShape(n, v, a.q.shape);
    sameShape('dk', a.dk, a.k.shape);
    sameShape('dv', a.dv, a.k.shape);
    const L = lseBuffer(a.lse, s.B, s.Hq, s.Nq, dtype);
    if (this.kind === 'standard') {
      const t = (v: StridedView<CpuBuffer>, name: string) =>
        tensor(gather(this.f32(v.buffer), v), v.shape, 'float32', name);
      const g = attentionReferenceBackward(
        t(a.dout, 'dout'),
        t(a.q, 'q'),
        t(a.k, 'k'),
        t(a.v, 'v'),
        t(a.out, 'out'),
        L as Float32Array,
        opts,
      );
      scatter(dq, a.dq, g.dq.data as Float32Array);
      scatter(dk, a.dk, g.dk.data as Float32Array);
      scatter(dv, a.dv, g.dv.data as Float32Array);
      return;
    }
    const shares = this.split(s.B * s.Hk, [dO, bufs.q, bufs.k, bufs.v, O, L, dq, dk, dv]);
    await this.fanOut(shares, (bhkLo, bhkHi) => ({
      op: 'backward',
      args: {
        dO,
        ...bufs,
        O,
        L,
        shape,
        opts,
        io: {
          dO: layout(a.dout),
          q: layout(a.q),
          k: layout(a.k),
          v: layout(a.v),
          O: layout(a.out),
          dq,
          dqLayout: layout(a.dq),
          dk,
          dkLayout: layout(a.dk),
          dv,
          dvLayout: layout(a.dv),
          bhkLo,
          bhkHi,
        },
      },
    }));
  }

  private f32(b: CpuBuffer): Float32Array {
    if (!(b instanceof Float32Array)) {
      throw new AttentionInputError(
        'q.buffer',
        "float32 buffers for the 'standard' CPU attention",
        describe(b),
      );
    }
    return b;
  }

  async dispose(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((w) => w.terminate()));
  }
}

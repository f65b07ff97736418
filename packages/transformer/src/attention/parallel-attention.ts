/**
 * Causal attention on the CPU over all cores: the batch is split between this thread and worker
 * threads, each running its own core CPU backend (`createCpuBackend({ kind })`) on a contiguous batch
 * range of the shared (B, T, H, D) buffers. Every batch element is computed by one backend with the
 * same algorithm, so results do not depend on the split (exact resume relies on this).
 * Buffers that are not in shared memory (or B = 1) run on this thread only.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createCpuBackend, tensor, type AttentionBackend } from '@flashattn/core';
import type { FloatArray } from '../ops/ops.js';
import type { CausalAttention } from './causal-attention.js';

type CpuKind = 'flash' | 'reference';

function coreUrl(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('@flashattn/core')).href;
}

const workerSource = (url: string, kind: CpuKind): string => `
const { parentPort } = require('node:worker_threads');
const corePromise = import(${JSON.stringify(url)});
let backend = null;
parentPort.on('message', async (j) => {
  try {
    const core = await corePromise;
    if (!backend) backend = core.createCpuBackend({ kind: ${JSON.stringify(kind)} });
    const shape = [j.B, j.T, j.H, j.D];
    const t = (x, name) => core.tensor(x, shape, 'float32', name);
    if (j.op === 'forward') {
      const r = await backend.forward(t(j.q, 'q'), t(j.k, 'k'), t(j.v, 'v'), { causal: true });
      j.out.set(r.out.data);
      j.lse.set(r.lse);
    } else {
      const g = await backend.backward(t(j.dout, 'dout'), t(j.q, 'q'), t(j.k, 'k'), t(j.v, 'v'), t(j.out, 'out'), j.lse, { causal: true });
      j.dq.set(g.dq.data);
      j.dk.set(g.dk.data);
      j.dv.set(g.dv.data);
    }
    parentPort.postMessage({ ok: true });
  } catch (e) {
    parentPort.postMessage({ ok: false, error: String((e && e.stack) || e) });
  }
});
`;

const shared = (x: FloatArray): boolean => x instanceof Float32Array && x.buffer instanceof SharedArrayBuffer;

export class ParallelCpuAttention implements CausalAttention {
  readonly name: string;
  private readonly local: AttentionBackend;
  private readonly workers: Worker[] = [];

  constructor(
    readonly kind: CpuKind,
    threads: number,
  ) {
    this.local = createCpuBackend({ kind });
    const src = threads > 1 ? workerSource(coreUrl(), kind) : '';
    for (let i = 1; i < threads; i++) {
      const w = new Worker(src, { eval: true });
      w.unref();
      this.workers.push(w);
    }
    this.name = `${this.local.name}${threads > 1 ? ` x${threads} threads` : ''}`;
  }

  /** Batch ranges [b0, b1) per thread; thread 0 is this one. */
  private split(B: number, ...bufs: FloatArray[]): Array<[number, number]> {
    const n = bufs.every(shared) ? Math.min(B, this.workers.length + 1) : 1;
    const per = Math.ceil(B / n);
    const out: Array<[number, number]> = [];
    for (let b = 0; b < B; b += per) out.push([b, Math.min(B, b + per)]);
    return out;
  }

  private post(w: Worker, msg: object): Promise<void> {
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
      w.postMessage(msg);
    });
  }

  async forward(q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, B: number, T: number, H: number, D: number): Promise<FloatArray> {
    const lse = new Float32Array(new SharedArrayBuffer(B * H * T * 4)); // (B, H, T)
    const parts = this.split(B, q, k, v, out);
    const row = T * H * D;
    const sl = (x: FloatArray, [b0, b1]: [number, number]): FloatArray => x.subarray(b0 * row, b1 * row);
    const lsl = ([b0, b1]: [number, number]): Float32Array => lse.subarray(b0 * H * T, b1 * H * T);
    const waits = parts.slice(1).map((p, i) =>
      this.post(this.workers[i]!, { op: 'forward', B: p[1] - p[0], T, H, D, q: sl(q, p), k: sl(k, p), v: sl(v, p), out: sl(out, p), lse: lsl(p) }),
    );
    const p0 = parts[0]!;
    const shape = [p0[1] - p0[0], T, H, D];
    const r = await this.local.forward(tensor(sl(q, p0) as Float32Array, shape, 'float32', 'q'), tensor(sl(k, p0) as Float32Array, shape, 'float32', 'k'), tensor(sl(v, p0) as Float32Array, shape, 'float32', 'v'), { causal: true });
    sl(out, p0).set(r.out.data as Float32Array);
    lsl(p0).set(r.lse);
    await Promise.all(waits);
    return lse;
  }

  async backward(
    dout: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray,
    dq: FloatArray, dk: FloatArray, dv: FloatArray, B: number, T: number, H: number, D: number,
  ): Promise<void> {
    const lseShared = lse instanceof Float32Array && lse.buffer instanceof SharedArrayBuffer;
    const parts = lseShared ? this.split(B, dout, q, k, v, out, dq, dk, dv) : [[0, B] as [number, number]];
    const row = T * H * D;
    const sl = (x: FloatArray, [b0, b1]: [number, number]): FloatArray => x.subarray(b0 * row, b1 * row);
    const lsl = ([b0, b1]: [number, number]): Float32Array => (lse as Float32Array).subarray(b0 * H * T, b1 * H * T);
    const waits = parts.slice(1).map((p, i) =>
      this.post(this.workers[i]!, {
        op: 'backward', B: p[1] - p[0], T, H, D, dout: sl(dout, p), q: sl(q, p), k: sl(k, p), v: sl(v, p), out: sl(out, p), lse: lsl(p),
        dq: sl(dq, p), dk: sl(dk, p), dv: sl(dv, p),
      }),
    );
    const p0 = parts[0]!;
    const shape = [p0[1] - p0[0], T, H, D];
    const t = (x: FloatArray, name: string) => tensor(sl(x, p0) as Float32Array, shape, 'float32', name);
    const g = await this.local.backward(t(dout, 'dout'), t(q, 'q'), t(k, 'k'), t(v, 'v'), t(out, 'out'), lsl(p0), { causal: true });
    sl(dq, p0).set(g.dq.data as Float32Array);
    sl(dk, p0).set(g.dk.data as Float32Array);
    sl(dv, p0).set(g.dv.data as Float32Array);
    await Promise.all(waits);
  }

  async dispose(): Promise<void> {
    await this.local.dispose();
    await Promise.all(this.workers.splice(0).map((w) => w.terminate()));
  }
}

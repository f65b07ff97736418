/**
 * NCCL for core's Communicator contract: one process per GPU, libnccl loaded at run time by the addon
 * (native/addon/nccl.{h,cpp}: options.libraryPath, FLASHATTN_NCCL_PATH, then libnccl.so.2 / libnccl.so, the
 * order cuBLASLt is searched in too (native/addon/dl_library.h); the GPU machine's
 * copy lives in the torch venv's site-packages/nvidia/nccl/lib, so point FLASHATTN_NCCL_PATH or
 * LD_LIBRARY_PATH there), every collective enqueued on the device's stream through the device's call
 * queue, so it runs in program order with the kernels and resolves once queued.
 *
 * Rendezvous: the launcher's directory. Rank 0 calls ncclGetUniqueId and writes the 128 bytes to
 * `<dir>/nccl-id` (temp file + rename); the others wait for it (at most timeoutMs), then all call
 * ncclCommInitRank.
 *
 * Failure (the contract's "never a silent hang"): NCCL reports a dead peer only as an async error
 * without its rank, and a hung peer not at all. So every rank also touches `<dir>/alive-<rank>` every
 * second and a watchdog checks, every 250 ms, ncclCommGetAsyncError and the peers' heartbeats: an async
 * error or a heartbeat older than timeoutMs aborts the communicator (ncclCommAbort, which releases the
 * stream) and fails every later call with a CollectiveError naming the stale peer (the culprit), or this
 * rank when all peers are alive.
 *
 * Status: compile-checked and typechecked only; no GPU run yet (issue #15: no multi-GPU machine was lent,
 * and the world-size-1 check is in apps/bench/src/multigpu/device.sh).
 */
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  BackendUnavailableError,
  bufferDTypeBytes,
  CollectiveError,
  OpsInputError,
  type BufferDType,
  type Communicator,
  type DeviceMemory,
  type ReduceOp,
} from '@flashattn/core';
import { bufferState, type CudaBuffer } from './cuda-buffer.js';
import { loadAddon, type DevicePtr } from './native.js';
import { deviceQueue } from './queue.js';

/** NCCL cannot be used here: the library is missing or lacks an entry point. */
export class NcclUnavailableError extends BackendUnavailableError {
  constructor(reason: string, options?: { cause?: unknown }) {
    super('nccl', reason, options);
  }
}

/** The addon's NCCL entry points (native/addon/nccl.cpp). */
interface NcclAddon {
  ncclLoad(path?: string): { loadedFrom: string; version: number };
  ncclGetUniqueId(): Uint8Array;
  ncclCommInitRank(device: number, nranks: number, id: Uint8Array, rank: number): bigint;
  ncclCollective(a: {
    kind: number;
    comm: bigint;
    device: number;
    send: DevicePtr;
    recv: DevicePtr;
    count: number;
    dtype: number;
    op?: number;
    root?: number;
  }): void;
  ncclSendRecv(a: {
    comm: bigint;
    device: number;
    send: DevicePtr;
    sendCount: number;
    dst: number;
    recv: DevicePtr;
    recvCount: number;
    src: number;
    dtype: number;
  }): void;
  ncclAsyncError(comm: bigint): number;
  ncclAbort(comm: bigint): void;
  ncclDestroy(comm: bigint): void;
}

// nccl.h: ncclDataType_t and ncclRedOp_t (the values native/addon/nccl.h cites).
const NCCL_DTYPE: Record<BufferDType, number> = {
  int32: 2,
  float16: 6,
  float32: 7,
  float64: 8,
  bfloat16: 9,
};
const NCCL_OP: Record<ReduceOp, number> = { sum: 0, avg: 4 };
const ALL_REDUCE = 0;
const REDUCE_SCATTER = 1;
const ALL_GATHER = 2;
const BROADCAST = 3;

/** The addon with NCCL loaded, or NcclUnavailableError saying why not. */
export function loadNccl(path?: string): { addon: NcclAddon; loadedFrom: string; version: number } {
  const { addon, reason } = loadAddon() as { addon?: unknown; reason?: string };
  if (!addon)
    throw new NcclUnavailableError(`the CUDA addon is not available (${reason ?? 'not built'})`);
  const a = addon as Partial<NcclAddon>;
  if (typeof a.ncclLoad !== 'function')
    throw new NcclUnavailableError(
      'this build of the CUDA addon has no NCCL entry points (rebuild @flashattn/cuda)',
    );
  try {
    const r = a.ncclLoad(path);
    return { addon: a as NcclAddon, ...r };
  } catch (e) {
    throw new NcclUnavailableError(
      `${(e as Error).message}; set FLASHATTN_NCCL_PATH to libnccl.so.2 (pip's nvidia-nccl-cu12 puts it in site-packages/nvidia/nccl/lib)`,
      { cause: e },
    );
  }
}

export interface NcclCommunicatorOptions {
  /** The rank's CUDA device memory (createCudaDevice(), or CudaOps). */
  ops: DeviceMemory<CudaBuffer> & { readonly device: number };
  rank: number;
  worldSize: number;
  /** The launcher's rendezvous directory (shared by the ranks of this host). */
  rendezvous: string;
  timeoutMs: number;
  /** A libnccl path tried first, before FLASHATTN_NCCL_PATH and the standard names. */
  libraryPath?: string;
}

/** Join the job's NCCL communicator (rank 0 makes the unique id); resolves once every rank joined. */
export async function createNcclCommunicator(
  o: NcclCommunicatorOptions,
): Promise<NcclCommunicator> {
  const { addon, version } = loadNccl(o.libraryPath);
  const idPath = join(o.rendezvous, 'nccl-id');
  mkdirSync(o.rendezvous, { recursive: true });
  let id: Uint8Array;
  if (o.rank === 0) {
    id = addon.ncclGetUniqueId();
    writeFileSync(idPath + '.tmp', id);
    renameSync(idPath + '.tmp', idPath);
  } else {
    const deadline = Date.now() + o.timeoutMs;
    while (!existsSync(idPath)) {
      if (Date.now() > deadline)
        throw new CollectiveError(
          0,
          'timeout',
          o.rank,
          `rank 0 wrote no NCCL unique id to ${idPath} within ${o.timeoutMs} ms`,
        );
      await new Promise((r) => setTimeout(r, 20));
    }
    id = new Uint8Array(readFileSync(idPath));
  }
  const comm = addon.ncclCommInitRank(o.ops.device, o.worldSize, id, o.rank);
  return new NcclCommunicator(addon, comm, o, version);
}

export class NcclCommunicator implements Communicator<CudaBuffer> {
  readonly rank: number;
  readonly worldSize: number;
  readonly timeoutMs: number;
  readonly name: string;
  private failed: CollectiveError | null = null;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly device: number;

  constructor(
    private readonly addon: NcclAddon,
    private comm: bigint,
    private readonly o: NcclCommunicatorOptions,
    version: number,
  ) {
    this.rank = o.rank;
    this.worldSize = o.worldSize;
    this.timeoutMs = o.timeoutMs;
    this.device = o.ops.device;
    this.name = `nccl ${Math.floor(version / 10000)}.${Math.floor(version / 100) % 100}.${version % 100} (${o.worldSize} ranks)`;
    const beat = join(o.rendezvous, `alive-${o.rank}`);
    const touch = (): void => {
      const now = new Date();
      try {
        utimesSync(beat, now, now);
      } catch {
        writeFileSync(beat, '');
      }
    };
    touch();
    this.timers.push(
      setInterval(touch, 1000),
      setInterval(() => this.watch(), 250),
    );
    for (const t of this.timers) t.unref();
  }

  /** The watchdog: NCCL's async error, and the peers' heartbeats. */
  private watch(): void {
    if (this.failed) return;
    const now = Date.now();
    let stale = -1;
    for (let q = 0; q < this.worldSize && stale < 0; q++) {
      if (q === this.rank) continue;
      try {
        if (now - statSync(join(this.o.rendezvous, `alive-${q}`)).mtimeMs > this.timeoutMs)
          stale = q;
      } catch {
        // not written yet: it has timeoutMs from our start like everyone else
      }
    }
    let asyncErr = 0;
    try {
      asyncErr = this.addon.ncclAsyncError(this.comm);
    } catch {
      asyncErr = -1;
    }
    if (stale >= 0)
      this.fail(
        new CollectiveError(
          stale,
          'timeout',
          this.rank,
          `no heartbeat from rank ${stale} for ${this.timeoutMs} ms`,
        ),
      );
    else if (asyncErr !== 0)
      this.fail(
        new CollectiveError(
          this.rank,
          'aborted',
          this.rank,
          `NCCL async error ${asyncErr} (a peer failed; the launcher names the rank that exited)`,
        ),
      );
  }

  private fail(e: CollectiveError): void {
    if (this.failed) return;
    this.failed = e;
    try {
      this.addon.ncclAbort(this.comm);
    } catch {
      // already broken
    }
  }

  /** One NCCL collective on the device's stream, queued in program order with the kernels. */
  private collective(
    kind: number,
    send: DevicePtr,
    recv: DevicePtr,
    count: number,
    dtype: BufferDType,
    extra: { op?: number; root?: number } = {},
  ): Promise<void> {
    return this.enqueue(() =>
      this.addon.ncclCollective({
        kind,
        comm: this.comm,
        device: this.device,
        send,
        recv,
        count,
        dtype: NCCL_DTYPE[dtype],
        ...extra,
      }),
    );
  }

  private ptr(name: string, b: CudaBuffer): { ptr: DevicePtr; n: number; dtype: BufferDType } {
    const s = bufferState(b);
    if (!s) throw new OpsInputError(name, 'a CudaBuffer', b);
    if (s.allocation.device !== this.device)
      throw new OpsInputError(
        name,
        `a buffer on cuda:${this.device}`,
        `cuda:${s.allocation.device}`,
      );
    return {
      ptr: s.allocation.ptr + BigInt(s.offset * bufferDTypeBytes(s.dtype)),
      n: s.length,
      dtype: s.dtype,
    };
  }

  /** Enqueue on the device's queue (program order with the kernels); throws the failure if any. */
  private enqueue(f: () => void): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    return deviceQueue(this.device).run(async () => {
      if (this.failed) throw this.failed;
      f();
    });
  }

  allReduce(buf: CudaBuffer, op: ReduceOp): Promise<void> {
    const b = this.ptr('buf', buf);
    return this.collective(ALL_REDUCE, b.ptr, b.ptr, b.n, b.dtype, { op: NCCL_OP[op] });
  }

  reduceScatter(out: CudaBuffer, inp: CudaBuffer, op: ReduceOp): Promise<void> {
    const o = this.ptr('out', out);
    const i = this.ptr('inp', inp);
    if (i.n !== o.n * this.worldSize)
      throw new OpsInputError(
        'inp.length',
        `worldSize * out.length = ${o.n * this.worldSize}`,
        i.n,
      );
    if (i.dtype !== o.dtype)
      throw new OpsInputError('out', `a ${i.dtype} buffer like inp`, o.dtype);
    return this.collective(REDUCE_SCATTER, i.ptr, o.ptr, o.n, o.dtype, { op: NCCL_OP[op] });
  }

  allGather(out: CudaBuffer, inp: CudaBuffer): Promise<void> {
    const o = this.ptr('out', out);
    const i = this.ptr('inp', inp);
    if (o.n !== i.n * this.worldSize)
      throw new OpsInputError(
        'out.length',
        `worldSize * inp.length = ${i.n * this.worldSize}`,
        o.n,
      );
    if (i.dtype !== o.dtype)
      throw new OpsInputError('out', `a ${i.dtype} buffer like inp`, o.dtype);
    return this.collective(ALL_GATHER, i.ptr, o.ptr, i.n, i.dtype);
  }

  broadcast(buf: CudaBuffer, root: number): Promise<void> {
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize)
      throw new OpsInputError('root', `a rank in [0, ${this.worldSize})`, root);
    const b = this.ptr('buf', buf);
    return this.collective(BROADCAST, b.ptr, b.ptr, b.n, b.dtype, { root });
  }

  sendRecv(send: CudaBuffer, dst: number, recv: CudaBuffer, src: number): Promise<void> {
    for (const [name, r] of [
      ['dst', dst],
      ['src', src],
    ] as const)
      if (!Number.isInteger(r) || r < 0 || r >= this.worldSize)
        throw new OpsInputError(name, `a rank in [0, ${this.worldSize})`, r);
    const s = this.ptr('send', send);
    const r = this.ptr('recv', recv);
    if (s.dtype !== r.dtype)
      throw new OpsInputError('recv', `a ${s.dtype} buffer like send`, r.dtype);
    return this.enqueue(() =>
      this.addon.ncclSendRecv({
        comm: this.comm,
        device: this.device,
        send: s.ptr,
        sendCount: s.n,
        dst,
        recv: r.ptr,
        recvCount: r.n,
        src,
        dtype: NCCL_DTYPE[s.dtype],
      }),
    );
  }

  /** An all-reduce of one int32 (NCCL has no barrier); resolves once queued, like the rest. */
  async barrier(): Promise<void> {
    const one = this.o.ops.alloc(1, 'int32');
    try {
      await this.allReduce(one, 'sum');
    } finally {
      this.o.ops.free(one);
    }
  }

  abort(reason: string): void {
    this.fail(new CollectiveError(this.rank, 'aborted', this.rank, reason));
  }

  async destroy(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    if (this.failed) return;
    await deviceQueue(this.device).run(async () => this.addon.ncclDestroy(this.comm));
    this.failed = new CollectiveError(
      this.rank,
      'aborted',
      this.rank,
      'the communicator was destroyed',
    );
  }
}

/**
 * The CPU transport for core's Communicator: one process per rank (as one process per GPU under NCCL),
 * a full mesh of Unix-domain stream sockets between them, and the collectives over the ranks' Ops
 * buffers (downloaded, sent, reduced on the host, uploaded; any DeviceMemory backend works).
 *
 * Why processes and sockets: a peer's death is visible at once and honestly (the kernel closes its
 * sockets, the others see 'close' and name it), a hung peer is a recv that outlives timeoutMs, and no
 * shared memory can be left half-written by a dying rank.
 *
 * Rendezvous: a directory (the launcher makes it; NCCL's unique id plays this role on GPUs). Rank r
 * listens on `<dir>/<r>.sock`, connects to every rank below it and accepts every rank above it.
 *
 * Wire format, per frame: u32 kind, u32 tag, u32 byteLength (little-endian), then the bytes. The tag
 * is the collective's sequence number (every rank calls the same collectives in the same order), so a
 * mismatch is detected and reported, not silently mixed. Kinds: HELLO (tag = sender's rank), DATA,
 * ABORT (JSON { culprit, failure, reason }: the sender detected a failure or aborted), BYE (destroy).
 */
import { existsSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  CollectiveError,
  OpsInputError,
  shardRange,
  type BufferDType,
  type CollectiveFailure,
  type Communicator,
  type DeviceMemory,
  type HostArray,
  type ReduceOp,
} from '@flashattn/core';

const HELLO = 1;
const DATA = 2;
const ABORT = 3;
const BYE = 4;
const HEADER = 12;

/** How long destroy() after a failure waits for the ABORT to leave (see drain). */
const DRAIN_MS = 2_000;

/** Default time a call waits for a peer (ms): generous for CPU steps, bounded. */
export const DEFAULT_COLLECTIVE_TIMEOUT_MS = 60_000;

export interface SocketCommunicatorOptions<Buf> {
  /** The rank's buffers (CpuOps, the reference ops, ...). */
  ops: DeviceMemory<Buf>;
  rank: number;
  worldSize: number;
  /** The rendezvous directory (short: a Unix socket path is at most ~100 bytes). */
  rendezvous: string;
  /** How long a call (and the connection set-up) waits for a peer. Default 60 s. */
  timeoutMs?: number;
}

interface Frame {
  kind: number;
  tag: number;
  data: Uint8Array;
}

interface Waiter {
  resolve(f: Frame): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** One peer's connection: frames parsed from the byte stream, queued until a recv takes them. */
class Link {
  private chunks: Buffer[] = [];
  private have = 0;
  private head: { kind: number; tag: number; len: number } | null = null;
  readonly frames: Frame[] = [];
  readonly waiters: Waiter[] = [];
  /** The peer said BYE: its later close is orderly. */
  left = false;

  constructor(
    readonly socket: Socket,
    private readonly onFrame: (link: Link, f: Frame) => void,
  ) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.have += d.length;
      this.parse();
    });
  }

  private take(n: number): Uint8Array {
    const out = new Uint8Array(n); // fresh and aligned: typed arrays view it directly
    let at = 0;
    while (at < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.have -= n;
    return out;
  }

  private parse(): void {
    for (;;) {
      if (!this.head) {
        if (this.have < HEADER) return;
        const h = new DataView(this.take(HEADER).buffer);
        this.head = {
          kind: h.getUint32(0, true),
          tag: h.getUint32(4, true),
          len: h.getUint32(8, true),
        };
      }
      if (this.have < this.head.len) return;
      const f = { kind: this.head.kind, tag: this.head.tag, data: this.take(this.head.len) };
      this.head = null;
      this.onFrame(this, f);
    }
  }

  write(kind: number, tag: number, data: Uint8Array): void {
    const h = Buffer.alloc(HEADER);
    h.writeUInt32LE(kind, 0);
    h.writeUInt32LE(tag >>> 0, 4);
    h.writeUInt32LE(data.byteLength, 8);
    this.socket.write(h);
    if (data.byteLength > 0) this.socket.write(data);
  }
}

type HostCtor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int32ArrayConstructor
  | Uint16ArrayConstructor;

function ctorOf(dt: BufferDType): HostCtor {
  return dt === 'float32'
    ? Float32Array
    : dt === 'float64'
      ? Float64Array
      : dt === 'int32'
        ? Int32Array
        : Uint16Array;
}

function bytesOf(a: HostArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Connect rank `rank` to its peers through the rendezvous directory; resolves when all are connected. */
export async function createSocketCommunicator<Buf>(
  o: SocketCommunicatorOptions<Buf>,
): Promise<SocketCommunicator<Buf>> {
  const { rank, worldSize } = o;
  if (!Number.isInteger(worldSize) || worldSize < 1)
    throw new OpsInputError('worldSize', 'an integer >= 1', worldSize);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize)
    throw new OpsInputError('rank', `an integer in [0, ${worldSize})`, rank);
  const timeoutMs = o.timeoutMs ?? DEFAULT_COLLECTIVE_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new OpsInputError('timeoutMs', 'a positive number of ms', timeoutMs);
  const comm = new SocketCommunicator<Buf>(o.ops, rank, worldSize, timeoutMs);
  if (worldSize === 1) return comm;
  const path = (r: number): string => join(o.rendezvous, `${r}.sock`);
  const deadline = Date.now() + timeoutMs;
  let server: Server | null = null;
  // Accept the ranks above us (they connect and say HELLO first).
  if (rank < worldSize - 1) {
    if (existsSync(path(rank))) unlinkSync(path(rank));
    server = createServer((s) => comm.adopt(s, null));
    await new Promise<void>((res, rej) => {
      server!.once('error', rej);
      server!.listen(path(rank), () => res());
    });
  }
  // Connect to the ranks below us, retrying until they listen.
  for (let q = 0; q < rank; q++) {
    for (;;) {
      const s = await new Promise<Socket | null>((res) => {
        const c = createConnection(path(q));
        c.once('connect', () => res(c));
        c.once('error', () => {
          c.destroy();
          res(null);
        });
      });
      if (s) {
        comm.adopt(s, q);
        break;
      }
      if (Date.now() > deadline) {
        server?.close();
        comm.abort(`rank ${q} did not open ${path(q)}`);
        throw new CollectiveError(
          q,
          'timeout',
          rank,
          `rank ${q} did not join within ${timeoutMs} ms`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  try {
    await comm.joined(deadline);
  } finally {
    server?.close();
  }
  return comm;
}

export class SocketCommunicator<Buf> implements Communicator<Buf> {
  readonly name: string;
  private readonly links: Array<Link | null>;
  private failed: CollectiveError | null = null;
  private seq = 0;
  private joinWaiters: Array<() => void> = [];

  constructor(
    private readonly ops: DeviceMemory<Buf>,
    readonly rank: number,
    readonly worldSize: number,
    readonly timeoutMs: number,
  ) {
    this.name = `cpu sockets (${worldSize} ranks)`;
    this.links = new Array<Link | null>(worldSize).fill(null);
  }

  /** A new connection; `peer` is known for the ones we opened, else learnt from its HELLO. */
  adopt(s: Socket, peer: number | null): void {
    s.setNoDelay(true);
    let who = peer;
    const link = new Link(s, (l, f) => {
      if (who === null) {
        if (f.kind !== HELLO || f.tag >= this.worldSize || this.links[f.tag]) {
          s.destroy();
          return;
        }
        who = f.tag;
        this.links[who] = l;
        for (const w of this.joinWaiters.splice(0)) w();
        return;
      }
      this.onFrame(who, l, f);
    });
    const lost = (): void => {
      if (who === null) return;
      if (link.left) {
        // An orderly exit: a later recv from it fails at once (below), pending ones now.
        for (const w of link.waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(
            new CollectiveError(
              who,
              'peer-exited',
              this.rank,
              'it left the job (destroy) while this rank waited for it',
            ),
          );
        }
        return;
      }
      this.fail(new CollectiveError(who, 'peer-exited', this.rank, 'its connection closed'));
    };
    s.on('close', lost);
    s.on('error', () => s.destroy());
    if (peer !== null) {
      this.links[peer] = link;
      link.write(HELLO, this.rank, new Uint8Array(0));
    }
  }

  /** Resolves when every peer is connected, or throws naming a missing one at the deadline. */
  async joined(deadline: number): Promise<void> {
    for (;;) {
      if (this.failed) throw this.failed;
      const missing = this.links.findIndex((l, q) => q !== this.rank && l === null);
      if (missing < 0) return;
      const left = deadline - Date.now();
      if (left <= 0) {
        const e = new CollectiveError(
          missing,
          'timeout',
          this.rank,
          `rank ${missing} did not join within ${this.timeoutMs} ms`,
        );
        this.fail(e);
        throw e;
      }
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.min(left, 100));
        this.joinWaiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  private onFrame(peer: number, link: Link, f: Frame): void {
    if (f.kind === ABORT) {
      let info: { culprit: number; failure: CollectiveFailure; reason: string };
      try {
        info = JSON.parse(new TextDecoder().decode(f.data)) as typeof info;
      } catch {
        info = { culprit: peer, failure: 'aborted', reason: 'unreadable abort message' };
      }
      this.fail(
        new CollectiveError(
          info.culprit,
          info.failure,
          this.rank,
          `reported by rank ${peer}: ${info.reason}`,
        ),
      );
      return;
    }
    if (f.kind === BYE) {
      link.left = true;
      return;
    }
    const w = link.waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      w.resolve(f);
    } else link.frames.push(f);
  }

  /**
   * The first failure wins: pending calls reject, later calls throw it, and the peers are told, also when
   * the failure was itself reported by a peer: the ABORT goes out before this rank's sockets close, so a
   * third rank that sees the close first still learns the original culprit (without the relay it blamed the
   * relaying rank as 'peer-exited': seen in CI on 2026-12-07).
   */
  private fail(e: CollectiveError): void {
    if (this.failed) return;
    this.failed = e;
    const msg = new TextEncoder().encode(
      JSON.stringify({ culprit: e.culprit, failure: e.failure, reason: e.message }),
    );
    for (const l of this.links) {
      if (!l) continue;
      for (const w of l.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(e);
      }
      if (!l.socket.destroyed) l.write(ABORT, 0, msg);
      l.socket.end();
    }
  }

  private check(): void {
    if (this.failed) throw this.failed;
  }

  private link(peer: number): Link {
    const l = this.links[peer];
    if (!l) throw new CollectiveError(peer, 'peer-exited', this.rank, 'no connection to it');
    return l;
  }

  private send(peer: number, tag: number, data: Uint8Array): void {
    this.link(peer).write(DATA, tag, data);
  }

  private recv(peer: number, tag: number, what: string): Promise<Uint8Array> {
    this.check();
    const l = this.link(peer);
    const check = (f: Frame): Uint8Array => {
      if (f.tag !== tag >>> 0) {
        const e = new CollectiveError(
          peer,
          'mismatch',
          this.rank,
          `${what}: expected collective #${tag >>> 0}, got #${f.tag}`,
        );
        this.fail(e);
        throw e;
      }
      return f.data;
    };
    const queued = l.frames.shift();
    if (queued) return Promise.resolve(check(queued));
    if (l.left)
      return Promise.reject(
        new CollectiveError(
          peer,
          'peer-exited',
          this.rank,
          `it left the job (destroy) before ${what}`,
        ),
      );
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        const e = new CollectiveError(
          peer,
          'timeout',
          this.rank,
          `waited ${this.timeoutMs} ms for its part of ${what}`,
        );
        this.fail(e);
      }, this.timeoutMs);
      l.waiters.push({ resolve, reject, timer });
    }).then(check);
  }

  private typed(
    dt: BufferDType,
    bytes: Uint8Array,
    n: number,
    peer: number,
    what: string,
  ): HostArray {
    const C = ctorOf(dt);
    if (bytes.byteLength !== n * C.BYTES_PER_ELEMENT) {
      const e = new CollectiveError(
        peer,
        'mismatch',
        this.rank,
        `${what}: expected ${n} ${dt} elements, got ${bytes.byteLength} bytes`,
      );
      this.fail(e);
      throw e;
    }
    return new C(bytes.buffer as ArrayBuffer, bytes.byteOffset, n);
  }

  private reducible(name: string, buf: Buf): BufferDType {
    const dt = this.ops.dtypeOf(buf);
    if (dt !== 'float32' && dt !== 'float64' && dt !== 'int32')
      throw new OpsInputError(
        name,
        'a float32, float64 or int32 buffer (the CPU transport reduces these)',
        dt,
      );
    return dt;
  }

  /** chunks[q] (n each) from every rank, reduced in rank order 0..W-1 in the buffer's dtype. */
  private async reduceParts(
    mine: HostArray,
    dt: BufferDType,
    tag: number,
    parts: (q: number) => HostArray,
    n: number,
    op: ReduceOp,
    what: string,
  ): Promise<HostArray> {
    const W = this.worldSize;
    for (let q = 0; q < W; q++) if (q !== this.rank) this.send(q, tag, bytesOf(parts(q)));
    const got: HostArray[] = [];
    for (let q = 0; q < W; q++)
      got.push(q === this.rank ? mine : this.typed(dt, await this.recv(q, tag, what), n, q, what));
    const acc = new (ctorOf(dt))(n) as Float32Array | Float64Array | Int32Array;
    acc.set(got[0]!);
    for (let q = 1; q < W; q++) {
      const g = got[q]!;
      for (let i = 0; i < n; i++) acc[i] = acc[i]! + g[i]!;
    }
    if (op === 'avg') for (let i = 0; i < n; i++) acc[i] = acc[i]! / W;
    return acc;
  }

  async allReduce(buf: Buf, op: ReduceOp): Promise<void> {
    this.check();
    const dt = this.reducible('buf', buf);
    const W = this.worldSize;
    if (W === 1) return; // sum and avg over one rank are the identity
    const tag = ++this.seq;
    const n = this.ops.lengthOf(buf);
    const host = await this.ops.download(buf);
    const part = (q: number): HostArray => {
      const { lo, hi } = shardRange(n, q, W);
      return host.subarray(lo, hi);
    };
    const { lo, hi } = shardRange(n, this.rank, W);
    // Reduce-scatter (each rank reduces its shard), then all-gather the reduced shards.
    const red = await this.reduceParts(
      part(this.rank),
      dt,
      tag,
      part,
      hi - lo,
      op,
      `allReduce #${tag}`,
    );
    const out = new (ctorOf(dt))(n);
    out.set(red, lo);
    const tag2 = ++this.seq;
    for (let q = 0; q < W; q++) if (q !== this.rank) this.send(q, tag2, bytesOf(red));
    for (let q = 0; q < W; q++) {
      if (q === this.rank) continue;
      const r = shardRange(n, q, W);
      out.set(
        this.typed(
          dt,
          await this.recv(q, tag2, `allReduce #${tag}`),
          r.hi - r.lo,
          q,
          `allReduce #${tag}`,
        ),
        r.lo,
      );
    }
    await this.ops.upload(buf, out);
  }

  async reduceScatter(out: Buf, inp: Buf, op: ReduceOp): Promise<void> {
    this.check();
    const dt = this.reducible('inp', inp);
    if (this.ops.dtypeOf(out) !== dt)
      throw new OpsInputError('out', `a ${dt} buffer like inp`, this.ops.dtypeOf(out));
    const n = this.ops.lengthOf(out);
    const W = this.worldSize;
    if (this.ops.lengthOf(inp) !== W * n)
      throw new OpsInputError(
        'inp.length',
        `worldSize * out.length = ${W * n}`,
        this.ops.lengthOf(inp),
      );
    const tag = ++this.seq;
    const host = await this.ops.download(inp);
    const part = (q: number): HostArray => host.subarray(q * n, (q + 1) * n);
    const red = await this.reduceParts(
      part(this.rank),
      dt,
      tag,
      part,
      n,
      op,
      `reduceScatter #${tag}`,
    );
    await this.ops.upload(out, red);
  }

  async allGather(out: Buf, inp: Buf): Promise<void> {
    this.check();
    const dt = this.ops.dtypeOf(inp);
    if (this.ops.dtypeOf(out) !== dt)
      throw new OpsInputError('out', `a ${dt} buffer like inp`, this.ops.dtypeOf(out));
    const n = this.ops.lengthOf(inp);
    const W = this.worldSize;
    if (this.ops.lengthOf(out) !== W * n)
      throw new OpsInputError(
        'out.length',
        `worldSize * inp.length = ${W * n}`,
        this.ops.lengthOf(out),
      );
    const tag = ++this.seq;
    const mine = await this.ops.download(inp);
    const all = new (ctorOf(dt))(W * n);
    all.set(mine, this.rank * n);
    for (let q = 0; q < W; q++) if (q !== this.rank) this.send(q, tag, bytesOf(mine));
    for (let q = 0; q < W; q++)
      if (q !== this.rank)
        all.set(
          this.typed(dt, await this.recv(q, tag, `allGather #${tag}`), n, q, `allGather #${tag}`),
          q * n,
        );
    await this.ops.upload(out, all);
  }

  async broadcast(buf: Buf, root: number): Promise<void> {
    this.check();
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize)
      throw new OpsInputError('root', `a rank in [0, ${this.worldSize})`, root);
    const tag = ++this.seq;
    if (this.rank === root) {
      const host = await this.ops.download(buf);
      for (let q = 0; q < this.worldSize; q++) if (q !== root) this.send(q, tag, bytesOf(host));
      return;
    }
    const what = `broadcast #${tag}`;
    const data = this.typed(
      this.ops.dtypeOf(buf),
      await this.recv(root, tag, what),
      this.ops.lengthOf(buf),
      root,
      what,
    );
    await this.ops.upload(buf, data);
  }

  async sendRecv(send: Buf, dst: number, recv: Buf, src: number): Promise<void> {
    this.check();
    for (const [name, r] of [
      ['dst', dst],
      ['src', src],
    ] as const)
      if (!Number.isInteger(r) || r < 0 || r >= this.worldSize)
        throw new OpsInputError(name, `a rank in [0, ${this.worldSize})`, r);
    const tag = ++this.seq;
    const host = await this.ops.download(send);
    if (dst === this.rank && src === this.rank) {
      await this.ops.upload(recv, host);
      return;
    }
    this.send(dst, tag, bytesOf(host));
    const what = `sendRecv #${tag}`;
    const data = this.typed(
      this.ops.dtypeOf(recv),
      await this.recv(src, tag, what),
      this.ops.lengthOf(recv),
      src,
      what,
    );
    await this.ops.upload(recv, data);
  }

  async barrier(): Promise<void> {
    this.check();
    const tag = ++this.seq;
    for (let q = 0; q < this.worldSize; q++)
      if (q !== this.rank) this.send(q, tag, new Uint8Array(0));
    for (let q = 0; q < this.worldSize; q++)
      if (q !== this.rank) await this.recv(q, tag, `barrier #${tag}`);
  }

  /**
   * Resolves once every link has flushed what was written to it (fail() ends each link after its ABORT), or
   * after ms. A rank exiting right after a failure would otherwise drop an ABORT queued behind a large
   * transfer, and a peer then saw only the close and blamed the relaying rank (CI, 2026-12-07: rank 0
   * named rank 2 'exited' after rank 1 was killed).
   */
  private drain(ms: number): Promise<void> {
    const waits = this.links
      .filter((l): l is Link => l !== null && !l.socket.destroyed && !l.socket.writableFinished)
      .map(
        (l) =>
          new Promise<void>((res) => {
            l.socket.once('finish', res);
            l.socket.once('close', res);
          }),
      );
    if (waits.length === 0) return Promise.resolve();
    return new Promise<void>((res) => {
      const t = setTimeout(res, ms);
      void Promise.all(waits).then(() => {
        clearTimeout(t);
        res();
      });
    });
  }

  abort(reason: string): void {
    this.fail(new CollectiveError(this.rank, 'aborted', this.rank, reason));
  }

  async destroy(): Promise<void> {
    if (this.failed) return this.drain(DRAIN_MS);
    await this.barrier();
    for (const l of this.links) {
      if (!l) continue;
      l.write(BYE, 0, new Uint8Array(0));
      l.left = true; // our own close of this link is orderly too
      l.socket.end();
    }
    this.failed = new CollectiveError(
      this.rank,
      'aborted',
      this.rank,
      'the communicator was destroyed',
    );
  }
}

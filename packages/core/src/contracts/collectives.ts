/**
 * Collectives between the ranks of one job (one process per GPU, or per CPU worker): NCCL's vocabulary
 * over the Ops buffers, so data parallel training and ring attention are written once and run on any
 * transport (the CPU socket transport in @flashattn/cpu, NCCL in @flashattn/cuda).
 *
 * Semantics every transport follows:
 *   - Every rank calls the same collectives in the same order with equally long buffers (NCCL's rule).
 *     Calls are awaited in order; a transport may queue work and resolve when it is queued (NCCL on a
 *     stream) or done (the CPU transport), like the Ops.
 *   - Buffers are Ops buffers or views (`ops.view`); lengths count elements of the buffer's dtype.
 *       allReduce(buf, op)            buf (n) on every rank = reduce over ranks of buf (n), in place;
 *       reduceScatter(out, inp, op)   inp (W * n), out (n): out on rank r = reduce over ranks of
 *                                     inp[r * n, (r + 1) * n);
 *       allGather(out, inp)           inp (n), out (W * n): out[q * n, (q + 1) * n) = inp of rank q;
 *       broadcast(buf, root)          buf on every rank = buf of rank root;
 *       sendRecv(send, dst, recv, src) send to rank dst while receiving from rank src (the ring's step;
 *                                     one call so NCCL can group the pair and never deadlock).
 *     'avg' is 'sum' divided by the world size. Every rank ends with the same bits: a reduction's order
 *     is fixed per element (the CPU transport adds in rank order 0, 1, ..., W - 1, in the buffer's
 *     dtype, as NCCL reduces in the buffer's dtype; NCCL's order is its ring's and also the same on
 *     every rank).
 *   - Failure is never a silent hang: a peer that exits, or does not answer within `timeoutMs`, makes
 *     the call throw a `CollectiveError` naming that rank, and every later call throws it too (the
 *     communicator is dead: abort the job, as NCCL requires after ncclCommAbort). A rank that detects
 *     a failure tells the others (`abort`), so every rank names the same culprit within about
 *     timeoutMs of the failure.
 *   - `abort(reason)` makes this rank's pending and later calls throw and tells the peers, which throw
 *     a `CollectiveError` naming this rank. `destroy()` is the orderly end of a job: it returns once
 *     this rank's resources are released (after a barrier with the peers where the transport needs one).
 *     After a failure it is the last call before exiting: it returns once the failure report has left
 *     for the peers (bounded), so they name the same culprit.
 */

/** How a reduction combines the ranks' elements. */
export type ReduceOp = 'sum' | 'avg';

/** Why a collective failed. */
export type CollectiveFailure =
  /** The peer's process ended (its connection closed, NCCL's async error). */
  | 'peer-exited'
  /** The peer did not answer within timeoutMs (hung, or far behind). */
  | 'timeout'
  /** A rank called abort(), or detected one of the above and told everyone. */
  | 'aborted'
  /** The ranks called different collectives or passed different lengths (a program error). */
  | 'mismatch';

/** A collective could not complete: names the rank at fault (`culprit`) and the rank that saw it. */
export class CollectiveError extends Error {
  override readonly name = 'CollectiveError';
  constructor(
    /** The rank at fault: the one that exited, hung, aborted or disagreed. */
    readonly culprit: number,
    readonly failure: CollectiveFailure,
    /** The rank that raised this error. */
    readonly rank: number,
    detail: string,
  ) {
    super(`rank ${culprit} ${failureText(failure)} (seen by rank ${rank}): ${detail}`);
  }
}

function failureText(f: CollectiveFailure): string {
  return f === 'peer-exited'
    ? 'exited'
    : f === 'timeout'
      ? 'did not answer in time'
      : f === 'aborted'
        ? 'aborted the job'
        : 'called a different collective';
}

export interface Communicator<Buf> {
  /** This process's rank, 0 <= rank < worldSize. */
  readonly rank: number;
  readonly worldSize: number;
  /** How long a call waits for a peer before it throws CollectiveError('timeout'). */
  readonly timeoutMs: number;
  /** e.g. 'cpu sockets (3 ranks)', 'nccl 2.21.5 (8 ranks)'. */
  readonly name: string;

  /** buf (n) = reduce over ranks of buf (n), in place. */
  allReduce(buf: Buf, op: ReduceOp): Promise<void>;
  /** out (n) on rank r = reduce over ranks of inp[r * n, (r + 1) * n); inp (W * n). */
  reduceScatter(out: Buf, inp: Buf, op: ReduceOp): Promise<void>;
  /** out (W * n) = the inp (n) of ranks 0..W-1, concatenated. */
  allGather(out: Buf, inp: Buf): Promise<void>;
  /** buf = buf of rank root. */
  broadcast(buf: Buf, root: number): Promise<void>;
  /** Send `send` to rank dst and receive `recv` from rank src, concurrently (equal lengths not required). */
  sendRecv(send: Buf, dst: number, recv: Buf, src: number): Promise<void>;
  /** Returns once every rank has called it. */
  barrier(): Promise<void>;
  /** Fail this rank's pending and later calls, and tell the peers (which then name this rank). */
  abort(reason: string): void;
  /** The orderly end: release the transport (after all ranks reach it, where the transport needs that). */
  destroy(): Promise<void>;
}

/** The element range [lo, hi) of rank `rank`'s shard when n elements are split into worldSize shards. */
export function shardRange(n: number, rank: number, worldSize: number): { lo: number; hi: number } {
  const per = Math.ceil(n / worldSize);
  const lo = Math.min(n, rank * per);
  return { lo, hi: Math.min(n, lo + per) };
}

/**
 * Where a rank process stands, as a launcher tells it through its environment (apps/gpt2-train's
 * `--workers` / `--gpus` launcher, apps/bench's multi-GPU benchmarks):
 *   FLASHATTN_RANK, FLASHATTN_WORLD_SIZE, FLASHATTN_RENDEZVOUS (a fresh directory shared by the job's ranks:
 *   the CPU transport's sockets, NCCL's unique id), FLASHATTN_COLLECTIVE_TIMEOUT_MS, FLASHATTN_TRANSPORT
 *   (cpu | nccl), NCCL_NVLS_ENABLE=0 (NVLink multicast off: the device notes say why), and for NCCL
 *   CUDA_VISIBLE_DEVICES = the rank's GPU.
 */
export interface RankPlace {
  rank: number;
  worldSize: number;
  rendezvous: string;
  timeoutMs: number;
  transport: 'cpu' | 'nccl';
}

/** The environment variables that give a rank process its place (rankPlace reads them back). */
export function rankEnvVars(p: RankPlace & { gpu?: string }): Record<string, string> {
  const vars: Record<string, string> = {
    FLASHATTN_RANK: String(p.rank),
    FLASHATTN_WORLD_SIZE: String(p.worldSize),
    FLASHATTN_RENDEZVOUS: p.rendezvous,
    FLASHATTN_COLLECTIVE_TIMEOUT_MS: String(p.timeoutMs),
    FLASHATTN_TRANSPORT: p.transport,
    NCCL_NVLS_ENABLE: '0',
  };
  if (p.transport === 'nccl' && p.gpu !== undefined) vars['CUDA_VISIBLE_DEVICES'] = p.gpu;
  return vars;
}

/**
 * This process's place from a launcher's environment (rankEnvVars); null when FLASHATTN_RANK is unset (not
 * started by a launcher); an Error naming the variables when they are inconsistent.
 */
export function rankPlace(env: Readonly<Record<string, string | undefined>>): RankPlace | null {
  if (env['FLASHATTN_RANK'] === undefined) return null;
  const rank = Number(env['FLASHATTN_RANK']);
  const worldSize = Number(env['FLASHATTN_WORLD_SIZE']);
  const timeoutMs = Number(env['FLASHATTN_COLLECTIVE_TIMEOUT_MS'] ?? 60_000);
  const rendezvous = env['FLASHATTN_RENDEZVOUS'] ?? '';
  const transport = env['FLASHATTN_TRANSPORT'] === 'nccl' ? 'nccl' : 'cpu';
  if (
    !Number.isInteger(worldSize) ||
    worldSize < 1 ||
    !Number.isInteger(rank) ||
    rank < 0 ||
    rank >= worldSize ||
    !rendezvous ||
    !(timeoutMs > 0)
  )
    throw new Error(
      `bad launcher environment: FLASHATTN_RANK=${env['FLASHATTN_RANK']} FLASHATTN_WORLD_SIZE=${env['FLASHATTN_WORLD_SIZE']} FLASHATTN_RENDEZVOUS=${rendezvous} FLASHATTN_COLLECTIVE_TIMEOUT_MS=${env['FLASHATTN_COLLECTIVE_TIMEOUT_MS']}`,
    );
  return { rank, worldSize, rendezvous, timeoutMs, transport };
}

/**
 * One rank's backend and transport for the ring-attention benchmark: CpuOps + the CPU socket transport, or
 * CudaOps + NCCL (one GPU per process, CUDA_VISIBLE_DEVICES set by the launcher). The ops are wrapped by
 * transformer's profileOps (timing off) so every buffer allocated through them is counted (the benchmark's
 * and the ring's own buffers; a backend's internal scratch, e.g. CUDA's bf16 staging copies of float32
 * views, is not in it), and, with `memoryLimitBytes`, an allocation past that many live bytes is
 * BackendOutOfMemoryError: a simulated device of that size, so the doubling search can end on CPU ranks
 * (the CI smoke test). On GPUs the real device runs out. `brokenCombine` (testing only) makes the lse combine
 * ignore the partials' lse (every split weighted equally): the check must then fail.
 */
import {
  BackendOutOfMemoryError,
  bufferDTypeBytes,
  type BufferDType,
  type Communicator,
  type DeviceAttention,
  type Ops,
  type RankPlace,
} from '@flashattn/core';
import { profileOps, type OpProfile, type RingOps } from '@flashattn/transformer';

export type RingBackend = 'cpu' | 'cuda';
export type RankOps = Ops<unknown> & RingOps<unknown> & DeviceAttention<unknown>;

export interface RankSetup {
  ops: RankOps;
  /** Bytes allocated through `ops` (live and peak). */
  profile: OpProfile;
  /** The compute dtype of float32 storage (CUDA computes it in bfloat16 by default). */
  computeDType: 'float32' | 'bfloat16' | 'float16';
  dispose(): void | Promise<void>;
}

export async function createRankOps(
  backend: RingBackend,
  o: { threads?: number; memoryLimitBytes?: number; brokenCombine?: boolean },
): Promise<RankSetup> {
  let inner: RankOps;
  if (backend === 'cpu') {
    const { CpuOps } = await import('@flashattn/cpu');
    inner = new CpuOps(o.threads ? { threads: o.threads } : {}) as unknown as RankOps;
  } else {
    const cuda = await import('@flashattn/cuda');
    inner = (await cuda.createCudaOps()) as unknown as RankOps;
  }
  if (o.brokenCombine) breakCombine(inner);
  const { ops: counted, profile } = profileOps<RankOps>(inner);
  const limit = o.memoryLimitBytes;
  const ops =
    limit === undefined
      ? counted
      : new Proxy(counted, {
          get(target, prop) {
            const value = Reflect.get(target, prop, target) as unknown;
            if (prop !== 'alloc' || typeof value !== 'function') return value;
            return (n: number, dtype: BufferDType): unknown => {
              const bytes = n * bufferDTypeBytes(dtype);
              const live = profile.allocations().liveBytes;
              if (live + bytes > limit)
                throw new BackendOutOfMemoryError(
                  backend,
                  `cannot allocate ${bytes} bytes: ${live} of the simulated ${limit}-byte memory (--memory-limit-mib) in use`,
                );
              return (value as (n: number, d: BufferDType) => unknown).call(target, n, dtype);
            };
          },
        });
  const f32 = inner.attentionCapabilities.computeDType('float32');
  return {
    ops,
    profile,
    computeDType: f32 === 'bfloat16' || f32 === 'float16' ? f32 : 'float32',
    dispose: () => inner.dispose(),
  };
}

/** Testing only: attentionCombine with every partial's lse read as 0 (equal weights: the partials averaged). */
function breakCombine(ops: RankOps): void {
  const combine = ops.attentionCombine.bind(ops);
  ops.attentionCombine = async (args) => {
    const zeros = ops.alloc(ops.lengthOf(args.lsePartial), 'float32');
    try {
      await ops.zero(zeros);
      await combine({ ...args, lsePartial: zeros });
    } finally {
      ops.free(zeros);
    }
  };
}

/** This rank's communicator: the CPU socket transport, or NCCL through @flashattn/cuda. */
export async function connectRank(
  backend: RingBackend,
  ops: RankOps,
  place: RankPlace,
): Promise<Communicator<unknown>> {
  if (backend === 'cuda') {
    const cuda = await import('@flashattn/cuda');
    return (await cuda.createNcclCommunicator({
      ops: ops as never,
      ...place,
    })) as unknown as Communicator<unknown>;
  }
  const { createSocketCommunicator } = await import('@flashattn/cpu');
  return createSocketCommunicator({ ops, ...place });
}

/** Wait until every call enqueued on `ops` has finished (CUDA's stream; the CPU's calls are done already). */
export async function drain(ops: RankOps): Promise<void> {
  const sync = (ops as { synchronize?: () => Promise<void> }).synchronize;
  if (typeof sync === 'function') await sync.call(ops);
}

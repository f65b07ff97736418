/**
 * The CPU backends behind core's AttentionBackend interface:
 *   'reference' (name 'cpu-reference'): the float64 oracle, results rounded to the input dtype;
 *   'flash'     (name 'cpu-flash'):     FlashAttention-2 Algorithms 1 and 2 with float32 accumulators.
 * Both return tensors in the input dtype, so they are interchangeable for callers.
 */
import type {
  AttentionBackend,
  AttentionForwardResult,
  AttentionGradients,
  BackendCapabilities,
} from './contracts/attention-backend.js';
import { DTYPES, type DType } from './dtype.js';
import {
  AttentionInputError,
  BackendOutOfMemoryError,
  describe,
  FlashAttnError,
} from './errors.js';
import { flashAttentionBackward } from './flash-backward.js';
import { resolveBlockSizes, type FlashAttentionOptions } from './flash-blocks.js';
import { flashAttention } from './flash-forward.js';
import type { AttentionOptions } from './options.js';
import { attentionReference, attentionReferenceBackward } from './reference.js';
import { fromFloat32, type Tensor } from './tensor.js';

export interface CpuBackendOptions {
  kind: 'reference' | 'flash';
  /** Br for kind 'flash' (default DEFAULT_BLOCK_SIZE_Q). */
  blockSizeQ?: number;
  /** Bc for kind 'flash' (default DEFAULT_BLOCK_SIZE_K). */
  blockSizeK?: number;
}

const CPU_CAPABILITIES: BackendCapabilities = {
  dtypes: DTYPES,
  // No hardware limit on the CPU; 256 is the largest head dim flash-attn supports.
  maxHeadDim: 1024,
  computeDType: (dtype: DType) => dtype,
};

/** The backend's block sizes under the caller's options (which may override them per call). */
function withBlocks(
  opts: AttentionOptions | undefined,
  blocks: { Br: number; Bc: number },
): FlashAttentionOptions {
  // Not an object: hand it on unchanged so validation reports it as it came.
  if (opts === null || (opts !== undefined && typeof opts !== 'object'))
    return opts as FlashAttentionOptions;
  return { blockSizeQ: blocks.Br, blockSizeK: blocks.Bc, ...opts };
}

export function createCpuBackend(options: CpuBackendOptions = { kind: 'flash' }): AttentionBackend {
  if (options === null || typeof options !== 'object') {
    throw new AttentionInputError(
      'createCpuBackend options',
      "{ kind: 'reference' | 'flash' }",
      describe(options),
    );
  }
  const { kind } = options;
  if (kind !== 'reference' && kind !== 'flash') {
    throw new AttentionInputError(
      'createCpuBackend options.kind',
      "'reference' or 'flash'",
      describe(kind),
    );
  }
  const name = `cpu-${kind}`;
  if (
    kind === 'reference' &&
    (options.blockSizeQ !== undefined || options.blockSizeK !== undefined)
  ) {
    throw new AttentionInputError(
      'createCpuBackend options.blockSizeQ/blockSizeK',
      "no block sizes for kind 'reference' (they tune kind 'flash')",
      'a block size',
    );
  }
  const blocks = kind === 'flash' ? resolveBlockSizes(options) : undefined; // validates them
  let disposed = false;
  const live = (call: string): void => {
    if (disposed) throw new FlashAttnError(`${name}: ${call} called after dispose()`);
  };
  /**
   * The engine's failure to allocate a typed array (a problem too large for host memory, e.g. the
   * reference's (Nq, Nk) score matrix) becomes BackendOutOfMemoryError; the backend stays usable.
   */
  const guard = <T>(call: string, run: () => T): T => {
    try {
      return run();
    } catch (e) {
      if (
        e instanceof RangeError &&
        /array (buffer )?(length|allocation)|Array buffer allocation failed|Invalid typed array length/i.test(
          e.message,
        )
      ) {
        throw new BackendOutOfMemoryError(
          name,
          `${call}: the problem does not fit in host memory (${e.message})`,
          { cause: e },
        );
      }
      throw e;
    }
  };

  return {
    name,
    capabilities: CPU_CAPABILITIES,
    async forward(
      q: Tensor,
      k: Tensor,
      v: Tensor,
      opts?: AttentionOptions,
    ): Promise<AttentionForwardResult> {
      live('forward');
      return guard('forward', () => {
        if (blocks) return flashAttention(q, k, v, withBlocks(opts, blocks));
        const r = attentionReference(q, k, v, opts);
        return { out: fromFloat32(r.out.data as Float32Array, q.shape, q.dtype), lse: r.lse };
      });
    },
    async backward(
      dout: Tensor,
      q: Tensor,
      k: Tensor,
      v: Tensor,
      out: Tensor,
      lse: Float32Array,
      opts?: AttentionOptions,
    ): Promise<AttentionGradients> {
      live('backward');
      return guard('backward', () => {
        if (blocks)
          return flashAttentionBackward(dout, q, k, v, out, lse, withBlocks(opts, blocks));
        const g = attentionReferenceBackward(dout, q, k, v, out, lse, opts);
        return {
          dq: fromFloat32(g.dq.data as Float32Array, q.shape, q.dtype),
          dk: fromFloat32(g.dk.data as Float32Array, k.shape, k.dtype),
          dv: fromFloat32(g.dv.data as Float32Array, v.shape, v.dtype),
        };
      });
    },
    dispose(): void {
      disposed = true;
    },
  };
}

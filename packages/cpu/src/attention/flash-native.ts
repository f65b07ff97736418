/**
 * The native CPU addon (native/: the FlashAttention-2 forward and the float32 gemm with AVX2 + FMA
 * tiles, on native threads off the event loop): loading it, checking the CPU, and the types of its functions. It comes from, in this
 * order: FLASHATTN_CPU_ADDON (a path), the local build (scripts/build-native.mjs: g++ into
 * build/Release/flashattn_cpu.node, made by the monorepo's `pnpm build` on linux-x64), the prebuilt
 * package for this platform (`@flashattn/cpu-linux-x64`, an optional dependency). Where it is
 * absent, cannot load, or the CPU lacks AVX2 or FMA, the wasm SIMD kernels run instead and
 * `nativeAttentionInfo().reason` says why (CpuOps puts it in its name).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Arguments of the addon's forward: the sizes, the views and the mask, all checked by the addon too. */
export interface NativeForwardArgs {
  B: number;
  Nq: number;
  Nk: number;
  Hq: number;
  Hk: number;
  D: number;
  scale: number;
  /** Query and key block sizes (Bc a multiple of 16). */
  Br: number;
  Bc: number;
  threads: number;
  /** 0 in production; 1 (mask off by one) and 2 (no rescale of acc) are the broken test variants. */
  variant: 0 | 1 | 2;
  /** (B, N, H, D) views: buffer and [offset, sB, sN, sH] in elements. */
  q: Float32Array;
  qLayout: readonly [number, number, number, number];
  k: Float32Array;
  kLayout: readonly [number, number, number, number];
  v: Float32Array;
  vLayout: readonly [number, number, number, number];
  out: Float32Array;
  outLayout: readonly [number, number, number, number];
  /** (B, Hq, Nq) */
  lse: Float32Array;
  /** (Nq): visible keys [lo, hi) of each query row (core's keyRange), non-decreasing. */
  lo: Int32Array;
  hi: Int32Array;
}

/**
 * Arguments of the addon's gemm (native/gemm_avx2.cc, and gemv_avx2.cc for M <= 8 rows): c (M, N) =
 * op(a) op(b) [+ bias | + c], all float32, each array exactly as long as its sizes say (checked by the
 * addon too).
 */
export interface NativeGemmArgs {
  M: number;
  N: number;
  K: number;
  /** a is (K, M), used transposed; else (M, K). */
  transA: boolean;
  /** b is (N, K), used transposed; else (K, N). */
  transB: boolean;
  /** c += op(a) op(b); not with bias. */
  accumulate: boolean;
  a: Float32Array;
  b: Float32Array;
  /** (M, N) */
  c: Float32Array;
  /** (N) or null */
  bias: Float32Array | null;
  threads: number;
  /**
   * 0 in production; the broken test variants: 1 (each K slice drops its last step), 2 (the edge columns
   * are never written: N % 16 on the packed gemm, N % 8 on the small-M path), 3 (small-M path only: every
   * row of c is computed from the first row of op(a)).
   */
  variant: 0 | 1 | 2 | 3;
}

/**
 * Which kernel a gemm call ran: 'gemm' (packed, native/gemm_avx2.cc), 'gemv' (the small-M path,
 * native/gemv_avx2.cc), 'none' (M, N or K = 0). Addons built before the small-M path return undefined.
 */
export type NativeGemmKernel = 'gemm' | 'gemv' | 'none';

export interface CpuAddon {
  cpuFeatures(): { avx2: boolean; fma: boolean };
  /** Rejects with an Error whose code is 'ENOMEM' when the scratch cannot be allocated. */
  forward(args: NativeForwardArgs): Promise<void>;
  /**
   * The gemm on `threads` native threads, off the event loop (rejects with code 'ENOMEM' when the packs
   * cannot be allocated). Absent from addons built before it (issue #11 round 5).
   */
  gemm?(args: NativeGemmArgs): Promise<NativeGemmKernel | undefined>;
  /** Rows up to which gemm / gemmSync take the small-M path; absent from addons built before it. */
  gemvMaxM?: number;
  /** The same gemm, blocking the calling thread (with `threads` native threads; throws code 'ENOMEM'). */
  gemmSync?(args: NativeGemmArgs): NativeGemmKernel | undefined;
}

export interface NativeAttentionInfo {
  /** The addon loaded and this CPU has AVX2 and FMA: the forward runs natively. */
  available: boolean;
  /** Where the addon came from (when it loaded). */
  path?: string;
  /** Why the forward is not native (when not available). */
  reason?: string;
}

let cached: { addon: CpuAddon | null; info: NativeAttentionInfo } | null = null;

/** The prebuilt package that would serve this platform. */
const PREBUILT_PACKAGE = `@flashattn/cpu-${process.platform}-${process.arch}`;

/**
 * Find and load the addon (not cached: nativeAddon() caches it). `env` stands for FLASHATTN_CPU_ADDON and
 * `local` for the local build's path (tests pass their own).
 */
export function loadNativeAddon(
  env: string | undefined = process.env['FLASHATTN_CPU_ADDON'],
  local: string = join(
    dirname(fileURLToPath(import.meta.url)), // src/attention or dist/attention
    '..',
    '..',
    'build',
    'Release',
    'flashattn_cpu.node',
  ),
): { addon: CpuAddon | null; info: NativeAttentionInfo } {
  const require = createRequire(import.meta.url);
  let path: string | undefined;
  if (env !== undefined && env !== '') {
    if (!existsSync(env))
      return {
        addon: null,
        info: { available: false, reason: `FLASHATTN_CPU_ADDON=${env} does not exist` },
      };
    path = env;
  } else if (existsSync(local)) path = local;
  else {
    try {
      path = require.resolve(`${PREBUILT_PACKAGE}/flashattn_cpu.node`);
    } catch {
      return {
        addon: null,
        info: {
          available: false,
          reason: `no native addon: ${PREBUILT_PACKAGE} is not installed (prebuilt for linux-x64 only) and there is no local build (g++: pnpm --filter @flashattn/cpu build)`,
        },
      };
    }
  }
  let addon: CpuAddon;
  try {
    addon = require(path) as CpuAddon;
  } catch (e) {
    return {
      addon: null,
      info: { available: false, path, reason: `native addon failed to load: ${String(e)}` },
    };
  }
  const f = addon.cpuFeatures();
  if (!f.avx2 || !f.fma) {
    const missing = [f.avx2 ? '' : 'AVX2', f.fma ? '' : 'FMA'].filter(Boolean).join(' and ');
    return { addon: null, info: { available: false, path, reason: `this CPU lacks ${missing}` } };
  }
  return { addon, info: { available: true, path } };
}

/** The addon when the native forward can run here, else null (loaded once per process). */
export function nativeAddon(): CpuAddon | null {
  cached ??= loadNativeAddon();
  return cached.addon;
}

/** Whether the native forward runs here, and why not. */
export function nativeAttentionInfo(): NativeAttentionInfo {
  cached ??= loadNativeAddon();
  return cached.info;
}

/** What runs natively here: the attention forward and the float32 matmul (the gemm), and why not. */
export interface NativeInfo extends NativeAttentionInfo {
  /** The addon loaded, this CPU has AVX2 and FMA, and the addon has the gemm: CpuOps.matmul runs it. */
  gemm: boolean;
}

/** Whether the addon's kernels run here (the forward: `available`; the gemm: `gemm`), and why not. */
export function nativeInfo(): NativeInfo {
  cached ??= loadNativeAddon();
  const gemm =
    typeof cached.addon?.gemm === 'function' && typeof cached.addon.gemmSync === 'function';
  const info: NativeInfo = { ...cached.info, gemm };
  if (cached.info.available && !gemm)
    info.reason = `the native addon at ${cached.info.path ?? '?'} predates the gemm: rebuild it`;
  return info;
}

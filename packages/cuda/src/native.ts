/**
 * The raw addon (`@flashattn/cuda/native`): loading it, and the types of its functions. It comes from, in
 * this order: FLASHATTN_CUDA_ADDON (a path; used by bundles); a local build (scripts/build-native.mjs, node-gyp
 * + nvcc, into build/Release/flashattn_cuda.node), which exists only where someone built from source (the
 * monorepo's `pnpm build`, FLASHATTN_CUDA_BUILD_FROM_SOURCE=1, or a platform without a prebuilt); the
 * prebuilt package for this platform (`@flashattn/cuda-linux-x64`, an optional dependency). `cudaInfo()`
 * reports which one was loaded and why. Applications use `createCudaBackend` / `createCudaDevice` from the
 * main entry; this subpath is for benchmarks and tests that drive the kernels directly.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A device pointer, as the addon passes it. */
export type DevicePtr = bigint;

/** Shape and options of one attention call as the kernels take them (head dim already padded). */
export interface NativeShape {
  /** The compute dtype: 0 = float32 (the float32 FMA kernels), 1 = float16, 2 = bfloat16. */
  dtype: number;
  batch: number;
  nheadsQ: number;
  nheadsK: number;
  seqlenQ: number;
  seqlenK: number;
  headDim: number;
  softmaxScale: number;
  windowLeft: number;
  windowRight: number;
  /** Test-only: 1 = the float32 kernels drop the last key block (dtype 0 only); absent or 0 = none. */
  testFault?: number;
}
/**
 * [batch, row, head] strides in elements of a (B, N, H, D) operand (head-dim stride 1). For the 16-bit kernels each
 * must be a multiple of 8 and each pointer 16-byte aligned (they move 16 bytes per row chunk); the float32 kernels
 * take any non-negative strides and 4-byte aligned pointers. Absent = contiguous.
 */
export type NativeStrides = readonly [number, number, number];

/** Pointers to element (0, 0, 0, 0) of each operand. lse is a contiguous (B, Hq, Nq) float32 buffer. */
export interface NativeForward extends NativeShape {
  q: DevicePtr;
  k: DevicePtr;
  v: DevicePtr;
  out: DevicePtr;
  lse: DevicePtr;
  qStrides?: NativeStrides;
  kStrides?: NativeStrides;
  vStrides?: NativeStrides;
  outStrides?: NativeStrides;
}
export interface NativeBackward extends NativeShape {
  q: DevicePtr;
  k: DevicePtr;
  v: DevicePtr;
  out: DevicePtr;
  dout: DevicePtr;
  lse: DevicePtr;
  dq: DevicePtr;
  dk: DevicePtr;
  dv: DevicePtr;
  deterministic: boolean;
  qStrides?: NativeStrides;
  kStrides?: NativeStrides;
  vStrides?: NativeStrides;
  outStrides?: NativeStrides;
  doutStrides?: NativeStrides;
  dqStrides?: NativeStrides;
  dkStrides?: NativeStrides;
  dvStrides?: NativeStrides;
}

/** dst (B, N, H, dstCols) = src (B, N, H, srcCols) between strided views, cast; columns past srcCols are 0. */
export interface NativeConvert {
  src: DevicePtr;
  /** 0 = float32, 1 = float16, 2 = bfloat16 */
  srcDtype: number;
  srcStrides: NativeStrides;
  dst: DevicePtr;
  dstDtype: number;
  dstStrides: NativeStrides;
  /** [B, N, H] */
  shape: readonly [number, number, number];
  srcCols: number;
  dstCols: number;
}

export interface DeviceInfo {
  name: string;
  major: number;
  minor: number;
  multiProcessorCount: number;
  totalGlobalMem: number;
  driverVersion: number;
  runtimeVersion: number;
}

/** The addon's functions (native/addon.cpp). Enqueueing calls are synchronous; waits return Promises. */
export interface CudaAddon {
  deviceCount(): number;
  deviceInfo(device: number): DeviceInfo;
  malloc(device: number, bytes: number): DevicePtr;
  /** Stream-ordered: work already enqueued that uses ptr still sees it. */
  free(device: number, ptr: DevicePtr): void;
  /** Host <-> device copy of exactly `bytes` (the host array's byteLength must equal it, or a TypeError). */
  memcpy(
    device: number,
    ptr: DevicePtr,
    bytes: number,
    host: ArrayBufferView,
    toDevice: boolean,
  ): Promise<void>;
  /** Enqueued device-to-device copy. */
  copyDevice(device: number, dst: DevicePtr, src: DevicePtr, bytes: number): void;
  /** Enqueued: bytes [ptr, ptr + bytes) = 0. */
  memset(device: number, ptr: DevicePtr, bytes: number): void;
  synchronize(device: number): Promise<void>;
  /** Enqueued strided cast (kernels/strided_convert.cu). */
  convert(device: number, a: NativeConvert): void;
  forward(device: number, p: NativeForward): void;
  backward(device: number, p: NativeBackward): void;
  benchmark(
    device: number,
    fwd: NativeForward | null,
    bwd: NativeBackward | null,
    warmup: number,
    iters: number,
  ): Promise<number[]>;
  /** [bytes in use now, high watermark since the last reset, bytes held from the driver] of the device's pool. */
  memPoolUsage(device: number, resetHigh: boolean): [number, number, number];
  /** Returns the pool's cached free memory to the driver (memory in use stays). */
  trimMemPool(device: number): void;
}

/** Where the loaded addon came from. */
export type AddonSource = 'FLASHATTN_CUDA_ADDON' | 'local build' | 'prebuilt package';

export type AddonLoad =
  | {
      addon: CudaAddon;
      path: string;
      source: AddonSource;
      /** Why this one was chosen, in one sentence. */
      why: string;
      /** CUDA version the addon was compiled with ('13.0'), when known. */
      cudaVersion?: string;
    }
  | { addon: undefined; reason: string; cudaVersion?: string };

/** The prebuilt package that would serve this platform, e.g. '@flashattn/cuda-linux-x64'. */
export const PREBUILT_PACKAGE = `@flashattn/cuda-${process.platform}-${process.arch}`;

let cached: AddonLoad | undefined;

function packageRoot(): string {
  // dist/native.js or src/native.ts -> package root
  return join(dirname(fileURLToPath(import.meta.url)), '..');
}

function readJson(path: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Load the addon once; on failure say, in one sentence, what is missing and how to fix it. */
export function loadAddon(): AddonLoad {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const tryLoad = (path: string): CudaAddon | Error => {
    try {
      return require(path) as CudaAddon;
    } catch (e) {
      return e as Error;
    }
  };
  const override = process.env.FLASHATTN_CUDA_ADDON;
  if (override) {
    const a = existsSync(override) ? tryLoad(override) : undefined;
    cached =
      a === undefined
        ? {
            addon: undefined,
            reason: `the native addon was not built at FLASHATTN_CUDA_ADDON=${override} (no such file)`,
          }
        : a instanceof Error
          ? {
              addon: undefined,
              reason: `FLASHATTN_CUDA_ADDON=${override} could not be loaded: ${a.message}`,
            }
          : {
              addon: a,
              path: override,
              source: 'FLASHATTN_CUDA_ADDON',
              why: 'FLASHATTN_CUDA_ADDON names it',
            };
    return cached;
  }
  const root = packageRoot();
  const status = readJson(join(root, 'build', 'native-status.json')) as
    { reason?: string; cudaVersion?: string } | undefined;
  const local = join(root, 'build', 'Release', 'flashattn_cuda.node');
  let localError: string | undefined;
  if (existsSync(local)) {
    const a = tryLoad(local);
    if (!(a instanceof Error)) {
      cached = {
        addon: a,
        path: local,
        source: 'local build',
        why: 'a local build from source exists (it wins over the prebuilt package)',
        ...(status?.cudaVersion ? { cudaVersion: status.cudaVersion } : {}),
      };
      return cached;
    }
    localError = a.message;
  }
  let prebuilt: { path: string; info: { cudaVersion?: string; arch?: string } } | undefined;
  try {
    prebuilt = {
      path: require.resolve(`${PREBUILT_PACKAGE}/flashattn_cuda.node`),
      info: require(`${PREBUILT_PACKAGE}/prebuilt.json`) as { cudaVersion?: string; arch?: string },
    };
  } catch {
    prebuilt = undefined;
  }
  if (prebuilt) {
    const a = tryLoad(prebuilt.path);
    if (!(a instanceof Error)) {
      cached = {
        addon: a,
        path: prebuilt.path,
        source: 'prebuilt package',
        why: `${PREBUILT_PACKAGE} matches this platform (${prebuilt.info.arch ?? 'sm_80, sm_90a'}) and there is no local build`,
        ...(prebuilt.info.cudaVersion ? { cudaVersion: prebuilt.info.cudaVersion } : {}),
      };
      return cached;
    }
    cached = {
      addon: undefined,
      reason: `the prebuilt addon ${prebuilt.path} failed to load (${a.message}): reinstall @flashattn/cuda, or build from source with FLASHATTN_CUDA_BUILD_FROM_SOURCE=1 and nvcc on PATH`,
    };
    return cached;
  }
  if (localError) {
    cached = {
      addon: undefined,
      reason: `the local build ${local} failed to load (${localError}): rebuild it with \`node ${join(root, 'scripts', 'build-native.mjs')}\``,
    };
    return cached;
  }
  const build = status?.reason
    ? `and the source build did not produce one (${status.reason})`
    : `and no local build: with nvcc on PATH, run \`node ${join(root, 'scripts', 'build-native.mjs')}\` (in this monorepo: \`npx -y pnpm@10.34.8 --filter @flashattn/cuda build\`)`;
  cached = {
    addon: undefined,
    reason: `no CUDA addon: no prebuilt package for ${process.platform}-${process.arch} (${PREBUILT_PACKAGE} is not installed) ${build}`,
  };
  return cached;
}

/** Copy a whole host array to or from the device range starting at ptr (its byteLength bytes). */
export function memcpyHost(
  addon: CudaAddon,
  device: number,
  ptr: DevicePtr,
  host: ArrayBufferView,
  toDevice: boolean,
): Promise<void> {
  return addon.memcpy(device, ptr, host.byteLength, host, toDevice);
}

/** Contiguous (rows, srcCols) -> (rows, dstCols) cast with zero padding / truncation of columns. */
export function convertRows(
  addon: CudaAddon,
  device: number,
  a: {
    src: DevicePtr;
    srcDtype: number;
    dst: DevicePtr;
    dstDtype: number;
    rows: number;
    srcCols: number;
    dstCols: number;
  },
): void {
  addon.convert(device, {
    src: a.src,
    srcDtype: a.srcDtype,
    srcStrides: [0, a.srcCols, 0],
    dst: a.dst,
    dstDtype: a.dstDtype,
    dstStrides: [0, a.dstCols, 0],
    shape: [1, a.rows, 1],
    srcCols: a.srcCols,
    dstCols: a.dstCols,
  });
}

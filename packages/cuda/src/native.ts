/**
 * The raw addon (`@flashattn/cuda/native`): loading it, and the types of its functions. Built by
 * scripts/build-native.mjs (node-gyp + nvcc) into build/Release/flashattn_cuda.node; FLASHATTN_CUDA_ADDON
 * overrides the path (used by bundles). Applications use `createCudaBackend` / `createCudaDevice` from the main
 * entry; this subpath is for benchmarks and tests that drive the kernels directly.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A device pointer, as the addon passes it. */
export type DevicePtr = bigint;

/** Shape and options of one attention call as the kernels take them (head dim already padded). */
export interface NativeShape {
  /** 1 = float16, 2 = bfloat16 (the compute dtype). */
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
}
/**
 * [batch, row, head] strides in elements of a (B, N, H, D) operand (head-dim stride 1). Each must be a multiple
 * of 8 and each pointer 16-byte aligned (the kernels move 16 bytes per row chunk); absent = contiguous.
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

export type AddonLoad = { addon: CudaAddon; path: string } | { addon: undefined; reason: string };

let cached: AddonLoad | undefined;

function packageRoot(): string {
  // dist/native.js or src/native.ts -> package root
  return join(dirname(fileURLToPath(import.meta.url)), '..');
}

/** Load the addon once; on failure say why (not built, and the build's own reason when it left one). */
export function loadAddon(): AddonLoad {
  if (cached) return cached;
  const override = process.env.FLASHATTN_CUDA_ADDON;
  const root = packageRoot();
  const path = override ?? join(root, 'build', 'Release', 'flashattn_cuda.node');
  if (!existsSync(path)) {
    let reason = `the native addon was not built (${path} is missing)`;
    const statusFile = join(root, 'build', 'native-status.json');
    if (!override && existsSync(statusFile)) {
      try {
        const status = JSON.parse(readFileSync(statusFile, 'utf8')) as { reason?: string };
        if (status.reason) reason += `: ${status.reason}`;
      } catch {
        // keep the generic reason
      }
    } else if (!override) {
      // No status file: the install script never ran (e.g. a package manager that skips install scripts).
      reason += `: with nvcc on PATH, run \`node ${join(root, 'scripts', 'build-native.mjs')}\``;
      reason += ' (in this monorepo: `pnpm --filter @flashattn/cuda build`)';
    }
    cached = { addon: undefined, reason };
    return cached;
  }
  try {
    const require = createRequire(import.meta.url);
    cached = { addon: require(path) as CudaAddon, path };
  } catch (e) {
    cached = {
      addon: undefined,
      reason: `the native addon failed to load: ${(e as Error).message}`,
    };
  }
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

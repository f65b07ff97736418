/**
 * Device profiles for the IO model's roofline (io-model.ts), from NVIDIA's public datasheets and
 * architecture whitepapers. Dense (non-sparse) peaks: the datasheets print tensor-core figures "with
 * sparsity" (marked *); the dense peak is half of that figure.
 *
 * A100 SXM4 80GB. NVIDIA A100 Tensor Core GPU datasheet (2021) and "NVIDIA A100 Tensor Core GPU
 * Architecture" whitepaper (2020); CUDA C++ Programming Guide, compute capability 8.0:
 *   GPU memory bandwidth        2,039 GB/s (80GB HBM2e, SXM)
 *   BF16 / FP16 Tensor Core     312 TFLOPS dense (624 with sparsity)
 *   TF32 Tensor Core            156 TFLOPS dense (312 with sparsity)
 *   FP32 (CUDA cores)           19.5 TFLOPS
 *   SMs                         108
 *   L1 + shared memory per SM   192 KB combined, of which up to 164 KB shared memory per SM
 *   (FlashAttention, Section 2.1: "192KB of on-chip SRAM per each of 108 streaming multiprocessors")
 *
 * H100 SXM5 80GB. NVIDIA H100 Tensor Core GPU datasheet (2023) and "NVIDIA H100 Tensor Core GPU
 * Architecture" whitepaper (2022); CUDA C++ Programming Guide, compute capability 9.0:
 *   GPU memory bandwidth        3.35 TB/s (80GB HBM3, SXM5)
 *   BF16 / FP16 Tensor Core     989.5 TFLOPS dense (1,979 with sparsity)
 *   TF32 Tensor Core            494.5 TFLOPS dense (989 with sparsity)
 *   FP32 (CUDA cores)           67 TFLOPS
 *   SMs                         132
 *   L1 + shared memory per SM   256 KB combined, of which up to 228 KB shared memory per SM
 *
 * M for the IO model is the shared memory one thread block can use; we take the per-SM maximum
 * (164 KB, 228 KB), i.e. one resident thread block per SM.
 */
import type { RooflineDevice } from './io-model.js';

const KiB = 1024;

export interface DeviceProfile extends RooflineDevice {
  /** Streaming multiprocessors. */
  sms: number;
  /** Largest shared memory (SRAM) per SM, bytes: M for the IO model. */
  sramBytesPerSM: number;
  /** Combined L1 + shared memory per SM, bytes. */
  l1SharedBytesPerSM: number;
  /** Dense TF32 tensor-core peak, FLOP/s (float32 inputs on tensor cores). */
  tf32FlopsPerSecond: number;
  /** HBM capacity, bytes. */
  hbmBytes: number;
  /** Where the numbers come from. */
  sources: readonly string[];
}

export const A100_SXM4_80GB: DeviceProfile = {
  name: 'NVIDIA A100-SXM4-80GB',
  hbmBytesPerSecond: 2039e9,
  peakFlopsPerSecond: { float16: 312e12, bfloat16: 312e12, float32: 19.5e12 },
  tf32FlopsPerSecond: 156e12,
  sms: 108,
  sramBytesPerSM: 164 * KiB,
  l1SharedBytesPerSM: 192 * KiB,
  hbmBytes: 80e9,
  sources: [
    'NVIDIA A100 Tensor Core GPU datasheet (80GB SXM: 2,039 GB/s; BF16/FP16 312 TFLOPS dense; FP32 19.5 TFLOPS)',
    'NVIDIA A100 Tensor Core GPU Architecture whitepaper (108 SMs; 192 KB L1/shared per SM)',
    'CUDA C++ Programming Guide, compute capability 8.0 (164 KB shared memory per SM)',
  ],
};

export const H100_SXM5_80GB: DeviceProfile = {
  name: 'NVIDIA H100-SXM5-80GB',
  hbmBytesPerSecond: 3.35e12,
  peakFlopsPerSecond: { float16: 989.5e12, bfloat16: 989.5e12, float32: 67e12 },
  tf32FlopsPerSecond: 494.5e12,
  sms: 132,
  sramBytesPerSM: 228 * KiB,
  l1SharedBytesPerSM: 256 * KiB,
  hbmBytes: 80e9,
  sources: [
    'NVIDIA H100 Tensor Core GPU datasheet (SXM5: 3.35 TB/s; BF16/FP16 1,979 TFLOPS with sparsity = 989.5 dense; FP32 67 TFLOPS)',
    'NVIDIA H100 Tensor Core GPU Architecture whitepaper (132 SMs on SXM5; 256 KB L1/shared per SM)',
    'CUDA C++ Programming Guide, compute capability 9.0 (228 KB shared memory per SM)',
  ],
};

/** Profiles by short name. */
export const DEVICE_PROFILES: Readonly<Record<'a100' | 'h100', DeviceProfile>> = {
  a100: A100_SXM4_80GB,
  h100: H100_SXM5_80GB,
};

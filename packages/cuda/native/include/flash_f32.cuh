// Building blocks of the float32 FlashAttention-2 kernels (flash_fwd_f32.cu, flash_bwd_preprocess_f32.cu,
// flash_bwd_dkdv_f32.cu, flash_bwd_dq_f32.cu): float32 storage computed in float32 with plain FMA (SIMT; no
// tensor cores, no TF32), the "fp32 mode for checks" of issue #10. Speed is secondary; accuracy is float32's.
//
// Thread layout shared by the kernels: 128 threads = 16 row groups x 8 lanes. A block owns R = 16 * TM rows
// (query rows in the forward and dQ kernels, key rows in dK/dV) and streams tiles of C rows of the other side
// through shared memory. Row group g owns rows g * TM .. g * TM + TM - 1; its 8 lanes (consecutive lanes of one
// warp) split the columns, lane l taking columns l, l + 8, l + 16, ... So a row's max and sum reduce with three
// shuffles inside the row group, and a row group's P / dS rows are written and read back by its own warp
// (__syncwarp, no block barrier). Shared tiles have a row stride of D + 1 (C + 1 for P / dS): the 8 lanes reading
// 8 different rows at the same column hit 8 different banks.
//
// Loads are scalar and coalesced along the head dim, so any strides and any 4-byte aligned pointer are read in
// place (the packed (B, T, 3, H, D) qkv of GPT-2 included).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "block_info.cuh"
#include "flash_params.h"

namespace flash {
namespace f32 {

constexpr int kThreads = 128;
constexpr int kLanes = 8;   // lanes per row group
constexpr int kGroups = 16; // row groups per block

// Test-only faults (the addon's `testFault` argument): a deliberately broken kernel that the conformance suite must
// reject (src/f32-fault.conformance.test.ts, device-run.ts `conformance --fault`).
constexpr int kFaultNone = 0;
constexpr int kFaultDropLastKeyBlock = 1;  // every kernel skips the last key block a row sees

// Tiles per head dim (untuned, the first configuration that passed: GPT-2's B = 4, T = 1024, H = 12, D = 64 causal
// fwd + bwd in 2.99 ms, 7.5 TFLOP/s, on the H100; bf16 tensor cores 0.24 ms; BENCHMARKS.md, float32 attention).
// TM rows per row group, R = 16 TM owned rows, C streamed rows. Accumulators per thread:
// TM * D / 8 (two sets in dK/dV) <= 64 floats, plus two (TM, C / 8) score tiles; the shared tiles fit in the
// 163 KiB an sm_80 block may opt into (largest: D = 256, (2 R + 2 C) (D + 1) + R (C + 1) floats = 100 KiB).
template <int D>
struct Tiles {
  static_assert(D % kLanes == 0 && D <= 256, "head dim");
  static constexpr int TM = D <= 64 ? 4 : D <= 128 ? 2 : 1;
  static constexpr int R = kGroups * TM;
  static constexpr int C = D <= 128 ? 64 : 32;
  static constexpr int SD = D + 1;  // shared row stride of (rows, D) tiles
  static constexpr int SC = C + 1;  // shared row stride of the (R, C) P / dS tile
};

// sm (ROWS, D), row stride D + 1 <- rows [0, valid) of a strided (N, D) view g with row stride rs; rows >= valid
// are zero. Coalesced along d.
template <int ROWS, int D>
__device__ __forceinline__ void load_rows(float* sm, const float* g, int64_t rs, int valid, int tid) {
  for (int idx = tid; idx < ROWS * D; idx += kThreads) {
    const int r = idx / D, c = idx % D;
    sm[r * (D + 1) + c] = r < valid ? g[(int64_t)r * rs + c] : 0.f;
  }
}

// acc[m][n] = sum_d A[g TM + m][d] * B[lane + 8 n][d]: this thread's (TM, NC) block of A B^T, A and B (rows, D)
// tiles in shared memory with row stride D + 1 (S = Q K^T, dP = dO V^T and their transposes).
template <int TM, int NC, int D>
__device__ __forceinline__ void dot_rows(float (&acc)[TM][NC], const float* sA, const float* sB, int g, int lane) {
#pragma unroll
  for (int m = 0; m < TM; ++m)
#pragma unroll
    for (int n = 0; n < NC; ++n) acc[m][n] = 0.f;
  const float* a0 = sA + g * TM * (D + 1);
  const float* b0 = sB + lane * (D + 1);
#pragma unroll 4
  for (int d = 0; d < D; ++d) {
    float a[TM], b[NC];
#pragma unroll
    for (int m = 0; m < TM; ++m) a[m] = a0[m * (D + 1) + d];
#pragma unroll
    for (int n = 0; n < NC; ++n) b[n] = b0[n * kLanes * (D + 1) + d];
#pragma unroll
    for (int m = 0; m < TM; ++m)
#pragma unroll
      for (int n = 0; n < NC; ++n) acc[m][n] = fmaf(a[m], b[n], acc[m][n]);
  }
}

// acc[m][j] += sum_c P[g TM + m][c] * B[c][lane + 8 j]: this thread's (TM, D / 8) block of P B, P an (R, NCOLS)
// tile with row stride NCOLS + 1 written by this row group, B an (NCOLS, D) tile with row stride D + 1
// (O += P V, dQ += dS K, dV += P^T dO, dK += dS^T Q).
template <int TM, int NCOLS, int D>
__device__ __forceinline__ void mul_acc(float (&acc)[TM][D / kLanes], const float* sP, const float* sB, int g,
                                        int lane) {
  const float* p0 = sP + g * TM * (NCOLS + 1);
  const float* b0 = sB + lane;
#pragma unroll 4
  for (int c = 0; c < NCOLS; ++c) {
    float p[TM];
#pragma unroll
    for (int m = 0; m < TM; ++m) p[m] = p0[m * (NCOLS + 1) + c];
#pragma unroll
    for (int j = 0; j < D / kLanes; ++j) {
      const float b = b0[c * (D + 1) + j * kLanes];
#pragma unroll
      for (int m = 0; m < TM; ++m) acc[m][j] = fmaf(p[m], b, acc[m][j]);
    }
  }
}

// Reductions over the 8 lanes of a row group (aligned groups of 8 lanes: xor 1, 2, 4 stays inside).
__device__ __forceinline__ float group_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 1));
  x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 2));
  return fmaxf(x, __shfl_xor_sync(0xffffffff, x, 4));
}
__device__ __forceinline__ float group_sum(float x) {
  x += __shfl_xor_sync(0xffffffff, x, 1);
  x += __shfl_xor_sync(0xffffffff, x, 2);
  return x + __shfl_xor_sync(0xffffffff, x, 4);
}

// P_ij = exp(scale S_ij - L_i) for a visible key of an existing row, else 0 (masked keys, padding rows and keys,
// fully masked rows whose L is -inf). The fma keeps scale * S unrounded before L is subtracted.
__device__ __forceinline__ float recompute_p(float s_ij, float lse_i, int i, int j, const AttnShape& s) {
  return i < s.Nq && visible(i, j, s) ? expf(fmaf(s_ij, s.scale, -lse_i)) : 0.f;
}

// Set a kernel's dynamic shared memory limit to `bytes` (above the 48 KiB default) and launch it.
template <typename Kernel, typename... Args>
__host__ cudaError_t launch(Kernel kernel, dim3 grid, size_t bytes, cudaStream_t stream, Args... args) {
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
  if (err != cudaSuccess) return err;
  kernel<<<grid, kThreads, bytes, stream>>>(args...);
  return cudaGetLastError();
}

}  // namespace f32
}  // namespace flash

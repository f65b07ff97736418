// Host-side entry points of the kernels (each defined in its own .cu file under kernels/ or inst/).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "flash_params.h"

namespace flash {

// Forward / dK-dV kernels, one instantiation per (dtype, head dim) in inst/*.cu. The backward one is
// flash_bwd_dkdv (D = 32, 96, 256) or flash_bwd_dkdv_sm80 (D = 64, 128); dispatch.cu takes the wgmma kernel
// instead where wgmma_available().
#define FLASH_DECLARE(D)                                                                     \
  cudaError_t run_fwd_fp16_d##D(const FwdParams& p, cudaStream_t s);                         \
  cudaError_t run_fwd_bf16_d##D(const FwdParams& p, cudaStream_t s);                         \
  cudaError_t run_bwd_fp16_d##D(const BwdParams& p, cudaStream_t s);                         \
  cudaError_t run_bwd_bf16_d##D(const BwdParams& p, cudaStream_t s);
FLASH_DECLARE(32)
FLASH_DECLARE(64)
FLASH_DECLARE(96)
FLASH_DECLARE(128)
FLASH_DECLARE(256)
#undef FLASH_DECLARE

cudaError_t launch_bwd_preprocess(int dtype, const BwdParams& p, cudaStream_t stream);
cudaError_t launch_bwd_dq_convert(int dtype, const BwdParams& p, cudaStream_t stream);
cudaError_t launch_bwd_gqa_reduce(int dtype, const BwdParams& p, cudaStream_t stream);
// dst (B, N, H, dst_cols) = src (B, N, H, src_cols), strided views, cast between dtypes (DTypeId), columns past
// src_cols zero (kernels/strided_convert.cu).
struct StridedConvert {
  const void* src;
  int src_dtype;
  int64_t src_strides[3];  // batch, row, head (elements); column stride 1
  void* dst;
  int dst_dtype;
  int64_t dst_strides[3];
  int64_t B, N, H;
  int src_cols, dst_cols;
};
cudaError_t launch_strided_convert(const StridedConvert& a, cudaStream_t stream);

// Dispatch on (dtype, head dim); head dim must be 32, 64, 96, 128 or 256. fp16 / bf16: the tensor-core kernels;
// float32: the float32 FMA kernels below (f32_fault: a test-only fault of those, include/flash_f32.cuh).
cudaError_t run_flash_fwd(int dtype, const FwdParams& p, cudaStream_t stream, int f32_fault = 0);
// Whole backward. fp16 / bf16: zero dQ_accum (and the semaphores), D_i, dK/dV kernel, dQ convert, GQA reduction.
// float32: D_i, dK/dV, dQ (workspace: d_rowsum only; always deterministic).
cudaError_t run_flash_bwd(int dtype, const BwdParams& p, cudaStream_t stream, int f32_fault = 0);

// The float32 FMA kernels (kernels/*_f32.cu, include/flash_f32.cuh): float32 storage computed in float32.
cudaError_t run_flash_fwd_f32(const FwdParams& p, int fault, cudaStream_t stream);
cudaError_t launch_bwd_preprocess_f32(const BwdParams& p, cudaStream_t stream);
cudaError_t launch_bwd_dkdv_f32(const BwdParams& p, int fault, cudaStream_t stream);
cudaError_t launch_bwd_dq_f32(const BwdParams& p, int fault, cudaStream_t stream);
// Q rows per step of the dK/dV kernel (sizes the deterministic-mode semaphores: B * Hq * ceil(Nq / it)).
int bwd_block_q(int head_dim);
// True when the current device is compute capability 9.0 and this binary holds sm_90a code (the wgmma kernels;
// checked once per device with a probe kernel).
bool wgmma_available();
// The wgmma (sm_90a) dK/dV/dQ kernel, D = 64 or 128 (inst/bwd_wgmma_sm90a.cu).
cudaError_t run_bwd_wgmma(int dtype, const BwdParams& p, cudaStream_t stream);

}  // namespace flash

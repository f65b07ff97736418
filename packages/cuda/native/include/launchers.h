// Host-side entry points of the kernels (each defined in its own .cu file under kernels/ or inst/).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "flash_params.h"

namespace flash {

// Forward / dK-dV kernels, one instantiation per (dtype, head dim) in inst/*.cu.
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
cudaError_t launch_convert_pad(int src_dtype, int dst_dtype, const void* src, void* dst, int64_t rows, int src_cols,
                               int dst_cols, cudaStream_t stream);

// Dispatch on (dtype, head dim); head dim must be 32, 64, 96, 128 or 256 and dtype fp16 or bf16.
cudaError_t run_flash_fwd(int dtype, const FwdParams& p, cudaStream_t stream);
// Whole backward: zero dQ_accum (and the semaphores), D_i, dK/dV kernel, dQ convert, GQA reduction.
cudaError_t run_flash_bwd(int dtype, const BwdParams& p, cudaStream_t stream);
// Q rows per step of the dK/dV kernel (sizes the deterministic-mode semaphores: B * Hq * ceil(Nq / it)).
int bwd_block_q(int head_dim);
// Backward kernel for D = 64 / 128: 0 = flash_bwd_dkdv (16 keys per warp), 1 = flash_bwd_dkdv_w2x4 (Br = 64),
// 2 = w2x4 with P^T / dS^T only from shared memory, 3 = w2x4 with Br = 128 for D = 64, as 1 for D = 128,
// 4 = 3 with the Q blocks of each key block in rotated order (ROT), 5 = 3 with the smaller loop body (COMPACT),
// 6 = flash_bwd_dkdv_wgmma where wgmma_available(), else 3 (default).
// FLASHATTN_CUDA_BWD=16x1 | 2x4 | 2x4s | 2x4b | 2x4r | 2x4c | wgmma overrides the
// default (read once; for comparing the kernels on the device).
int bwd_kernel_choice();
// True when the current device is compute capability 9.0 and this binary holds sm_90a code (the wgmma kernels;
// checked once per device with a probe kernel).
bool wgmma_available();
// The wgmma (sm_90a) dK/dV/dQ kernel, D = 64 or 128 (inst/bwd_wgmma_sm90a.cu).
cudaError_t run_bwd_wgmma(int dtype, const BwdParams& p, cudaStream_t stream);

}  // namespace flash

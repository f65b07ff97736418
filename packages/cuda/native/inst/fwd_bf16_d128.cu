// Instantiation: forward, bf16, head dim 128 (one per file so nvcc compiles them in parallel).
#include "../include/launchers.h"
#include "../kernels/flash_fwd.cuh"
cudaError_t flash::run_fwd_bf16_d128(const FwdParams& p, cudaStream_t s) { return launch_flash_fwd<__nv_bfloat16, 128>(p, s); }

// Instantiation: backward dK/dV/dQ kernel (mma.sync, compute capability 8.x), fp16, head dim 64 (one per file so
// nvcc compiles them in parallel).
#include "../include/launchers.h"
#include "../kernels/flash_bwd_dkdv_sm80.cuh"
cudaError_t flash::run_bwd_fp16_d64(const BwdParams& p, cudaStream_t s) { return launch_flash_bwd_dkdv_sm80<__half, 64>(p, s); }

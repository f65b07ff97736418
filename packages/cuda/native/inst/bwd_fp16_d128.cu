// Instantiation: backward dK/dV/dQ kernel, fp16, head dim 128 (one per file so nvcc compiles them in parallel).
#include "../include/launchers.h"
#include "../kernels/flash_bwd_dkdv.cuh"
cudaError_t flash::run_bwd_fp16_d128(const BwdParams& p, cudaStream_t s) { return launch_flash_bwd_dkdv<__half, 128>(p, s); }

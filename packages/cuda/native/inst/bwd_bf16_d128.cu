// Instantiation: backward dK/dV/dQ kernel, bf16, head dim 128 (one per file so nvcc compiles them in parallel).
#include "../include/launchers.h"
#include "../kernels/flash_bwd_dkdv.cuh"
#include "../kernels/flash_bwd_dkdv_w2x4.cuh"
cudaError_t flash::run_bwd_bf16_d128(const BwdParams& p, cudaStream_t s) {
  switch (bwd_kernel_choice()) {
    case 1:
    case 3:
    case 6: return launch_flash_bwd_dkdv_w2x4<__nv_bfloat16, 128, 64, true>(p, s);
    case 2: return launch_flash_bwd_dkdv_w2x4<__nv_bfloat16, 128, 64, false>(p, s);
    case 4: return launch_flash_bwd_dkdv_w2x4<__nv_bfloat16, 128, 64, true, true>(p, s);
    case 5: return launch_flash_bwd_dkdv_w2x4<__nv_bfloat16, 128, 64, true, false, true>(p, s);
    default: return launch_flash_bwd_dkdv<__nv_bfloat16, 128>(p, s);
  }
}

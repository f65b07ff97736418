// TEMPORARY tuning experiment (bf16, D = 64 / 128): alternative dK/dV tile shapes selected by
// FLASHATTN_CUDA_BWD_VARIANT for the benchmark only. Removed once the best shape is chosen.
#include "../include/launchers.h"
#include "../kernels/flash_bwd_dkdv.cuh"

namespace flash {
cudaError_t run_bwd_variant(int variant, const BwdParams& p, cudaStream_t s) {
  using T = __nv_bfloat16;
  if (p.s.D == 128) {
    switch (variant) {
      case 1: return launch_flash_bwd_dkdv_tiles<T, 128, 128, 64, 1, 2, 1, true, 32>(p, s);
      case 2: return launch_flash_bwd_dkdv_tiles<T, 128, 128, 64, 1, 2, 1, true, 64>(p, s);
      case 3: return launch_flash_bwd_dkdv_tiles<T, 128, 128, 64, 1, 2, 1, false, 32>(p, s);
    }
  } else if (p.s.D == 64) {
    switch (variant) {
      case 1: return launch_flash_bwd_dkdv_tiles<T, 64, 128, 64, 1, 2, 1, true, 32>(p, s);
      case 2: return launch_flash_bwd_dkdv_tiles<T, 64, 128, 64, 1, 2, 1, true, 64>(p, s);
      case 3: return launch_flash_bwd_dkdv_tiles<T, 64, 64, 64, 1, 1, 2>(p, s);
    }
  }
  return cudaErrorInvalidValue;
}
}  // namespace flash

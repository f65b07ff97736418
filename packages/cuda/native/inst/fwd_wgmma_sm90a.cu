// Instantiations of the wgmma (sm_90a) forward, D = 64 and 128, fp16 / bf16 (see bwd_wgmma_sm90a.cu for the
// sm_90a check).
#include "../include/launchers.h"
#include "../kernels/flash_fwd_wgmma.cuh"

namespace flash {

template <typename T>
static cudaError_t run_fwd_wgmma_t(const FwdParams& p, cudaStream_t s) {
  const int choice = fwd_kernel_choice();
  if (p.s.D == 64)
    return choice == 2 ? launch_flash_fwd_wgmma<T, 64, 64, 2>(p, s) : launch_flash_fwd_wgmma<T, 64, 128, 2>(p, s);
  if (p.s.D == 128)
    return choice == 2 ? launch_flash_fwd_wgmma<T, 128, 64, 2>(p, s) : launch_flash_fwd_wgmma<T, 128, 128, 2>(p, s);
  return cudaErrorInvalidValue;
}

cudaError_t run_fwd_wgmma(int dtype, const FwdParams& p, cudaStream_t s) {
  return dtype == kFloat16 ? run_fwd_wgmma_t<__half>(p, s) : run_fwd_wgmma_t<__nv_bfloat16>(p, s);
}

}  // namespace flash

// Instantiations of the wgmma (sm_90a) backward, D = 64 and 128, fp16 / bf16, and the check that this binary
// holds sm_90a code for the current device. The default build targets sm_80 and sm_90a (binding.gyp); a build
// without sm_90a compiles the kernel as a stub and wgmma_available() then answers false.
#include <atomic>

#include "../include/launchers.h"
#include "../kernels/flash_bwd_dkdv_wgmma.cuh"

namespace flash {

__device__ int g_wgmma_probe;

__global__ void wgmma_probe_kernel() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  g_wgmma_probe = 1;
#else
  g_wgmma_probe = 2;
#endif
}

bool wgmma_available() {
  static std::atomic<int> state[64];  // per device: 0 unknown, 1 available, 2 not
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) return false;
  int st = state[dev].load();
  if (st != 0) return st == 1;
  int major = 0, minor = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  int probe = 0;
  if (major == 9 && minor == 0) {
    wgmma_probe_kernel<<<1, 1>>>();
    if (cudaGetLastError() != cudaSuccess || cudaMemcpyFromSymbol(&probe, g_wgmma_probe, sizeof(int)) != cudaSuccess)
      probe = 0;
  }
  st = probe == 1 ? 1 : 2;
  state[dev].store(st);
  return st == 1;
}

// Modes (flash_bwd_dkdv_wgmma.cuh, MODE bits 2 = DEFER, 4 = DK_SMEM), H100 bf16 bwd / torch flash at N = 2k / 8k
// non-causal (2026-11-21, `MODES="0 4 6 16 20" bash bench/device-modes.sh`; README tuning log):
//   D = 64:  Br = 128 mode 0: 0.85 / 0.76, mode 4: 0.81 / 0.73 (both spill); Br = 64 mode 0: 0.89 / 0.81,
//            mode 4: 0.90 / 0.81, mode 6: 0.95 / 0.85  -> Br = 64, mode 6
//   D = 128: Br = 64 mode 0: 0.98 / 0.93, mode 4: 0.98 / 0.94, mode 6: 0.94 / 0.91 (136 B of spills)  -> mode 4
cudaError_t run_bwd_wgmma(int dtype, const BwdParams& p, cudaStream_t s) {
  const bool f16 = dtype == kFloat16;
  switch (p.s.D) {
    case 64:
      return f16 ? launch_flash_bwd_dkdv_wgmma<__half, 64, 64, 6>(p, s)
                 : launch_flash_bwd_dkdv_wgmma<__nv_bfloat16, 64, 64, 6>(p, s);
    case 128:
      return f16 ? launch_flash_bwd_dkdv_wgmma<__half, 128, 64, 4>(p, s)
                 : launch_flash_bwd_dkdv_wgmma<__nv_bfloat16, 128, 64, 4>(p, s);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace flash

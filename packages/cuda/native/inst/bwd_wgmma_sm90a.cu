// Instantiations of the wgmma (sm_90a) backward, D = 64 and 128, fp16 / bf16, and the check that this binary
// holds sm_90a code for the current device. The default build targets sm_80 and sm_90a (binding.gyp); a build
// without sm_90a compiles the kernel as a stub and bwd_wgmma_available() then answers false.
#include <atomic>
#include <cstdlib>

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

bool bwd_wgmma_available() {
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

// MODE bits (flash_bwd_dkdv_wgmma.cuh): 2 = dQ atomics deferred behind the next Q block's S^T / dP^T,
// 4 = dK's A operand from shared memory, 16 = Br = 64 at D = 64 (mode 6 implies it there).
// FLASHATTN_CUDA_WGMMA_MODE=<bits> picks one for comparing them on the device (bench/device-modes.sh).
static int wgmma_mode() {
  static const int v = [] {
    const char* e = std::getenv("FLASHATTN_CUDA_WGMMA_MODE");
    return e ? std::atoi(e) : 4;
  }();
  return v;
}

template <typename T>
static cudaError_t run_mode(int D, int mode, const BwdParams& p, cudaStream_t s) {
  if (D == 64) {
    switch (mode) {
      case 0: return launch_flash_bwd_dkdv_wgmma<T, 64, 128, 0>(p, s);
      case 6: return launch_flash_bwd_dkdv_wgmma<T, 64, 64, 6>(p, s);
      case 16: return launch_flash_bwd_dkdv_wgmma<T, 64, 64, 0>(p, s);
      case 20: return launch_flash_bwd_dkdv_wgmma<T, 64, 64, 4>(p, s);
      default: return launch_flash_bwd_dkdv_wgmma<T, 64, 128, 4>(p, s);
    }
  }
  if (D == 128) {
    switch (mode) {
      case 0: return launch_flash_bwd_dkdv_wgmma<T, 128, 64, 0>(p, s);
      case 6: return launch_flash_bwd_dkdv_wgmma<T, 128, 64, 6>(p, s);
      default: return launch_flash_bwd_dkdv_wgmma<T, 128, 64, 4>(p, s);
    }
  }
  return cudaErrorInvalidValue;
}

cudaError_t run_bwd_wgmma(int dtype, const BwdParams& p, cudaStream_t s) {
  return dtype == kFloat16 ? run_mode<__half>(p.s.D, wgmma_mode(), p, s)
                           : run_mode<__nv_bfloat16>(p.s.D, wgmma_mode(), p, s);
}

}  // namespace flash

// dQ = softmaxScale * dQ_accum, fp32 -> storage dtype: (B, Nq, Hq, D).
#include "../include/flash_common.cuh"
#include "../include/launchers.h"

namespace flash {

template <typename T>
__global__ void flash_bwd_dq_convert_kernel(const float* __restrict__ acc, T* __restrict__ dq, int64_t n, float scale) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dq[i] = MmaType<T>::from_float(acc[i] * scale);
}

cudaError_t launch_bwd_dq_convert(int dtype, const BwdParams& p, cudaStream_t stream) {
  const int64_t n = (int64_t)p.s.B * p.s.Nq * p.s.Hq * p.s.D;
  const unsigned blocks = (unsigned)std::min<int64_t>((n + 255) / 256, 65535);
  if (dtype == kFloat16)
    flash_bwd_dq_convert_kernel<<<blocks, 256, 0, stream>>>(p.dq_accum, reinterpret_cast<__half*>(p.dq), n, p.s.scale);
  else
    flash_bwd_dq_convert_kernel<<<blocks, 256, 0, stream>>>(p.dq_accum, reinterpret_cast<__nv_bfloat16*>(p.dq), n,
                                                            p.s.scale);
  return cudaGetLastError();
}

}  // namespace flash

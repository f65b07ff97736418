// GQA / MQA: dK, dV of a shared K/V head are the sums over its group of query heads, in a fixed order
// (deterministic). (B, Nk, Hq, D) fp32 -> (B, Nk, Hk, D) storage dtype.
#include "../include/flash_common.cuh"
#include "../include/launchers.h"

namespace flash {

template <typename T>
__global__ void flash_bwd_gqa_reduce_kernel(const float* __restrict__ src, T* __restrict__ dst, int64_t rows, int Hk,
                                            int group, int D) {
  const int64_t n = rows * Hk * D;  // rows = B * Nk
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int d = (int)(i % D);
    const int64_t hk = (i / D) % Hk, row = i / ((int64_t)D * Hk);
    const float* s = src + ((row * Hk + hk) * group) * D + d;
    float acc = 0.f;
    for (int gi = 0; gi < group; ++gi) acc += s[(int64_t)gi * D];
    dst[i] = MmaType<T>::from_float(acc);
  }
}

cudaError_t launch_bwd_gqa_reduce(int dtype, const BwdParams& p, cudaStream_t stream) {
  const int64_t rows = (int64_t)p.s.B * p.s.Nk;
  const int64_t n = rows * p.s.Hk * p.s.D;
  const unsigned blocks = (unsigned)std::min<int64_t>((n + 255) / 256, 65535);
  const int group = p.s.Hq / p.s.Hk;
  for (int which = 0; which < 2; ++which) {
    const float* src = which ? p.dv_expanded : p.dk_expanded;
    void* dst = which ? p.dv : p.dk;
    if (dtype == kFloat16)
      flash_bwd_gqa_reduce_kernel<<<blocks, 256, 0, stream>>>(src, reinterpret_cast<__half*>(dst), rows, p.s.Hk, group,
                                                              p.s.D);
    else
      flash_bwd_gqa_reduce_kernel<<<blocks, 256, 0, stream>>>(src, reinterpret_cast<__nv_bfloat16*>(dst), rows,
                                                              p.s.Hk, group, p.s.D);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace flash

// GQA / MQA: dK, dV of a shared K/V head are the sums over its group of query heads, in a fixed order
// (deterministic). Contiguous fp32 (B, Nk, Hq, D) -> the strided dk / dv views (B, Nk, Hk, D) in the storage dtype.
#include "../include/flash_common.cuh"
#include "../include/launchers.h"

namespace flash {

template <typename T>
__global__ void flash_bwd_gqa_reduce_kernel(const float* __restrict__ src, T* __restrict__ dst, const AttnShape s,
                                            int64_t batch_stride, int64_t row_stride, int64_t head_stride) {
  const int D = s.D, Hk = s.Hk, group = s.Hq / s.Hk;
  const int64_t n = (int64_t)s.B * s.Nk * Hk * D;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int d = (int)(i % D);
    const int64_t hk = (i / D) % Hk, row = i / ((int64_t)D * Hk);  // row = b * Nk + j
    const int64_t b = row / s.Nk, j = row % s.Nk;
    const float* sp = src + ((row * Hk + hk) * group) * D + d;
    float acc = 0.f;
    for (int gi = 0; gi < group; ++gi) acc += sp[(int64_t)gi * D];
    dst[b * batch_stride + j * row_stride + hk * head_stride + d] = MmaType<T>::from_float(acc);
  }
}

cudaError_t launch_bwd_gqa_reduce(int dtype, const BwdParams& p, cudaStream_t stream) {
  const int64_t n = (int64_t)p.s.B * p.s.Nk * p.s.Hk * p.s.D;
  const unsigned blocks = (unsigned)std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, 65535));
  for (int which = 0; which < 2; ++which) {
    const float* src = which ? p.dv_expanded : p.dk_expanded;
    void* dst = which ? p.dv : p.dk;
    const int64_t sb = which ? p.dv_batch_stride : p.dk_batch_stride;
    const int64_t sr = which ? p.dv_row_stride : p.dk_row_stride;
    const int64_t sh = which ? p.dv_head_stride : p.dk_head_stride;
    if (dtype == kFloat16)
      flash_bwd_gqa_reduce_kernel<<<blocks, 256, 0, stream>>>(src, reinterpret_cast<__half*>(dst), p.s, sb, sr, sh);
    else
      flash_bwd_gqa_reduce_kernel<<<blocks, 256, 0, stream>>>(src, reinterpret_cast<__nv_bfloat16*>(dst), p.s, sb,
                                                              sr, sh);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace flash

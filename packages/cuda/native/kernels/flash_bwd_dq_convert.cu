// dQ = softmaxScale * dQ_accum: the contiguous fp32 (B, Nq, Hq, D) accumulator -> the strided dq view (B, Nq, Hq, D)
// in the storage dtype. One thread per 8 consecutive elements of a row (two float4 loads, one 16-byte store; the
// kernel head dims are multiples of 8 and the views 16-byte aligned, flash_params.h), so the row's (b, i, h) and its
// strided address are worked out once per 8 elements.
#include "../include/flash_common.cuh"
#include "../include/launchers.h"

namespace flash {

template <typename T>
__global__ void flash_bwd_dq_convert_kernel(const BwdParams p) {
  using M = MmaType<T>;
  const AttnShape& s = p.s;
  const int chunks = s.D / 8;                              // 16-byte chunks per row
  const int64_t n = (int64_t)s.B * s.Nq * s.Hq * chunks;  // chunks in (B, Nq, Hq, D / 8) order
  for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < n; c += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = c / chunks, h = row % s.Hq, bi = row / s.Hq, i = bi % s.Nq, b = bi / s.Nq;
    const int d = (int)(c - row * chunks) * 8;
    const float4 lo = *reinterpret_cast<const float4*>(p.dq_accum + c * 8);
    const float4 hi = *reinterpret_cast<const float4*>(p.dq_accum + c * 8 + 4);
    const uint4 out = make_uint4(M::pack(lo.x * s.scale, lo.y * s.scale), M::pack(lo.z * s.scale, lo.w * s.scale),
                                 M::pack(hi.x * s.scale, hi.y * s.scale), M::pack(hi.z * s.scale, hi.w * s.scale));
    *reinterpret_cast<uint4*>(reinterpret_cast<T*>(p.dq) + b * p.dq_batch_stride + i * p.dq_row_stride +
                              h * p.dq_head_stride + d) = out;
  }
}

cudaError_t launch_bwd_dq_convert(int dtype, const BwdParams& p, cudaStream_t stream) {
  const int64_t n = (int64_t)p.s.B * p.s.Nq * p.s.Hq * (p.s.D / 8);
  const unsigned blocks = (unsigned)std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, 65535));
  if (dtype == kFloat16)
    flash_bwd_dq_convert_kernel<__half><<<blocks, 256, 0, stream>>>(p);
  else
    flash_bwd_dq_convert_kernel<__nv_bfloat16><<<blocks, 256, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace flash

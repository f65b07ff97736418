// dQ = softmaxScale * dQ_accum: the contiguous fp32 (B, Nq, Hq, D) accumulator -> the strided dq view in the
// storage dtype.
#include "../include/flash_common.cuh"
#include "../include/launchers.h"

namespace flash {

template <typename T>
__global__ void flash_bwd_dq_convert_kernel(const BwdParams p) {
  const AttnShape& s = p.s;
  const int64_t n = (int64_t)s.B * s.Nq * s.Hq * s.D;
  T* dq = reinterpret_cast<T*>(p.dq);
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t d = i % s.D, h = (i / s.D) % s.Hq, row = (i / ((int64_t)s.D * s.Hq)) % s.Nq;
    const int64_t b = i / ((int64_t)s.D * s.Hq * s.Nq);
    dq[b * p.dq_batch_stride + row * p.dq_row_stride + h * p.dq_head_stride + d] =
        MmaType<T>::from_float(p.dq_accum[i] * s.scale);
  }
}

cudaError_t launch_bwd_dq_convert(int dtype, const BwdParams& p, cudaStream_t stream) {
  const int64_t n = (int64_t)p.s.B * p.s.Nq * p.s.Hq * p.s.D;
  const unsigned blocks = (unsigned)std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, 65535));
  if (dtype == kFloat16)
    flash_bwd_dq_convert_kernel<__half><<<blocks, 256, 0, stream>>>(p);
  else
    flash_bwd_dq_convert_kernel<__nv_bfloat16><<<blocks, 256, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace flash

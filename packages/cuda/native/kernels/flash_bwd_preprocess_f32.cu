// Algorithm 2, line 4 (FlashAttention-2 form) in float32: D_i = rowsum(dO_i o O_i), one warp per row of the
// strided (B, Nq, Hq, D) views O and dO, into the contiguous (B, Hq, Nq) d_rowsum. Scalar loads: any strides.
#include "../include/flash_f32.cuh"
#include "../include/launchers.h"

namespace flash {
namespace f32 {

__global__ void flash_bwd_preprocess_f32_kernel(const BwdParams p) {
  const AttnShape& s = p.s;
  const int64_t rows = (int64_t)s.B * s.Nq * s.Hq;  // rows in (B, Nq, Hq) order
  const int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int64_t h = row % s.Hq, i = (row / s.Hq) % s.Nq, b = row / ((int64_t)s.Hq * s.Nq);
  const float* o = static_cast<const float*>(p.o) + b * p.o_batch_stride + i * p.o_row_stride + h * p.o_head_stride;
  const float* dO =
      static_cast<const float*>(p.dout) + b * p.do_batch_stride + i * p.do_row_stride + h * p.do_head_stride;
  float acc = 0.f;
  for (int d = lane; d < s.D; d += 32) acc = fmaf(o[d], dO[d], acc);
#pragma unroll
  for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffff, acc, off);
  if (lane == 0) p.d_rowsum[(b * s.Hq + h) * s.Nq + i] = acc;
}

}  // namespace f32

cudaError_t launch_bwd_preprocess_f32(const BwdParams& p, cudaStream_t stream) {
  const int64_t rows = (int64_t)p.s.B * p.s.Nq * p.s.Hq;
  f32::flash_bwd_preprocess_f32_kernel<<<(unsigned)((rows + 7) / 8), 256, 0, stream>>>(p);  // 8 rows per block
  return cudaGetLastError();
}

}  // namespace flash

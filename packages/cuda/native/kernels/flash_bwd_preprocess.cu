// Algorithm 2, line 4 (FlashAttention-2 form): D_i = rowsum(dO_i o O_i), one warp per query row.
#include "../include/flash_common.cuh"
#include "../include/launchers.h"

namespace flash {

template <typename T>
__global__ void flash_bwd_preprocess_kernel(const BwdParams p) {
  const AttnShape& s = p.s;
  const int64_t rows = (int64_t)s.B * s.Nq * s.Hq;  // rows in (B, Nq, Hq) order
  const int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* o = reinterpret_cast<const T*>(p.o) + row * s.D;     // (D,)
  const T* dO = reinterpret_cast<const T*>(p.dout) + row * s.D;  // (D,)
  float acc = 0.f;
  for (int d = lane; d < s.D; d += 32) acc += MmaType<T>::to_float(o[d]) * MmaType<T>::to_float(dO[d]);
#pragma unroll
  for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffff, acc, off);
  if (lane == 0) {
    const int64_t hq = row % s.Hq, i = (row / s.Hq) % s.Nq, b = row / ((int64_t)s.Hq * s.Nq);
    p.d_rowsum[(b * s.Hq + hq) * s.Nq + i] = acc;  // (B, Hq, Nq)
  }
}

cudaError_t launch_bwd_preprocess(int dtype, const BwdParams& p, cudaStream_t stream) {
  const int64_t rows = (int64_t)p.s.B * p.s.Nq * p.s.Hq;
  const unsigned blocks = (unsigned)((rows + 7) / 8);
  if (dtype == kFloat16) flash_bwd_preprocess_kernel<__half><<<blocks, 256, 0, stream>>>(p);
  else flash_bwd_preprocess_kernel<__nv_bfloat16><<<blocks, 256, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace flash

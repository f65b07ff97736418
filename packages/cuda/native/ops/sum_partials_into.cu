// Second pass of the column sums (bias backward, LayerNorm's dw and db): dst (N) += sum over chunks of part
// (chunks, N), in chunk order (deterministic), in float32 with one rounding to dst's dtype.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

template <typename T>
__global__ void sum_partials_into_kernel(T* dst, const float* part, int64_t N, int chunks) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < N; c += (int64_t)gridDim.x * blockDim.x) {
    float a = 0.0f;
    for (int k = 0; k < chunks; ++k) a += part[(int64_t)k * N + c];
    store(dst + c, load(dst + c) + a);
  }
}

}  // namespace

cudaError_t sum_partials_into(int dtype, void* dst, const float* part, int64_t N, int chunks, cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E, sum_partials_into_kernel<E><<<grid_for(N, 256), 256, 0, s>>>(
      static_cast<E*>(dst), part, N, chunks));
  return cudaGetLastError();
}

}  // namespace ops

// Embedding backward into the position table: dwpe[t, c] (maxT, C) += sum over b of dout[b, t, c] (B, T, C).
// One thread per (t, c), the batch summed in order in float32 (deterministic), one rounding.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

template <typename T>
__global__ void embedding_backward_wpe_kernel(T* dwpe, const T* dout, int64_t B, int64_t T_, int64_t C) {
  const int64_t n = T_ * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float acc = 0.0f;
    for (int64_t b = 0; b < B; ++b) acc += load(dout + b * n + i);
    store(dwpe + i, load(dwpe + i) + acc);
  }
}

}  // namespace

cudaError_t embedding_backward_wpe(int dtype, void* dwpe, const void* dout, int64_t B, int64_t T_, int64_t C,
                                   cudaStream_t s) {
  const int64_t n = T_ * C;
  if (n == 0 || B == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E, embedding_backward_wpe_kernel<E><<<grid_for(n, 256), 256, 0, s>>>(
      static_cast<E*>(dwpe), static_cast<const E*>(dout), B, T_, C));
  return cudaGetLastError();
}

}  // namespace ops

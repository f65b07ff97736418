// Residual connection (llm.c's residual_forward): out = a + b, n elements, float32 add, one rounding; out may
// alias a or b (each thread reads both before it writes).
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

template <typename T>
__global__ void residual_forward_kernel(T* out, const T* a, const T* b, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    store(out + i, load(a + i) + load(b + i));
}

}  // namespace

cudaError_t residual_forward(int dtype, void* out, const void* a, const void* b, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E, residual_forward_kernel<E><<<grid_for(n, 256), 256, 0, s>>>(
      static_cast<E*>(out), static_cast<const E*>(a), static_cast<const E*>(b), n));
  return cudaGetLastError();
}

}  // namespace ops

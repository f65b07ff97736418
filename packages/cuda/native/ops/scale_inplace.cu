// x *= scale, n elements, float32 multiply, one rounding (gradient scaling, e.g. clipping).
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

template <typename T>
__global__ void scale_inplace_kernel(T* x, int64_t n, float scale) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    store(x + i, load(x + i) * scale);
}

}  // namespace

cudaError_t scale_inplace(int dtype, void* x, int64_t n, float scale, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E, scale_inplace_kernel<E><<<grid_for(n, 256), 256, 0, s>>>(static_cast<E*>(x), n, scale));
  return cudaGetLastError();
}

}  // namespace ops

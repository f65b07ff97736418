// out (M, N) = bias (N) in every row: the bias of a matmul whose bias pointer cuBLASLt's BIAS epilogue cannot take
// (less than 16-byte aligned) or whose K is 0; the product is then added with beta = 1.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

template <typename T>
__global__ void bias_broadcast_kernel(T* out, const T* bias, int64_t M, int64_t N) {
  const int64_t n = M * N;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = bias[i % N];
}

}  // namespace

cudaError_t bias_broadcast(int dtype, void* out, const void* bias, int64_t M, int64_t N, cudaStream_t s) {
  if (M * N == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E, bias_broadcast_kernel<E><<<grid_for(M * N, 256), 256, 0, s>>>(
      static_cast<E*>(out), static_cast<const E*>(bias), M, N));
  return cudaGetLastError();
}

}  // namespace ops

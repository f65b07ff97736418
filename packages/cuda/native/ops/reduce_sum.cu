// Sum (the loss) or sum of squares (the global gradient norm) of n elements into one float64 on the device, which
// the addon then copies to the host (sum / sumSquares), or into a float32 on the device that stays there (sumTo:
// a training step's loss and gradient norm without a host round trip, for the CUDA graph of the step). Two passes with a fixed grid, so the
// result is deterministic: kBlocks blocks each sum a strided slice in float64 and write a partial; one block adds
// the partials in order.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr int kBlocks = 512, kThreads = 256;

template <typename T, bool kSquares>
__global__ void reduce_partials_kernel(double* partials, const T* x, int64_t n) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const double v = (double)load(x + i);
    acc += kSquares ? v * v : v;
  }
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void reduce_final_kernel(double* result, const double* partials, int count) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) result[0] = acc;
}

// out[0] = (accumulate ? out[0] : 0) + the sum of the partials, added in float64 and rounded once to float32.
__global__ void reduce_final_to_kernel(float* out, const double* partials, int count, bool accumulate) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) out[0] = (float)((accumulate ? (double)out[0] : 0.0) + acc);
}

cudaError_t reduce_partials(int dtype, double* partials, const void* x, int64_t n, bool squares, cudaStream_t s) {
  if (squares) {
    OPS_DISPATCH_FLOAT(dtype, E, reduce_partials_kernel<E, true><<<kBlocks, kThreads, 0, s>>>(
        partials, static_cast<const E*>(x), n));
  } else {
    OPS_DISPATCH_FLOAT(dtype, E, reduce_partials_kernel<E, false><<<kBlocks, kThreads, 0, s>>>(
        partials, static_cast<const E*>(x), n));
  }
  return cudaGetLastError();
}

}  // namespace

int reduce_partials_count() { return kBlocks; }

cudaError_t reduce_sum(int dtype, double* result, double* partials, const void* x, int64_t n, bool squares,
                       cudaStream_t s) {
  if (cudaError_t e = reduce_partials(dtype, partials, x, n, squares, s); e != cudaSuccess) return e;
  reduce_final_kernel<<<1, kThreads, 0, s>>>(result, partials, kBlocks);
  return cudaGetLastError();
}

cudaError_t reduce_sum_to(int dtype, float* out, double* partials, const void* x, int64_t n, bool squares,
                          bool accumulate, cudaStream_t s) {
  if (cudaError_t e = reduce_partials(dtype, partials, x, n, squares, s); e != cudaSuccess) return e;
  reduce_final_to_kernel<<<1, kThreads, 0, s>>>(out, partials, kBlocks, accumulate);
  return cudaGetLastError();
}

}  // namespace ops

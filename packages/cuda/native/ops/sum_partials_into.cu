// Second pass of the column sums (bias backward, LayerNorm's dw and db): dst (N) += sum over chunks of part
// (chunks, N), in float32 with one rounding to dst's dtype. Deterministic: a block is 32 columns x kGroups thread
// rows; thread row g adds the contiguous chunk range [g * per, (g + 1) * per) in chunk order, and thread row 0 adds
// the kGroups sums in group order. One thread per column (the former kernel) left GPT-2's C = 768 with 3 blocks,
// each thread waiting on 256 dependent loads; this spreads a column over 8 threads.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr int kCols = 32, kGroups = 8;

template <typename T>
__global__ void sum_partials_into_kernel(T* dst, const float* part, int64_t N, int chunks) {
  __shared__ float sums[kGroups][kCols];
  const int64_t c = blockIdx.x * (int64_t)kCols + threadIdx.x;
  const int per = (chunks + kGroups - 1) / kGroups;
  const int k0 = threadIdx.y * per;
  const int k1 = min(chunks, k0 + per);
  float a = 0.0f;
  if (c < N) {
#pragma unroll 8
    for (int k = k0; k < k1; ++k) a += part[(int64_t)k * N + c];
  }
  sums[threadIdx.y][threadIdx.x] = a;
  __syncthreads();
  if (threadIdx.y == 0 && c < N) {
    float t = 0.0f;
    for (int g = 0; g < kGroups; ++g) t += sums[g][threadIdx.x];
    store(dst + c, load(dst + c) + t);
  }
}

}  // namespace

cudaError_t sum_partials_into(int dtype, void* dst, const float* part, int64_t N, int chunks, cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  const unsigned grid = (unsigned)((N + kCols - 1) / kCols);
  OPS_DISPATCH_FLOAT(dtype, E, sum_partials_into_kernel<E><<<grid, dim3(kCols, kGroups), 0, s>>>(
      static_cast<E*>(dst), part, N, chunks));
  return cudaGetLastError();
}

}  // namespace ops

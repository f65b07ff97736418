// Bias backward, first pass (llm.c's matmul_backward_bias): the rows of x (M, N) are cut into `chunks` chunks and
// each block (32 columns x one chunk) writes the chunk's column sums in float32: part (chunks, N).
// sum_partials_into.cu adds them to dbias in chunk order (deterministic).
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr int kCols = 32, kRows = 8;

template <typename T>
__global__ void column_sums_partial_kernel(float* part, const T* x, int64_t M, int64_t N, int64_t rows_per_chunk) {
  __shared__ float sx[kRows][kCols];
  const int64_t c = blockIdx.x * (int64_t)kCols + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * rows_per_chunk;
  const int64_t r1 = min(M, r0 + rows_per_chunk);
  float a = 0.0f;
  if (c < N)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRows) a += load(x + r * N + c);
  sx[threadIdx.y][threadIdx.x] = a;
  __syncthreads();
  if (threadIdx.y == 0 && c < N) {
    float t = 0.0f;
    for (int i = 0; i < kRows; ++i) t += sx[i][threadIdx.x];
    part[chunk * N + c] = t;
  }
}

}  // namespace

cudaError_t column_sums_partial(int dtype, float* part, const void* x, int64_t M, int64_t N, int chunks,
                                cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  const int64_t rows_per_chunk = (M + chunks - 1) / chunks;
  const dim3 grid((unsigned)((N + kCols - 1) / kCols), (unsigned)chunks);
  OPS_DISPATCH_FLOAT(dtype, E, column_sums_partial_kernel<E><<<grid, dim3(kCols, kRows), 0, s>>>(
      part, static_cast<const E*>(x), M, N, rows_per_chunk < 1 ? 1 : rows_per_chunk));
  return cudaGetLastError();
}

}  // namespace ops

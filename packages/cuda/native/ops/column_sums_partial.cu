// Bias backward, first pass (llm.c's matmul_backward_bias): the rows of x (M, N) are cut into `chunks` chunks and
// each block (a column tile x one chunk) writes the chunk's column sums in float32: part (chunks, N).
// sum_partials_into.cu adds them to dbias in chunk order (deterministic). Within a block, kRows warps each sum
// their rows of the chunk in order, and the warps' sums are added in warp order.
// Fast path (N a multiple of kVec<T>, x 16-byte aligned): each lane reads one 16-byte vector of a row, so a warp
// covers 32 * kVec<T> columns (256 for 16-bit dtypes, 128 for float32). Otherwise the scalar kernel (32 columns per
// block).
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr int kCols = 32, kRows = 8;

template <typename T>
__global__ void column_sums_partial_vec_kernel(float* part, const T* x, int64_t M, int64_t N,
                                               int64_t rows_per_chunk) {
  constexpr int V = kVec<T>;
  constexpr int kTile = 32 * V;       // columns per block
  __shared__ float sx[kRows][kTile];  // per-warp column sums
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t c0 = blockIdx.x * (int64_t)kTile;  // first column of the tile
  const int64_t v = c0 / V + lane;                   // this lane's vector index within a row
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * rows_per_chunk;
  const int64_t r1 = min(M, r0 + rows_per_chunk);
  float a[V];
#pragma unroll
  for (int j = 0; j < V; ++j) a[j] = 0.0f;
  if ((v + 1) * V <= N) {
    const int64_t nvec = N / V;  // vectors per row
#pragma unroll 4
    for (int64_t r = r0 + warp; r < r1; r += kRows) {
      float f[V];
      unpack<T>(load_vec(x, r * nvec + v), f);
#pragma unroll
      for (int j = 0; j < V; ++j) a[j] += f[j];
    }
  }
#pragma unroll
  for (int j = 0; j < V; ++j) sx[warp][lane * V + j] = a[j];
  __syncthreads();
  for (int t = threadIdx.x; t < kTile; t += blockDim.x) {
    const int64_t c = c0 + t;
    if (c >= N) break;
    float sum = 0.0f;
    for (int i = 0; i < kRows; ++i) sum += sx[i][t];
    part[chunk * N + c] = sum;
  }
}

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

template <typename T>
cudaError_t launch(float* part, const T* x, int64_t M, int64_t N, int chunks, cudaStream_t s) {
  int64_t rows_per_chunk = (M + chunks - 1) / chunks;
  if (rows_per_chunk < 1) rows_per_chunk = 1;
  if (N % kVec<T> == 0 && is_vec_aligned(x)) {
    const int64_t tile = 32 * kVec<T>;
    const dim3 grid((unsigned)((N + tile - 1) / tile), (unsigned)chunks);
    column_sums_partial_vec_kernel<T><<<grid, 32 * kRows, 0, s>>>(part, x, M, N, rows_per_chunk);
  } else {
    const dim3 grid((unsigned)((N + kCols - 1) / kCols), (unsigned)chunks);
    column_sums_partial_kernel<T><<<grid, dim3(kCols, kRows), 0, s>>>(part, x, M, N, rows_per_chunk);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t column_sums_partial(int dtype, float* part, const void* x, int64_t M, int64_t N, int chunks,
                                cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E, return launch<E>(part, static_cast<const E*>(x), M, N, chunks, s));
  return cudaSuccess;
}

}  // namespace ops

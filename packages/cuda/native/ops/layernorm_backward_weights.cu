// LayerNorm backward, weight gradients, first pass: the rows of (N, C) are cut into `chunks` chunks and each block
// (32 columns x one chunk) writes the chunk's column sums of dout * xhat (dw) and of dout (db) in float32:
// dw_part, db_part (chunks, C). sum_partials_into.cu then adds them to dw, db in chunk order: deterministic, and
// every chunk's sum is a short float32 sum (the rows of one chunk are split over 8 thread rows, summed in order).
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr int kCols = 32, kRows = 8;

template <typename T>
__global__ void layernorm_backward_weights_kernel(float* dw_part, float* db_part, const T* dout, const T* inp,
                                                  const float* mean, const float* rstd, int64_t N, int64_t C,
                                                  int64_t rows_per_chunk) {
  __shared__ float sw[kRows][kCols];
  __shared__ float sb[kRows][kCols];
  const int64_t c = blockIdx.x * (int64_t)kCols + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * rows_per_chunk;
  const int64_t r1 = min(N, r0 + rows_per_chunk);
  float aw = 0.0f, ab = 0.0f;
  if (c < C) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRows) {
      const float dy = load(dout + r * C + c);
      const float xhat = (load(inp + r * C + c) - mean[r]) * rstd[r];
      aw += dy * xhat;
      ab += dy;
    }
  }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float w = 0.0f, b = 0.0f;
    for (int i = 0; i < kRows; ++i) {
      w += sw[i][threadIdx.x];
      b += sb[i][threadIdx.x];
    }
    dw_part[chunk * C + c] = w;
    db_part[chunk * C + c] = b;
  }
}

}  // namespace

int column_chunks(int64_t M) {
  // ~64 rows per chunk, at most 256 chunks (GPT-2: N = 16384 rows -> 256 chunks x 24 column blocks of C = 768).
  int64_t chunks = (M + 63) / 64;
  if (chunks > 256) chunks = 256;
  return (int)(chunks < 1 ? 1 : chunks);
}

cudaError_t layernorm_backward_weights(int dtype, float* dw_part, float* db_part, const void* dout, const void* inp,
                                       const float* mean, const float* rstd, int64_t N, int64_t C, int chunks,
                                       cudaStream_t s) {
  if (C == 0) return cudaSuccess;
  const int64_t rows_per_chunk = (N + chunks - 1) / chunks;
  const dim3 grid((unsigned)((C + kCols - 1) / kCols), (unsigned)chunks);
  OPS_DISPATCH_FLOAT(dtype, E, layernorm_backward_weights_kernel<E><<<grid, dim3(kCols, kRows), 0, s>>>(
      dw_part, db_part, static_cast<const E*>(dout), static_cast<const E*>(inp), mean, rstd, N, C,
      rows_per_chunk < 1 ? 1 : rows_per_chunk));
  return cudaGetLastError();
}

}  // namespace ops

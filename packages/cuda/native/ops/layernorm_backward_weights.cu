// LayerNorm backward, weight gradients, first pass: the rows of (N, C) are cut into `chunks` chunks and each block
// (a column tile x one chunk) writes the chunk's column sums of dout * xhat (dw) and of dout (db) in float32:
// dw_part, db_part (chunks, C). sum_partials_into.cu then adds them to dw, db in chunk order: deterministic, and
// every chunk's sum is a short float32 sum (the rows of one chunk are split over kRows warps, each summing its rows
// in order, and the warps' sums are added in warp order).
// Fast path (C a multiple of kVec<T>, dout and inp 16-byte aligned): each lane reads one 16-byte vector of a row
// (8 columns of a 16-bit dtype, 4 of float32), so a warp covers 32 * kVec<T> columns (256 / 128) of a row with
// 512-byte loads. Otherwise the scalar kernel (32 columns per block, 2-byte loads for 16-bit dtypes).
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr int kCols = 32, kRows = 8;

template <typename T>
__global__ void layernorm_backward_weights_vec_kernel(float* dw_part, float* db_part, const T* dout, const T* inp,
                                                      const float* mean, const float* rstd, int64_t N, int64_t C,
                                                      int64_t rows_per_chunk) {
  constexpr int V = kVec<T>;
  constexpr int kTile = 32 * V;          // columns per block
  __shared__ float sw[kRows][kTile];     // per-warp sums of dout * xhat
  __shared__ float sb[kRows][kTile];     // per-warp sums of dout
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t c0 = blockIdx.x * (int64_t)kTile;  // first column of the tile
  const int64_t v = c0 / V + lane;                   // this lane's vector index within a row
  const bool active = (v + 1) * V <= C;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * rows_per_chunk;
  const int64_t r1 = min(N, r0 + rows_per_chunk);
  float aw[V], ab[V];
#pragma unroll
  for (int j = 0; j < V; ++j) aw[j] = ab[j] = 0.0f;
  if (active) {
    const int64_t nvec = C / V;  // vectors per row
#pragma unroll 4
    for (int64_t r = r0 + warp; r < r1; r += kRows) {
      float fdy[V], fx[V];
      unpack<T>(load_vec(dout, r * nvec + v), fdy);
      unpack<T>(load_vec(inp, r * nvec + v), fx);
      const float m = mean[r], s = rstd[r];
#pragma unroll
      for (int j = 0; j < V; ++j) {
        aw[j] += fdy[j] * ((fx[j] - m) * s);
        ab[j] += fdy[j];
      }
    }
  }
#pragma unroll
  for (int j = 0; j < V; ++j) {
    sw[warp][lane * V + j] = aw[j];
    sb[warp][lane * V + j] = ab[j];
  }
  __syncthreads();
  for (int t = threadIdx.x; t < kTile; t += blockDim.x) {
    const int64_t c = c0 + t;
    if (c >= C) break;
    float w = 0.0f, b = 0.0f;
    for (int i = 0; i < kRows; ++i) {
      w += sw[i][t];
      b += sb[i][t];
    }
    dw_part[chunk * C + c] = w;
    db_part[chunk * C + c] = b;
  }
}

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

template <typename T>
cudaError_t launch(float* dw_part, float* db_part, const T* dout, const T* inp, const float* mean, const float* rstd,
                   int64_t N, int64_t C, int chunks, cudaStream_t s) {
  int64_t rows_per_chunk = (N + chunks - 1) / chunks;
  if (rows_per_chunk < 1) rows_per_chunk = 1;
  if (C % kVec<T> == 0 && is_vec_aligned(dout) && is_vec_aligned(inp)) {
    const int64_t tile = 32 * kVec<T>;
    const dim3 grid((unsigned)((C + tile - 1) / tile), (unsigned)chunks);
    layernorm_backward_weights_vec_kernel<T>
        <<<grid, 32 * kRows, 0, s>>>(dw_part, db_part, dout, inp, mean, rstd, N, C, rows_per_chunk);
  } else {
    const dim3 grid((unsigned)((C + kCols - 1) / kCols), (unsigned)chunks);
    layernorm_backward_weights_kernel<T>
        <<<grid, dim3(kCols, kRows), 0, s>>>(dw_part, db_part, dout, inp, mean, rstd, N, C, rows_per_chunk);
  }
  return cudaGetLastError();
}

}  // namespace

int column_chunks(int64_t M) {
  // ~64 rows per chunk, at most 256 chunks (GPT-2: N = 16384 rows -> 256 chunks x 3 column tiles of C = 768 in
  // bf16).
  int64_t chunks = (M + 63) / 64;
  if (chunks > 256) chunks = 256;
  return (int)(chunks < 1 ? 1 : chunks);
}

cudaError_t layernorm_backward_weights(int dtype, float* dw_part, float* db_part, const void* dout, const void* inp,
                                       const float* mean, const float* rstd, int64_t N, int64_t C, int chunks,
                                       cudaStream_t s) {
  if (C == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E,
                     return launch<E>(dw_part, db_part, static_cast<const E*>(dout), static_cast<const E*>(inp), mean,
                                      rstd, N, C, chunks, s));
  return cudaSuccess;
}

}  // namespace ops

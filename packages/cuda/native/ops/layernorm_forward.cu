// LayerNorm forward (llm.c's layernorm_forward): out (N, C) = (inp - mean) * rstd * w + b, rstd = 1 / sqrt(var +
// 1e-5) with the biased variance; writes mean (N) and rstd (N) in float32 for the backward.
// One warp per row, float32 throughout, two passes over the row (mean, then the centred sum of squares: no
// E[x^2] - mean^2 cancellation when the mean is large), then the normalised row, rounded once.
// Fast path (C a multiple of kVec<T>, 16-byte aligned buffers, C <= 32 * 8 * kVec<T>: 2048 for 16-bit dtypes, 1024
// for float32): the row is read once with 16-byte loads into registers (kChunks vectors per lane) and both passes
// and the output run from there. Otherwise the scalar kernel, which reads the row from memory in each pass.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr int kRowsPerBlock = 8;  // warps per block, one row each
constexpr int kMaxChunks = 8;     // 16-byte vectors per lane held in registers by the fast path

template <typename T, int kChunks>
__global__ void layernorm_forward_vec_kernel(T* out, float* mean_out, float* rstd_out, const T* inp, const T* w,
                                             const T* b, int64_t N, int C) {
  constexpr int V = kVec<T>;
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * (int64_t)kRowsPerBlock + threadIdx.x / 32;
  if (row >= N) return;
  const int nvec = C / V;
  const T* x = inp + row * C;  // (C)
  int4 xv[kChunks];            // this lane's vectors lane, lane + 32, ... of the row
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    const int i = lane + 32 * k;
    if (i < nvec) {
      xv[k] = load_vec(x, i);
      float f[V];
      unpack<T>(xv[k], f);
#pragma unroll
      for (int j = 0; j < V; ++j) sum += f[j];
    }
  }
  const float mean = warp_sum(sum) / (float)C;
  float sq = 0.0f;
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    if (lane + 32 * k < nvec) {
      float f[V];
      unpack<T>(xv[k], f);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float d = f[j] - mean;
        sq += d * d;
      }
    }
  }
  const float rstd = 1.0f / sqrtf(warp_sum(sq) / (float)C + 1e-5f);
  T* o = out + row * C;  // (C)
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    const int i = lane + 32 * k;
    if (i < nvec) {
      float f[V], fw[V], fb[V];
      unpack<T>(xv[k], f);
      unpack<T>(load_vec(w, i), fw);
      unpack<T>(load_vec(b, i), fb);
#pragma unroll
      for (int j = 0; j < V; ++j) f[j] = (f[j] - mean) * rstd * fw[j] + fb[j];
      store_vec(o, i, pack<T>(f));
    }
  }
  if (lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

template <typename T>
__global__ void layernorm_forward_kernel(T* out, float* mean_out, float* rstd_out, const T* inp, const T* w,
                                         const T* b, int64_t N, int64_t C) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= N) return;
  const T* x = inp + row * C;
  float sum = 0.0f;
  for (int64_t c = lane; c < C; c += 32) sum += load(x + c);
  const float mean = warp_sum(sum) / (float)C;
  float sq = 0.0f;
  for (int64_t c = lane; c < C; c += 32) {
    const float d = load(x + c) - mean;
    sq += d * d;
  }
  const float rstd = 1.0f / sqrtf(warp_sum(sq) / (float)C + 1e-5f);
  T* o = out + row * C;
  for (int64_t c = lane; c < C; c += 32) store(o + c, (load(x + c) - mean) * rstd * load(w + c) + load(b + c));
  if (lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

template <typename T>
cudaError_t launch(T* out, float* mean, float* rstd, const T* inp, const T* w, const T* b, int64_t N, int64_t C,
                   cudaStream_t s) {
  const unsigned grid = (unsigned)((N + kRowsPerBlock - 1) / kRowsPerBlock);
  const int64_t nvec = C / kVec<T>;
  const bool vec = C % kVec<T> == 0 && nvec <= 32 * kMaxChunks && is_vec_aligned(out) && is_vec_aligned(inp) &&
                   is_vec_aligned(w) && is_vec_aligned(b);
  if (!vec) {
    layernorm_forward_kernel<T><<<grid, 32 * kRowsPerBlock, 0, s>>>(out, mean, rstd, inp, w, b, N, C);
  } else if (nvec <= 32) {
    layernorm_forward_vec_kernel<T, 1><<<grid, 32 * kRowsPerBlock, 0, s>>>(out, mean, rstd, inp, w, b, N, (int)C);
  } else if (nvec <= 64) {
    layernorm_forward_vec_kernel<T, 2><<<grid, 32 * kRowsPerBlock, 0, s>>>(out, mean, rstd, inp, w, b, N, (int)C);
  } else if (nvec <= 128) {
    layernorm_forward_vec_kernel<T, 4><<<grid, 32 * kRowsPerBlock, 0, s>>>(out, mean, rstd, inp, w, b, N, (int)C);
  } else {
    layernorm_forward_vec_kernel<T, 8><<<grid, 32 * kRowsPerBlock, 0, s>>>(out, mean, rstd, inp, w, b, N, (int)C);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t layernorm_forward(int dtype, void* out, float* mean, float* rstd, const void* inp, const void* w,
                              const void* b, int64_t N, int64_t C, cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E,
                     return launch<E>(static_cast<E*>(out), mean, rstd, static_cast<const E*>(inp),
                                      static_cast<const E*>(w), static_cast<const E*>(b), N, C, s));
  return cudaSuccess;
}

}  // namespace ops

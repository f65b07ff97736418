// LayerNorm forward (llm.c's layernorm_forward): out (N, C) = (inp - mean) * rstd * w + b, rstd = 1 / sqrt(var +
// 1e-5) with the biased variance; writes mean (N) and rstd (N) in float32 for the backward.
// One warp per row, float32 throughout, two passes over the row (mean, then the centred sum of squares: no
// E[x^2] - mean^2 cancellation when the mean is large), and the normalised row written in a third pass.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

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

}  // namespace

cudaError_t layernorm_forward(int dtype, void* out, float* mean, float* rstd, const void* inp, const void* w,
                              const void* b, int64_t N, int64_t C, cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  const int rows_per_block = 8;
  const unsigned grid = (unsigned)((N + rows_per_block - 1) / rows_per_block);
  OPS_DISPATCH_FLOAT(dtype, E, layernorm_forward_kernel<E><<<grid, 32 * rows_per_block, 0, s>>>(
      static_cast<E*>(out), mean, rstd, static_cast<const E*>(inp), static_cast<const E*>(w),
      static_cast<const E*>(b), N, C));
  return cudaGetLastError();
}

}  // namespace ops

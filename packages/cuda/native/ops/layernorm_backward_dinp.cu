// LayerNorm backward, input gradient (llm.c's layernorm_backward, dinp part): per row, with xhat = (inp - mean)
// rstd and dnorm = dout * w,
//   dinp += (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)) * rstd.
// One warp per row (N, C), float32, one rounding of the accumulated dinp. The weight gradients are
// layernorm_backward_weights.cu (a deterministic two-pass column sum).
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

template <typename T>
__global__ void layernorm_backward_dinp_kernel(T* dinp, const T* dout, const T* inp, const T* w, const float* mean,
                                               const float* rstd, int64_t N, int64_t C) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= N) return;
  const T* x = inp + row * C;
  const T* dy = dout + row * C;
  const float m = mean[row], s = rstd[row];
  float dnorm_sum = 0.0f, dnorm_xhat_sum = 0.0f;
  for (int64_t c = lane; c < C; c += 32) {
    const float xhat = (load(x + c) - m) * s;
    const float dnorm = load(dy + c) * load(w + c);
    dnorm_sum += dnorm;
    dnorm_xhat_sum += dnorm * xhat;
  }
  const float dnorm_mean = warp_sum(dnorm_sum) / (float)C;
  const float dnorm_xhat_mean = warp_sum(dnorm_xhat_sum) / (float)C;
  T* dx = dinp + row * C;
  for (int64_t c = lane; c < C; c += 32) {
    const float xhat = (load(x + c) - m) * s;
    const float dnorm = load(dy + c) * load(w + c);
    store(dx + c, load(dx + c) + (dnorm - dnorm_mean - xhat * dnorm_xhat_mean) * s);
  }
}

}  // namespace

cudaError_t layernorm_backward_dinp(int dtype, void* dinp, const void* dout, const void* inp, const void* w,
                                    const float* mean, const float* rstd, int64_t N, int64_t C, cudaStream_t s) {
  if (N == 0 || C == 0) return cudaSuccess;
  const int rows_per_block = 8;
  const unsigned grid = (unsigned)((N + rows_per_block - 1) / rows_per_block);
  OPS_DISPATCH_FLOAT(dtype, E, layernorm_backward_dinp_kernel<E><<<grid, 32 * rows_per_block, 0, s>>>(
      static_cast<E*>(dinp), static_cast<const E*>(dout), static_cast<const E*>(inp), static_cast<const E*>(w),
      mean, rstd, N, C));
  return cudaGetLastError();
}

}  // namespace ops

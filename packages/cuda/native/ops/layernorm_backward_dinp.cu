// LayerNorm backward, input gradient (llm.c's layernorm_backward, dinp part): per row, with xhat = (inp - mean)
// rstd and dnorm = dout * w,
//   dinp += (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)) * rstd.
// One warp per row (N, C), float32, one rounding of the accumulated dinp. The weight gradients are
// layernorm_backward_weights.cu (a deterministic two-pass column sum).
// Fast path (C a multiple of kVec<T>, 16-byte aligned buffers, C <= 32 * 8 * kVec<T>): inp and dout are read once
// with 16-byte loads into registers, dinp read and written once with 16-byte accesses. Otherwise the scalar kernel
// (inp and dout read in both passes).
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr int kRowsPerBlock = 8;  // warps per block, one row each
constexpr int kMaxChunks = 8;     // 16-byte vectors of inp and of dout per lane held in registers by the fast path

template <typename T, int kChunks>
__global__ void layernorm_backward_dinp_vec_kernel(T* dinp, const T* dout, const T* inp, const T* w,
                                                   const float* mean, const float* rstd, int64_t N, int C) {
  constexpr int V = kVec<T>;
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * (int64_t)kRowsPerBlock + threadIdx.x / 32;
  if (row >= N) return;
  const int nvec = C / V;
  const T* x = inp + row * C;    // (C)
  const T* dy = dout + row * C;  // (C)
  const float m = mean[row], s = rstd[row];
  int4 xv[kChunks], dyv[kChunks];  // this lane's vectors lane, lane + 32, ... of the row
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    const int i = lane + 32 * k;
    if (i < nvec) {
      xv[k] = load_vec(x, i);
      dyv[k] = load_vec(dy, i);
    }
  }
  float dnorm_sum = 0.0f, dnorm_xhat_sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    const int i = lane + 32 * k;
    if (i < nvec) {
      float fx[V], fdy[V], fw[V];
      unpack<T>(xv[k], fx);
      unpack<T>(dyv[k], fdy);
      unpack<T>(load_vec(w, i), fw);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float xhat = (fx[j] - m) * s;
        const float dnorm = fdy[j] * fw[j];
        dnorm_sum += dnorm;
        dnorm_xhat_sum += dnorm * xhat;
      }
    }
  }
  const float dnorm_mean = warp_sum(dnorm_sum) / (float)C;
  const float dnorm_xhat_mean = warp_sum(dnorm_xhat_sum) / (float)C;
  T* dx = dinp + row * C;  // (C)
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    const int i = lane + 32 * k;
    if (i < nvec) {
      float fx[V], fdy[V], fw[V], fdx[V];
      unpack<T>(xv[k], fx);
      unpack<T>(dyv[k], fdy);
      unpack<T>(load_vec(w, i), fw);
      unpack<T>(load_vec(dx, i), fdx);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float xhat = (fx[j] - m) * s;
        const float dnorm = fdy[j] * fw[j];
        fdx[j] += (dnorm - dnorm_mean - xhat * dnorm_xhat_mean) * s;
      }
      store_vec(dx, i, pack<T>(fdx));
    }
  }
}

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

template <typename T>
cudaError_t launch(T* dinp, const T* dout, const T* inp, const T* w, const float* mean, const float* rstd, int64_t N,
                   int64_t C, cudaStream_t s) {
  const unsigned grid = (unsigned)((N + kRowsPerBlock - 1) / kRowsPerBlock);
  const int64_t nvec = C / kVec<T>;
  const bool vec = C % kVec<T> == 0 && nvec <= 32 * kMaxChunks && is_vec_aligned(dinp) && is_vec_aligned(dout) &&
                   is_vec_aligned(inp) && is_vec_aligned(w);
  const int c = (int)C;
  if (!vec) {
    layernorm_backward_dinp_kernel<T><<<grid, 32 * kRowsPerBlock, 0, s>>>(dinp, dout, inp, w, mean, rstd, N, C);
  } else if (nvec <= 32) {
    layernorm_backward_dinp_vec_kernel<T, 1><<<grid, 32 * kRowsPerBlock, 0, s>>>(dinp, dout, inp, w, mean, rstd, N, c);
  } else if (nvec <= 64) {
    layernorm_backward_dinp_vec_kernel<T, 2><<<grid, 32 * kRowsPerBlock, 0, s>>>(dinp, dout, inp, w, mean, rstd, N, c);
  } else if (nvec <= 128) {
    layernorm_backward_dinp_vec_kernel<T, 4><<<grid, 32 * kRowsPerBlock, 0, s>>>(dinp, dout, inp, w, mean, rstd, N, c);
  } else {
    layernorm_backward_dinp_vec_kernel<T, 8><<<grid, 32 * kRowsPerBlock, 0, s>>>(dinp, dout, inp, w, mean, rstd, N, c);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t layernorm_backward_dinp(int dtype, void* dinp, const void* dout, const void* inp, const void* w,
                                    const float* mean, const float* rstd, int64_t N, int64_t C, cudaStream_t s) {
  if (N == 0 || C == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E,
                     return launch<E>(static_cast<E*>(dinp), static_cast<const E*>(dout), static_cast<const E*>(inp),
                                      static_cast<const E*>(w), mean, rstd, N, C, s));
  return cudaSuccess;
}

}  // namespace ops

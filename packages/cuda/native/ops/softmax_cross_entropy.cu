// Fused softmax cross-entropy over the vocabulary (llm.c's fused_classifier): per row of logits (N, V) with int32
// target t,
//   loss = log sum_j exp(x_j - max) + max - x_t,   dlogits_j = (exp(x_j - max) / sum - [j == t]) * scale.
// One block per row: a block max, a block sum of exp in float32 (fixed order: deterministic), the loss, then the
// gradient written over the row (each element is read before the same thread writes it, so dlogits may alias
// logits). No (N, V) float32 probabilities are kept: the softmax is recomputed while writing dlogits.
// t < 0 is ignored (loss 0, zero gradient row); t >= V cannot be reported without a host sync, so the row's loss
// and gradient become NaN.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr int kThreads = 512;

template <typename T, typename L>
__global__ void softmax_cross_entropy_kernel(L* losses, T* dlogits, const T* logits, const int32_t* targets,
                                             int64_t N, int64_t V, float scale) {
  __shared__ float shared[32];
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    const T* x = logits + row * V;
    T* dx = dlogits ? dlogits + row * V : nullptr;
    const int32_t t = targets[row];
    if (t < 0 || t >= V) {
      const float fill = t < 0 ? 0.0f : __int_as_float(0x7fc00000);
      if (threadIdx.x == 0) store(losses + row, fill);
      if (dx)
        for (int64_t j = threadIdx.x; j < V; j += blockDim.x) store(dx + j, fill);
      continue;
    }
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, load(x + j));
    // block max
    m = warp_max(m);
    if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = m;
    __syncthreads();
    m = threadIdx.x < blockDim.x / 32 ? shared[threadIdx.x] : -INFINITY;
    if (threadIdx.x < 32) m = warp_max(m);
    if (threadIdx.x == 0) shared[0] = m;
    __syncthreads();
    m = shared[0];
    __syncthreads();
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) s += expf(load(x + j) - m);
    s = block_sum(s, shared);
    const float xt = load(x + t);  // read before any thread overwrites the row
    __syncthreads();
    if (threadIdx.x == 0) store(losses + row, logf(s) + (m - xt));
    if (dx) {
      const float inv = 1.0f / s;
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
        const float p = expf(load(x + j) - m) * inv;
        store(dx + j, (p - (j == t ? 1.0f : 0.0f)) * scale);
      }
    }
    __syncthreads();
  }
}

}  // namespace

cudaError_t softmax_cross_entropy(int dtype, int loss_dtype, void* losses, void* dlogits, const void* logits,
                                  const int32_t* targets, int64_t N, int64_t V, float scale, cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  const unsigned grid = (unsigned)(N < 65535LL * 16 ? N : 65535LL * 16);
  if (loss_dtype == 0) {
    OPS_DISPATCH_FLOAT(dtype, E, softmax_cross_entropy_kernel<E, float><<<grid, kThreads, 0, s>>>(
        static_cast<float*>(losses), static_cast<E*>(dlogits), static_cast<const E*>(logits), targets, N, V, scale));
  } else {
    if (loss_dtype != dtype) return cudaErrorInvalidValue;
    OPS_DISPATCH_FLOAT(dtype, E, softmax_cross_entropy_kernel<E, E><<<grid, kThreads, 0, s>>>(
        static_cast<E*>(losses), static_cast<E*>(dlogits), static_cast<const E*>(logits), targets, N, V, scale));
  }
  return cudaGetLastError();
}

}  // namespace ops

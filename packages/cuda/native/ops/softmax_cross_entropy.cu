// Fused softmax cross-entropy over the vocabulary (llm.c's fused_classifier): per row of logits (N, Vp) (classes
// [0, V); columns [V, Vp) are the padded vocabulary, never read) with int32 target t,
//   loss = log sum_j exp(x_j - max) + max - x_t,   dlogits_j = (exp(x_j - max) / sum - [j == t]) * scale,
// and dlogits_j = 0 for j in [V, Vp).
// One block per row. Pass 1 reads the row once with an online softmax (each thread keeps its running max m and
// sum s of exp(x - m), rescaling s when m grows; the block merges the (m, s) pairs in a fixed order, so the result
// is deterministic). Pass 2 reads the row again (a 50304 x bf16 row is 100 KB: it is still in L2) and writes the
// gradient; each element is read before the same thread writes it, so dlogits may alias logits. No (N, V) float32
// probabilities are kept. Rows of 16-byte vectors (Vp a multiple of kVec<T>, 16-byte aligned pointers) take the
// vector kernel, anything else the scalar one; both compute the same float32 expressions.
// t < 0 is ignored (loss 0, zero gradient row); t >= V cannot be reported without a host sync, so the row's loss
// and gradient become NaN.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr int kThreads = 512;

// Fold x into a running (m, s): s sums exp(x_j - m) over the values seen.
__device__ __forceinline__ void online_add(float& m, float& s, float x) {
  if (x > m) {
    s = s * expf(m - x) + 1.0f;  // m = -inf at the start: expf(-inf) = 0
    m = x;
  } else {
    s += expf(x - m);
  }
}
// Merge (m2, s2) into (m, s).
__device__ __forceinline__ void online_merge(float& m, float& s, float m2, float s2) {
  const float mm = fmaxf(m, m2);
  if (mm == -INFINITY) return;  // both empty
  s = s * expf(m - mm) + s2 * expf(m2 - mm);
  m = mm;
}
// Block-wide merge of every thread's (m, s) in a fixed order; every thread gets the result.
__device__ __forceinline__ void block_online(float& m, float& s, float* shm, float* shs) {
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    online_merge(m, s, m2, s2);
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (lane == 0) {
    shm[warp] = m;
    shs[warp] = s;
  }
  __syncthreads();
  m = lane < warps ? shm[lane] : -INFINITY;
  s = lane < warps ? shs[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    online_merge(m, s, m2, s2);
  }
  __syncthreads();
}

// Scalar rows: any Vp, any alignment.
template <typename T, typename L>
__global__ void softmax_cross_entropy_kernel(L* losses, T* dlogits, const T* logits, const int32_t* targets,
                                             int64_t N, int64_t V, int64_t Vp, float scale) {
  __shared__ float shm[32], shs[32];
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    const T* x = logits + row * Vp;
    T* dx = dlogits ? dlogits + row * Vp : nullptr;
    const int32_t t = targets[row];
    if (t < 0 || t >= V) {
      const float fill = t < 0 ? 0.0f : __int_as_float(0x7fc00000);
      if (threadIdx.x == 0) store(losses + row, fill);
      if (dx)
        for (int64_t j = threadIdx.x; j < Vp; j += blockDim.x) store(dx + j, j < V ? fill : 0.0f);
      continue;
    }
    float m = -INFINITY, s = 0.0f;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) online_add(m, s, load(x + j));
    const float xt = load(x + t);  // read before the barrier that precedes any write to the row
    block_online(m, s, shm, shs);
    if (threadIdx.x == 0) store(losses + row, logf(s) + (m - xt));
    if (dx) {
      const float inv = 1.0f / s;
      for (int64_t j = threadIdx.x; j < Vp; j += blockDim.x) {
        const float p = j < V ? expf(load(x + j) - m) * inv : 0.0f;
        store(dx + j, j < V ? (p - (j == t ? 1.0f : 0.0f)) * scale : 0.0f);
      }
    }
    __syncthreads();
  }
}

// 16-byte vector rows: Vp a multiple of kVec<T>, logits and dlogits 16-byte aligned.
template <typename T, typename L>
__global__ void softmax_cross_entropy_vec_kernel(L* losses, T* dlogits, const T* logits, const int32_t* targets,
                                                 int64_t N, int64_t V, int64_t Vp, float scale) {
  constexpr int K = kVec<T>;
  __shared__ float shm[32], shs[32];
  const int64_t nvec = Vp / K;
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    const T* x = logits + row * Vp;
    T* dx = dlogits ? dlogits + row * Vp : nullptr;
    const int32_t t = targets[row];
    if (t < 0 || t >= V) {
      const float fill = t < 0 ? 0.0f : __int_as_float(0x7fc00000);
      if (threadIdx.x == 0) store(losses + row, fill);
      if (dx)
        for (int64_t i = threadIdx.x; i < nvec; i += blockDim.x) {
          float f[K];
#pragma unroll
          for (int k = 0; k < K; ++k) f[k] = i * K + k < V ? fill : 0.0f;
          store_vec(dx, i, pack<T>(f));
        }
      continue;
    }
    float m = -INFINITY, s = 0.0f;
    for (int64_t i = threadIdx.x; i < nvec; i += blockDim.x) {
      float f[K];
      unpack<T>(load_vec(x, i), f);
#pragma unroll
      for (int k = 0; k < K; ++k)
        if (i * K + k < V) online_add(m, s, f[k]);
    }
    const float xt = load(x + t);
    block_online(m, s, shm, shs);
    if (threadIdx.x == 0) store(losses + row, logf(s) + (m - xt));
    if (dx) {
      const float inv = 1.0f / s;
      for (int64_t i = threadIdx.x; i < nvec; i += blockDim.x) {
        float f[K];
        unpack<T>(load_vec(x, i), f);
#pragma unroll
        for (int k = 0; k < K; ++k) {
          const int64_t j = i * K + k;
          f[k] = j < V ? (expf(f[k] - m) * inv - (j == t ? 1.0f : 0.0f)) * scale : 0.0f;
        }
        store_vec(dx, i, pack<T>(f));
      }
    }
    __syncthreads();
  }
}

template <typename T, typename L>
void launch(L* losses, T* dlogits, const T* logits, const int32_t* targets, int64_t N, int64_t V, int64_t Vp,
            float scale, cudaStream_t s) {
  const unsigned grid = (unsigned)(N < 65535LL * 16 ? N : 65535LL * 16);
  const bool vec = Vp % kVec<T> == 0 && is_vec_aligned(logits) && (!dlogits || is_vec_aligned(dlogits));
  if (vec)
    softmax_cross_entropy_vec_kernel<T, L><<<grid, kThreads, 0, s>>>(losses, dlogits, logits, targets, N, V, Vp,
                                                                     scale);
  else
    softmax_cross_entropy_kernel<T, L><<<grid, kThreads, 0, s>>>(losses, dlogits, logits, targets, N, V, Vp, scale);
}

}  // namespace

cudaError_t softmax_cross_entropy(int dtype, int loss_dtype, void* losses, void* dlogits, const void* logits,
                                  const int32_t* targets, int64_t N, int64_t V, int64_t Vp, float scale,
                                  cudaStream_t s) {
  if (N == 0) return cudaSuccess;
  if (Vp < V) return cudaErrorInvalidValue;
  if (loss_dtype == 0) {
    OPS_DISPATCH_FLOAT(dtype, E, launch<E, float>(static_cast<float*>(losses), static_cast<E*>(dlogits),
                                                  static_cast<const E*>(logits), targets, N, V, Vp, scale, s));
  } else {
    if (loss_dtype != dtype) return cudaErrorInvalidValue;
    OPS_DISPATCH_FLOAT(dtype, E, launch<E, E>(static_cast<E*>(losses), static_cast<E*>(dlogits),
                                              static_cast<const E*>(logits), targets, N, V, Vp, scale, s));
  }
  return cudaGetLastError();
}

}  // namespace ops

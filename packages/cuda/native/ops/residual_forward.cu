// Residual connection (llm.c's residual_forward): out = a + b, n elements, float32 add, one rounding; out may
// alias a or b (each thread reads both before it writes).
// Fast path (all pointers 16-byte aligned): grid-stride over 16-byte vectors (kVec<T> elements), the last
// n % kVec<T> elements one per thread. Otherwise the scalar grid-stride kernel.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

template <typename T>
__global__ void residual_forward_vec_kernel(T* out, const T* a, const T* b, int64_t n) {
  constexpr int V = kVec<T>;
  const int64_t nvec = n / V;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  for (int64_t i = tid; i < nvec; i += stride) {
    float fa[V], fb[V];
    unpack<T>(load_vec(a, i), fa);
    unpack<T>(load_vec(b, i), fb);
#pragma unroll
    for (int j = 0; j < V; ++j) fa[j] += fb[j];
    store_vec(out, i, pack<T>(fa));
  }
  for (int64_t i = nvec * V + tid; i < n; i += stride) store(out + i, load(a + i) + load(b + i));
}

template <typename T>
__global__ void residual_forward_kernel(T* out, const T* a, const T* b, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    store(out + i, load(a + i) + load(b + i));
}

template <typename T>
cudaError_t launch(T* out, const T* a, const T* b, int64_t n, cudaStream_t s) {
  if (is_vec_aligned(out) && is_vec_aligned(a) && is_vec_aligned(b)) {
    const int64_t nvec = n / kVec<T>;
    residual_forward_vec_kernel<T><<<grid_for(nvec > 0 ? nvec : 1, 256), 256, 0, s>>>(out, a, b, n);
  } else {
    residual_forward_kernel<T><<<grid_for(n, 256), 256, 0, s>>>(out, a, b, n);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t residual_forward(int dtype, void* out, const void* a, const void* b, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E,
                     return launch<E>(static_cast<E*>(out), static_cast<const E*>(a), static_cast<const E*>(b), n, s));
  return cudaSuccess;
}

}  // namespace ops

// GELU, tanh approximation (GPT-2's; llm.c's gelu_forward): out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
// n elements, float32 math (tanhf, not the approximate tanh.approx), one rounding; out may alias inp.
// Fast path (both pointers 16-byte aligned): grid-stride over 16-byte vectors (kVec<T> elements), the last
// n % kVec<T> elements one per thread. Otherwise the scalar grid-stride kernel.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr float kScale = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kCubic = 0.044715f;

__device__ __forceinline__ float gelu(float x) { return 0.5f * x * (1.0f + tanhf(kScale * (x + kCubic * x * x * x))); }

template <typename T>
__global__ void gelu_forward_vec_kernel(T* out, const T* inp, int64_t n) {
  constexpr int V = kVec<T>;
  const int64_t nvec = n / V;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  for (int64_t i = tid; i < nvec; i += stride) {
    float f[V];
    unpack<T>(load_vec(inp, i), f);
#pragma unroll
    for (int j = 0; j < V; ++j) f[j] = gelu(f[j]);
    store_vec(out, i, pack<T>(f));
  }
  for (int64_t i = nvec * V + tid; i < n; i += stride) store(out + i, gelu(load(inp + i)));
}

template <typename T>
__global__ void gelu_forward_kernel(T* out, const T* inp, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    store(out + i, gelu(load(inp + i)));
}

template <typename T>
cudaError_t launch(T* out, const T* inp, int64_t n, cudaStream_t s) {
  if (is_vec_aligned(out) && is_vec_aligned(inp)) {
    const int64_t nvec = n / kVec<T>;
    gelu_forward_vec_kernel<T><<<grid_for(nvec > 0 ? nvec : 1, 256), 256, 0, s>>>(out, inp, n);
  } else {
    gelu_forward_kernel<T><<<grid_for(n, 256), 256, 0, s>>>(out, inp, n);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t gelu_forward(int dtype, void* out, const void* inp, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E, return launch<E>(static_cast<E*>(out), static_cast<const E*>(inp), n, s));
  return cudaSuccess;
}

}  // namespace ops

// GELU (tanh) backward (llm.c's gelu_backward): dinp = dout * d/dx [0.5 x (1 + tanh(u))], u = sqrt(2/pi) (x +
// 0.044715 x^3):
//   0.5 (1 + tanh u) + 0.5 x sech^2(u) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
// sech^2 as 1 / cosh^2 (no 1 - tanh^2 cancellation); float32 math, one rounding; dinp may alias dout.
// Fast path (all pointers 16-byte aligned): grid-stride over 16-byte vectors (kVec<T> elements), the last
// n % kVec<T> elements one per thread. Otherwise the scalar grid-stride kernel.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr float kScale = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kCubic = 0.044715f;

// d/dx GELU_tanh(x)
__device__ __forceinline__ float gelu_grad(float x) {
  const float u = kScale * (x + kCubic * x * x * x);
  const float ch = coshf(u);
  const float sech2 = 1.0f / (ch * ch);
  return 0.5f * (1.0f + tanhf(u)) + 0.5f * x * sech2 * kScale * (1.0f + 3.0f * kCubic * x * x);
}

template <typename T>
__global__ void gelu_backward_vec_kernel(T* dinp, const T* inp, const T* dout, int64_t n) {
  constexpr int V = kVec<T>;
  const int64_t nvec = n / V;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  for (int64_t i = tid; i < nvec; i += stride) {
    float fx[V], fdy[V];
    unpack<T>(load_vec(inp, i), fx);
    unpack<T>(load_vec(dout, i), fdy);
#pragma unroll
    for (int j = 0; j < V; ++j) fx[j] = gelu_grad(fx[j]) * fdy[j];
    store_vec(dinp, i, pack<T>(fx));
  }
  for (int64_t i = nvec * V + tid; i < n; i += stride) store(dinp + i, gelu_grad(load(inp + i)) * load(dout + i));
}

template <typename T>
__global__ void gelu_backward_kernel(T* dinp, const T* inp, const T* dout, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    store(dinp + i, gelu_grad(load(inp + i)) * load(dout + i));
}

template <typename T>
cudaError_t launch(T* dinp, const T* inp, const T* dout, int64_t n, cudaStream_t s) {
  if (is_vec_aligned(dinp) && is_vec_aligned(inp) && is_vec_aligned(dout)) {
    const int64_t nvec = n / kVec<T>;
    gelu_backward_vec_kernel<T><<<grid_for(nvec > 0 ? nvec : 1, 256), 256, 0, s>>>(dinp, inp, dout, n);
  } else {
    gelu_backward_kernel<T><<<grid_for(n, 256), 256, 0, s>>>(dinp, inp, dout, n);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t gelu_backward(int dtype, void* dinp, const void* inp, const void* dout, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E,
                     return launch<E>(static_cast<E*>(dinp), static_cast<const E*>(inp), static_cast<const E*>(dout),
                                      n, s));
  return cudaSuccess;
}

}  // namespace ops

// GELU (tanh) backward (llm.c's gelu_backward): dinp = dout * d/dx [0.5 x (1 + tanh(u))], u = sqrt(2/pi) (x +
// 0.044715 x^3):
//   0.5 (1 + tanh u) + 0.5 x sech^2(u) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
// sech^2 as 1 / cosh^2 (no 1 - tanh^2 cancellation); float32 math, one rounding; dinp may alias dout.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr float kScale = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kCubic = 0.044715f;

template <typename T>
__global__ void gelu_backward_kernel(T* dinp, const T* inp, const T* dout, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float x = load(inp + i);
    const float u = kScale * (x + kCubic * x * x * x);
    const float ch = coshf(u);
    const float sech2 = 1.0f / (ch * ch);
    const float local = 0.5f * (1.0f + tanhf(u)) + 0.5f * x * sech2 * kScale * (1.0f + 3.0f * kCubic * x * x);
    store(dinp + i, local * load(dout + i));
  }
}

}  // namespace

cudaError_t gelu_backward(int dtype, void* dinp, const void* inp, const void* dout, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E, gelu_backward_kernel<E><<<grid_for(n, 256), 256, 0, s>>>(
      static_cast<E*>(dinp), static_cast<const E*>(inp), static_cast<const E*>(dout), n));
  return cudaGetLastError();
}

}  // namespace ops

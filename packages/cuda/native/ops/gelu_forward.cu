// GELU, tanh approximation (GPT-2's; llm.c's gelu_forward): out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
// n elements, float32 math (tanhf, not the approximate tanh.approx), one rounding; out may alias inp.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr float kScale = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kCubic = 0.044715f;

template <typename T>
__global__ void gelu_forward_kernel(T* out, const T* inp, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float x = load(inp + i);
    store(out + i, 0.5f * x * (1.0f + tanhf(kScale * (x + kCubic * x * x * x))));
  }
}

}  // namespace

cudaError_t gelu_forward(int dtype, void* out, const void* inp, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E, gelu_forward_kernel<E><<<grid_for(n, 256), 256, 0, s>>>(
      static_cast<E*>(out), static_cast<const E*>(inp), n));
  return cudaGetLastError();
}

}  // namespace ops

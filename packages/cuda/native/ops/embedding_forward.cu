// Embedding forward (llm.c's encoder_forward): out (B*T, C) = wte[tokens[b, t]] (V, C) + wpe[t] (maxT, C).
// One thread per output element, the sum in float32, one rounding. A token outside [0, V) cannot be reported
// from here without a host sync: its row becomes NaN, so the loss shows it.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

template <typename T>
__global__ void embedding_forward_kernel(T* out, const int32_t* tokens, const T* wte, const T* wpe, int64_t BT,
                                         int64_t T_, int64_t C, int64_t V) {
  const int64_t n = BT * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t bt = i / C, c = i % C, t = bt % T_;
    const int32_t tok = tokens[bt];
    const float x = (tok >= 0 && tok < V) ? load(wte + tok * C + c) + load(wpe + t * C + c) : __int_as_float(0x7fc00000);
    store(out + i, x);
  }
}

}  // namespace

cudaError_t embedding_forward(int dtype, void* out, const int32_t* tokens, const void* wte, const void* wpe, int64_t B,
                              int64_t T_, int64_t C, int64_t V, cudaStream_t s) {
  const int64_t n = B * T_ * C;
  if (n == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(dtype, E, embedding_forward_kernel<E><<<grid_for(n, 256), 256, 0, s>>>(
      static_cast<E*>(out), tokens, static_cast<const E*>(wte), static_cast<const E*>(wpe), B * T_, T_, C, V));
  return cudaGetLastError();
}

}  // namespace ops

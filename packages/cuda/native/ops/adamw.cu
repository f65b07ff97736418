// Fused AdamW (llm.c's adamw_kernel): one pass over params, grads, m, v (n elements),
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= lr (m / c1 / (sqrt(v / c2) + eps) + wd p),   c1 = 1 - b1^t, c2 = 1 - b2^t (computed on the host in float64).
// 1 - b1 and 1 - b2 also come from the host in float64: in float32, 1.0f - 0.999f = 0.00099998713 is 1.3e-5 off
// 1e-3 (0.999 is not a float32), which put the first step 6x over the ops suite's bound on the H100 (2026-12-07).
// params, m, v are float32 (master weights and optimizer state); grads float32 or 16-bit. float32 math.
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

template <typename G>
__global__ void adamw_kernel(float* params, const G* grads, float* m, float* v, int64_t n, float lr, float beta1,
                             float beta2, float one_minus_beta1, float one_minus_beta2, float eps, float wd, float c1,
                             float c2) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float g = load(grads + i);
    const float mi = beta1 * m[i] + one_minus_beta1 * g;
    const float vi = beta2 * v[i] + one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const float p = params[i];
    params[i] = p - lr * (mi / c1 / (sqrtf(vi / c2) + eps) + wd * p);
  }
}

}  // namespace

cudaError_t adamw(int grad_dtype, float* params, const void* grads, float* m, float* v, int64_t n, float lr,
                  float beta1, float beta2, float one_minus_beta1, float one_minus_beta2, float eps, float weight_decay,
                  float c1, float c2, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  OPS_DISPATCH_FLOAT(grad_dtype, G, adamw_kernel<G><<<grid_for(n, 256), 256, 0, s>>>(
      params, static_cast<const G*>(grads), m, v, n, lr, beta1, beta2, one_minus_beta1, one_minus_beta2, eps,
      weight_decay, c1, c2));
  return cudaGetLastError();
}

}  // namespace ops

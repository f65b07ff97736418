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

// The per-step constants both kernels share.
struct Moments {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, eps, wd;
};

// One element's update with the gradient g (already scaled).
__device__ __forceinline__ void adamw_update(float* params, float* m, float* v, int64_t i, float g, const Moments& k,
                                             float lr, float c1, float c2) {
  const float mi = k.beta1 * m[i] + k.one_minus_beta1 * g;
  const float vi = k.beta2 * v[i] + k.one_minus_beta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  const float p = params[i];
  params[i] = p - lr * (mi / c1 / (sqrtf(vi / c2) + k.eps) + k.wd * p);
}

template <typename G>
__global__ void adamw_kernel(float* params, const G* grads, float* m, float* v, int64_t n, Moments k, float lr,
                             float c1, float c2) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    adamw_update(params, m, v, i, load(grads + i), k, lr, c1, c2);
}

// adamw_from: lr, c1, c2 from the device (hyper = [lr, c1, c2], float32) and the gradient scaled by the clip factor
// of the accumulated gradient, from its sum of squares on the device (norm_sq, or none: factor 1):
//   norm = sqrt(norm_sq) / K;  factor = (norm finite and > max_norm ? max_norm / (norm + 1e-6) : 1) / K
// (apps/gpt2-train's accumulatedClip, in float64 as there). Every thread reads the same 4 floats (L1 / broadcast).
template <typename G>
__global__ void adamw_from_kernel(float* params, const G* grads, float* m, float* v, int64_t n, Moments k,
                                  const float* hyper, const float* norm_sq, double max_norm, double K) {
  const float lr = hyper[0], c1 = hyper[1], c2 = hyper[2];
  float factor = 1.f;
  if (norm_sq) {
    const double norm = sqrt((double)norm_sq[0]) / K;
    factor = (float)((isfinite(norm) && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0) / K);
  }
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    adamw_update(params, m, v, i, load(grads + i) * factor, k, lr, c1, c2);
}

}  // namespace

cudaError_t adamw(int grad_dtype, float* params, const void* grads, float* m, float* v, int64_t n, float lr,
                  float beta1, float beta2, float one_minus_beta1, float one_minus_beta2, float eps, float weight_decay,
                  float c1, float c2, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  const Moments k{beta1, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay};
  OPS_DISPATCH_FLOAT(grad_dtype, G, adamw_kernel<G><<<grid_for(n, 256), 256, 0, s>>>(
      params, static_cast<const G*>(grads), m, v, n, k, lr, c1, c2));
  return cudaGetLastError();
}

cudaError_t adamw_from(int grad_dtype, float* params, const void* grads, float* m, float* v, int64_t n,
                       const float* hyper, const float* norm_sq, double max_norm, double K, float beta1, float beta2,
                       float one_minus_beta1, float one_minus_beta2, float eps, float weight_decay, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  const Moments k{beta1, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay};
  OPS_DISPATCH_FLOAT(grad_dtype, G, adamw_from_kernel<G><<<grid_for(n, 256), 256, 0, s>>>(
      params, static_cast<const G*>(grads), m, v, n, k, hyper, norm_sq, max_norm, K));
  return cudaGetLastError();
}

}  // namespace ops

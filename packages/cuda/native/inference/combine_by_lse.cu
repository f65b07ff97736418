// Merge attention over S disjoint key sets by their lse (flash-decoding's second pass, also core's
// attentionCombine on its own):
//   lse = log sum_s exp(lse_s),   out = sum_s exp(lse_s - lse) out_s
// computed as M = max_s lse_s, w_s = exp(lse_s - M), lse = M + log(sum w_s), out = sum_s (w_s / sum w) out_s.
// A split that saw no key has lse_s = -inf and weight 0; all -inf: out = 0, lse = -inf.
// One warp per output row (b, i, h): the lanes compute the S weights into shared memory, then the row's D
// columns, each a sum over the splits in split order (deterministic). Partials are float32; out is rounded
// once to its dtype.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "kv_params.h"

namespace infer {
namespace {

constexpr int kWarps = 4;

__device__ __forceinline__ void store(float* p, float x) { *p = x; }
__device__ __forceinline__ void store(__half* p, float x) { *p = __float2half_rn(x); }
__device__ __forceinline__ void store(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }

template <typename T>
__global__ void __launch_bounds__(kWarps * 32) combine_by_lse_kernel(const CombineParams p) {
  __shared__ float w[kWarps][kMaxSplits];  // (warp, S) weights exp(lse_s - M) / sum
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t rows = (int64_t)p.B * p.Nq * p.Hq;
  const int64_t row = (int64_t)blockIdx.x * kWarps + warp;  // (b, i, h) in (B, Nq, Hq) order
  if (row >= rows) return;
  const int h = (int)(row % p.Hq);
  const int i = (int)((row / p.Hq) % p.Nq);
  const int b = (int)(row / ((int64_t)p.Hq * p.Nq));
  const int64_t nl = (int64_t)p.B * p.Hq * p.Nq;                      // elements of one split's lse
  const int64_t lse_at = ((int64_t)b * p.Hq + h) * p.Nq + i;          // (B, Hq, Nq)
  const int64_t n = (int64_t)p.B * p.Nq * p.Hq * p.D;                 // elements of one split's out
  const int64_t out_at = row * p.D;                                   // (B, Nq, Hq, D)

  float M = -INFINITY;
  for (int s = lane; s < p.S; s += 32) M = fmaxf(M, p.lse_partial[s * nl + lse_at]);
  for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
  float sum = 0.f;
  for (int s = lane; s < p.S; s += 32) {
    const float ls = p.lse_partial[s * nl + lse_at];
    const float e = M == -INFINITY ? 0.f : expf(ls - M);  // ls = -inf gives 0
    w[warp][s] = e;
    sum += e;
  }
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  __syncwarp();
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
  T* out = static_cast<T*>(p.o) + b * p.o_batch_stride + i * p.o_row_stride + h * p.o_head_stride;
  for (int d = lane; d < p.D; d += 32) {
    float acc = 0.f;
    // unrolled with the loads unconditional, so 8 splits' loads are in flight at once (a split of weight 0
    // adds nothing, whatever its partial holds)
#pragma unroll 8
    for (int s = 0; s < p.S; ++s) {
      const float x = p.o_partial[s * n + out_at + d];
      const float ws = w[warp][s];
      acc = ws != 0.f ? fmaf(ws, x, acc) : acc;
    }
    store(out + d, acc * inv);
  }
  if (lane == 0 && p.lse != nullptr) p.lse[lse_at] = sum > 0.f ? M + logf(sum) : -INFINITY;
}

}  // namespace

cudaError_t combine_by_lse(const CombineParams& p, cudaStream_t stream) {
  const int64_t rows = (int64_t)p.B * p.Nq * p.Hq;
  if (rows == 0) return cudaSuccess;
  if (p.S < 1 || p.S > kMaxSplits) return cudaErrorInvalidValue;
  const int64_t blocks = (rows + kWarps - 1) / kWarps;
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  switch (p.dtype) {
    case 0: combine_by_lse_kernel<float><<<(unsigned)blocks, kWarps * 32, 0, stream>>>(p); break;
    case 1: combine_by_lse_kernel<__half><<<(unsigned)blocks, kWarps * 32, 0, stream>>>(p); break;
    case 2: combine_by_lse_kernel<__nv_bfloat16><<<(unsigned)blocks, kWarps * 32, 0, stream>>>(p); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace infer

// KV-cache append: k_new, v_new (B, Nnew, Hk, D) are copied into the caches at logical positions
// cache_seqlens[b] .. cache_seqlens[b] + Nnew - 1 of each sequence, before the attention reads them (same
// stream). Copies are exact (same dtype). The host validated every position against the cache's capacity and
// every page against num_blocks, and rejected two sequences appending into one page or cache row.
// One thread per element of k_new (and of v_new: blockIdx.y picks which), grid-stride.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kv_params.h"

namespace infer {
namespace {

template <typename T>
__global__ void kv_cache_append_kernel(const KvCacheParams p) {
  const bool is_v = blockIdx.y == 1;
  const T* src = static_cast<const T*>(is_v ? p.v_new : p.k_new);  // (B, Nnew, Hk, D)
  T* dst = static_cast<T*>(is_v ? p.v : p.k);                       // (pages, page_size, Hk, D)
  const int64_t s_b = is_v ? p.vn_batch_stride : p.kn_batch_stride;
  const int64_t s_n = is_v ? p.vn_row_stride : p.kn_row_stride;
  const int64_t s_h = is_v ? p.vn_head_stride : p.kn_head_stride;
  const int64_t c_b = is_v ? p.v_batch_stride : p.k_batch_stride;
  const int64_t c_n = is_v ? p.v_row_stride : p.k_row_stride;
  const int64_t c_h = is_v ? p.v_head_stride : p.k_head_stride;
  const int64_t n = (int64_t)p.B * p.Nnew * p.Hk * p.D;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const int d = (int)(e % p.D);
    const int hk = (int)((e / p.D) % p.Hk);
    const int i = (int)((e / ((int64_t)p.D * p.Hk)) % p.Nnew);
    const int b = (int)(e / ((int64_t)p.D * p.Hk * p.Nnew));
    const int j = p.cache_seqlens[b] + i;  // logical key position
    const int page = p.table[(int64_t)b * p.mb + j / p.page_size];
    dst[page * c_b + (j % p.page_size) * c_n + hk * c_h + d] = src[b * s_b + i * s_n + hk * s_h + d];
  }
}

}  // namespace

cudaError_t kv_cache_append(const KvCacheParams& p, cudaStream_t stream) {
  const int64_t n = (int64_t)p.B * p.Nnew * p.Hk * p.D;
  if (n == 0 || p.k_new == nullptr) return cudaSuccess;
  const unsigned blocks = (unsigned)(n + 255) / 256 < 4096 ? (unsigned)((n + 255) / 256) : 4096;
  const dim3 grid(blocks, 2);
  switch (p.dtype) {
    case 0: kv_cache_append_kernel<float><<<grid, 256, 0, stream>>>(p); break;
    case 1: kv_cache_append_kernel<__half><<<grid, 256, 0, stream>>>(p); break;
    case 2: kv_cache_append_kernel<__nv_bfloat16><<<grid, 256, 0, stream>>>(p); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace infer

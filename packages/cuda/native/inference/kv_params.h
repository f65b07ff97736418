// Parameters and launchers of the inference kernels (issue #12): the KV-cache append, the split-KV decode
// attention and the combine by lse. One kernel per .cu file in this folder; the addon's entry points are
// native/addon/inference.cpp. Semantics: core's contracts/kv-cache.ts and its float64 oracle
// (kv-cache-reference.ts); every argument is validated on the host before anything is launched.
//
// A cache is a strided (pages, page_size, Hk, D) view: paged caches index pages through the block table
// (B, mb) and a contiguous cache (B_cache, N_max, Hk, D) is "pages of N_max rows" whose table is
// cache_batch_idx (mb = 1). Logical key j of sequence b lives in page table[b * mb + j / page_size], row
// j % page_size. Any page size >= 1 works: each key row is addressed on its own.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace infer {

// Most key splits of one call (flash-attn's bound; the combine keeps S weights per row in shared memory).
constexpr int kMaxSplits = 128;

struct KvCacheParams {
  int dtype;  // 0 = float32, 1 = float16, 2 = bfloat16 (q, caches, k_new / v_new and out share it)
  int B, Nq, Hq, Hk, D;
  int Nnew;       // keys appended per sequence (0: no append)
  int page_size;  // paged: page_size; contiguous: N_max
  int mb;         // block-table entries per sequence (contiguous: 1)
  int S;          // key splits (1: out and lse written directly)
  int kps;        // keys per split: ceil(max_seqlen_k / S)
  float scale_log2;  // softmaxScale * log2(e)
  int window_left, window_right;  // -1 = unbounded (causal: right = 0)

  const int32_t* cache_seqlens;  // (B) keys cached before the append (device)
  const int32_t* table;          // (B, mb) pages (contiguous: cache_batch_idx) (device)

  const void* q;  // (B, Nq, Hq, D)
  int64_t q_batch_stride, q_row_stride, q_head_stride;
  void* k;        // (pages, page_size, Hk, D) cache, written by the append
  int64_t k_batch_stride, k_row_stride, k_head_stride;
  void* v;
  int64_t v_batch_stride, v_row_stride, v_head_stride;
  const void* k_new;  // (B, Nnew, Hk, D) or null
  int64_t kn_batch_stride, kn_row_stride, kn_head_stride;
  const void* v_new;
  int64_t vn_batch_stride, vn_row_stride, vn_head_stride;
  void* o;  // (B, Nq, Hq, D) out
  int64_t o_batch_stride, o_row_stride, o_head_stride;
  float* lse;  // (B, Hq, Nq) float32 contiguous, natural log, or null

  // S > 1: the decode kernel's partial results (contiguous float32), merged by the last CTA of each (sequence,
  // kv head, row block) to finish, which it finds by counting finished splits in split_counters
  float* o_partial;    // (S, B, Nq, Hq, D)
  float* lse_partial;  // (S, B, Hq, Nq)
  // (B, Hk, row blocks) int32, all 0 before the launch; each CTA of a split adds 1 and the last one resets it to
  // 0, so the counters stay 0 between calls (a persistent per-device allocation, native/addon/inference.cpp)
  int* split_counters;

  bool vector_loads;  // K / V rows 16-byte aligned (pointers, strides, D): 16-byte loads, else scalar
};

// Input of the combine on its own (AttentionCombine): partials contiguous float32, out a strided view.
struct CombineParams {
  int dtype;  // out's dtype
  int S, B, Nq, Hq, D;
  const float* o_partial;    // (S, B, Nq, Hq, D)
  const float* lse_partial;  // (S, B, Hq, Nq)
  void* o;                   // (B, Nq, Hq, D)
  int64_t o_batch_stride, o_row_stride, o_head_stride;
  float* lse;  // (B, Hq, Nq) or null
};

// k_new / v_new -> the caches at positions cache_seqlens[b] .. + Nnew - 1 (kv_cache_append.cu). Nnew = 0: nothing.
cudaError_t kv_cache_append(const KvCacheParams& p, cudaStream_t stream);
// Split-KV attention (decode_attention.cu): S = 1 writes o / lse; S > 1 writes o_partial / lse_partial and the
// last split to finish of each (sequence, kv head, row block) merges them into o / lse (needs split_counters).
cudaError_t decode_attention(const KvCacheParams& p, cudaStream_t stream);
// Query-row blocks of the decode kernel's grid for M = (Hq / Hk) * Nq rows (the split counters' last dimension).
int decode_row_blocks(int Hq, int Hk, int Nq);
// out, lse = merge of S partials by their lse (combine_by_lse.cu).
cudaError_t combine_by_lse(const CombineParams& p, cudaStream_t stream);

// The whole KV-cache call: append, then the decode attention (with its fused combine when S > 1).
inline cudaError_t attention_with_kv_cache(const KvCacheParams& p, cudaStream_t stream) {
  cudaError_t err = kv_cache_append(p, stream);
  if (err == cudaSuccess) err = decode_attention(p, stream);
  return err;
}

}  // namespace infer

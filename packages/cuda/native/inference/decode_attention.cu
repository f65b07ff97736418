// Attention of the new queries over a KV cache, one key split at a time (flash-decoding's partial pass).
// Grid (S * row blocks, Hk, B): one CTA per (split s, block of kRows query rows, kv head hk, sequence b). The
// rows of a kv head are its GQA query group times the Nq new queries,
//   row r = g * Nq + i  ->  query head h = hk * (Hq / Hk) + g, query position i,
// so each K and V row is read from memory once per kv head (decode with Hq / Hk = 4: once for 4 query heads).
// Split s covers keys [s * kps, min((s + 1) * kps, Lk_b)) of sequence b (Lk_b = cache_seqlens[b] + Nnew); each
// row's visible keys are core's keyRange with Nk = Lk_b (query row i at key position i + Lk_b - Nq), cut to the
// split. S = 1 writes out / lse; S > 1 writes float32 partials, and the last CTA of the S splits of (b, hk, row
// block) to finish merges them by their lse into out / lse (combine_by_lse.cu's rule, fused: no second launch).
//
// Inside a CTA (128 threads): 8 key groups of kLanes = 16 lanes. A group reads one key row at a time, each lane
// EPL elements of it (with 16-byte rows: 16-byte loads, lane l holding elements [8 l, 8 l + 8) of a bf16 row of
// D = 128, so a half-warp reads the 256-byte row in one coalesced request). Group g takes KPI consecutive keys
// per step, keys [j0, j0 + KPI) with j0 = jBegin + (step * 8 + g) * KPI. The K and V rows of later steps are in
// flight while a step is computed: the next step's in registers (NSTAGE = 0), or NSTAGE - 1 steps in a per-thread
// cp.async ring in shared memory (Tune below; the 16-bit D <= 128 path runs KPI 2 with a 4-step ring). Per step:
//   S = Q K^T:   each lane's partial dot products (Q in registers, pre-scaled by scale * log2(e), so exp
//                becomes exp2), summed over the group's lanes with shuffles (RS: a reduce-scatter that leaves
//                each lane one (key, row) score; else an xor all-reduce of every score);
//   Algorithm 1, line 10: m_new = max(m, rowmax(S)), P = exp2(S - m_new), l and acc rescaled by
//                exp2(m - m_new) (once per step, not per key);
//   acc += P V:  each lane's EPL columns.
// Each group keeps its own m, l, acc (float32); at the end the 8 groups are merged through shared memory
// (the same lse rule as the combine) and Algorithm 1, lines 12-13 give O = acc / l, lse = m + log2(l) (in
// natural log units). A row that sees no key: O = 0, lse = -inf.
//
// Rows not 16-byte aligned (any page size, any view offset / stride) take the scalar path: one element per
// lane per chunk (VEC = 1), the same code otherwise.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "../include/flash_common.cuh"  // mma.sync m16n8k16, ldmatrix, cp.async (the tensor-core sweep variant)
#include "kv_params.h"

namespace infer {
namespace {

constexpr int kThreads = 128;
constexpr int kLanes = 16;                    // lanes per key row
constexpr int kGroups = kThreads / kLanes;    // key groups per CTA
constexpr int kRows = 4;                      // query rows per CTA (decode: the GQA group of 4 in one CTA)
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store(float* p, float x) { *p = x; }
__device__ __forceinline__ void store(__half* p, float x) { *p = __float2half_rn(x); }
__device__ __forceinline__ void store(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }

// VEC elements of type T as one load: uint4 (8 x 16-bit), float4 (4 x float32) or one element.
template <typename T, int VEC>
struct Chunk {
  using Raw = T;
  static __device__ __forceinline__ Raw load(const T* p) { return *p; }
  static __device__ __forceinline__ Raw zero() { return T(0.f); }
  static __device__ __forceinline__ void to_floats(const Raw& r, float* f) { f[0] = to_float(r); }
};
template <>
struct Chunk<float, 4> {
  using Raw = float4;
  static __device__ __forceinline__ Raw load(const float* p) { return __ldg(reinterpret_cast<const float4*>(p)); }
  static __device__ __forceinline__ Raw zero() { return make_float4(0.f, 0.f, 0.f, 0.f); }
  static __device__ __forceinline__ void to_floats(const Raw& r, float* f) {
    f[0] = r.x; f[1] = r.y; f[2] = r.z; f[3] = r.w;
  }
};
template <typename H>
struct Chunk16 {
  using Raw = uint4;
  static __device__ __forceinline__ Raw load(const H* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }
  static __device__ __forceinline__ Raw zero() { return make_uint4(0u, 0u, 0u, 0u); }
  static __device__ __forceinline__ void to_floats(const Raw& r, float* f) {
    const H* h = reinterpret_cast<const H*>(&r);
#pragma unroll
    for (int e = 0; e < 8; ++e) f[e] = to_float(h[e]);
  }
};
template <>
struct Chunk<__half, 8> : Chunk16<__half> {};
template <>
struct Chunk<__nv_bfloat16, 8> : Chunk16<__nv_bfloat16> {};

// The tuning of one instantiation (measured: BENCHMARKS.md, "CUDA decode attention (issue #12)").
//   KPI:    keys per group and step;
//   NSTAGE: 0 = the K / V rows of the next step in registers (2 steps of KPI rows per lane); >= 2 = a per-thread
//           cp.async ring of NSTAGE steps in shared memory (NSTAGE - 1 steps in flight while one is computed,
//           no registers held by the bytes in flight; 16-byte rows only);
//   RS:     the scores' sum over a group's lanes as a reduce-scatter (each lane ends with one (key, row) score,
//           computes its one exp2 and broadcasts P back: 15 shuffles instead of 64 at KPI = 4); false: xor
//           all-reduce of every score on every lane;
//   MINB:   __launch_bounds__ min CTAs per SM (caps the registers: 2 -> 255, 3 -> 168, 4 -> 128);
//   LAZY:   (RS only) a row's acc is rescaled only in a step that raised its running max (alpha = exp2(m - m_new)
//           is exactly 1 otherwise, so skipping the 8 multiplies changes no bit);
//   EVICT:  (the ring only) the K / V cp.async loads carry an L2 evict-first policy (each byte is read once);
//   BATCHED: the fused combine's weights by one warp per row and its sum over the splits with every output of a
//           thread in flight together (else: one output at a time, 8 splits' loads in flight).
// LAZY and EVICT gained at most 1 point of copy bandwidth at B = 64 (H100, 2026-12-07 11:45 UTC) and are off.
//   MERGE4: (BATCHED only) the sum over the splits reads float4s: a (b, hk, row block)'s kRows x D partial outputs of
//           one split are one contiguous run of (S, B, Nq, Hq, D), so 128 threads read a D = 128 split in one float4
//           each, 4x the bytes in flight of the scalar reads (where D % 4 == 0; else the scalar sum).
template <int KPI_, int NSTAGE_, bool RS_, int MINB_, bool LAZY_ = false, bool EVICT_ = false, bool BATCHED_ = false,
          bool MERGE4_ = false>
struct Tune {
  static constexpr int KPI = KPI_, NSTAGE = NSTAGE_, MINB = MINB_;
  static constexpr bool RS = RS_, LAZY = LAZY_, EVICT = EVICT_, BATCHED = BATCHED_, MERGE4 = MERGE4_;
};

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  // src_bytes 0: 16 zero bytes, nothing read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
}
// The same with an L2 cache policy (createpolicy below; EVICT, the sweep's variants only).
[[maybe_unused]] __device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes,
                                                            uint64_t policy) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;\n" ::"r"(s), "l"(gmem),
               "r"(src_bytes), "l"(policy)
               : "memory");
}
__device__ __forceinline__ uint64_t l2_evict_first_policy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
  return policy;
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__host__ __device__ constexpr int cmax(int a, int b) { return a > b ? a : b; }
__host__ __device__ constexpr int ilog2(int x) { return x <= 1 ? 0 : 1 + ilog2(x / 2); }

// The fused combine of the last CTA (BATCHED): row r's split weights by warp r (lse_s read, max, exp, sum with
// warp shuffles; the xor butterfly leaves every lane the same sum), then out = sum_s w_s o_s with each thread's
// kOut outputs x = threadIdx.x + k kThreads (row x / D, column x % D) summed together over the splits in order.
// Every load is unconditional (an output past the rows reads split 0's first value and is not stored): a load
// under a branch is not hoisted, and the first version, with `if (valid) load`, issued one load at a time (H100,
// B = 1, L = 8k, 57 splits: 0.077 ms against 0.041 ms, ncu: SMs active 31% of the kernel's cycles).
template <typename T, int EPL, bool MERGE4>
__device__ __forceinline__ void merge_splits_batched(const KvCacheParams& p, int rb, int hk, int b, int G, int M,
                                                     float (*sm_w)[kMaxSplits], float* sm_lse) {
  static_assert(kRows == kThreads / 32, "one warp per row of the merge");
  {
    const int r = threadIdx.x / 32, ln = threadIdx.x % 32;
    const int row = rb * kRows + r;
    if (row < M) {  // warp-uniform
      const int h = hk * G + row / p.Nq, i = row % p.Nq;
      const float* lp = p.lse_partial + ((int64_t)b * p.Hq + h) * p.Nq + i;  // split 0 of (S, B, Hq, Nq)
      const int64_t lse_stride = (int64_t)p.B * p.Hq * p.Nq;
      float mx = -INFINITY;
      for (int sp = ln; sp < p.S; sp += 32) {
        const float l = __ldcg(lp + sp * lse_stride);
        sm_w[r][sp] = l;
        mx = fmaxf(mx, l);
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      float sum = 0.f;
      for (int sp = ln; sp < p.S; sp += 32) {
        const float e = mx == -INFINITY ? 0.f : expf(sm_w[r][sp] - mx);  // a split that saw no key: 0
        sm_w[r][sp] = e;
        sum += e;
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      const float inv = sum > 0.f ? 1.f / sum : 0.f;
      for (int sp = ln; sp < p.S; sp += 32) sm_w[r][sp] *= inv;
      if (ln == 0) sm_lse[r] = sum > 0.f ? mx + logf(sum) : -INFINITY;
    }
  }
  __syncthreads();
  if constexpr (MERGE4) {
    if (p.D % 4 == 0) {
      // out = sum_s w_s o_s, float4 x = threadIdx.x + k kThreads holding columns [4 (x % D4), +4) of row x / D4
      constexpr int kOut4 = (kRows * kLanes * EPL / 4 + kThreads - 1) / kThreads;
      const int D4 = p.D / 4;
      const int64_t split_stride4 = (int64_t)p.B * p.Nq * p.Hq * D4;
      const float4* src[kOut4];
      float4 acc4[kOut4];
      int r_of[kOut4];
      bool ok[kOut4];
#pragma unroll
      for (int k = 0; k < kOut4; ++k) {
        const int x = threadIdx.x + k * kThreads;
        const int r = x / D4, d4 = x % D4;
        const int row = rb * kRows + r;
        ok[k] = r < kRows && row < M;
        r_of[k] = ok[k] ? r : 0;
        acc4[k] = make_float4(0.f, 0.f, 0.f, 0.f);
        src[k] = reinterpret_cast<const float4*>(p.o_partial);  // a valid address for an output not stored
        if (ok[k]) {
          const int h = hk * G + row / p.Nq, i = row % p.Nq;
          src[k] += (((int64_t)b * p.Nq + i) * p.Hq + h) * D4 + d4;  // split 0
        }
      }
#pragma unroll 16
      for (int sp = 0; sp < p.S; ++sp) {
#pragma unroll
        for (int k = 0; k < kOut4; ++k) {
          const float4 xo = __ldcg(src[k] + sp * split_stride4);
          const float w = sm_w[r_of[k]][sp];
          const bool use = w != 0.f;  // selects, not a branch: the load stays unconditional
          acc4[k].x = use ? fmaf(w, xo.x, acc4[k].x) : acc4[k].x;
          acc4[k].y = use ? fmaf(w, xo.y, acc4[k].y) : acc4[k].y;
          acc4[k].z = use ? fmaf(w, xo.z, acc4[k].z) : acc4[k].z;
          acc4[k].w = use ? fmaf(w, xo.w, acc4[k].w) : acc4[k].w;
        }
      }
#pragma unroll
      for (int k = 0; k < kOut4; ++k) {
        if (!ok[k]) continue;
        const int x = threadIdx.x + k * kThreads;
        const int r = x / D4, d = 4 * (x % D4);
        const int row = rb * kRows + r;
        const int h = hk * G + row / p.Nq, i = row % p.Nq;
        T* o = static_cast<T*>(p.o) + b * p.o_batch_stride + i * p.o_row_stride + h * p.o_head_stride + d;
        store(o, acc4[k].x);
        store(o + 1, acc4[k].y);
        store(o + 2, acc4[k].z);
        store(o + 3, acc4[k].w);
        if (d == 0 && p.lse != nullptr) p.lse[((int64_t)b * p.Hq + h) * p.Nq + i] = sm_lse[r];
      }
      return;
    }
  }
  constexpr int kOut = kRows * kLanes * EPL / kThreads;  // kRows rows of ROW >= D columns over the threads
  static_assert(kOut >= 1 && kRows * kLanes * EPL % kThreads == 0, "whole outputs per thread");
  const int64_t split_stride = (int64_t)p.B * p.Nq * p.Hq * p.D;
  const float* src[kOut];
  float acc_o[kOut];
  int r_of[kOut];
  bool ok[kOut];
#pragma unroll
  for (int k = 0; k < kOut; ++k) {
    const int x = threadIdx.x + k * kThreads;
    const int r = x / p.D, d = x % p.D;
    const int row = rb * kRows + r;
    ok[k] = x < kRows * p.D && row < M;
    r_of[k] = ok[k] ? r : 0;
    acc_o[k] = 0.f;
    src[k] = p.o_partial;  // (S, B, Nq, Hq, D); a valid address for an output that is not stored
    if (ok[k]) {
      const int h = hk * G + row / p.Nq, i = row % p.Nq;
      src[k] += (((int64_t)b * p.Nq + i) * p.Hq + h) * p.D + d;  // split 0
    }
  }
#pragma unroll 4
  for (int sp = 0; sp < p.S; ++sp) {
#pragma unroll
    for (int k = 0; k < kOut; ++k) {
      const float xo = __ldcg(src[k] + sp * split_stride);
      const float w = sm_w[r_of[k]][sp];
      acc_o[k] = w != 0.f ? fmaf(w, xo, acc_o[k]) : acc_o[k];
    }
  }
#pragma unroll
  for (int k = 0; k < kOut; ++k) {
    if (!ok[k]) continue;
    const int x = threadIdx.x + k * kThreads;
    const int r = x / p.D, d = x % p.D;
    const int row = rb * kRows + r;
    const int h = hk * G + row / p.Nq, i = row % p.Nq;
    T* o = static_cast<T*>(p.o) + b * p.o_batch_stride + i * p.o_row_stride + h * p.o_head_stride;
    store(o + d, acc_o[k]);
    if (d == 0 && p.lse != nullptr) p.lse[((int64_t)b * p.Hq + h) * p.Nq + i] = sm_lse[r];
  }
}

// Visible keys [lo, hi) of each of the kRows rows of row block rb (core's keyRange, Nk = Lk), cut to the split's
// keys [kBeg, kEnd); [jBegin, jEnd) their union (empty: jBegin = Lk, jEnd = 0).
__device__ __forceinline__ void row_key_ranges(const KvCacheParams& p, int rb, int M, int Lk, int kBeg, int kEnd,
                                               int (&lo)[kRows], int (&hi)[kRows], int& jBegin, int& jEnd) {
  jBegin = Lk;
  jEnd = 0;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int row = rb * kRows + r;
    int a = 0, z = 0;
    if (row < M) {
      const int diag = row % p.Nq + Lk - p.Nq;
      a = p.window_left >= 0 ? max(0, diag - p.window_left) : 0;
      z = p.window_right >= 0 ? min(Lk, diag + p.window_right + 1) : Lk;
      a = max(a, kBeg);
      z = max(a, min(z, kEnd));
    }
    lo[r] = a;
    hi[r] = z;
    if (a < z) {
      jBegin = min(jBegin, a);
      jEnd = max(jEnd, z);
    }
  }
}

// The end of every kernel's pass over its keys: the NG key groups (each with its own m, l, acc per row, stored in
// sm_m / sm_l (NG, kRows) and sm_acc (NG, kRows, ROW)) merged by the lse rule, M = max_g m_g,
// l = sum_g l_g exp2(m_g - M), acc = sum_g acc_g exp2(m_g - M); Algorithm 1, lines 12-13 into out / lse (S = 1) or
// this split's partials; and with S > 1 the fused second pass by the last of the S CTAs to finish.
template <typename T, int EPL, class TU, int NG, int ROW>
__device__ __forceinline__ void finish_rows(const KvCacheParams& p, int s, int rb, int hk, int b, int G, int M,
                                            const float (*sm_m)[kRows], const float (*sm_l)[kRows],
                                            const float (*sm_acc)[kRows][ROW], bool& sm_last,
                                            float (*sm_w)[kMaxSplits], float* sm_lse) {
  __syncthreads();
  for (int x = threadIdx.x; x < kRows * p.D; x += kThreads) {
    const int r = x / p.D, d = x % p.D;
    const int row = rb * kRows + r;
    if (row >= M) continue;
    float mx = -INFINITY;
#pragma unroll
    for (int gg = 0; gg < NG; ++gg) mx = fmaxf(mx, sm_m[gg][r]);
    float l = 0.f, a = 0.f;
    if (mx != -INFINITY) {
#pragma unroll
      for (int gg = 0; gg < NG; ++gg) {
        const float w = exp2f(sm_m[gg][r] - mx);  // a group that saw no key: 0
        l = fmaf(sm_l[gg][r], w, l);
        a = fmaf(sm_acc[gg][r][d], w, a);
      }
    }
    // Algorithm 1, lines 12-13
    const float out = l > 0.f ? a / l : 0.f;
    const float lse = l > 0.f ? (mx + log2f(l)) * kLn2 : -INFINITY;
    const int h = hk * G + row / p.Nq, i = row % p.Nq;
    if (p.S == 1) {
      T* op = static_cast<T*>(p.o) + b * p.o_batch_stride + i * p.o_row_stride + h * p.o_head_stride;
      store(op + d, out);
      if (d == 0 && p.lse != nullptr) p.lse[((int64_t)b * p.Hq + h) * p.Nq + i] = lse;
    } else {
      const int64_t split = (int64_t)s * p.B + b;
      p.o_partial[((split * p.Nq + i) * p.Hq + h) * p.D + d] = out;
      if (d == 0) p.lse_partial[(split * p.Hq + h) * p.Nq + i] = lse;
    }
  }
  if (p.S == 1) return;

  // Split-KV second pass, fused: the last of the S CTAs of (b, hk, rb) to finish merges their partials
  // (combine_by_lse.cu's rule), as in CUDA's threadFenceReduction sample: every thread's partials are made
  // visible device-wide before thread 0 counts this split as done; the last one reads the others' from L2.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    int* counter = p.split_counters + ((int64_t)b * p.Hk + hk) * (gridDim.x / p.S) + rb;
    const bool last = atomicAdd(counter, 1) == p.S - 1;
    if (last) *counter = 0;  // every split has counted: ready for the next call
    sm_last = last;
  }
  __syncthreads();
  if (!sm_last) return;
  __threadfence();
  if constexpr (TU::BATCHED) {
    merge_splits_batched<T, EPL, TU::MERGE4>(p, rb, hk, b, G, M, sm_w, sm_lse);
  } else {
    for (int x = threadIdx.x; x < kRows * p.S; x += kThreads) {
      const int r = x / p.S, sp = x % p.S;
      const int row = rb * kRows + r;
      float l = -INFINITY;
      if (row < M) {
        const int h = hk * G + row / p.Nq, i = row % p.Nq;
        l = __ldcg(p.lse_partial + (((int64_t)sp * p.B + b) * p.Hq + h) * p.Nq + i);
      }
      sm_w[r][sp] = l;
    }
    __syncthreads();
    if (threadIdx.x < kRows) {
      const int r = threadIdx.x;
      float mx = -INFINITY;
      for (int sp = 0; sp < p.S; ++sp) mx = fmaxf(mx, sm_w[r][sp]);
      float sum = 0.f;
      for (int sp = 0; sp < p.S; ++sp) {
        const float e = mx == -INFINITY ? 0.f : expf(sm_w[r][sp] - mx);  // a split that saw no key: 0
        sm_w[r][sp] = e;
        sum += e;
      }
      const float inv = sum > 0.f ? 1.f / sum : 0.f;
      for (int sp = 0; sp < p.S; ++sp) sm_w[r][sp] *= inv;
      sm_lse[r] = sum > 0.f ? mx + logf(sum) : -INFINITY;
    }
    __syncthreads();
    for (int x = threadIdx.x; x < kRows * p.D; x += kThreads) {
      const int r = x / p.D, d = x % p.D;
      const int row = rb * kRows + r;
      if (row >= M) continue;
      const int h = hk * G + row / p.Nq, i = row % p.Nq;
      const float* op = p.o_partial + (((int64_t)b * p.Nq + i) * p.Hq + h) * p.D + d;  // split 0
      const int64_t split_stride = (int64_t)p.B * p.Nq * p.Hq * p.D;
      float acc = 0.f;
#pragma unroll 8
      for (int sp = 0; sp < p.S; ++sp) {
        const float xo = __ldcg(op + sp * split_stride);
        const float w = sm_w[r][sp];
        acc = w != 0.f ? fmaf(w, xo, acc) : acc;
      }
      T* o = static_cast<T*>(p.o) + b * p.o_batch_stride + i * p.o_row_stride + h * p.o_head_stride;
      store(o + d, acc);
      if (d == 0 && p.lse != nullptr) p.lse[((int64_t)b * p.Hq + h) * p.Nq + i] = sm_lse[r];
    }
  }
}

// T: storage dtype; VEC: elements per load (16 bytes, or 1); EPL: elements per lane (EPL / VEC chunks, lane l's
// chunk c holds columns c * kLanes * VEC + l * VEC + [0, VEC)); TU: the tuning (Tune above).
template <typename T, int VEC, int EPL, class TU>
__global__ void __launch_bounds__(kThreads, TU::MINB) decode_attention_kernel(const KvCacheParams p) {
  constexpr int NC = EPL / VEC;
  constexpr int ROW = kLanes * EPL;  // columns a group covers (>= D)
  constexpr int KPI = TU::KPI;
  constexpr int NSTAGE = TU::NSTAGE;
  using C = Chunk<T, VEC>;
  using Raw = typename C::Raw;
  static_assert(NSTAGE == 0 || sizeof(Raw) == 16, "the cp.async ring takes 16-byte rows");
  static_assert(!TU::RS || (KPI == 1 || KPI == 2 || KPI == 4), "RS: KPI 1, 2 or 4");
  static_assert(!TU::LAZY || TU::RS, "LAZY: the reduce-scatter path only");
  static_assert(!TU::EVICT || NSTAGE > 0, "EVICT: the cp.async ring only");
  static_assert(!TU::MERGE4 || TU::BATCHED, "MERGE4: the batched merge only");

  // The ring (NSTAGE > 0) and the groups' acc (the merge, after the key loop) share the same bytes.
  constexpr int kRingChunks = NSTAGE * KPI * 2 * NC * kThreads;  // (NSTAGE, KPI, K|V, NC, threads) x 16 bytes
  constexpr int kAccBytes = kGroups * kRows * ROW * (int)sizeof(float);
  __shared__ __align__(16) unsigned char sm_raw[cmax(kAccBytes, kRingChunks * 16)];
  __shared__ float sm_m[kGroups][kRows];  // each group's running max (log2 units)
  __shared__ float sm_l[kGroups][kRows];  // each group's row sum
  float(*sm_acc)[kRows][ROW] = reinterpret_cast<float(*)[kRows][ROW]>(sm_raw);  // (kGroups, kRows, ROW)
  uint4* ring = reinterpret_cast<uint4*>(sm_raw);                                // (NSTAGE, KPI, 2, NC, threads)

  const int s = blockIdx.x % p.S;
  const int rb = blockIdx.x / p.S;
  const int hk = blockIdx.y;
  const int b = blockIdx.z;
  const int g = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int G = p.Hq / p.Hk;
  const int M = G * p.Nq;
  const int Lk = p.cache_seqlens[b] + p.Nnew;
  const int kBeg = s * p.kps;
  const int kEnd = min(kBeg + p.kps, Lk);

  int lo[kRows], hi[kRows], jBegin, jEnd;
  row_key_ranges(p, rb, M, Lk, kBeg, kEnd, lo, hi, jBegin, jEnd);

  const T* kc = static_cast<const T*>(p.k) + (int64_t)hk * p.k_head_stride;
  const T* vc = static_cast<const T*>(p.v) + (int64_t)hk * p.v_head_stride;
  const int32_t* table = p.table + (int64_t)b * p.mb;
  // The KPI K rows and KPI V rows of keys [j0, j0 + KPI) (keys past jEnd: zeros, never read from memory), each
  // chunk handed to put(u, kv, c, pointer or null).
  auto for_step = [&](int j0, auto&& put) {
    int blk = j0 / p.page_size, in_page = j0 - blk * p.page_size;
#pragma unroll
    for (int u = 0; u < KPI; ++u) {
      const bool ok = j0 + u < jEnd;
      const int64_t page = ok ? (int64_t)table[blk] : 0;
      const T* kp = kc + page * p.k_batch_stride + (int64_t)in_page * p.k_row_stride;
      const T* vp = vc + page * p.v_batch_stride + (int64_t)in_page * p.v_row_stride;
#pragma unroll
      for (int c = 0; c < NC; ++c) {
        const int d = c * kLanes * VEC + lane * VEC;
        const bool in = ok && d < p.D;
        put(u, 0, c, in ? kp + d : nullptr);
        put(u, 1, c, in ? vp + d : nullptr);
      }
      if (++in_page == p.page_size) {
        in_page = 0;
        ++blk;
      }
    }
  };
  auto load_step = [&](int j0, Raw(&kr)[KPI][NC], Raw(&vr)[KPI][NC]) {
    for_step(j0, [&](int u, int kv, int c, const T* src) {
      const Raw x = src != nullptr ? C::load(src) : C::zero();
      if (kv == 0) kr[u][c] = x;
      else vr[u][c] = x;
    });
  };
  auto ring_at = [&](int slot, int u, int kv, int c) -> uint4* {
    return ring + (((slot * KPI + u) * 2 + kv) * NC + c) * kThreads + threadIdx.x;
  };
  uint64_t policy = 0;
  if constexpr (TU::EVICT) policy = l2_evict_first_policy();
  auto issue_step = [&](int j0, int slot) {
    for_step(j0, [&](int u, int kv, int c, const T* src) {
      if constexpr (TU::EVICT)
        cp_async16(ring_at(slot, u, kv, c), src != nullptr ? src : kc, src != nullptr ? 16 : 0, policy);
      else
        cp_async16(ring_at(slot, u, kv, c), src != nullptr ? src : kc, src != nullptr ? 16 : 0);
    });
  };

  // The two groups of a warp run the same steps (their shuffles need every lane): the loop bound is the warp's
  // first key; a key past jEnd is masked and not loaded.
  constexpr int kStep = kGroups * KPI;
  const int warp = threadIdx.x / 32;
  const int goff = (g % 2) * KPI;  // this group's first key in its warp's 2 KPI keys of a step
  int jw = jBegin + warp * 2 * KPI;
  Raw kr[KPI][NC], vr[KPI][NC];
  if constexpr (NSTAGE == 0) {
    if (jw < jEnd) load_step(jw + goff, kr, vr);  // issued before Q's loads: both in flight together
  } else {
#pragma unroll
    for (int st = 0; st < NSTAGE - 1; ++st) {
      const int js = jw + st * kStep;
      if (js < jEnd) issue_step(js + goff, st);
      cp_async_commit();  // one group per step, empty or not: wait_group counts steps
    }
  }
  // Q rows in registers, times scale * log2(e) (rows past M: 0)
  float qr[kRows][EPL];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int row = rb * kRows + r;
    const T* qp = nullptr;
    if (row < M) {
      const int h = hk * G + row / p.Nq, i = row % p.Nq;
      qp = static_cast<const T*>(p.q) + b * p.q_batch_stride + i * p.q_row_stride + h * p.q_head_stride;
    }
#pragma unroll
    for (int c = 0; c < NC; ++c)
#pragma unroll
      for (int e = 0; e < VEC; ++e) {
        const int d = c * kLanes * VEC + lane * VEC + e;
        qr[r][c * VEC + e] = qp != nullptr && d < p.D ? to_float(qp[d]) * p.scale_log2 : 0.f;
      }
  }

  // Algorithm 1, line 6: m = -inf, l = 0, acc = 0
  float m_i[kRows], l_i[kRows], acc[kRows][EPL];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    m_i[r] = -INFINITY;
    l_i[r] = 0.f;
#pragma unroll
    for (int e = 0; e < EPL; ++e) acc[r][e] = 0.f;
  }
  // RS: lane l ends the reduce-scatter holding score x = (l >> SH) = u * kRows + r: key j0 + u of row r. Its
  // row's visible keys, and its share of the row sum (the lanes of a row, over u, add up to l at the end).
  constexpr int kLog2V = ilog2(KPI * kRows);
  constexpr int SH = 4 - kLog2V;
  const int my_x = lane >> SH, my_u = my_x / kRows, my_r = my_x % kRows;
  int my_lo = lo[0], my_hi = hi[0];
#pragma unroll
  for (int r = 1; r < kRows; ++r)
    if (my_r == r) {
      my_lo = lo[r];
      my_hi = hi[r];
    }
  float l_mine = 0.f;

  // One step: keys [j0, j0 + KPI) of this group, their K / V rows in kr / vr.
  auto compute_step = [&](int j0, const Raw(&kr)[KPI][NC], const Raw(&vr)[KPI][NC]) {
    // S = Q K^T: partial dots over this lane's columns
    float sc[KPI][kRows];
#pragma unroll
    for (int u = 0; u < KPI; ++u) {
      float kf[EPL];
#pragma unroll
      for (int c = 0; c < NC; ++c) C::to_floats(kr[u][c], kf + c * VEC);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        float x = 0.f;
#pragma unroll
        for (int e = 0; e < EPL; ++e) x = fmaf(qr[r][e], kf[e], x);
        sc[u][r] = x;
      }
    }
    if constexpr (TU::RS) {
      // reduce-scatter over the group's 16 lanes: at offset o a lane keeps the half of its scores selected by
      // (lane & o) and adds its partner's copy of that half
      float x[KPI * kRows];
#pragma unroll
      for (int u = 0; u < KPI; ++u)
#pragma unroll
        for (int r = 0; r < kRows; ++r) x[u * kRows + r] = sc[u][r];
#pragma unroll
      for (int lvl = 0; lvl < kLog2V; ++lvl) {
        const int o = (kLanes / 2) >> lvl;
        constexpr int V = KPI * kRows;
        const int half = V >> (lvl + 1);
        const bool up = (lane & o) != 0;
#pragma unroll
        for (int i = 0; i < V / 2; ++i) {
          if (i < half) {
            const float send = up ? x[i] : x[i + half];
            const float keep = up ? x[i + half] : x[i];
            x[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
          }
        }
      }
#pragma unroll
      for (int o = (kLanes / 2) >> kLog2V; o > 0; o >>= 1) x[0] += __shfl_xor_sync(0xffffffffu, x[0], o);
      const int j = j0 + my_u;
      const float sx = j >= my_lo && j < my_hi ? x[0] : -INFINITY;
      // the step's max of each row: over the lanes of the row's KPI keys, then read from the row's u = 0 lane
      float mx = sx;
#pragma unroll
      for (int o = 1 << (SH + 2); o < kLanes; o <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      // Algorithm 1, line 10, once per step for every row (each lane keeps every row's acc columns)
      float m_mine = -INFINITY, a_mine = 1.f;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const float m_new = fmaxf(m_i[r], __shfl_sync(0xffffffffu, mx, r << SH, kLanes));
        float alpha = 1.f;
        if (!TU::LAZY || m_new != m_i[r]) {  // uniform over the group (LAZY: else alpha is exactly 1)
          alpha = m_new == -INFINITY ? 1.f : exp2f(m_i[r] - m_new);  // m_i = -inf: 0
#pragma unroll
          for (int e = 0; e < EPL; ++e) acc[r][e] *= alpha;
        }
        m_i[r] = m_new;
        if (my_r == r) {
          m_mine = m_new;
          a_mine = alpha;
        }
      }
      const float pm = m_mine == -INFINITY ? 0.f : exp2f(sx - m_mine);  // masked: exp2(-inf) = 0
      l_mine = fmaf(l_mine, a_mine, pm);
#pragma unroll
      for (int u = 0; u < KPI; ++u)
#pragma unroll
        for (int r = 0; r < kRows; ++r) sc[u][r] = __shfl_sync(0xffffffffu, pm, (u * kRows + r) << SH, kLanes);
    } else {
      // summed over the group's lanes (every lane gets every score)
#pragma unroll
      for (int o = kLanes / 2; o > 0; o >>= 1)
#pragma unroll
        for (int u = 0; u < KPI; ++u)
#pragma unroll
          for (int r = 0; r < kRows; ++r) sc[u][r] += __shfl_xor_sync(0xffffffffu, sc[u][r], o);
      // mask, then Algorithm 1, line 10 once for the step's KPI keys
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        float mx = -INFINITY;
#pragma unroll
        for (int u = 0; u < KPI; ++u) {
          const int j = j0 + u;
          if (!(j >= lo[r] && j < hi[r])) sc[u][r] = -INFINITY;
          mx = fmaxf(mx, sc[u][r]);
        }
        const float m_new = fmaxf(m_i[r], mx);
        if (m_new == -INFINITY) {  // no visible key for this row yet: nothing to add
#pragma unroll
          for (int u = 0; u < KPI; ++u) sc[u][r] = 0.f;
          continue;
        }
        const float alpha = exp2f(m_i[r] - m_new);  // m_i = -inf: 0
        m_i[r] = m_new;
        l_i[r] *= alpha;
#pragma unroll
        for (int e = 0; e < EPL; ++e) acc[r][e] *= alpha;
#pragma unroll
        for (int u = 0; u < KPI; ++u) {
          const float pu = exp2f(sc[u][r] - m_new);  // masked: exp2(-inf) = 0
          sc[u][r] = pu;
          l_i[r] += pu;
        }
      }
    }
    // acc += P V
#pragma unroll
    for (int u = 0; u < KPI; ++u) {
      float vf[EPL];
#pragma unroll
      for (int c = 0; c < NC; ++c) C::to_floats(vr[u][c], vf + c * VEC);
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int e = 0; e < EPL; ++e) acc[r][e] = fmaf(sc[u][r], vf[e], acc[r][e]);
    }
  };

  if constexpr (NSTAGE == 0) {
    // software pipeline: the next step's rows are issued before this step's are used, so a group keeps 2 x KPI
    // K and V rows in flight
    for (; jw < jEnd; jw += kStep) {
      const bool more = jw + kStep < jEnd;  // warp-uniform
      Raw kn[KPI][NC], vn[KPI][NC];
      if (more) load_step(jw + kStep + goff, kn, vn);
      compute_step(jw + goff, kr, vr);
      if (more) {
#pragma unroll
        for (int u = 0; u < KPI; ++u)
#pragma unroll
          for (int c = 0; c < NC; ++c) {
            kr[u][c] = kn[u][c];
            vr[u][c] = vn[u][c];
          }
      }
    }
  } else {
    // the ring: step i lives in slot i % NSTAGE; step i + NSTAGE - 1 is issued into the slot step i - 1 used
    // (each thread reads back only the chunks it copied itself: no barrier, wait_group alone)
    int slot = 0;
    for (; jw < jEnd; jw += kStep) {
      const int jn = jw + (NSTAGE - 1) * kStep;
      const int wslot = slot == 0 ? NSTAGE - 1 : slot - 1;
      if (jn < jEnd) issue_step(jn + goff, wslot);
      cp_async_commit();
      cp_async_wait<NSTAGE - 1>();  // step i's group has landed
#pragma unroll
      for (int u = 0; u < KPI; ++u)
#pragma unroll
        for (int c = 0; c < NC; ++c) {
          kr[u][c] = *reinterpret_cast<const Raw*>(ring_at(slot, u, 0, c));
          vr[u][c] = *reinterpret_cast<const Raw*>(ring_at(slot, u, 1, c));
        }
      compute_step(jw + goff, kr, vr);
      slot = slot + 1 == NSTAGE ? 0 : slot + 1;
    }
    cp_async_wait<0>();
    __syncthreads();  // every warp is done with the ring before sm_acc overwrites it
  }
  if constexpr (TU::RS) {
    // each row's l: the sum of its lanes' shares over u (lanes that differ below bit SH hold the same share)
#pragma unroll
    for (int o = 1 << (SH + 2); o < kLanes; o <<= 1) l_mine += __shfl_xor_sync(0xffffffffu, l_mine, o);
#pragma unroll
    for (int r = 0; r < kRows; ++r) l_i[r] = __shfl_sync(0xffffffffu, l_mine, r << SH, kLanes);
  }

  // Merge the groups: M = max_g m_g, l = sum_g l_g exp2(m_g - M), acc = sum_g acc_g exp2(m_g - M)
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    if (lane == 0) {
      sm_m[g][r] = m_i[r];
      sm_l[g][r] = l_i[r];
    }
#pragma unroll
    for (int c = 0; c < NC; ++c)
#pragma unroll
      for (int e = 0; e < VEC; ++e) sm_acc[g][r][c * kLanes * VEC + lane * VEC + e] = acc[r][c * VEC + e];
  }
  // the fused combine's shared memory (finish_rows, S > 1)
  __shared__ bool sm_last;
  __shared__ float sm_w[kRows][kMaxSplits];  // row r's split weights exp(lse_s - M) / sum
  __shared__ float sm_lse[kRows];
  finish_rows<T, EPL, TU, kGroups, ROW>(p, s, rb, hk, b, G, M, sm_m, sm_l, sm_acc, sm_last, sm_w, sm_lse);
}

template <typename T, int VEC, int EPL, class TU>
cudaError_t launch(const KvCacheParams& p, cudaStream_t stream) {
  const int64_t gx = (int64_t)p.S * decode_row_blocks(p.Hq, p.Hk, p.Nq);
  if (gx > 0x7fffffff || p.Hk > 65535 || p.B > 65535) return cudaErrorInvalidConfiguration;
  if constexpr (TU::NSTAGE > 0) {
    // the ring needs the shared memory of MINB CTAs per SM: ask for the largest carveout, once per device (a
    // function attribute belongs to the current device's context)
    static std::atomic<unsigned long long> carved{0};
    int dev = 0;
    cudaError_t err = cudaGetDevice(&dev);
    if (err != cudaSuccess) return err;
    const unsigned long long bit = dev < 64 ? 1ull << dev : 0ull;
    if (bit == 0 || (carved.load(std::memory_order_relaxed) & bit) == 0) {
      err = cudaFuncSetAttribute(decode_attention_kernel<T, VEC, EPL, TU>,
                                 cudaFuncAttributePreferredSharedMemoryCarveout, (int)cudaSharedmemCarveoutMaxShared);
      if (err != cudaSuccess) return err;
      carved.fetch_or(bit, std::memory_order_relaxed);
    }
  }
  decode_attention_kernel<T, VEC, EPL, TU><<<dim3((unsigned)gx, p.Hk, p.B), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

// The tuning of everything but the 16-bit D <= 128 path: KPI 4 at EPL <= 8, 1 above (EPL 16 with KPI 2
// spilled), the K / V rows in registers, xor all-reduce.
template <int EPL>
using BaseTune = Tune<(EPL <= 8 ? 4 : 1), 0, false, 1>;

// The 16-bit 16-byte path at D <= 128 (EPL 8), decode's: KPI 2, a 4-step cp.async ring, reduce-scatter, 4 CTAs
// per SM (128 registers) - the sweep's pick (packages/cuda/dev/decode-sweep.sh, BENCHMARKS.md) - with the batched
// float4 merge of the splits (BATCHED + MERGE4, the sweep's variant 16): on the H100 (2026-12-07 16:07 UTC, same
// call) B = 1, L = 8k 0.0418 -> 0.0318 ms, L = 128k 75 -> 79% of copy, B = 4, L = 8k 60 -> 64%; no row slower.
using Tune16 = Tune<2, 4, true, 4, false, false, true, true>;

#ifdef FLASHATTN_DECODE_SWEEP
// ---------------------------------------------------------------------------------------------------------------
// The tensor-core variant (sweep variants 17-20 only). Why: ncu of Tune16 at B = 64, L = 32k (H100, 2026-12-07)
// showed it bound by instruction issue (issue slots 74% busy, DRAM 73%): per key and kv head the scalar path
// issues ~75 warp instructions (a count of the source, not measured: the 4 rows' 2 x 128 FMAs, 2 x 128 bf16 ->
// float conversions, the reduce-scatter and broadcast shuffles, the per-step rescale of 4 x 128 acc). Here
// S = Q K^T and acc += P V are mma.sync m16n8k16 (bf16 / fp16 in, float32 accumulate), as in FlashAttention-2's
// forward, inside the same split-KV frame: the same grid (splits x row blocks, Hk, B), the same kRows = 4 query
// rows per CTA, the same merge of the key groups and fused combine (finish_rows).
//   The A tile (16 rows): rows 0..3 are the CTA's kRows query rows (decode: the GQA group of Hq / Hk = 4 heads
//   of kv head hk), rows 4..15 are zero. In the m16n8k16 fragments lane (g, t) = (lane / 4, lane % 4) holds rows
//   g and g + 8, so lanes 0..15 carry the real rows and 3/4 of every mma is padding. That wastes tensor-core
//   throughput, which is not the limit: at 3 TB/s an H100 SM receives ~11.5 bytes a cycle, one key's K + V row
//   (512 bytes) every ~45 cycles, against 2 mma per key. What counts is the instructions: per key and warp 2 mma,
//   1 ldmatrix, 1 cp.async and the per-tile softmax, rescale and address work shared by KT keys.
//   4 warps, each with its own stream of tiles of KT = 16 or 32 keys: warp w takes tiles jT + (w + 4 i) KT,
//   i = 0, 1, ... (jT = jBegin rounded down to a multiple of KT; keys outside [jBegin, jEnd) are zero-filled, not
//   read, and masked). Per tile:
//     cp.async: K, V (KT, 128) -> the warp's ring of NSTAGE slots (NSTAGE - 1 tiles in flight while one is
//       computed); a row is 16 chunks of 16 bytes, chunk c of row r stored at chunk c ^ (r % 8), so the 8 rows
//       one ldmatrix phase reads fall in 8 different bank groups; half a warp loads one 256-byte row;
//     Algorithm 1, line 8: S = Q K^T, (16, KT) = (16, 128) (128, KT): KT / 8 n-tiles of 8 keys x 8 k-slices of
//       16 columns = KT mma; K's B fragments by ldmatrix.x4 (a K row is a column of K^T: the "col" operand as stored);
//     Algorithm 1, lines 9-10 (float32): S scaled by scale * log2(e) after the mma (Q stays exact in 16 bits),
//       m_new = max(m, rowmax(S)), P = exp2(S - m_new), l = l exp2(m - m_new) + rowsum(P), acc *= exp2(m - m_new);
//     Algorithm 1, line 10: acc += P V, (16, 128) += (16, KT) (KT, 128): each 2 C fragments of P, packed to 16
//       bits, are the A fragment of a k16 slice (FA2's register reuse), x 16 n-tiles of 8 columns = KT mma; V's B
//       fragments by ldmatrix.x4.trans.
//   Lane (g, t) keeps row g's m (the same on the quad's 4 lanes), its share of l (summed over the quad at the
//   end) and acc[n] = the C fragment of columns 8 n .. 8 n + 7 (row g, columns 8 n + 2 t + {0, 1}; elements 2, 3
//   are rows g + 8 and stay 0). Then the 4 warps are merged like the scalar kernel's 8 key groups.
//   The 16-bit 16-byte path at D <= 128 only (columns past D zero-filled in K, V and Q).
// Tuning (TuneMma):
//   KT:     keys per warp and tile (16 or 32: the per-tile softmax, rescale and address work over twice the keys);
//   NSTAGE: ring slots per warp, KT x 512 bytes each (KT 16: 3 slots = 96 KB a CTA, 2 CTAs per SM; 2 slots =
//           64 KB, 3 CTAs per SM; KT 32, 2 slots: 128 KB, 1 CTA per SM);
//   MINB:   __launch_bounds__ min CTAs per SM;
//   LAZY:   acc rescaled only in a step where some row of the warp raised its max (alpha is exactly 1 otherwise).
// The merge of the splits is variant 16's (BATCHED + MERGE4).
template <int KT_, int NSTAGE_, int MINB_, bool LAZY_>
struct TuneMma {
  static constexpr int KT = KT_, NSTAGE = NSTAGE_, MINB = MINB_;
  static constexpr bool LAZY = LAZY_, BATCHED = true, MERGE4 = true;
};

constexpr int kWarps = kThreads / 32;         // key groups of the tensor-core kernel: one per warp
constexpr int kDPad = 128;                    // D <= 128, padded with zeros
constexpr int kRowChunks = kDPad * 2 / 16;    // 16-byte chunks of a 16-bit K / V row
constexpr int kRowBytes = kDPad * 2;          // a K or V row in the ring
static_assert(kRows <= 8, "the query rows fill rows 0..7 of the A tile (groupID)");

// Byte offset of 16-byte chunk c of row r in a swizzled tile.
__device__ __forceinline__ uint32_t swz(int r, int c) {
  return (uint32_t)(r * kRowChunks * 16 + ((c ^ (r & 7)) << 4));
}

template <typename T, class TU>
__global__ void __launch_bounds__(kThreads, TU::MINB) decode_attention_mma_kernel(const KvCacheParams p) {
  constexpr int NSTAGE = TU::NSTAGE;
  constexpr int KT = TU::KT;
  constexpr int kTileBytes = KT * kRowBytes;  // one K or V tile (KT, 128)
  constexpr int kSlotBytes = 2 * kTileBytes;  // a ring slot: K tile, then V tile
  static_assert(NSTAGE >= 2, "a ring of at least 2 slots");
  static_assert(KT == 16 || KT == 32, "KT: 16 or 32 keys (k16 slices of P V)");
  using Mma = flash::MmaType<T>;
  // the warps' rings (kWarps, NSTAGE, K | V, KT, 128) x 16 bits; after the key loop sm_acc (kWarps, kRows, 128)
  extern __shared__ __align__(128) unsigned char sm_dyn[];
  __shared__ float sm_m[kWarps][kRows];  // each warp's running max (log2 units)
  __shared__ float sm_l[kWarps][kRows];  // each warp's row sum
  __shared__ bool sm_last;
  __shared__ float sm_w[kRows][kMaxSplits];
  __shared__ float sm_lse[kRows];

  const int s = blockIdx.x % p.S;
  const int rb = blockIdx.x / p.S;
  const int hk = blockIdx.y;
  const int b = blockIdx.z;
  const int warp = threadIdx.x / 32, ln = threadIdx.x % 32;
  const int gq = ln / 4, tq = ln % 4;  // the fragments' groupID (row of A, C) and thread in group
  const int G = p.Hq / p.Hk;
  const int M = G * p.Nq;
  const int Lk = p.cache_seqlens[b] + p.Nnew;
  const int kBeg = s * p.kps;
  const int kEnd = min(kBeg + p.kps, Lk);
  int lo[kRows], hi[kRows], jBegin, jEnd;
  row_key_ranges(p, rb, M, Lk, kBeg, kEnd, lo, hi, jBegin, jEnd);
  // this lane's row gq: its visible keys (rows gq >= kRows are padding and see none)
  int my_lo = 0, my_hi = 0;
#pragma unroll
  for (int r = 0; r < kRows; ++r)
    if (gq == r) {
      my_lo = lo[r];
      my_hi = hi[r];
    }

  const T* kc = static_cast<const T*>(p.k) + (int64_t)hk * p.k_head_stride;
  const T* vc = static_cast<const T*>(p.v) + (int64_t)hk * p.v_head_stride;
  const int32_t* table = p.table + (int64_t)b * p.mb;
  const uint32_t ring = flash::smem_addr(sm_dyn) + warp * NSTAGE * kSlotBytes;
  // the copy of a tile: lane ln loads chunk ld_c of rows 2 i + ld_half, i < KT / 2 (half a warp per 256-byte row)
  const int ld_half = ln / 16, ld_c = ln % 16;
  const bool ld_in = ld_c * 8 < p.D;
  // a tile starts at a multiple of KT keys, so it lies in one page when pages are multiples of KT rows (or the
  // cache is contiguous: one "page" of N_max rows); else every row looks its page up
  const bool one_page = p.mb == 1 || p.page_size % KT == 0;
  auto issue_tile = [&](int j0, int slot) {
    const uint32_t sK = ring + slot * kSlotBytes, sV = sK + kTileBytes;
    if (one_page) {
      const int blk = p.mb == 1 ? 0 : j0 / p.page_size;  // j0 < jEnd <= Lk: a page of this sequence
      const int64_t page = table[blk];
      const int64_t row0 = j0 - blk * p.page_size + ld_half;
      const T* kp = kc + page * p.k_batch_stride + row0 * p.k_row_stride + ld_c * 8;
      const T* vp = vc + page * p.v_batch_stride + row0 * p.v_row_stride + ld_c * 8;
#pragma unroll
      for (int i = 0; i < KT / 2; ++i) {
        const int r = 2 * i + ld_half, j = j0 + r;
        const bool ok = ld_in && j >= jBegin && j < jEnd;  // else 16 zero bytes, nothing read
        flash::cp_async16(sK + swz(r, ld_c), ok ? kp + 2 * i * p.k_row_stride : kc, ok);
        flash::cp_async16(sV + swz(r, ld_c), ok ? vp + 2 * i * p.v_row_stride : vc, ok);
      }
    } else {
#pragma unroll
      for (int i = 0; i < KT / 2; ++i) {
        const int r = 2 * i + ld_half, j = j0 + r;
        const bool ok = ld_in && j >= jBegin && j < jEnd;
        const T* kp = kc;
        const T* vp = vc;
        if (ok) {
          const int blk = j / p.page_size;
          const int64_t page = table[blk], in_page = j - blk * p.page_size;
          kp += page * p.k_batch_stride + in_page * p.k_row_stride + ld_c * 8;
          vp += page * p.v_batch_stride + in_page * p.v_row_stride + ld_c * 8;
        }
        flash::cp_async16(sK + swz(r, ld_c), kp, ok);
        flash::cp_async16(sV + swz(r, ld_c), vp, ok);
      }
    }
  };

  // Fill the ring (NSTAGE - 1 tiles) before Q's loads: both in flight together
  constexpr int kWarpStep = kWarps * KT;  // keys from one of a warp's tiles to its next
  int j0 = (jBegin & ~(KT - 1)) + warp * KT;
#pragma unroll
  for (int st = 0; st < NSTAGE - 1; ++st) {
    const int js = j0 + st * kWarpStep;
    if (js < jEnd) issue_tile(js, st);
    flash::cp_async_commit();  // one group per tile, empty or not: wait_group counts tiles
  }

  // Q (16, 128) as A fragments of the 8 k-slices: qa[k] = {Q[g][16 k + 2 t, +1], rows g + 8 (0),
  // Q[g][16 k + 8 + 2 t, +1], rows g + 8 (0)}; rows g >= kRows or past M and columns past D are 0. Not scaled:
  // the scale is applied to S in float32, so Q keeps its 16-bit values exactly.
  uint32_t qa[kDPad / 16][4];
  {
    const T* qp = nullptr;
    const int row = rb * kRows + gq;
    if (gq < kRows && row < M) {
      const int h = hk * G + row / p.Nq, i = row % p.Nq;
      qp = static_cast<const T*>(p.q) + b * p.q_batch_stride + i * p.q_row_stride + h * p.q_head_stride;
    }
#pragma unroll
    for (int k = 0; k < kDPad / 16; ++k) {
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int d = 16 * k + 8 * hf + 2 * tq;
        const float x0 = qp != nullptr && d < p.D ? to_float(qp[d]) : 0.f;
        const float x1 = qp != nullptr && d + 1 < p.D ? to_float(qp[d + 1]) : 0.f;
        qa[k][2 * hf] = Mma::pack(x0, x1);  // exact: x0, x1 are 16-bit values
      }
      qa[k][1] = 0u;
      qa[k][3] = 0u;
    }
  }

  // Algorithm 1, line 6: m = -inf, l = 0, acc = 0 (row gq)
  float m_i = -INFINITY, l_i = 0.f;
  float acc[kDPad / 8][4];  // (16, 128) C fragments: acc[n][e] = row gq, column 8 n + 2 tq + e (e < 2)
#pragma unroll
  for (int n = 0; n < kDPad / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[n][e] = 0.f;

  // tile i lives in slot i % NSTAGE; tile i + NSTAGE - 1 is issued into the slot tile i - 1 used
  int slot = 0;
  for (; j0 < jEnd; j0 += kWarpStep) {  // warp-uniform
    flash::cp_async_wait<NSTAGE - 2>();  // this lane's copies of tile i have landed
    __syncwarp();  // ... and every lane's, visible to the warp; every lane is done reading tile i - 1's slot
    {
      const int jn = j0 + (NSTAGE - 1) * kWarpStep;
      if (jn < jEnd) issue_tile(jn, slot == 0 ? NSTAGE - 1 : slot - 1);
      flash::cp_async_commit();
    }
    const uint32_t sK = ring + slot * kSlotBytes, sV = sK + kTileBytes;

    // Algorithm 1, line 8: S = Q K^T. ldmatrix.x4 of (kp, nt): matrices m = 0..3 are keys 8 nt .. + 7 x columns
    // 8 (4 kp + m) .. + 7, i.e. (b0 b1, b2 b3) of k-slice 2 kp, then of k-slice 2 kp + 1; lane ln addresses row
    // ln % 8 of matrix ln / 8
    constexpr int NT = KT / 8;  // n-tiles of 8 keys
    float sacc[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) sacc[nt][e] = 0.f;
#pragma unroll
    for (int kp = 0; kp < kDPad / 32; ++kp)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        uint32_t kb[4];
        flash::ldmatrix_x4(kb, sK + swz(nt * 8 + (ln & 7), 4 * kp + (ln >> 3)));
        Mma::mma(sacc[nt], qa[2 * kp], kb[0], kb[1]);
        Mma::mma(sacc[nt], qa[2 * kp + 1], kb[2], kb[3]);
      }

    // Algorithm 1, lines 9-10: sacc[nt][e] = S[gq][key j0 + 8 nt + 2 tq + e]; masked keys out of the max and P
    float sx[NT][2];
    float mx = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int j = j0 + 8 * nt + 2 * tq + e;
        sx[nt][e] = j >= my_lo && j < my_hi ? sacc[nt][e] * p.scale_log2 : -INFINITY;
        mx = fmaxf(mx, sx[nt][e]);
      }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));  // the row's KT keys are on the quad's 4 lanes
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(m_i, mx);
    const float alpha = m_new == -INFINITY ? 1.f : exp2f(m_i - m_new);  // m_i = -inf: 0
    float pr[NT][2];
    float psum = 0.f;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        pr[nt][e] = m_new == -INFINITY ? 0.f : exp2f(sx[nt][e] - m_new);  // masked: exp2(-inf) = 0
        psum += pr[nt][e];
      }
    l_i = fmaf(l_i, alpha, psum);
    m_i = m_new;
    if (!TU::LAZY || __any_sync(0xffffffffu, alpha != 1.f)) {  // warp-uniform
#pragma unroll
      for (int n = 0; n < kDPad / 8; ++n) {
        acc[n][0] *= alpha;
        acc[n][1] *= alpha;  // [2], [3]: rows gq + 8, always 0
      }
    }

    // Algorithm 1, line 10: acc += P V, one k16 slice ks (keys j0 + 16 ks .. + 15) at a time. P's A fragment:
    // a0 a1 = row gq, keys 2 tq, +1 of the slice (n-tile 2 ks's C), a4 a5 = keys 8 + 2 tq, +1 (n-tile 2 ks + 1's),
    // rows gq + 8 zero. ldmatrix.x4.trans of (ks, np): matrices m = 0..3 are keys 16 ks + 8 (m % 2) .. + 7 x
    // columns 8 (2 np + m / 2) .. + 7, transposed: (b0 b1, b2 b3) of n-tile 2 np, then of n-tile 2 np + 1
#pragma unroll
    for (int ks = 0; ks < KT / 16; ++ks) {
      const uint32_t pa[4] = {Mma::pack(pr[2 * ks][0], pr[2 * ks][1]), 0u,
                              Mma::pack(pr[2 * ks + 1][0], pr[2 * ks + 1][1]), 0u};
#pragma unroll
      for (int np = 0; np < kDPad / 16; ++np) {
        uint32_t vb[4];
        flash::ldmatrix_x4_trans(vb, sV + swz(16 * ks + (ln & 7) + 8 * ((ln >> 3) & 1), 2 * np + (ln >> 4)));
        Mma::mma(acc[2 * np], pa, vb[0], vb[1]);
        Mma::mma(acc[2 * np + 1], pa, vb[2], vb[3]);
      }
    }
    slot = slot + 1 == NSTAGE ? 0 : slot + 1;
  }
  flash::cp_async_wait<0>();
  __syncthreads();  // every warp is done with its ring before sm_acc overwrites it

  // row gq's l: the quad's shares summed
  l_i += __shfl_xor_sync(0xffffffffu, l_i, 1);
  l_i += __shfl_xor_sync(0xffffffffu, l_i, 2);
  float(*sm_acc)[kRows][kDPad] = reinterpret_cast<float(*)[kRows][kDPad]>(sm_dyn);  // (kWarps, kRows, 128)
  if (gq < kRows) {
    if (tq == 0) {
      sm_m[warp][gq] = m_i;
      sm_l[warp][gq] = l_i;
    }
#pragma unroll
    for (int n = 0; n < kDPad / 8; ++n) {
      sm_acc[warp][gq][8 * n + 2 * tq] = acc[n][0];
      sm_acc[warp][gq][8 * n + 2 * tq + 1] = acc[n][1];
    }
  }
  finish_rows<T, kDPad / kLanes, TU, kWarps, kDPad>(p, s, rb, hk, b, G, M, sm_m, sm_l, sm_acc, sm_last, sm_w,
                                                    sm_lse);
}

template <typename T, class TU>
cudaError_t launch_mma(const KvCacheParams& p, cudaStream_t stream) {
  constexpr int kSmem = cmax(kWarps * TU::NSTAGE * 2 * TU::KT * kRowBytes, kWarps * kRows * kDPad * (int)sizeof(float));
  const int64_t gx = (int64_t)p.S * decode_row_blocks(p.Hq, p.Hk, p.Nq);
  if (gx > 0x7fffffff || p.Hk > 65535 || p.B > 65535 || p.D > kDPad) return cudaErrorInvalidConfiguration;
  // more than 48 KB of dynamic shared memory, and the largest carveout: once per device (a function attribute
  // belongs to the current device's context)
  static std::atomic<unsigned long long> configured{0};
  int dev = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  const unsigned long long bit = dev < 64 ? 1ull << dev : 0ull;
  if (bit == 0 || (configured.load(std::memory_order_relaxed) & bit) == 0) {
    err = cudaFuncSetAttribute(decode_attention_mma_kernel<T, TU>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
    if (err == cudaSuccess)
      err = cudaFuncSetAttribute(decode_attention_mma_kernel<T, TU>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                 (int)cudaSharedmemCarveoutMaxShared);
    if (err != cudaSuccess) return err;
    configured.fetch_or(bit, std::memory_order_relaxed);
  }
  decode_attention_mma_kernel<T, TU><<<dim3((unsigned)gx, p.Hk, p.B), kThreads, kSmem, stream>>>(p);
  return cudaGetLastError();
}

// The dev sweep's build only (packages/cuda/dev/decode-sweep.sh: FLASHATTN_CUDA_ARCH carries
// -DFLASHATTN_DECODE_SWEEP): FLASHATTN_DECODE_VARIANT picks the tuning of this path, read once per process.
template <typename T>
cudaError_t launch_16bit_d128(const KvCacheParams& p, cudaStream_t stream) {
  static const int v = [] {
    const char* e = std::getenv("FLASHATTN_DECODE_VARIANT");
    return e != nullptr && *e != 0 ? std::atoi(e) : -1;
  }();
  switch (v) {
    case 0: return launch<T, 8, 8, Tune<4, 0, false, 1>>(p, stream);  // before: 205 registers, 2 CTAs / SM
    case 1: return launch<T, 8, 8, Tune<2, 0, false, 3>>(p, stream);
    case 2: return launch<T, 8, 8, Tune<1, 0, false, 4>>(p, stream);
    case 3: return launch<T, 8, 8, Tune<4, 0, true, 2>>(p, stream);
    case 4: return launch<T, 8, 8, Tune<2, 0, true, 3>>(p, stream);
    case 5: return launch<T, 8, 8, Tune<2, 4, true, 4>>(p, stream);
    case 6: return launch<T, 8, 8, Tune<1, 8, true, 4>>(p, stream);
    case 7: return launch<T, 8, 8, Tune<2, 4, false, 4>>(p, stream);
    case 8: return launch<T, 8, 8, Tune<1, 6, true, 5>>(p, stream);
    case 9: return launch<T, 8, 8, Tune<2, 5, true, 4>>(p, stream);
    case 10: return launch<T, 8, 8, Tune<2, 4, true, 4, true>>(p, stream);  // v5 + LAZY
    case 11: return launch<T, 8, 8, Tune<2, 4, true, 4, true, true>>(p, stream);  // v5 + LAZY + EVICT
    case 12: return launch<T, 8, 8, Tune<2, 5, true, 4, true>>(p, stream);  // v9 + LAZY
    case 13: return launch<T, 8, 8, Tune<4, 0, true, 2, true>>(p, stream);  // v3 + LAZY
    case 14: return launch<T, 8, 8, Tune<2, 4, true, 4, false, false, true>>(p, stream);  // v5 + BATCHED
    case 15: return launch<T, 8, 8, Tune<4, 0, true, 2, false, false, true>>(p, stream);  // v3 + BATCHED
    case 16: return launch<T, 8, 8, Tune<2, 4, true, 4, false, false, true, true>>(p, stream);  // v5 + BATCHED + MERGE4
    // the tensor-core kernel (decode_attention_mma_kernel): KT, NSTAGE, MINB, LAZY
    case 17: return launch_mma<T, TuneMma<16, 3, 2, false>>(p, stream);
    case 18: return launch_mma<T, TuneMma<16, 2, 3, false>>(p, stream);
    case 19: return launch_mma<T, TuneMma<16, 3, 2, true>>(p, stream);
    case 20: return launch_mma<T, TuneMma<32, 2, 1, true>>(p, stream);
    default: return launch<T, 8, 8, Tune16>(p, stream);
  }
}
#else
template <typename T>
cudaError_t launch_16bit_d128(const KvCacheParams& p, cudaStream_t stream) {
  return launch<T, 8, 8, Tune16>(p, stream);
}
#endif

// Elements per lane: the smallest instantiated multiple of VEC covering D with kLanes lanes (D <= 256).
template <typename T, int VEC>
cudaError_t launch_vec(const KvCacheParams& p, cudaStream_t stream) {
  if constexpr (VEC == 8) {
    if (p.D <= kLanes * VEC) return launch_16bit_d128<T>(p, stream);
  } else {
    if (p.D <= kLanes * VEC) return launch<T, VEC, VEC, BaseTune<VEC>>(p, stream);
  }
  if (p.D <= kLanes * 2 * VEC) return launch<T, VEC, 2 * VEC, BaseTune<2 * VEC>>(p, stream);
  if constexpr (VEC == 4) {
    if (p.D <= kLanes * 4 * VEC) return launch<T, VEC, 4 * VEC, BaseTune<4 * VEC>>(p, stream);
  }
  return cudaErrorInvalidValue;
}

template <typename T>
cudaError_t launch_scalar(const KvCacheParams& p, cudaStream_t stream) {
  if (p.D <= kLanes * 4) return launch<T, 1, 4, BaseTune<4>>(p, stream);
  if (p.D <= kLanes * 16) return launch<T, 1, 16, BaseTune<16>>(p, stream);
  return cudaErrorInvalidValue;
}

}  // namespace

int decode_row_blocks(int Hq, int Hk, int Nq) { return ((Hq / Hk) * Nq + kRows - 1) / kRows; }

cudaError_t decode_attention(const KvCacheParams& p, cudaStream_t stream) {
  if (p.B == 0 || p.Nq == 0 || p.Hq == 0) return cudaSuccess;
  if (p.D < 1 || p.D > 256 || p.S < 1 || p.S > kMaxSplits || p.Hk < 1 || p.Hq % p.Hk != 0) return cudaErrorInvalidValue;
  if (p.S > 1 && (p.split_counters == nullptr || p.o_partial == nullptr || p.lse_partial == nullptr))
    return cudaErrorInvalidValue;
  switch (p.dtype) {
    case 0: return p.vector_loads ? launch_vec<float, 4>(p, stream) : launch_scalar<float>(p, stream);
    case 1: return p.vector_loads ? launch_vec<__half, 8>(p, stream) : launch_scalar<__half>(p, stream);
    case 2: return p.vector_loads ? launch_vec<__nv_bfloat16, 8>(p, stream) : launch_scalar<__nv_bfloat16>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace infer

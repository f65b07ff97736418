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

  // Visible keys [lo, hi) of each row (core's keyRange, Nk = Lk), cut to this split; [jBegin, jEnd) their union.
  int lo[kRows], hi[kRows];
  int jBegin = Lk, jEnd = 0;
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
  __syncthreads();
  for (int x = threadIdx.x; x < kRows * p.D; x += kThreads) {
    const int r = x / p.D, d = x % p.D;
    const int row = rb * kRows + r;
    if (row >= M) continue;
    float mx = -INFINITY;
#pragma unroll
    for (int gg = 0; gg < kGroups; ++gg) mx = fmaxf(mx, sm_m[gg][r]);
    float l = 0.f, a = 0.f;
    if (mx != -INFINITY) {
#pragma unroll
      for (int gg = 0; gg < kGroups; ++gg) {
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
  __shared__ bool sm_last;
  __shared__ float sm_w[kRows][kMaxSplits];  // row r's split weights exp(lse_s - M) / sum
  __shared__ float sm_lse[kRows];
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

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
// per step, keys [j0, j0 + KPI) with j0 = jBegin + (step * 8 + g) * KPI, and issues all KPI K rows and KPI V
// rows before using them, and the next step's before computing this one (software pipeline: bytes in flight
// 8 groups x 2 steps x KPI x 2 rows per CTA). Per step:
//   S = Q K^T:   each lane's partial dot products (Q in registers, pre-scaled by scale * log2(e), so exp
//                becomes exp2), summed over the group's lanes with xor shuffles (every lane gets the score);
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

#include <cmath>
#include <cstdint>

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

// T: storage dtype; VEC: elements per load (16 bytes, or 1); EPL: elements per lane (EPL / VEC chunks, lane l's
// chunk c holds columns c * kLanes * VEC + l * VEC + [0, VEC)).
template <typename T, int VEC, int EPL>
__global__ void __launch_bounds__(kThreads) decode_attention_kernel(const KvCacheParams p) {
  constexpr int NC = EPL / VEC;
  constexpr int ROW = kLanes * EPL;  // columns a group covers (>= D)
  // keys per group and step: enough loads in flight, within the register budget (2 steps of K and V rows in
  // registers: bf16 D = 128 (EPL 8, KPI 4) uses 199-201 registers, 2 CTAs per SM; EPL 16 with KPI 2 spilled)
  constexpr int KPI = EPL <= 8 ? 4 : 1;
  using C = Chunk<T, VEC>;
  using Raw = typename C::Raw;

  __shared__ float sm_m[kGroups][kRows];         // each group's running max (log2 units)
  __shared__ float sm_l[kGroups][kRows];         // each group's row sum
  __shared__ float sm_acc[kGroups][kRows][ROW];  // each group's acc (kRows, D)

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
  // Issue the KPI K rows and KPI V rows of keys [j0, j0 + KPI) (keys past jEnd: zeros, never read from memory).
  auto load_step = [&](int j0, Raw (&kr)[KPI][NC], Raw (&vr)[KPI][NC]) {
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
        kr[u][c] = in ? C::load(kp + d) : C::zero();
        vr[u][c] = in ? C::load(vp + d) : C::zero();
      }
      if (++in_page == p.page_size) {
        in_page = 0;
        ++blk;
      }
    }
  };
  // The two groups of a warp run the same steps (their shuffles need every lane): the loop bound is the warp's
  // first key; a key past jEnd is masked and not loaded. Software pipeline: the next step's rows are issued
  // before this step's are used, so a group keeps 2 x KPI K and V rows in flight.
  constexpr int kStep = kGroups * KPI;
  const int warp = threadIdx.x / 32;
  Raw kr[KPI][NC], vr[KPI][NC];
  int jw = jBegin + warp * 2 * KPI;
  if (jw < jEnd) load_step(jw + (g % 2) * KPI, kr, vr);  // issued before Q's loads: both in flight together
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

  for (; jw < jEnd; jw += kStep) {
    const int j0 = jw + (g % 2) * KPI;
    const bool more = jw + kStep < jEnd;  // warp-uniform
    Raw kn[KPI][NC], vn[KPI][NC];
    if (more) load_step(j0 + kStep, kn, vn);
    // S = Q K^T: partial dots over this lane's columns, then summed over the group's lanes
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

template <typename T, int VEC, int EPL>
cudaError_t launch(const KvCacheParams& p, cudaStream_t stream) {
  const int64_t gx = (int64_t)p.S * decode_row_blocks(p.Hq, p.Hk, p.Nq);
  if (gx > 0x7fffffff || p.Hk > 65535 || p.B > 65535) return cudaErrorInvalidConfiguration;
  decode_attention_kernel<T, VEC, EPL><<<dim3((unsigned)gx, p.Hk, p.B), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

// Elements per lane: the smallest instantiated multiple of VEC covering D with kLanes lanes (D <= 256).
template <typename T, int VEC>
cudaError_t launch_vec(const KvCacheParams& p, cudaStream_t stream) {
  if (p.D <= kLanes * VEC) return launch<T, VEC, VEC>(p, stream);
  if (p.D <= kLanes * 2 * VEC) return launch<T, VEC, 2 * VEC>(p, stream);
  if constexpr (VEC == 4) {
    if (p.D <= kLanes * 4 * VEC) return launch<T, VEC, 4 * VEC>(p, stream);
  }
  return cudaErrorInvalidValue;
}

template <typename T>
cudaError_t launch_scalar(const KvCacheParams& p, cudaStream_t stream) {
  if (p.D <= kLanes * 4) return launch<T, 1, 4>(p, stream);
  if (p.D <= kLanes * 16) return launch<T, 1, 16>(p, stream);
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

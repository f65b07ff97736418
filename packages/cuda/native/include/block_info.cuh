// Where a thread block's data lives (FlashAttention-2's BlockInfo): every kernel builds one BlockInfo for its
// (batch b, query head h) and takes each operand's (b, head) base from it, so the strided layout (flash_params.h)
// and the GQA head mapping are written once, not restated in each kernel's prologue. It also holds the block
// ranges of the mask: which key blocks a Q block sees (forward) and which Q blocks see a key block (backward).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "flash_common.cuh"
#include "flash_params.h"

namespace flash {

__host__ __device__ __forceinline__ int cdiv(int a, int b) { return (a + b - 1) / b; }

// Query rows that see some key of [n0, n0 + Bc): [i_min, i_end) (empty when i_end <= i_min).
__device__ __forceinline__ void query_range(int n0, int Bc, const AttnShape& s, int& i_min, int& i_end) {
  const int shift = s.Nk - s.Nq;
  const int n_end = min(n0 + Bc, s.Nk);
  i_min = s.window_right < 0 ? 0 : max(0, n0 - shift - s.window_right);
  i_end = s.window_left < 0 ? s.Nq : min(s.Nq, n_end - shift + s.window_left);
}

struct BlockInfo {
  int b, h, hk;  // batch, query head, its K/V head (GQA / MQA: h / (Hq / Hk))

  __device__ __forceinline__ BlockInfo(const AttnShape& s, int b_, int h_) : b(b_), h(h_), hk(h_ / (s.Hq / s.Hk)) {}

  // Element (b, 0, head, 0) of a strided (B, N, H, D) operand.
  template <typename T>
  __device__ __forceinline__ T* at(T* base, int64_t batch_stride, int64_t head_stride, int head) const {
    return base + (int64_t)b * batch_stride + (int64_t)head * head_stride;
  }

  // (N, D) row-major views of this block's head in each operand; the row stride is the operand's.
  template <typename T, typename P>
  __device__ __forceinline__ const T* q(const P& p) const {
    return at(reinterpret_cast<const T*>(p.q), p.q_batch_stride, p.q_head_stride, h);
  }
  template <typename T, typename P>
  __device__ __forceinline__ const T* k(const P& p) const {
    return at(reinterpret_cast<const T*>(p.k), p.k_batch_stride, p.k_head_stride, hk);
  }
  template <typename T, typename P>
  __device__ __forceinline__ const T* v(const P& p) const {
    return at(reinterpret_cast<const T*>(p.v), p.v_batch_stride, p.v_head_stride, hk);
  }
  template <typename T>
  __device__ __forceinline__ T* o(const FwdParams& p) const {
    return at(reinterpret_cast<T*>(p.o), p.o_batch_stride, p.o_head_stride, h);
  }
  template <typename T>
  __device__ __forceinline__ const T* dout(const BwdParams& p) const {
    return at(reinterpret_cast<const T*>(p.dout), p.do_batch_stride, p.do_head_stride, h);
  }
  // dK_j, dV_j rows of this block's K/V head (only without GQA: with it they go to dk/dv_expanded).
  template <typename T>
  __device__ __forceinline__ T* dk(const BwdParams& p) const {
    return at(reinterpret_cast<T*>(p.dk), p.dk_batch_stride, p.dk_head_stride, hk);
  }
  template <typename T>
  __device__ __forceinline__ T* dv(const BwdParams& p) const {
    return at(reinterpret_cast<T*>(p.dv), p.dv_batch_stride, p.dv_head_stride, hk);
  }
  // lse, D_i: (Nq,) of (b, h) in the contiguous (B, Hq, Nq) buffers.
  __device__ __forceinline__ int64_t row_stat(const AttnShape& s) const { return ((int64_t)b * s.Hq + h) * s.Nq; }
  // fp32 workspaces, contiguous: dq_accum (B, Nq, Hq, D) row stride Hq * D; dk/dv_expanded (B, Nk, Hq, D).
  __device__ __forceinline__ float* dq_accum(const BwdParams& p) const {
    return p.dq_accum + ((int64_t)b * p.s.Nq * p.s.Hq + h) * p.s.D;
  }
  __device__ __forceinline__ int64_t expanded_offset(const AttnShape& s, int j) const {
    return (((int64_t)b * s.Nk + j) * s.Hq + h) * s.D;
  }

  // Forward: the key blocks [nb_lo, nb_hi) of Bc keys that some row of [m0, m_last] sees (empty: nb_lo >= nb_hi).
  __device__ __forceinline__ static void key_blocks(const AttnShape& s, int m0, int m_last, int Bc, int& nb_lo,
                                                    int& nb_hi) {
    const int k_lo = key_lo(m0, s), k_hi = key_hi(m_last, s);
    nb_lo = k_lo / Bc;
    nb_hi = k_hi > k_lo ? (k_hi + Bc - 1) / Bc : nb_lo;
  }

  // Backward: the Q blocks [mb_lo, mb_hi) of Br rows that see some key of the key block starting at n0.
  __device__ __forceinline__ static void query_blocks(const AttnShape& s, int n0, int Bc, int Br, int& mb_lo,
                                                      int& mb_hi) {
    int i_min, i_end;
    query_range(n0, Bc, s, i_min, i_end);
    mb_lo = i_min / Br;
    mb_hi = i_end > i_min ? cdiv(i_end, Br) : mb_lo;
  }
};

// Deterministic mode (dq_semaphore set): the key blocks that reach Q block mb add into dQ_mb one after another,
// in increasing nb. The first of them is the smallest nb' whose query range reaches Q block mb; block nb waits
// until the semaphore counts nb - nb' finished blocks. Every thread of the block calls both functions.
// (A block only waits for blocks of lower index, which the hardware dispatches first.)
__device__ __forceinline__ int* dq_turn_semaphore(const BwdParams& p, int b, int h, int mb, int Br) {
  return p.dq_semaphore ? p.dq_semaphore + ((int64_t)b * p.s.Hq + h) * cdiv(p.s.Nq, Br) + mb : nullptr;
}
__device__ __forceinline__ void dq_wait_turn(int* sem, const AttnShape& s, int nb, int mb, int Bc, int Br) {
  if (!sem) return;
  if (threadIdx.x == 0) {
    int lo = 0, hi = nb;
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      int a, e;
      query_range(mid * Bc, Bc, s, a, e);
      const bool reaches = e > a && cdiv(e, Br) > mb;
      if (reaches) hi = mid; else lo = mid + 1;
    }
    const int turn = nb - lo;
    while (atomicAdd(sem, 0) != turn) __nanosleep(64);
    __threadfence();
  }
  __syncthreads();
}
// After this block's dQ_mb atomics: make them visible, then hand the turn on.
__device__ __forceinline__ void dq_pass_turn(int* sem) {
  if (!sem) return;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) atomicAdd(sem, 1);
}

}  // namespace flash

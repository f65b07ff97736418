// FlashAttention-2 backward (Algorithm 2 of Dao, 2023) with Hopper warpgroup MMA (wgmma, sm_90a), for
// D = 64 (Br = 128) and D = 128 (Br = 64). One thread block per (K/V block of Bc = 128 keys, query head,
// batch): two warpgroups of 4 warps, warpgroup wg owns keys wg*64..+64 and walks the Q blocks that see them.
//   S^T  = K_j Q_i^T   (64 keys x Br queries per warpgroup; K and Q from shared memory)
//   dP^T = V_j dO_i^T  (same shape), issued right behind S^T: exp(S^T) runs while the tensor cores do dP^T
//   dV_j += P^T dO_i   (64 keys x D; P^T from registers: the fp32 S^T accumulator rounded to 16 bit is
//   dK_j += dS^T Q_i    already laid out as wgmma's A fragment, so P never goes through shared memory)
//   dQ_i += dS K_j     (dS read transposed from the dS^T tile both warpgroups wrote; Br = 128: warpgroup wg
//                       takes queries wg*64..; Br = 64: all queries, columns wg*D/2..)
// Against flash_bwd_dkdv_sm80.cuh (mma.sync): no ldmatrix (wgmma reads B, and A of S^T / dP^T / dQ, from
// shared memory itself), P^T is not staged in shared memory, and the MMAs run asynchronously to the softmax.
// Shared memory is "core-matrix tiled" (see ../include/wgmma.cuh), no swizzle.
#pragma once
#include <cuda_runtime.h>

#include "../include/block_info.cuh"
#include "../include/flash_common.cuh"
#include "../include/wgmma.cuh"

namespace flash {

// dst[0..3] += v in global memory, no value returned (atomicAdd on a float4 compiles to atom with a result).
__device__ __forceinline__ void red_add_v4(float* dst, float4 v) {
  asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"l"(dst), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
               : "memory");
}

template <typename T, int D, int Br, int MODE>
__global__ void __launch_bounds__(256, 1) flash_bwd_dkdv_wgmma_kernel(const BwdParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using M = MmaType<T>;
  constexpr int Bc = 128, NT = 256;
  constexpr int NS = Br / 2;                 // S^T / dP^T accumulators per thread (m64 x Br)
  constexpr int QN = Br == 128 ? D : D / 2;  // dQ columns per warpgroup
  static_assert((D == 64 && (Br == 64 || Br == 128)) || (D == 128 && Br == 64), "wgmma backward: D = 64 / Br = 64, 128 or D = 128 / Br = 64");
  using MmaS = wgmma::Mma<T, Br>;    // S^T, dP^T: m64 n=Br
  using MmaKV = wgmma::Mma<T, D>;    // dV, dK: m64 n=D
  using MmaQ = wgmma::Mma<T, QN>;    // dQ: m64 n=QN
  constexpr bool DEFER = MODE & 2;     // dQ_i's atomics after Q block i+1's S^T / dP^T are issued
  constexpr bool DK_SMEM = MODE & 4;   // dK's A operand (dS^T) from shared memory: Br/4 fewer registers

  extern __shared__ __align__(128) unsigned char smem_raw[];
  const uint32_t sK_a = smem_addr(smem_raw);              // (Bc, D) core-matrix tiled
  const uint32_t sV_a = sK_a + Bc * D * 2;                // (Bc, D)
  const uint32_t sQ_a = sV_a + Bc * D * 2;                // (2, Br, D)
  const uint32_t sdO_a = sQ_a + 2 * Br * D * 2;           // (2, Br, D)
  const uint32_t sdS_a = sdO_a + 2 * Br * D * 2;          // dS^T: (DEFER ? 2 : 1, Bc, Br)
  float* sLse = reinterpret_cast<float*>(smem_raw + (4 * Br * D + 2 * Bc * D + (DEFER ? 2 : 1) * Bc * Br) * 2);  // (2, Br)
  float* sDi = sLse + 2 * Br;                                                                     // (2, Br)
  unsigned char* sdS = smem_raw + (sdS_a - sK_a);

  const AttnShape& s = p.s;
  const int nb = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const BlockInfo bi(s, b, h);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wg = warp / 4, wl = warp % 4, g = lane / 4, t = lane % 4;
  const int n0 = nb * Bc;
  const int rows_k = min(Bc, s.Nk - n0);
  const int key0 = wg * 64 + wl * 16 + g;  // this thread's first key row in the block (+8 for e >= 2)
  const int q0 = Br == 128 ? wg * 64 : 0;  // dQ: first query row of this warpgroup
  const int c0 = Br == 128 ? 0 : wg * QN;  // dQ: first column of this warpgroup

  const int64_t q_rs = p.q_row_stride, do_rs = p.do_row_stride, k_rs = p.k_row_stride, v_rs = p.v_row_stride;
  const int64_t dqa_rs = (int64_t)s.Hq * D;                // dq_accum row stride (contiguous)
  const T* gQ = bi.q<T>(p);                               // (Nq, D) rows of stride q_rs
  const T* gdO = bi.dout<T>(p);                           // (Nq, D) rows of stride do_rs
  const T* gK = bi.k<T>(p) + (int64_t)n0 * k_rs;          // (rows_k, D) rows of stride k_rs
  const T* gV = bi.v<T>(p) + (int64_t)n0 * v_rs;          // (rows_k, D) rows of stride v_rs
  const float* gLse = p.lse + bi.row_stat(s);             // (Nq,)
  const float* gDi = p.d_rowsum + bi.row_stat(s);         // (Nq,)
  float* gdQacc = bi.dq_accum(p);                         // (Nq, D) fp32, rows of stride dqa_rs

  int mb_lo, mb_hi;
  BlockInfo::query_blocks(s, n0, Bc, Br, mb_lo, mb_hi);

  auto load_q_block = [&](int mb, int stage) {
    const int m0 = mb * Br, rows = min(Br, s.Nq - m0);
    wgmma::load_tile_cm<Br, D, NT>(sQ_a + stage * Br * D * 2, gQ + (int64_t)m0 * q_rs, q_rs, rows, gQ, tid);
    wgmma::load_tile_cm<Br, D, NT>(sdO_a + stage * Br * D * 2, gdO + (int64_t)m0 * do_rs, do_rs, rows, gdO, tid);
    for (int r = tid; r < Br; r += NT) {
      cp_async4(smem_addr(sLse + stage * Br + r), r < rows ? gLse + m0 + r : p.lse, r < rows);
      cp_async4(smem_addr(sDi + stage * Br + r), r < rows ? gDi + m0 + r : p.d_rowsum, r < rows);
    }
  };
  // Algorithm 2, line 6: load K_j, V_j; and the first Q_i, dO_i, lse_i, D_i.
  if (mb_lo < mb_hi) {
    wgmma::load_tile_cm<Bc, D, NT>(sK_a, gK, k_rs, rows_k, gK, tid);
    wgmma::load_tile_cm<Bc, D, NT>(sV_a, gV, v_rs, rows_k, gV, tid);
    load_q_block(mb_lo, 0);
  }
  cp_async_commit();

  float acc_dk[D / 2], acc_dv[D / 2];  // dK_j, dV_j: keys wg*64 + 16*wl.. x D (wgmma accumulator layout)
#pragma unroll
  for (int i = 0; i < D / 2; ++i) acc_dk[i] = acc_dv[i] = 0.f;

  // dQ_i += dS K_j of the previous Q block, waiting in registers: with DEFER its atomics run while the tensor
  // cores do the next block's S^T and dP^T.
  float dq[QN / 2];  // queries q0 + 16*wl.. x columns c0.. (wgmma accumulator layout)
  // Adds dq into dQ_accum rows of Q block mb (unscaled; the convert kernel applies softmaxScale).
  auto flush_dq = [&](int mb) {
    int* sem = dq_turn_semaphore(p, b, h, mb, Br);
    dq_wait_turn(sem, s, nb, mb, Bc, Br);
    // One float4 atomic per n8 tile: lanes t, t^1 swap halves (see flash_bwd_dkdv.cuh).
    const bool even = (t & 1) == 0;
    const int i = mb * Br + q0 + wl * 16 + g + (even ? 0 : 8);
    float* dst = gdQacc + (int64_t)i * dqa_rs + c0 + 2 * (t & ~1);
#pragma unroll
    for (int n = 0; n < QN / 8; ++n) {
      const float s0 = even ? dq[4 * n + 2] : dq[4 * n], s1 = even ? dq[4 * n + 3] : dq[4 * n + 1];
      const float r0 = __shfl_xor_sync(0xffffffff, s0, 1), r1 = __shfl_xor_sync(0xffffffff, s1, 1);
      const float4 val = even ? make_float4(dq[4 * n], dq[4 * n + 1], r0, r1)
                              : make_float4(r0, r1, dq[4 * n + 2], dq[4 * n + 3]);
      if (i < s.Nq) red_add_v4(dst + n * 8, val);
    }
    dq_pass_turn(sem);
  };

  // Algorithm 2, line 7: for i = 1..Tr
  for (int mb = mb_lo; mb < mb_hi; ++mb) {
    const int stage = (mb - mb_lo) & 1;
    const int m0 = mb * Br;
    cp_async_wait<0>();
    wgmma::fence_proxy_async();
    // Q_i etc. visible to all (and to wgmma). Every warpgroup is done with block i-1's Q / dO stage (its
    // dV / dK wgmma completed before this barrier); with DEFER, dQ_{i-1} may still be reading its dS^T buffer.
    __syncthreads();
    if (mb + 1 < mb_hi) load_q_block(mb + 1, stage ^ 1);
    cp_async_commit();
    const uint32_t sQ_s = sQ_a + stage * Br * D * 2, sdO_s = sdO_a + stage * Br * D * 2;
    // Shared-memory addresses made opaque per Q block: otherwise the compiler hoists every loop-invariant wgmma
    // descriptor (K, V, dS^T: ~30 of 64 bits each) out of the loop and keeps them in registers, which spilled.
    uint32_t sK_i = sK_a, sV_i = sV_a, sdS_s = sdS_a + (DEFER ? stage * Bc * Br * 2 : 0);
    asm volatile("" : "+r"(sK_i), "+r"(sV_i), "+r"(sdS_s));
    unsigned char* sdS_p = sdS + (DEFER ? stage * Bc * Br * 2 : 0);
    const float* lse_s = sLse + stage * Br;
    const float* di_s = sDi + stage * Br;

    // Algorithm 2, line 9: S^T = K_j Q_i^T; line 13: dP^T = V_j dO_i^T (two commit groups).
    // Descriptor bases of this Q block's operands (this warpgroup's keys / dQ rows and columns folded in);
    // every wgmma below adds a compile-time offset to one of them.
    const wgmma::DescBase kK = wgmma::base_k_major<D>(sK_i + wgmma::cm_offset<D>(wg * 64, 0));
    const wgmma::DescBase kV = wgmma::base_k_major<D>(sV_i + wgmma::cm_offset<D>(wg * 64, 0));
    const wgmma::DescBase kQ = wgmma::base_k_major<D>(sQ_s), kdO = wgmma::base_k_major<D>(sdO_s);
    const wgmma::DescBase mQ = wgmma::base_mn_major<D>(sQ_s), mdO = wgmma::base_mn_major<D>(sdO_s);
    const wgmma::DescBase kdS = wgmma::base_k_major<Br>(sdS_s + wgmma::cm_offset<Br>(wg * 64, 0));
    const wgmma::DescBase mdS = wgmma::base_mn_major<Br>(sdS_s + wgmma::cm_offset<Br>(0, q0));
    const wgmma::DescBase mK = wgmma::base_mn_major<D>(sK_i + wgmma::cm_offset<D>(0, c0));
    // The first k-step of each product overwrites its accumulator (ss0), so none is zeroed or live before -
    // except with DEFER: while dQ_{i-1}'s wgmma is in flight, ptxas answers write-only first steps by
    // serializing every wgmma (C7515; D = 64 bwd 10-13% slower on the H100), so there they are zeroed.
    float st[NS], dpt[NS];  // S^T -> P^T (in place), dP^T -> dS^T: keys x queries of this warpgroup
    if constexpr (DEFER) {
#pragma unroll
      for (int i = 0; i < NS; ++i) st[i] = dpt[i] = 0.f;
    }
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint64_t da = kK.at(wgmma::cm_offset<D>(0, kk * 16)), db = kQ.at(wgmma::cm_offset<D>(0, kk * 16));
      if (kk == 0 && !DEFER) MmaS::template ss0<0, 0>(st, da, db); else MmaS::template ss<0, 0>(st, da, db, 1);
    }
    wgmma::commit();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint64_t da = kV.at(wgmma::cm_offset<D>(0, kk * 16)), db = kdO.at(wgmma::cm_offset<D>(0, kk * 16));
      if (kk == 0 && !DEFER) MmaS::template ss0<0, 0>(dpt, da, db); else MmaS::template ss<0, 0>(dpt, da, db, 1);
    }
    wgmma::commit();
    if (DEFER && mb > mb_lo) {  // dQ_{i-1} is the oldest group: done once at most S^T, dP^T are pending
      wgmma::wait<2>();
      wgmma::pin(dq);
      flush_dq(mb - 1);
    }

    // Algorithm 2, line 11: P^T = exp(scale * S^T - lse) with the mask, while dP^T is still running.
    wgmma::wait<1>();
    wgmma::pin(st);
    const int m_last = min(m0 + Br, s.Nq) - 1;
    const bool need_mask = m0 + Br > s.Nq || !(key_lo(m_last, s) <= n0 && n0 + Bc <= key_hi(m0, s));
#pragma unroll
    for (int i = 0; i < NS; ++i) {
      const int qi = (i / 4) * 8 + 2 * t + (i % 2);  // query within the block
      const int kj = key0 + ((i % 4) / 2) * 8;        // key within the block
      // A fully masked row has lse = -inf and no visible key: treat it as +inf so P = 0.
      const float lse = lse_s[qi] == -INFINITY ? INFINITY : lse_s[qi];
      // scale * S - lse in one rounding (fma), then to base 2 (see flash_bwd_dkdv.cuh).
      float v = fast_exp2(fmaf(st[i], s.scale, -lse) * 1.4426950408889634f);
      if (need_mask && (m0 + qi >= s.Nq || !visible(m0 + qi, n0 + kj, s))) v = 0.f;
      st[i] = v;
    }
    wgmma::wait<0>();
    wgmma::pin(dpt);

    // Algorithm 2, line 16: dS^T = P^T o (dP^T - D_i) from the fp32 P^T; to shared memory (16 bit) for dQ
    // (and, with DK_SMEM, for dK).
#pragma unroll
    for (int i = 0; i < NS; ++i) {
      const int qi = (i / 4) * 8 + 2 * t + (i % 2);
      dpt[i] = st[i] * (dpt[i] - di_s[qi]);
    }
#pragma unroll
    for (int n = 0; n < Br / 8; ++n)
#pragma unroll
      for (int rr = 0; rr < 2; ++rr)
        *reinterpret_cast<uint32_t*>(sdS_p + wgmma::cm_offset<Br>(key0 + rr * 8, n * 8 + 2 * t)) =
            M::pack(dpt[4 * n + 2 * rr], dpt[4 * n + 2 * rr + 1]);
    // P^T (and without DK_SMEM dS^T) as A fragments of m64nDk16, k = queries kq*16..: the accumulator pairs
    // of n8 tiles 2kq, 2kq+1. Packed only now, so the fp32 and 16-bit copies are not live together.
    uint32_t pfr[Br / 16][4], dsfr[DK_SMEM ? 1 : Br / 16][4];
#pragma unroll
    for (int kq = 0; kq < Br / 16; ++kq)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        pfr[kq][j] = M::pack(st[8 * kq + 2 * j], st[8 * kq + 2 * j + 1]);
        if (!DK_SMEM) dsfr[kq][j] = M::pack(dpt[8 * kq + 2 * j], dpt[8 * kq + 2 * j + 1]);
      }

    // Algorithm 2, line 12: dV_j += P^T dO_i; line 17: dK_j += dS^T Q_i (scale applied at the end), here from
    // registers unless DK_SMEM.
    wgmma::fence();
#pragma unroll
    for (int kq = 0; kq < Br / 16; ++kq)
      MmaKV::template rs<1>(acc_dv, pfr[kq], mdO.at(wgmma::cm_offset<D>(kq * 16, 0)), 1);
    if constexpr (!DK_SMEM) {
#pragma unroll
      for (int kq = 0; kq < Br / 16; ++kq)
        MmaKV::template rs<1>(acc_dk, dsfr[kq], mQ.at(wgmma::cm_offset<D>(kq * 16, 0)), 1);
    }
    wgmma::commit();
    wgmma::fence_proxy_async();
    __syncthreads();  // dS^T complete (both warpgroups)

    // Algorithm 2, line 17 with DK_SMEM: dK_j += dS^T Q_i, dS^T (this warpgroup's keys) read by wgmma itself.
    if constexpr (DEFER) {  // as st / dpt above
#pragma unroll
      for (int i = 0; i < QN / 2; ++i) dq[i] = 0.f;
    }
    wgmma::fence();
    if constexpr (DK_SMEM) {
#pragma unroll
      for (int kq = 0; kq < Br / 16; ++kq)
        MmaKV::template ss<0, 1>(acc_dk, kdS.at(wgmma::cm_offset<Br>(0, kq * 16)),
                                 mQ.at(wgmma::cm_offset<D>(kq * 16, 0)), 1);
      wgmma::commit();
    }
    // Algorithm 2, line 18: dQ_i += dS K_j.
#pragma unroll
    for (int kk = 0; kk < Bc / 16; ++kk) {
      const uint64_t da = mdS.at(wgmma::cm_offset<Br>(kk * 16, 0)), db = mK.at(wgmma::cm_offset<D>(kk * 16, 0));
      if (kk == 0 && !DEFER) MmaQ::template ss0<1, 1>(dq, da, db); else MmaQ::template ss<1, 1>(dq, da, db, 1);
    }
    wgmma::commit();
    // dV / dK done (their registers and this Q / dO stage are free); without DEFER also dQ, flushed now.
    if (DEFER) wgmma::wait<1>(); else wgmma::wait<0>();
    wgmma::pin(acc_dv);
    wgmma::pin(acc_dk);
#pragma unroll
    for (int kq = 0; kq < Br / 16; ++kq)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        asm volatile("" : "+r"(pfr[kq][j])::"memory");
        if (!DK_SMEM) asm volatile("" : "+r"(dsfr[kq][j])::"memory");
      }
    if (!DEFER) {
      wgmma::pin(dq);
      flush_dq(mb);
    }
  }
  if (DEFER && mb_lo < mb_hi) {
    wgmma::wait<0>();
    wgmma::pin(dq);
    flush_dq(mb_hi - 1);
  }

  // Algorithm 2, line 20: write dK_j (times softmaxScale) and dV_j. GQA/MQA: fp32 per query head, summed later.
  T* gdK = bi.dk<T>(p);  // (Nk, D) rows of stride dk_row_stride
  T* gdV = bi.dv<T>(p);
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int j = n0 + key0 + rr * 8;
    if (j >= s.Nk) continue;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      const int d = n * 8 + 2 * t;
      const float dk0 = acc_dk[4 * n + 2 * rr] * s.scale, dk1 = acc_dk[4 * n + 2 * rr + 1] * s.scale;
      const float dv0 = acc_dv[4 * n + 2 * rr], dv1 = acc_dv[4 * n + 2 * rr + 1];
      if (p.dk_expanded) {
        const int64_t off = bi.expanded_offset(s, j) + d;
        *reinterpret_cast<float2*>(p.dk_expanded + off) = make_float2(dk0, dk1);
        *reinterpret_cast<float2*>(p.dv_expanded + off) = make_float2(dv0, dv1);
      } else {
        *reinterpret_cast<uint32_t*>(gdK + j * p.dk_row_stride + d) = M::pack(dk0, dk1);
        *reinterpret_cast<uint32_t*>(gdV + j * p.dv_row_stride + d) = M::pack(dv0, dv1);
      }
    }
  }
#else
  __trap();  // built without sm_90a: wgmma_available() reports false and this kernel is never launched
#endif
}

template <typename T, int D, int Br, int MODE>
cudaError_t launch_flash_bwd_dkdv_wgmma(const BwdParams& p, cudaStream_t stream) {
  constexpr int Bc = 128;
  constexpr bool DEFER = MODE & 2;
  const size_t smem = (size_t)(2 * Bc * D + 4 * Br * D + (DEFER ? 2 : 1) * Bc * Br) * sizeof(T) + 4 * Br * sizeof(float);
  auto kernel = flash_bwd_dkdv_wgmma_kernel<T, D, Br, MODE>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (err != cudaSuccess) return err;
  dim3 grid((p.s.Nk + Bc - 1) / Bc, p.s.Hq, p.s.B);
  kernel<<<grid, 256, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace flash

// FlashAttention-2 forward (Algorithm 1 of Dao, 2023) with Hopper warpgroup MMA (wgmma, sm_90a), D = 64 and 128.
// One thread block of NWG warpgroups per (Q block of Br = 64 * NWG rows, query head, batch); warpgroup wg owns
// rows wg*64.., each warp 16 rows and its own online softmax, as in flash_fwd.cuh. The warpgroups share the
// K_j / V_j tiles: with one warpgroup per block (Br = 64) every block streams all of K and V for 64 rows, and the
// forward ran at 134-141 TFLOP/s (0.42-0.54x torch flash, H100 bf16, Bc 64 or 128 alike: L2 traffic).
//   S = Q_i K_j^T : m64 n=Bc k16, Q and K read by wgmma from core-matrix tiled shared memory (K-major both)
//   O += P V_j    : m64 n=D k16, P from registers (the S accumulator rounded to 16 bit is wgmma's A fragment),
//                   V as an MN-major operand of the same tile layout
// K_j / V_j stream through shared memory with cp.async as in flash_fwd.cuh: V_j during S and the softmax,
// K_{j+1} during O += P V_j.
#pragma once
#include <cuda_runtime.h>

#include "../include/flash_common.cuh"
#include "../include/wgmma.cuh"

namespace flash {

template <typename T, int D, int Bc, int NWG>
__global__ void __launch_bounds__(128 * NWG) flash_fwd_wgmma_kernel(const FwdParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using M = MmaType<T>;
  constexpr int NT = 128 * NWG, Br = 64 * NWG;
  constexpr int SD = D + 8;  // padded row stride of the output staging tile (reuses sQ)
  using MmaS = wgmma::Mma<T, Bc>;  // S: m64 n=Bc
  using MmaO = wgmma::Mma<T, D>;   // O: m64 n=D
  static_assert((D == 64 || D == 128) && (Bc == 64 || Bc == 128), "wgmma forward tile");

  extern __shared__ __align__(128) unsigned char smem_raw[];
  constexpr int SQ_BYTES = Br * SD * 2;                      // >= the (Br, D) core-matrix tile
  const uint32_t sQ_a = smem_addr(smem_raw);                 // (Br, D) core-matrix tiled; O staging at the end
  const uint32_t sK_a = sQ_a + SQ_BYTES;                     // (Bc, D)
  const uint32_t sV_a = sK_a + Bc * D * 2;                   // (Bc, D)
  T* sO = reinterpret_cast<T*>(smem_raw);                    // (Br, SD) row-major, after the loop

  const AttnShape& s = p.s;
  const int mb = gridDim.x - 1 - blockIdx.x;  // longest (causal) blocks first
  const int h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (s.Hq / s.Hk);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  const int m0 = mb * Br;
  const int rows_q = min(Br, s.Nq - m0);
  const int m_last = m0 + rows_q - 1;

  const int64_t q_rs = (int64_t)s.Hq * D, k_rs = (int64_t)s.Hk * D;
  const T* gQ0 = reinterpret_cast<const T*>(p.q);
  const T* gK0 = reinterpret_cast<const T*>(p.k);
  const T* gV0 = reinterpret_cast<const T*>(p.v);
  const T* gQ = gQ0 + ((int64_t)b * s.Nq + m0) * q_rs + (int64_t)h * D;  // (Br, D) rows of stride q_rs
  const T* gK = gK0 + (int64_t)b * s.Nk * k_rs + (int64_t)hk * D;         // (Nk, D)
  const T* gV = gV0 + (int64_t)b * s.Nk * k_rs + (int64_t)hk * D;         // (Nk, D)
  T* gO = reinterpret_cast<T*>(p.o) + ((int64_t)b * s.Nq + m0) * q_rs + (int64_t)h * D;
  float* gLse = p.lse + ((int64_t)b * s.Hq + h) * s.Nq + m0;              // (Br,)

  const int k_lo = key_lo(m0, s), k_hi = key_hi(m_last, s);
  const int nb_lo = k_lo / Bc;
  const int nb_hi = k_hi > k_lo ? (k_hi + Bc - 1) / Bc : nb_lo;
  if (nb_lo >= nb_hi) {  // every row fully masked: out = 0, lse = -inf
    write_fully_masked_rows<D, NT>(gO, q_rs, gLse, rows_q, tid);
    return;
  }

  // Algorithm 1, line 4: load Q_i; then K of the first key block.
  wgmma::load_tile_cm<Br, D, NT>(sQ_a, gQ, q_rs, rows_q, gQ0, tid);
  wgmma::load_tile_cm<Bc, D, NT>(sK_a, gK + (int64_t)nb_lo * Bc * k_rs, k_rs, s.Nk - nb_lo * Bc, gK0, tid);
  cp_async_commit();

  float acc[D / 2];  // O_i: rows 16*warp + g (+8) x D (wgmma accumulator layout)
#pragma unroll
  for (int i = 0; i < D / 2; ++i) acc[i] = 0.f;
  float m_i[2] = {-INFINITY, -INFINITY};  // running row max of the raw scores (rows g, g + 8)
  float l_i[2] = {0.f, 0.f};              // running row sum of exp (this thread's columns; quad-reduced at the end)
  const int wg = warp / 4;
  const int row0 = warp * 16 + g;         // this thread's first row in the block (+8 for the second)

  // Algorithm 1, line 5: for j = 1..Tc
  for (int nb = nb_lo; nb < nb_hi; ++nb) {
    const int n0 = nb * Bc;
    cp_async_wait<0>();  // K_j landed
    wgmma::fence_proxy_async();
    __syncthreads();     // ... for every warp, and every warp is done with V_{j-1}
    wgmma::load_tile_cm<Bc, D, NT>(sV_a, gV + (int64_t)n0 * k_rs, k_rs, s.Nk - n0, gV0, tid);
    cp_async_commit();
    // Opaque per block, so the loop-invariant descriptors are not all hoisted into registers.
    uint32_t q_i = sQ_a, k_i = sK_a, v_i = sV_a;
    asm volatile("" : "+r"(q_i), "+r"(k_i), "+r"(v_i));

    // Algorithm 1, line 8: S_ij = Q_i K_j^T (16 rows x Bc per warp).
    float sc[Bc / 2];
#pragma unroll
    for (int i = 0; i < Bc / 2; ++i) sc[i] = 0.f;
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
      MmaS::template ss<0, 0>(sc, wgmma::desc_k_major<D>(q_i + wgmma::cm_offset<D>(wg * 64, kk * 16)),
                              wgmma::desc_k_major<D>(k_i + wgmma::cm_offset<D>(0, kk * 16)), 1);
    wgmma::commit();
    wgmma::wait<0>();
    wgmma::pin(sc);

    // Mask only the blocks that cut through some row's keyRange (diagonal / window edges / ragged end).
    const bool need_mask = !(key_lo(m_last, s) <= n0 && n0 + Bc <= key_hi(m0, s));
    if (need_mask) {
#pragma unroll
      for (int i = 0; i < Bc / 2; ++i) {
        const int r = m0 + row0 + ((i % 4) / 2) * 8;
        const int j = n0 + (i / 4) * 8 + 2 * t + (i % 2);
        if (!visible(r, j, s)) sc[i] = -INFINITY;
      }
    }

    // Algorithm 1, lines 9-10: online softmax in base 2 with the scale folded in (see flash_fwd.cuh for why
    // exp2((S - m) * scale_log2) and not the fused form).
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float mx = m_i[rr];
#pragma unroll
      for (int n = 0; n < Bc / 8; ++n) mx = fmaxf(mx, fmaxf(sc[4 * n + 2 * rr], sc[4 * n + 2 * rr + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
      const float base = mx == -INFINITY ? 0.f : mx;
      const float alpha = fast_exp2((m_i[rr] - base) * s.scale_log2);
      m_i[rr] = mx;
      float rowsum = 0.f;
#pragma unroll
      for (int n = 0; n < Bc / 8; ++n) {
        const float p0 = fast_exp2((sc[4 * n + 2 * rr] - base) * s.scale_log2);
        const float p1 = fast_exp2((sc[4 * n + 2 * rr + 1] - base) * s.scale_log2);
        sc[4 * n + 2 * rr] = p0;
        sc[4 * n + 2 * rr + 1] = p1;
        rowsum += p0 + p1;
      }
      l_i[rr] = l_i[rr] * alpha + rowsum;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        acc[4 * n + 2 * rr] *= alpha;
        acc[4 * n + 2 * rr + 1] *= alpha;
      }
    }
    // P as A fragments of m64nDk16, k = keys kk*16..: accumulator pairs of n8 tiles 2kk, 2kk+1.
    uint32_t pfr[Bc / 16][4];
#pragma unroll
    for (int kk = 0; kk < Bc / 16; ++kk)
#pragma unroll
      for (int j = 0; j < 4; ++j) pfr[kk][j] = M::pack(sc[8 * kk + 2 * j], sc[8 * kk + 2 * j + 1]);

    cp_async_wait<0>();  // V_j landed
    wgmma::fence_proxy_async();
    __syncthreads();     // ... for every warp, and every warp's wgmma is done reading K_j
    if (nb + 1 < nb_hi) {
      wgmma::load_tile_cm<Bc, D, NT>(sK_a, gK + (int64_t)(n0 + Bc) * k_rs, k_rs, s.Nk - n0 - Bc, gK0, tid);
      cp_async_commit();
    }

    // Algorithm 1, line 10: O_i += P_ij V_j.
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < Bc / 16; ++kk)
      MmaO::template rs<1>(acc, pfr[kk], wgmma::desc_mn_major<D>(v_i + wgmma::cm_offset<D>(kk * 16, 0)), 1);
    wgmma::commit();
    wgmma::wait<0>();
    wgmma::pin(acc);
#pragma unroll
    for (int kk = 0; kk < Bc / 16; ++kk)
#pragma unroll
      for (int j = 0; j < 4; ++j) asm volatile("" : "+r"(pfr[kk][j])::"memory");
  }

  // Algorithm 1, lines 12-13: O_i = diag(l_i)^-1 O_i, L_i = m_i + log(l_i). Staged through sQ's space (row-major,
  // padded) for 16-byte coalesced stores; every warp's wgmma is done with sQ after this barrier.
  __syncthreads();
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    float l = l_i[rr];
    l += __shfl_xor_sync(0xffffffff, l, 1);
    l += __shfl_xor_sync(0xffffffff, l, 2);
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const int row = row0 + rr * 8;
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
      *reinterpret_cast<uint32_t*>(sO + row * SD + n * 8 + 2 * t) =
          M::pack(acc[4 * n + 2 * rr] * inv, acc[4 * n + 2 * rr + 1] * inv);
    if (t == 0 && row < rows_q) gLse[row] = l > 0.f ? m_i[rr] * s.scale + logf(l) : -INFINITY;
  }
  __syncthreads();
  for (int idx = tid; idx < rows_q * (D / 8); idx += NT) {
    const int r = idx / (D / 8), c = idx % (D / 8);
    *reinterpret_cast<uint4*>(gO + r * q_rs + c * 8) = *reinterpret_cast<const uint4*>(sO + r * SD + c * 8);
  }
#else
  __trap();  // built without sm_90a: fwd_wgmma_available() reports false and this kernel is never launched
#endif
}

template <typename T, int D, int Bc, int NWG>
cudaError_t launch_flash_fwd_wgmma(const FwdParams& p, cudaStream_t stream) {
  constexpr int Br = 64 * NWG;
  const size_t smem = (size_t)Br * (D + 8) * sizeof(T) + (size_t)2 * Bc * D * sizeof(T);
  auto kernel = flash_fwd_wgmma_kernel<T, D, Bc, NWG>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (err != cudaSuccess) return err;
  dim3 grid((p.s.Nq + Br - 1) / Br, p.s.Hq, p.s.B);
  kernel<<<grid, 128 * NWG, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace flash

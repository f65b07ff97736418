// FlashAttention-2 forward (Algorithm 1 of Dao, 2023) on tensor cores.
// One thread block per (Q block of Br rows, query head, batch); 4 warps split the Br rows (16 * MT rows
// each, "Q split across warps"), each warp runs its own online softmax without inter-warp exchange.
// K_j / V_j tiles (Bc rows) stream through shared memory with cp.async: V_j is fetched while S = Q K_j^T
// and the softmax run, K_{j+1} while O += P V_j runs.
#pragma once
#include <cuda_runtime.h>

#include "../include/block_info.cuh"
#include "../include/flash_common.cuh"

namespace flash {

template <typename T, int D, int Br, int Bc>
__global__ void __launch_bounds__(128) flash_fwd_kernel(const FwdParams p) {
  using M = MmaType<T>;
  constexpr int NT = 128;         // threads
  constexpr int MT = Br / 64;     // m16 tiles per warp (4 warps)
  constexpr int SD = D + 8;       // padded smem row stride (elements)
  constexpr int NS = Bc / 8;      // n8 tiles of S per row tile
  constexpr int NO = D / 8;       // n8 tiles of O per row tile
  static_assert(Br % 64 == 0 && Bc % 16 == 0 && D % 16 == 0, "tile shape");

  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);  // (Br, SD)
  T* sK = sQ + Br * SD;                    // (Bc, SD)
  T* sV = sK + Bc * SD;                    // (Bc, SD)

  const AttnShape& s = p.s;
  const int mb = gridDim.x - 1 - blockIdx.x;  // longest (causal) blocks first
  const BlockInfo bi(s, blockIdx.z, blockIdx.y);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;       // mma fragment row group / column pair
  const int m0 = mb * Br;
  const int rows_q = min(Br, s.Nq - m0);
  const int m_last = m0 + rows_q - 1;

  const int64_t q_rs = p.q_row_stride, k_rs = p.k_row_stride, v_rs = p.v_row_stride, o_rs = p.o_row_stride;
  const T* gQ = bi.q<T>(p) + (int64_t)m0 * q_rs;  // (Br, D) rows of stride q_rs
  const T* gK = bi.k<T>(p);                       // (Nk, D) rows of stride k_rs
  const T* gV = bi.v<T>(p);                       // (Nk, D) rows of stride v_rs
  T* gO = bi.o<T>(p) + (int64_t)m0 * o_rs;        // (Br, D) rows of stride o_rs
  float* gLse = p.lse + bi.row_stat(s) + m0;      // (Br,)

  // Key blocks this Q block can see: [nb_lo, nb_hi) covers every row's keyRange.
  int nb_lo, nb_hi;
  BlockInfo::key_blocks(s, m0, m_last, Bc, nb_lo, nb_hi);

  if (nb_lo >= nb_hi) {  // every row fully masked: out = 0, lse = -inf
    write_fully_masked_rows<D, NT>(gO, o_rs, gLse, rows_q, tid);
    return;
  }

  // Algorithm 1, line 4: load Q_i; then K of the first key block.
  load_tile<Br, D, NT>(sQ, gQ, q_rs, rows_q, gQ, tid);
  load_tile<Bc, D, NT>(sK, gK + (int64_t)nb_lo * Bc * k_rs, k_rs, s.Nk - nb_lo * Bc, gK, tid);
  cp_async_commit();

  float acc[MT][NO][4];  // O_i accumulator: (16 * MT rows of this warp, D)
  float m_i[MT][2];      // running row max of the raw scores (rows g and g + 8 of each m16 tile)
  float l_i[MT][2];      // running row sum of exp (this thread's columns only; quad-reduced at the end)
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int n = 0; n < NO; ++n) acc[mt][n][0] = acc[mt][n][1] = acc[mt][n][2] = acc[mt][n][3] = 0.f;
    m_i[mt][0] = m_i[mt][1] = -INFINITY;
    l_i[mt][0] = l_i[mt][1] = 0.f;
  }

  const int warp_row0 = warp * 16 * MT;
  const uint32_t sQ_a = smem_addr(sQ), sK_a = smem_addr(sK), sV_a = smem_addr(sV);
  // ldmatrix lane addresses (bytes): A operand rows lane%16, column half lane/16.
  const uint32_t a_off = ((warp_row0 + lane % 16) * SD + (lane / 16) * 8) * 2;
  // B operand from K rows (non-transposed): key r + (mi/2)*8, d (mi%2)*8.
  const int mi = lane / 8, r8 = lane % 8;
  const uint32_t bk_off = ((r8 + (mi / 2) * 8) * SD + (mi % 2) * 8) * 2;
  // B operand from V (transposed): key r + (mi%2)*8, d (mi/2)*8.
  const uint32_t bv_off = ((r8 + (mi % 2) * 8) * SD + (mi / 2) * 8) * 2;

  // Algorithm 1, line 5: for j = 1..Tc
  for (int nb = nb_lo; nb < nb_hi; ++nb) {
    const int n0 = nb * Bc;
    cp_async_wait<0>();  // K_j landed
    __syncthreads();     // ... for every warp, and every warp is done with V_{j-1}
    load_tile<Bc, D, NT>(sV, gV + (int64_t)n0 * v_rs, v_rs, s.Nk - n0, gV, tid);
    cp_async_commit();

    // Algorithm 1, line 8: S_ij = Q_i K_j^T  (16 * MT x Bc per warp)
    float sc[MT][NS][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int n = 0; n < NS; ++n) sc[mt][n][0] = sc[mt][n][1] = sc[mt][n][2] = sc[mt][n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) ldmatrix_x4(a[mt], sQ_a + a_off + (mt * 16 * SD + kk * 16) * 2);
#pragma unroll
      for (int np = 0; np < NS / 2; ++np) {
        uint32_t bf[4];
        ldmatrix_x4(bf, sK_a + bk_off + (np * 16 * SD + kk * 16) * 2);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          M::mma(sc[mt][2 * np], a[mt], bf[0], bf[1]);
          M::mma(sc[mt][2 * np + 1], a[mt], bf[2], bf[3]);
        }
      }
    }

    // Mask only the blocks that cut through some row's keyRange (diagonal / window edges / ragged end).
    const bool need_mask = !(key_lo(m_last, s) <= n0 && n0 + Bc <= key_hi(m0, s));
    if (need_mask) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n = 0; n < NS; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int i = m0 + warp_row0 + mt * 16 + g + (e / 2) * 8;
            const int j = n0 + n * 8 + 2 * t + (e % 2);
            if (!visible(i, j, s)) sc[mt][n][e] = -INFINITY;
          }
    }

    // Algorithm 1, lines 9-10: m_i^new = max(m_i, rowmax(S)); P = exp(S - m); l_i = e^{m-m_new} l_i + rowsum(P);
    // O_i = diag(e^{m-m_new}) O_i. Everything in base 2 with the scale folded in.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        float mx = m_i[mt][rr];
#pragma unroll
        for (int n = 0; n < NS; ++n) mx = fmaxf(mx, fmaxf(sc[mt][n][2 * rr], sc[mt][n][2 * rr + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
        // A row with no visible key so far keeps m = -inf; use 0 as the base so exp gives 0, not NaN.
        // exp2((S - m) * scale_log2), not exp2(S * scale_log2 - m * scale_log2): S - m is exact for the
        // entries that matter, whereas the rounded m * scale_log2 is off by ~1e-3 when |S| ~ 1e4
        // (conformance 'huge-spread' failed at 266x the naive error with the fused form).
        const float base = mx == -INFINITY ? 0.f : mx;
        const float alpha = fast_exp2((m_i[mt][rr] - base) * s.scale_log2);
        m_i[mt][rr] = mx;
        float rowsum = 0.f;
#pragma unroll
        for (int n = 0; n < NS; ++n) {
          const float p0 = fast_exp2((sc[mt][n][2 * rr] - base) * s.scale_log2);
          const float p1 = fast_exp2((sc[mt][n][2 * rr + 1] - base) * s.scale_log2);
          sc[mt][n][2 * rr] = p0;
          sc[mt][n][2 * rr + 1] = p1;
          rowsum += p0 + p1;
        }
        l_i[mt][rr] = l_i[mt][rr] * alpha + rowsum;
#pragma unroll
        for (int n = 0; n < NO; ++n) {
          acc[mt][n][2 * rr] *= alpha;
          acc[mt][n][2 * rr + 1] *= alpha;
        }
      }

    cp_async_wait<0>();  // V_j landed
    __syncthreads();     // ... for every warp, and every warp is done reading K_j
    if (nb + 1 < nb_hi) {
      load_tile<Bc, D, NT>(sK, gK + (int64_t)(n0 + Bc) * k_rs, k_rs, s.Nk - n0 - Bc, gK, tid);
      cp_async_commit();
    }

    // Algorithm 1, line 10: O_i += P_ij V_j. The S accumulator layout is the A-operand layout of the next mma.
#pragma unroll
    for (int kk = 0; kk < Bc / 16; ++kk) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        a[mt][0] = M::pack(sc[mt][2 * kk][0], sc[mt][2 * kk][1]);
        a[mt][1] = M::pack(sc[mt][2 * kk][2], sc[mt][2 * kk][3]);
        a[mt][2] = M::pack(sc[mt][2 * kk + 1][0], sc[mt][2 * kk + 1][1]);
        a[mt][3] = M::pack(sc[mt][2 * kk + 1][2], sc[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t bf[4];
        ldmatrix_x4_trans(bf, sV_a + bv_off + (kk * 16 * SD + dp * 16) * 2);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          M::mma(acc[mt][2 * dp], a[mt], bf[0], bf[1]);
          M::mma(acc[mt][2 * dp + 1], a[mt], bf[2], bf[3]);
        }
      }
    }
  }

  // Algorithm 1, lines 12-13: O_i = diag(l_i)^-1 O_i, L_i = m_i + log(l_i). Staged through sQ (each warp
  // overwrites only its own rows) for 16-byte coalesced stores.
  __syncthreads();
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float l = l_i[mt][rr];
      l += __shfl_xor_sync(0xffffffff, l, 1);
      l += __shfl_xor_sync(0xffffffff, l, 2);
      const float inv = l > 0.f ? 1.f / l : 0.f;
      const int row = warp_row0 + mt * 16 + g + rr * 8;
#pragma unroll
      for (int n = 0; n < NO; ++n) {
        *reinterpret_cast<uint32_t*>(sQ + row * SD + n * 8 + 2 * t) =
            M::pack(acc[mt][n][2 * rr] * inv, acc[mt][n][2 * rr + 1] * inv);
      }
      if (t == 0 && row < rows_q) {
        gLse[row] = l > 0.f ? m_i[mt][rr] * s.scale + logf(l) : -INFINITY;
      }
    }
  __syncthreads();
  for (int idx = tid; idx < rows_q * (D / 8); idx += NT) {
    const int r = idx / (D / 8), c = idx % (D / 8);
    *reinterpret_cast<uint4*>(gO + r * o_rs + c * 8) = *reinterpret_cast<const uint4*>(sQ + r * SD + c * 8);
  }
}

// Tile sizes per head dim: (Br, Bc). Br=128 keeps 2 m16 tiles per warp; D=256 drops to Br=64 for registers.
template <int D> struct FwdTiles { static constexpr int Br = 128, Bc = (D <= 32 ? 128 : 64); };
template <> struct FwdTiles<256> { static constexpr int Br = 64, Bc = 64; };

template <typename T, int D>
cudaError_t launch_flash_fwd(const FwdParams& p, cudaStream_t stream) {
  constexpr int Br = FwdTiles<D>::Br, Bc = FwdTiles<D>::Bc;
  const size_t smem = (size_t)(Br + 2 * Bc) * (D + 8) * sizeof(T);
  auto kernel = flash_fwd_kernel<T, D, Br, Bc>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (err != cudaSuccess) return err;
  dim3 grid((p.s.Nq + Br - 1) / Br, p.s.Hq, p.s.B);
  kernel<<<grid, 128, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace flash

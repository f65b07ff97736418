// FlashAttention-2 backward, dK and dV in float32 FMA (include/flash_f32.cuh: layout, tiles). One block per (key
// block of Bc = 16 TM rows, K/V head, batch) keeps K_j, V_j in shared memory and its dK_j, dV_j in registers, and
// loops over the query heads of its group (GQA / MQA: Hq / Hk of them) and, for each, over the Q blocks of Br rows
// that see the key block, in a fixed order: deterministic, no atomics, no expanded GQA workspace. The scores are
// computed transposed (S^T = K Q^T), so each thread's rows are its own keys.
#include "../include/flash_f32.cuh"
#include "../include/launchers.h"

namespace flash {
namespace f32 {

template <int D>
__global__ void __launch_bounds__(kThreads) flash_bwd_dkdv_f32_kernel(const BwdParams p, int fault) {
  using Tl = Tiles<D>;
  constexpr int TM = Tl::TM, Bc = Tl::R, Br = Tl::C, NR = Br / kLanes, NO = D / kLanes;
  extern __shared__ float smem[];
  float* sK = smem;                 // (Bc, D + 1)
  float* sV = sK + Bc * Tl::SD;     // (Bc, D + 1)
  float* sQ = sV + Bc * Tl::SD;     // (Br, D + 1)
  float* sdO = sQ + Br * Tl::SD;    // (Br, D + 1)
  float* sP = sdO + Br * Tl::SD;    // P^T, then dS^T: (Bc, Br + 1)
  float* sLse = sP + Bc * Tl::SC;   // (Br,)
  float* sDi = sLse + Br;           // (Br,)

  const AttnShape& s = p.s;
  const int nb = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
  const int group = s.Hq / s.Hk;
  const BlockInfo bk(s, b, hk * group);  // bk.hk == hk
  const int tid = threadIdx.x, g = tid / kLanes, lane = tid % kLanes;
  const int n0 = nb * Bc;
  const int rows_k = min(Bc, s.Nk - n0);
  load_rows<Bc, D>(sK, bk.k<float>(p) + (int64_t)n0 * p.k_row_stride, p.k_row_stride, rows_k, tid);
  load_rows<Bc, D>(sV, bk.v<float>(p) + (int64_t)n0 * p.v_row_stride, p.v_row_stride, rows_k, tid);

  float dk[TM][NO], dv[TM][NO];  // dK_j, dV_j: this thread's columns lane + 8 j of its TM key rows
#pragma unroll
  for (int m = 0; m < TM; ++m)
#pragma unroll
    for (int j = 0; j < NO; ++j) dk[m][j] = dv[m][j] = 0.f;

  int mb_lo, mb_hi;
  BlockInfo::query_blocks(s, n0, Bc, Br, mb_lo, mb_hi);
  if (fault == kFaultDropLastKeyBlock && nb == gridDim.x - 1) mb_hi = mb_lo;
  for (int h = hk * group; h < (hk + 1) * group; ++h) {
    const BlockInfo bi(s, b, h);
    const float* gQ = bi.q<float>(p);      // (Nq, D)
    const float* gdO = bi.dout<float>(p);  // (Nq, D)
    const float* gLse = p.lse + bi.row_stat(s);
    const float* gDi = p.d_rowsum + bi.row_stat(s);
    // Algorithm 2, line 6: for i = 1..Tr (the Q blocks that see K_j)
    for (int mb = mb_lo; mb < mb_hi; ++mb) {
      const int m0 = mb * Br;
      const int rows_q = min(Br, s.Nq - m0);
      __syncthreads();  // every warp is done with the previous Q_i, dO_i, L_i, D_i (and K_j, V_j are loaded)
      load_rows<Br, D>(sQ, gQ + (int64_t)m0 * p.q_row_stride, p.q_row_stride, rows_q, tid);
      load_rows<Br, D>(sdO, gdO + (int64_t)m0 * p.do_row_stride, p.do_row_stride, rows_q, tid);
      for (int r = tid; r < Br; r += kThreads) {
        sLse[r] = r < rows_q ? gLse[m0 + r] : 0.f;
        sDi[r] = r < rows_q ? gDi[m0 + r] : 0.f;
      }
      __syncthreads();

      // Algorithm 2, lines 8-9: S^T = K_j Q_i^T, P^T = exp(scale S^T - L_i)
      float pt[TM][NR];
      dot_rows<TM, NR, D>(pt, sK, sQ, g, lane);
#pragma unroll
      for (int m = 0; m < TM; ++m)
#pragma unroll
        for (int n = 0; n < NR; ++n) {
          const int r = lane + n * kLanes;
          pt[m][n] = recompute_p(pt[m][n], sLse[r], m0 + r, n0 + g * TM + m, s);
          sP[(g * TM + m) * Tl::SC + r] = pt[m][n];
        }
      __syncwarp();  // this row group's P^T rows are written
      // Algorithm 2, line 10: dV_j += P_ij^T dO_i
      mul_acc<TM, Br, D>(dv, sP, sdO, g, lane);
      // Algorithm 2, lines 11-13: dP^T = V_j dO_i^T, dS^T = P^T o (dP^T - D_i)
      float dpt[TM][NR];
      dot_rows<TM, NR, D>(dpt, sV, sdO, g, lane);
      __syncwarp();  // every lane of the row group has read its P^T rows
#pragma unroll
      for (int m = 0; m < TM; ++m)
#pragma unroll
        for (int n = 0; n < NR; ++n) {
          const int r = lane + n * kLanes;
          sP[(g * TM + m) * Tl::SC + r] = pt[m][n] * (dpt[m][n] - sDi[r]);
        }
      __syncwarp();
      // Algorithm 2, line 15: dK_j += dS_ij^T Q_i (the scale is applied once at the end)
      mul_acc<TM, Br, D>(dk, sP, sQ, g, lane);
    }
  }

  float* gdK = bk.dk<float>(p) + (int64_t)n0 * p.dk_row_stride;  // (Bc, D)
  float* gdV = bk.dv<float>(p) + (int64_t)n0 * p.dv_row_stride;  // (Bc, D)
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int row = g * TM + m;
    if (row < rows_k) {
#pragma unroll
      for (int j = 0; j < NO; ++j) {
        gdK[(int64_t)row * p.dk_row_stride + lane + j * kLanes] = dk[m][j] * s.scale;
        gdV[(int64_t)row * p.dv_row_stride + lane + j * kLanes] = dv[m][j];
      }
    }
  }
}

template <int D>
static cudaError_t launch_dkdv(const BwdParams& p, int fault, cudaStream_t stream) {
  using Tl = Tiles<D>;
  const size_t bytes =
      sizeof(float) * ((size_t)(2 * Tl::R + 2 * Tl::C) * Tl::SD + (size_t)Tl::R * Tl::SC + 2 * (size_t)Tl::C);
  const dim3 grid((p.s.Nk + Tl::R - 1) / Tl::R, p.s.Hk, p.s.B);
  return launch(flash_bwd_dkdv_f32_kernel<D>, grid, bytes, stream, p, fault);
}

}  // namespace f32

cudaError_t launch_bwd_dkdv_f32(const BwdParams& p, int fault, cudaStream_t stream) {
  switch (p.s.D) {
    case 32: return f32::launch_dkdv<32>(p, fault, stream);
    case 64: return f32::launch_dkdv<64>(p, fault, stream);
    case 96: return f32::launch_dkdv<96>(p, fault, stream);
    case 128: return f32::launch_dkdv<128>(p, fault, stream);
    case 256: return f32::launch_dkdv<256>(p, fault, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace flash

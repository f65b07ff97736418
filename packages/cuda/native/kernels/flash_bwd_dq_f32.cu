// FlashAttention-2 backward, dQ in float32 FMA (include/flash_f32.cuh: layout, tiles). One block per (Q block of
// Br = 16 TM rows, query head, batch) loops over the key blocks its rows see, in a fixed order, and writes
// dQ_i = scale * sum_j dS_ij K_j once: deterministic, no atomics, no fp32 accumulator workspace (the dK/dV kernel,
// flash_bwd_dkdv_f32.cu, recomputes P and dP on its side; FlashAttention-2's "separate dQ pass").
#include "../include/flash_f32.cuh"
#include "../include/launchers.h"

namespace flash {
namespace f32 {

template <int D>
__global__ void __launch_bounds__(kThreads) flash_bwd_dq_f32_kernel(const BwdParams p, int fault) {
  using Tl = Tiles<D>;
  constexpr int TM = Tl::TM, Br = Tl::R, Bc = Tl::C, NC = Bc / kLanes, NO = D / kLanes;
  extern __shared__ float smem[];
  float* sQ = smem;                // (Br, D + 1)
  float* sdO = sQ + Br * Tl::SD;   // (Br, D + 1)
  float* sK = sdO + Br * Tl::SD;   // (Bc, D + 1)
  float* sV = sK + Bc * Tl::SD;    // (Bc, D + 1)
  float* sS = sV + Bc * Tl::SD;    // dS: (Br, Bc + 1)

  const AttnShape& s = p.s;
  const int mb = gridDim.x - 1 - blockIdx.x;  // longest (causal) blocks first
  const BlockInfo bi(s, blockIdx.z, blockIdx.y);
  const int tid = threadIdx.x, g = tid / kLanes, lane = tid % kLanes;
  const int m0 = mb * Br;
  const int rows_q = min(Br, s.Nq - m0);
  const float* gK = bi.k<float>(p);  // (Nk, D)
  const float* gV = bi.v<float>(p);  // (Nk, D)
  float* gdQ = static_cast<float*>(p.dq) + (int64_t)bi.b * p.dq_batch_stride + (int64_t)bi.h * p.dq_head_stride +
               (int64_t)m0 * p.dq_row_stride;  // (Br, D)

  load_rows<Br, D>(sQ, bi.q<float>(p) + (int64_t)m0 * p.q_row_stride, p.q_row_stride, rows_q, tid);
  load_rows<Br, D>(sdO, bi.dout<float>(p) + (int64_t)m0 * p.do_row_stride, p.do_row_stride, rows_q, tid);
  float lse[TM], Di[TM];  // L_i and D_i = rowsum(dO_i o O_i) of this thread's rows
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int row = g * TM + m;
    lse[m] = row < rows_q ? p.lse[bi.row_stat(s) + m0 + row] : 0.f;
    Di[m] = row < rows_q ? p.d_rowsum[bi.row_stat(s) + m0 + row] : 0.f;
  }

  float dq[TM][NO];
#pragma unroll
  for (int m = 0; m < TM; ++m)
#pragma unroll
    for (int j = 0; j < NO; ++j) dq[m][j] = 0.f;

  int nb_lo, nb_hi;
  BlockInfo::key_blocks(s, m0, m0 + rows_q - 1, Bc, nb_lo, nb_hi);
  if (fault == kFaultDropLastKeyBlock && nb_hi > nb_lo) --nb_hi;
  for (int nb = nb_lo; nb < nb_hi; ++nb) {
    const int n0 = nb * Bc;
    __syncthreads();  // every warp is done with K_{j-1}, V_{j-1} (and Q_i, dO_i are loaded)
    load_rows<Bc, D>(sK, gK + (int64_t)n0 * p.k_row_stride, p.k_row_stride, s.Nk - n0, tid);
    load_rows<Bc, D>(sV, gV + (int64_t)n0 * p.v_row_stride, p.v_row_stride, s.Nk - n0, tid);
    __syncthreads();

    // Algorithm 2, lines 8-9: S_ij = Q_i K_j^T, P_ij = exp(scale S_ij - L_i)
    float pr[TM][NC];
    dot_rows<TM, NC, D>(pr, sQ, sK, g, lane);
#pragma unroll
    for (int m = 0; m < TM; ++m)
#pragma unroll
      for (int n = 0; n < NC; ++n) pr[m][n] = recompute_p(pr[m][n], lse[m], m0 + g * TM + m, n0 + lane + n * kLanes, s);
    // Algorithm 2, lines 12-13: dP_ij = dO_i V_j^T, dS_ij = P_ij o (dP_ij - D_i)
    float dp[TM][NC];
    dot_rows<TM, NC, D>(dp, sdO, sV, g, lane);
#pragma unroll
    for (int m = 0; m < TM; ++m)
#pragma unroll
      for (int n = 0; n < NC; ++n) sS[(g * TM + m) * Tl::SC + lane + n * kLanes] = pr[m][n] * (dp[m][n] - Di[m]);
    __syncwarp();  // this row group's dS rows are written
    // Algorithm 2, line 14: dQ_i += dS_ij K_j (the scale is applied once at the end)
    mul_acc<TM, Bc, D>(dq, sS, sK, g, lane);
    __syncwarp();  // ... and read before the next key block overwrites them
  }

#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int row = g * TM + m;
    if (row < rows_q) {
#pragma unroll
      for (int j = 0; j < NO; ++j) gdQ[(int64_t)row * p.dq_row_stride + lane + j * kLanes] = dq[m][j] * s.scale;
    }
  }
}

template <int D>
static cudaError_t launch_dq(const BwdParams& p, int fault, cudaStream_t stream) {
  using Tl = Tiles<D>;
  const size_t bytes = sizeof(float) * ((size_t)(2 * Tl::R + 2 * Tl::C) * Tl::SD + (size_t)Tl::R * Tl::SC);
  const dim3 grid((p.s.Nq + Tl::R - 1) / Tl::R, p.s.Hq, p.s.B);
  return launch(flash_bwd_dq_f32_kernel<D>, grid, bytes, stream, p, fault);
}

}  // namespace f32

cudaError_t launch_bwd_dq_f32(const BwdParams& p, int fault, cudaStream_t stream) {
  switch (p.s.D) {
    case 32: return f32::launch_dq<32>(p, fault, stream);
    case 64: return f32::launch_dq<64>(p, fault, stream);
    case 96: return f32::launch_dq<96>(p, fault, stream);
    case 128: return f32::launch_dq<128>(p, fault, stream);
    case 256: return f32::launch_dq<256>(p, fault, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace flash

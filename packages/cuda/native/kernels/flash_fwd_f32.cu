// FlashAttention-2 forward (Algorithm 1 of Dao, 2023) in float32 FMA (include/flash_f32.cuh: layout, tiles).
// One block per (Q block of Br = 16 TM rows, query head, batch); K_j, V_j tiles of Bc rows stream through shared
// memory; each row group runs the online softmax of its TM rows. Writes out (B, Nq, Hq, D) and lse (B, Hq, Nq).
#include "../include/flash_f32.cuh"
#include "../include/launchers.h"

namespace flash {
namespace f32 {

template <int D>
__global__ void __launch_bounds__(kThreads) flash_fwd_f32_kernel(const FwdParams p, int fault) {
  using Tl = Tiles<D>;
  constexpr int TM = Tl::TM, Br = Tl::R, Bc = Tl::C, NC = Bc / kLanes, NO = D / kLanes;
  extern __shared__ float smem[];
  float* sQ = smem;                // (Br, D + 1)
  float* sK = sQ + Br * Tl::SD;    // (Bc, D + 1)
  float* sV = sK + Bc * Tl::SD;    // (Bc, D + 1)
  float* sP = sV + Bc * Tl::SD;    // (Br, Bc + 1)

  const AttnShape& s = p.s;
  const int mb = gridDim.x - 1 - blockIdx.x;  // longest (causal) blocks first
  const BlockInfo bi(s, blockIdx.z, blockIdx.y);
  const int tid = threadIdx.x, g = tid / kLanes, lane = tid % kLanes;
  const int m0 = mb * Br;
  const int rows_q = min(Br, s.Nq - m0);
  const float* gQ = bi.q<float>(p) + (int64_t)m0 * p.q_row_stride;  // (Br, D) rows of stride q_row_stride
  const float* gK = bi.k<float>(p);                                 // (Nk, D)
  const float* gV = bi.v<float>(p);                                 // (Nk, D)
  float* gO = bi.o<float>(p) + (int64_t)m0 * p.o_row_stride;        // (Br, D)
  float* gLse = p.lse + bi.row_stat(s) + m0;                        // (Br,)

  int nb_lo, nb_hi;
  BlockInfo::key_blocks(s, m0, m0 + rows_q - 1, Bc, nb_lo, nb_hi);
  if (fault == kFaultDropLastKeyBlock && nb_hi > nb_lo) --nb_hi;

  // Algorithm 1, line 4: load Q_i; m_i = -inf, l_i = 0, O_i = 0.
  load_rows<Br, D>(sQ, gQ, p.q_row_stride, rows_q, tid);
  float acc[TM][NO];  // O_i: this thread's columns lane + 8 j of its TM rows
  float m_i[TM];      // running row max of the raw scores Q K^T
  float l_i[TM];      // running row sum of exp, over this lane's columns (group-reduced at the end)
#pragma unroll
  for (int m = 0; m < TM; ++m) {
#pragma unroll
    for (int j = 0; j < NO; ++j) acc[m][j] = 0.f;
    m_i[m] = -INFINITY;
    l_i[m] = 0.f;
  }

  // Algorithm 1, line 5: for j = 1..Tc (the key blocks some row of this Q block sees)
  for (int nb = nb_lo; nb < nb_hi; ++nb) {
    const int n0 = nb * Bc;
    __syncthreads();  // every warp is done with K_{j-1}, V_{j-1}
    load_rows<Bc, D>(sK, gK + (int64_t)n0 * p.k_row_stride, p.k_row_stride, s.Nk - n0, tid);
    load_rows<Bc, D>(sV, gV + (int64_t)n0 * p.v_row_stride, p.v_row_stride, s.Nk - n0, tid);
    __syncthreads();

    // Algorithm 1, line 8: S_ij = Q_i K_j^T (raw; the scale goes into the exponent)
    float sc[TM][NC];
    dot_rows<TM, NC, D>(sc, sQ, sK, g, lane);

    // Algorithm 1, lines 9-10: m_new = max(m_i, rowmax(S)); P = exp(scale (S - m_new));
    // l_i = e^{scale (m_i - m_new)} l_i + rowsum(P); O_i = diag(e^{scale (m_i - m_new)}) O_i.
#pragma unroll
    for (int m = 0; m < TM; ++m) {
      const int row = g * TM + m, i = m0 + row;
      float mx = m_i[m];
#pragma unroll
      for (int n = 0; n < NC; ++n) {
        if (!visible(i, n0 + lane + n * kLanes, s)) sc[m][n] = -INFINITY;
        mx = fmaxf(mx, sc[m][n]);
      }
      mx = group_max(mx);
      // A row with no visible key so far keeps m = -inf: exponents relative to 0 then give 0, not NaN.
      // (S - m) * scale rather than S * scale - m * scale: S - m is exact for the entries that matter.
      const float base = mx == -INFINITY ? 0.f : mx;
      const float alpha = expf((m_i[m] - base) * s.scale);
      m_i[m] = mx;
      float rowsum = 0.f;
#pragma unroll
      for (int n = 0; n < NC; ++n) {
        const float pij = expf((sc[m][n] - base) * s.scale);
        sP[row * Tl::SC + lane + n * kLanes] = pij;
        rowsum += pij;
      }
      l_i[m] = l_i[m] * alpha + rowsum;
#pragma unroll
      for (int j = 0; j < NO; ++j) acc[m][j] *= alpha;
    }
    __syncwarp();  // this row group's P rows are written
    // Algorithm 1, line 10: O_i += P_ij V_j
    mul_acc<TM, Bc, D>(acc, sP, sV, g, lane);
  }

  // Algorithm 1, lines 12-13: O_i = diag(l_i)^-1 O_i, L_i = scale m_i + log(l_i); a row that saw no key: 0, -inf.
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const float l = group_sum(l_i[m]);
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const int row = g * TM + m;
    if (row < rows_q) {
      float* o = gO + (int64_t)row * p.o_row_stride;
#pragma unroll
      for (int j = 0; j < NO; ++j) o[lane + j * kLanes] = acc[m][j] * inv;
      if (lane == 0) gLse[row] = l > 0.f ? m_i[m] * s.scale + logf(l) : -INFINITY;
    }
  }
}

template <int D>
static cudaError_t launch_fwd(const FwdParams& p, int fault, cudaStream_t stream) {
  using Tl = Tiles<D>;
  const size_t bytes = sizeof(float) * ((size_t)(Tl::R + 2 * Tl::C) * Tl::SD + (size_t)Tl::R * Tl::SC);
  const dim3 grid((p.s.Nq + Tl::R - 1) / Tl::R, p.s.Hq, p.s.B);
  return launch(flash_fwd_f32_kernel<D>, grid, bytes, stream, p, fault);
}

}  // namespace f32

cudaError_t run_flash_fwd_f32(const FwdParams& p, int fault, cudaStream_t stream) {
  switch (p.s.D) {
    case 32: return f32::launch_fwd<32>(p, fault, stream);
    case 64: return f32::launch_fwd<64>(p, fault, stream);
    case 96: return f32::launch_fwd<96>(p, fault, stream);
    case 128: return f32::launch_fwd<128>(p, fault, stream);
    case 256: return f32::launch_fwd<256>(p, fault, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace flash

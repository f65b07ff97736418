// FlashAttention-2 backward (Algorithm 2 of Dao, 2023) with mma.sync and FA2's per-GEMM warp layouts, for D = 64
// and 128: the backward of compute capability 8.x (and of 9.0 builds without sm_90a; flash_bwd_dkdv_wgmma.cuh is
// the Hopper one). Br = 128 at D = 64, 64 at D = 128 (launch_flash_bwd_dkdv_sm80 below).
// One thread block per (K/V block of Bc = 128 keys, query head, batch), 8 warps, walks the Q blocks of Br rows
// (64 or 128) that see its keys. Compared with flash_bwd_dkdv.cuh (each warp 16 keys x all Br queries), every
// phase gives each warp a squarer tile, so each ldmatrix fragment feeds more mma (the kernel is bound by
// shared-memory reads):
//   S^T = K Q^T, dP^T = V dO^T : warp (kr, hq) computes keys kr*32..+32 x queries hq*Br/2.. (kr = warp%4)
//   dV += P^T dO, dK += dS^T Q : warp (kr, hq) owns keys kr*32..+32 x columns hq*D/2..+D/2 (registers)
//   dQ += dS K                 : warp (rg, cg) computes queries rg*32..+32 x columns cg*DQC.. (Br/32 x 8/(Br/32))
// P^T and dS^T go to shared memory (16-bit) once; a warp takes its own half of the queries from registers
// and its partner's (warp ^ 4) half with ldmatrix. Per warp and Q block (D = 128, Br = 64): 136 ldmatrix.x4
// and 4 KB of stores against 184 ldmatrix.x4 in the 16-key layout, for the same 320 mma.
// Barriers per Q block: 2 (the next block's cp.async is issued after the first one, when every warp is
// done with the buffer it overwrites), against 3.
// H100, bf16, bwd TFLOP/s / torch flash at N = 2k / 8k: D = 128 0.69 / 0.64 -> 0.80 / 0.75; D = 64 (Br = 128)
// 0.61 / 0.58 -> 0.70 / 0.66 (README.md, tuning log).
#pragma once
#include <cuda_runtime.h>

#include "../include/block_info.cuh"
#include "../include/flash_common.cuh"

namespace flash {

// This warp's own half of P^T / dS^T comes from registers, the partner's from shared memory. Variants measured
// against this layout (P^T / dS^T only from shared memory, rotated Q-block order, rolled loops) and the older
// 16-keys-per-warp layout live in dev/cuda/ with their checks and benchmarks; README.md has the tuning log.
template <typename T, int D, int Br>
__global__ void __launch_bounds__(256, 1) flash_bwd_dkdv_sm80_kernel(const BwdParams p) {
  using M = MmaType<T>;
  constexpr int Bc = 128, NT = 256;
  constexpr int QW = Br / 2;     // queries per warp in S^T / dP^T (query half hq)
  constexpr int NQT = QW / 8;    // n8 tiles of those queries
  constexpr int KQW = QW / 16;   // k16 steps of dV/dK that a warp holds in registers
  constexpr int RGQ = Br / 32;   // dQ row groups of 32 queries
  constexpr int CGQ = 8 / RGQ;   // dQ column groups
  constexpr int SD = D + 8;   // padded smem row stride of K, V, Q, dO
  constexpr int SS = Br + 8;  // padded smem row stride of P^T and dS^T (36 words: 8 rows x 4 words conflict-free)
  constexpr int DC = D / 2;   // dK/dV columns per warp
  constexpr int DQC = D / CGQ;  // dQ columns per warp
  static_assert((D == 64 || D == 128) && (Br == 64 || Br == 128) && DQC % 16 == 0, "warp layout");

  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sK = reinterpret_cast<T*>(smem_raw);  // (Bc, SD)
  T* sV = sK + Bc * SD;                    // (Bc, SD)
  T* sQ = sV + Bc * SD;                    // (2, Br, SD)
  T* sdO = sQ + 2 * Br * SD;               // (2, Br, SD)
  T* sP = sdO + 2 * Br * SD;               // P^T: (Bc, SS)
  T* sdS = sP + Bc * SS;                   // dS^T: (Bc, SS)
  float* sLse = reinterpret_cast<float*>(sdS + Bc * SS);  // (2, Br)
  float* sDi = sLse + 2 * Br;                             // (2, Br)

  const AttnShape& s = p.s;
  const int nb = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const BlockInfo bi(s, b, h);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4, mi = lane / 8, r8 = lane % 8;
  const int kr = warp % 4, hq = warp / 4;  // key group (32 keys); query half (S phase) = column half (dK/dV)
  const int rg = warp % RGQ, cg = warp / RGQ;  // dQ: query group of 32, column group
  const int n0 = nb * Bc;
  const int rows_k = min(Bc, s.Nk - n0);

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
    load_tile<Br, D, NT>(sQ + stage * Br * SD, gQ + (int64_t)m0 * q_rs, q_rs, rows, gQ, tid);
    load_tile<Br, D, NT>(sdO + stage * Br * SD, gdO + (int64_t)m0 * do_rs, do_rs, rows, gdO, tid);
    for (int r = tid; r < Br; r += NT) {
      cp_async4(smem_addr(sLse + stage * Br + r), r < rows ? gLse + m0 + r : p.lse, r < rows);
      cp_async4(smem_addr(sDi + stage * Br + r), r < rows ? gDi + m0 + r : p.d_rowsum, r < rows);
    }
  };
  // Algorithm 2, line 6: load K_j, V_j; and the first Q_i, dO_i, lse_i, D_i.
  if (mb_lo < mb_hi) {
    load_tile<Bc, D, NT>(sK, gK, k_rs, rows_k, gK, tid);
    load_tile<Bc, D, NT>(sV, gV, v_rs, rows_k, gV, tid);
    load_q_block(mb_lo, 0);
  }
  cp_async_commit();

  float acc_dk[2][DC / 8][4];  // dK_j: keys kr*32 + mt*16.. x columns hq*DC..
  float acc_dv[2][DC / 8][4];  // dV_j, same layout
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int n = 0; n < DC / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_dk[mt][n][e] = acc_dv[mt][n][e] = 0.f;

  const uint32_t sK_a = smem_addr(sK), sV_a = smem_addr(sV), sP_a = smem_addr(sP), sdS_a = smem_addr(sdS);
  // A operand, rows = keys kr*32 + lane%16 (+ mt*16), column half lane/16; row stride SD (K, V) or SS (P^T, dS^T).
  const uint32_t a_off = ((kr * 32 + lane % 16) * SD + (lane / 16) * 8) * 2;
  const uint32_t ap_off = ((kr * 32 + lane % 16) * SS + (lane / 16) * 8) * 2;
  // B operand = rows of Q / dO, non-transposed: query r8 + (mi/2)*8, d (mi%2)*8.
  const uint32_t bn_off = ((r8 + (mi / 2) * 8) * SD + (mi % 2) * 8) * 2;
  // B operand = dO / Q / K transposed (k = rows): row r8 + (mi%2)*8, d (mi/2)*8.
  const uint32_t bt_off = ((r8 + (mi % 2) * 8) * SD + (mi / 2) * 8) * 2;
  // A operand dS (queries x keys) read transposed from dS^T: key r8 + (mi/2)*8, query (mi%2)*8.
  const uint32_t ads_off = ((r8 + (mi / 2) * 8) * SS + (mi % 2) * 8) * 2;

  // Algorithm 2, line 7: for i = 1..Tr
  for (int mb = mb_lo; mb < mb_hi; ++mb) {
    const int stage = (mb - mb_lo) & 1;
    const int m0 = mb * Br;
    cp_async_wait<0>();
    // Q_i etc. visible to all; every warp is done with block i-1 (its Q/dO stage, P^T, dS^T).
    __syncthreads();
    if (mb + 1 < mb_hi) load_q_block(mb + 1, stage ^ 1);
    cp_async_commit();
    const uint32_t sQ_a = smem_addr(sQ + stage * Br * SD), sdO_a = smem_addr(sdO + stage * Br * SD);
    const float* lse_s = sLse + stage * Br;
    const float* di_s = sDi + stage * Br;

    // Algorithm 2, line 9: S^T = K_j Q_i^T and line 13: dP^T = V_j dO_i^T, 32 keys x QW queries per warp.
    float st[2][NQT][4], dpt[2][NQT][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int n = 0; n < NQT; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) st[mt][n][e] = dpt[mt][n][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t ak[2][4], av[2][4];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        ldmatrix_x4(ak[mt], sK_a + a_off + (mt * 16 * SD + kk * 16) * 2);
        ldmatrix_x4(av[mt], sV_a + a_off + (mt * 16 * SD + kk * 16) * 2);
      }
#pragma unroll
      for (int np = 0; np < NQT / 2; ++np) {
        uint32_t bq[4], bo[4];
        ldmatrix_x4(bq, sQ_a + bn_off + ((hq * QW + np * 16) * SD + kk * 16) * 2);
        ldmatrix_x4(bo, sdO_a + bn_off + ((hq * QW + np * 16) * SD + kk * 16) * 2);
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
          M::mma(st[mt][2 * np], ak[mt], bq[0], bq[1]);
          M::mma(st[mt][2 * np + 1], ak[mt], bq[2], bq[3]);
          M::mma(dpt[mt][2 * np], av[mt], bo[0], bo[1]);
          M::mma(dpt[mt][2 * np + 1], av[mt], bo[2], bo[3]);
        }
      }
    }

    // Algorithm 2, line 11: P^T = exp(scale * S^T - lse) with the mask; line 16: dS^T = P^T o (dP^T - D_i).
    // Packed to 16 bit right away as A fragments: pp[mt][kq][4] covers keys mt*16.. x queries hq*QW + kq*16..
    const int m_last = min(m0 + Br, s.Nq) - 1;
    const bool need_mask = m0 + Br > s.Nq || !(key_lo(m_last, s) <= n0 && n0 + Bc <= key_hi(m0, s));
    uint32_t pp[2][KQW][4], pds[2][KQW][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int n = 0; n < NQT; ++n) {
        float pv[4], ds[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int qi = hq * QW + n * 8 + 2 * t + (e % 2);  // query within the block
          const int kj = kr * 32 + mt * 16 + g + (e / 2) * 8;  // key within the block
          // A fully masked row has lse = -inf and no visible key: treat it as +inf so P = 0.
          const float lse = lse_s[qi] == -INFINITY ? INFINITY : lse_s[qi];
          // scale * S - lse in one rounding (fma), then to base 2 (see flash_bwd_dkdv.cuh).
          float v = fast_exp2(fmaf(st[mt][n][e], s.scale, -lse) * 1.4426950408889634f);
          if (need_mask && (m0 + qi >= s.Nq || !visible(m0 + qi, n0 + kj, s))) v = 0.f;
          pv[e] = v;
          ds[e] = v * (dpt[mt][n][e] - di_s[qi]);
        }
        // A fragment of m16n8k16: a0 = (row g, k 0-7), a1 = (row g+8, k 0-7), a2/a3 = same rows, k 8-15.
        pp[mt][n / 2][(n % 2) * 2 + 0] = M::pack(pv[0], pv[1]);
        pp[mt][n / 2][(n % 2) * 2 + 1] = M::pack(pv[2], pv[3]);
        pds[mt][n / 2][(n % 2) * 2 + 0] = M::pack(ds[0], ds[1]);
        pds[mt][n / 2][(n % 2) * 2 + 1] = M::pack(ds[2], ds[3]);
      }
    // P^T and dS^T to shared memory (rows = keys, columns = queries) for the partner warp and for dQ.
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int n = 0; n < NQT; ++n)
#pragma unroll
        for (int rr = 0; rr < 2; ++rr) {
          const int off = (kr * 32 + mt * 16 + g + rr * 8) * SS + hq * QW + n * 8 + 2 * t;
          *reinterpret_cast<uint32_t*>(sP + off) = pp[mt][n / 2][(n % 2) * 2 + rr];
          *reinterpret_cast<uint32_t*>(sdS + off) = pds[mt][n / 2][(n % 2) * 2 + rr];
        }
    __syncthreads();  // P^T, dS^T complete

    // Algorithm 2, line 12: dV_j += P^T dO_i; line 17: dK_j += dS^T Q_i (scale applied at the end).
    {
#pragma unroll
      for (int kq = 0; kq < Br / 16; ++kq) {
        uint32_t ap[2][4], ads[2][4];
        if ((kq / KQW) == hq) {  // own queries: from registers
#pragma unroll
          for (int mt = 0; mt < 2; ++mt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              ap[mt][e] = pp[mt][kq % KQW][e];
              ads[mt][e] = pds[mt][kq % KQW][e];
            }
        } else {  // the partner warp's queries: from shared memory
#pragma unroll
          for (int mt = 0; mt < 2; ++mt) {
            ldmatrix_x4(ap[mt], sP_a + ap_off + (mt * 16 * SS + kq * 16) * 2);
            ldmatrix_x4(ads[mt], sdS_a + ap_off + (mt * 16 * SS + kq * 16) * 2);
          }
        }
#pragma unroll
        for (int dp = 0; dp < DC / 16; ++dp) {
          uint32_t bo[4], bq[4];
          const uint32_t off = bt_off + (kq * 16 * SD + hq * DC + dp * 16) * 2;
          ldmatrix_x4_trans(bo, sdO_a + off);
          ldmatrix_x4_trans(bq, sQ_a + off);
#pragma unroll
          for (int mt = 0; mt < 2; ++mt) {
            M::mma(acc_dv[mt][2 * dp], ap[mt], bo[0], bo[1]);
            M::mma(acc_dv[mt][2 * dp + 1], ap[mt], bo[2], bo[3]);
            M::mma(acc_dk[mt][2 * dp], ads[mt], bq[0], bq[1]);
            M::mma(acc_dk[mt][2 * dp + 1], ads[mt], bq[2], bq[3]);
          }
        }
      }
    }

    // Algorithm 2, line 18: dQ_i += dS K_j (unscaled; the convert kernel applies softmaxScale).
    int* sem = dq_turn_semaphore(p, b, h, mb, Br);
    dq_wait_turn(sem, s, nb, mb, Bc, Br);
    {
      float dq[2][DQC / 8][4];  // queries rg*32 + mt*16.. x columns cg*DQC..
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int n = 0; n < DQC / 8; ++n) dq[mt][n][0] = dq[mt][n][1] = dq[mt][n][2] = dq[mt][n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < Bc / 16; ++kk) {
        uint32_t a[2][4];
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
          ldmatrix_x4_trans(a[mt], sdS_a + ads_off + (kk * 16 * SS + rg * 32 + mt * 16) * 2);
#pragma unroll
        for (int dp = 0; dp < DQC / 16; ++dp) {
          uint32_t bk[4];
          ldmatrix_x4_trans(bk, sK_a + bt_off + (kk * 16 * SD + cg * DQC + dp * 16) * 2);
#pragma unroll
          for (int mt = 0; mt < 2; ++mt) {
            M::mma(dq[mt][2 * dp], a[mt], bk[0], bk[1]);
            M::mma(dq[mt][2 * dp + 1], a[mt], bk[2], bk[3]);
          }
        }
      }
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        // sm_90: one float4 atomic per n8 tile (lanes t, t^1 swap halves; see flash_bwd_dkdv.cuh).
        const bool even = (t & 1) == 0;
        const int i = m0 + rg * 32 + mt * 16 + g + (even ? 0 : 8);
        float* dst = gdQacc + (int64_t)i * dqa_rs + cg * DQC + 2 * (t & ~1);
#pragma unroll
        for (int n = 0; n < DQC / 8; ++n) {
          const float s0 = even ? dq[mt][n][2] : dq[mt][n][0], s1 = even ? dq[mt][n][3] : dq[mt][n][1];
          const float r0 = __shfl_xor_sync(0xffffffff, s0, 1), r1 = __shfl_xor_sync(0xffffffff, s1, 1);
          const float4 val = even ? make_float4(dq[mt][n][0], dq[mt][n][1], r0, r1)
                                  : make_float4(r0, r1, dq[mt][n][2], dq[mt][n][3]);
          if (i < s.Nq) atomicAdd(reinterpret_cast<float4*>(dst + n * 8), val);
        }
#else
#pragma unroll
        for (int rr = 0; rr < 2; ++rr) {
          const int i = m0 + rg * 32 + mt * 16 + g + rr * 8;
          if (i < s.Nq) {
            float* dst = gdQacc + (int64_t)i * dqa_rs + cg * DQC + 2 * t;
#pragma unroll
            for (int n = 0; n < DQC / 8; ++n) {
              atomicAdd(dst + n * 8, dq[mt][n][2 * rr]);
              atomicAdd(dst + n * 8 + 1, dq[mt][n][2 * rr + 1]);
            }
          }
        }
#endif
      }
    }
    dq_pass_turn(sem);
    // No barrier here: the next iteration's first barrier orders these reads before the next writes.
  }

  // Algorithm 2, line 20: write dK_j (times softmaxScale) and dV_j. GQA/MQA: fp32 per query head, summed later.
  T* gdK = bi.dk<T>(p);  // (Nk, D) rows of stride dk_row_stride
  T* gdV = bi.dv<T>(p);
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      const int j = n0 + kr * 32 + mt * 16 + g + rr * 8;
      if (j >= s.Nk) continue;
#pragma unroll
      for (int n = 0; n < DC / 8; ++n) {
        const int d = hq * DC + n * 8 + 2 * t;
        const float dk0 = acc_dk[mt][n][2 * rr] * s.scale, dk1 = acc_dk[mt][n][2 * rr + 1] * s.scale;
        const float dv0 = acc_dv[mt][n][2 * rr], dv1 = acc_dv[mt][n][2 * rr + 1];
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
}

// Br = 128 at D = 64 (FA2 does the same): halves the per-query fixed costs, +5-8% bwd on the H100 (D = 64,
// N = 2k / 8k: 152 -> 162, 171 -> 182 TFLOP/s); D = 128 cannot (S^T / dP^T + accumulators > 255 registers).
template <typename T, int D>
cudaError_t launch_flash_bwd_dkdv_sm80(const BwdParams& p, cudaStream_t stream) {
  constexpr int Bc = 128, Br = D == 64 ? 128 : 64;
  const size_t smem = (size_t)(2 * Bc + 4 * Br) * (D + 8) * sizeof(T) + (size_t)2 * Bc * (Br + 8) * sizeof(T) +
                      4 * Br * sizeof(float);
  auto kernel = flash_bwd_dkdv_sm80_kernel<T, D, Br>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (err != cudaSuccess) return err;
  dim3 grid((p.s.Nk + Bc - 1) / Bc, p.s.Hq, p.s.B);
  kernel<<<grid, 256, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace flash

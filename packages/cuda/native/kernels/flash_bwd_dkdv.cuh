// FlashAttention-2 backward (Algorithm 2 of Dao, 2023) on tensor cores.
// One thread block per (K/V block of Bc keys, query head, batch) owns dK_j and dV_j in registers and walks
// the Q blocks i that can see it. Warps split the Bc keys (16 rows each; with CS = 2 two warps share a row
// group and split dK/dV's columns). Per Q block it forms the transposed tiles S^T = K Q^T, P^T, dP^T = V dO^T
// and dS^T so that P^T and dS^T are already A operands for dV += P^T dO and dK += dS^T Q. dQ_i += dS K is
// added to an fp32 accumulator with atomics, in a fixed order when `dq_semaphore` is set (deterministic).
// Q_i, dO_i, lse_i, D_i are double buffered with cp.async (STAGES = 2) so the next block loads during compute.
#pragma once
#include <cuda_runtime.h>

#include "../include/block_info.cuh"
#include "../include/flash_common.cuh"

namespace flash {

template <typename T, int D, int Bc, int Br, int CS, int STAGES, int MINB>
__global__ void __launch_bounds__(Bc / 16 * CS * 32, MINB) flash_bwd_dkdv_kernel(const BwdParams p) {
  using M = MmaType<T>;
  constexpr int RW = Bc / 16;        // key row groups (warps per column split)
  constexpr int NW = RW * CS;        // warps
  constexpr int NT = NW * 32;        // threads
  constexpr int DC = D / CS;         // dK/dV columns per warp
  constexpr int SD = D + 8;          // padded smem row stride of K, V, Q, dO
  constexpr int SS = Br + 8;         // padded smem row stride of dS^T
  constexpr int NQ = Br / 8;         // n8 tiles of S^T (queries)
  constexpr int RG = Br / 16;        // dQ row groups
  constexpr int CG = NW / RG;        // dQ column groups
  constexpr int DQC = D / CG;        // dQ columns per warp
  constexpr int DQCH = DQC > 64 ? 64 : DQC;  // dQ columns per pass (bounds registers)
  static_assert(NW % RG == 0 && D % CG == 0 && DQC % DQCH == 0 && DQCH % 16 == 0 && DC % 16 == 0, "tiles");

  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sK = reinterpret_cast<T*>(smem_raw);  // (Bc, SD)
  T* sV = sK + Bc * SD;                    // (Bc, SD)
  T* sQ = sV + Bc * SD;                    // (STAGES, Br, SD)
  T* sdO = sQ + STAGES * Br * SD;          // (STAGES, Br, SD)
  T* sdS = sdO + STAGES * Br * SD;         // dS^T: (Bc, SS)
  float* sLse = reinterpret_cast<float*>(sdS + Bc * SS);  // (STAGES, Br)
  float* sDi = sLse + STAGES * Br;                        // (STAGES, Br)

  const AttnShape& s = p.s;
  const int nb = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const BlockInfo bi(s, b, h);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4, mi = lane / 8, r8 = lane % 8;
  const int kr = warp % RW, cs = warp / RW;  // key row group, column split
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

  // Algorithm 2, line 6: load K_j, V_j; and the first Q_i, dO_i, lse_i, D_i.
  if (mb_lo < mb_hi) {
    load_tile<Bc, D, NT>(sK, gK, k_rs, rows_k, gK, tid);
    load_tile<Bc, D, NT>(sV, gV, v_rs, rows_k, gV, tid);
  }
  auto load_q_block = [&](int mb, int stage) {
    const int m0 = mb * Br, rows = min(Br, s.Nq - m0);
    load_tile<Br, D, NT>(sQ + stage * Br * SD, gQ + (int64_t)m0 * q_rs, q_rs, rows, gQ, tid);
    load_tile<Br, D, NT>(sdO + stage * Br * SD, gdO + (int64_t)m0 * do_rs, do_rs, rows, gdO, tid);
    for (int r = tid; r < Br; r += NT) {
      cp_async4(smem_addr(sLse + stage * Br + r), r < rows ? gLse + m0 + r : p.lse, r < rows);
      cp_async4(smem_addr(sDi + stage * Br + r), r < rows ? gDi + m0 + r : p.d_rowsum, r < rows);
    }
  };
  if (mb_lo < mb_hi) load_q_block(mb_lo, 0);
  cp_async_commit();

  float acc_dk[DC / 8][4];  // dK_j rows kr*16.. (16 keys) x columns cs*DC..
  float acc_dv[DC / 8][4];  // dV_j, same layout
#pragma unroll
  for (int n = 0; n < DC / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc_dk[n][e] = acc_dv[n][e] = 0.f;

  const uint32_t sK_a = smem_addr(sK), sV_a = smem_addr(sV), sdS_a = smem_addr(sdS);
  // A operand rows (keys) of this warp, non-transposed: rows kr*16 + lane%16, column half lane/16.
  const uint32_t a_off = ((kr * 16 + lane % 16) * SD + (lane / 16) * 8) * 2;
  // B operand = rows of Q / dO, non-transposed: query r8 + (mi/2)*8, d (mi%2)*8.
  const uint32_t bn_off = ((r8 + (mi / 2) * 8) * SD + (mi % 2) * 8) * 2;
  // B operand = Q / dO / K transposed (k = rows): row r8 + (mi%2)*8, d (mi/2)*8.
  const uint32_t bt_off = ((r8 + (mi % 2) * 8) * SD + (mi / 2) * 8) * 2;
  // A operand dS (queries x keys) read transposed from dS^T: key r8 + (mi/2)*8, query (mi%2)*8.
  const uint32_t ads_off = ((r8 + (mi / 2) * 8) * SS + (mi % 2) * 8) * 2;

  const int rg = warp % RG, cg = warp / RG;  // dQ row group and column group of this warp

  // Algorithm 2, line 7: for i = 1..Tr
  for (int mb = mb_lo; mb < mb_hi; ++mb) {
    const int stage = STAGES == 1 ? 0 : (mb - mb_lo) % 2;
    const int m0 = mb * Br;
    if (STAGES == 2 && mb + 1 < mb_hi) {
      load_q_block(mb + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      if (STAGES == 1 && mb > mb_lo) {  // single buffer: load this block now (the last iteration ended with a barrier)
        load_q_block(mb, 0);
        cp_async_commit();
      }
      cp_async_wait<0>();
    }
    __syncthreads();
    const uint32_t sQ_a = smem_addr(sQ + stage * Br * SD), sdO_a = smem_addr(sdO + stage * Br * SD);
    const float* lse_s = sLse + stage * Br;
    const float* di_s = sDi + stage * Br;

    // Algorithm 2, line 9: S^T = K_j Q_i^T (16 keys x Br per warp), and dP^T = V_j dO_i^T (line 13).
    float st[NQ][4], dpt[NQ][4];
#pragma unroll
    for (int n = 0; n < NQ; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[n][e] = dpt[n][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t ak[4], av[4];
      ldmatrix_x4(ak, sK_a + a_off + kk * 32);
      ldmatrix_x4(av, sV_a + a_off + kk * 32);
#pragma unroll
      for (int np = 0; np < NQ / 2; ++np) {
        uint32_t bq[4], bo[4];
        ldmatrix_x4(bq, sQ_a + bn_off + (np * 16 * SD + kk * 16) * 2);
        ldmatrix_x4(bo, sdO_a + bn_off + (np * 16 * SD + kk * 16) * 2);
        M::mma(st[2 * np], ak, bq[0], bq[1]);
        M::mma(st[2 * np + 1], ak, bq[2], bq[3]);
        M::mma(dpt[2 * np], av, bo[0], bo[1]);
        M::mma(dpt[2 * np + 1], av, bo[2], bo[3]);
      }
    }

    // Algorithm 2, line 11: P^T = exp(scale * S^T - lse) with the mask; line 16: dS^T = P^T o (dP^T - D_i).
    const int m_last = min(m0 + Br, s.Nq) - 1;
    const bool need_mask = m0 + Br > s.Nq || !(key_lo(m_last, s) <= n0 && n0 + Bc <= key_hi(m0, s));
#pragma unroll
    for (int n = 0; n < NQ; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qi = n * 8 + 2 * t + (e % 2);       // query within the block
        const int kj = kr * 16 + g + (e / 2) * 8;     // key within the block
        // A fully masked row has lse = -inf and no visible key: treat it as +inf so P = 0.
        const float lse = lse_s[qi] == -INFINITY ? INFINITY : lse_s[qi];
        // scale * S - lse in one rounding (fma), then to base 2: with |S| ~ 1e4 a separately rounded
        // scale * S or lse * log2(e) would put ~1e-3 relative error into P.
        float pv = fast_exp2(fmaf(st[n][e], s.scale, -lse) * 1.4426950408889634f);
        if (need_mask && (m0 + qi >= s.Nq || !visible(m0 + qi, n0 + kj, s))) pv = 0.f;
        st[n][e] = pv;
        dpt[n][e] = pv * (dpt[n][e] - di_s[qi]);
      }

    // dS^T to shared memory for dQ (only one warp of each row group writes).
    if (cs == 0) {
#pragma unroll
      for (int n = 0; n < NQ; ++n)
#pragma unroll
        for (int rr = 0; rr < 2; ++rr)
          *reinterpret_cast<uint32_t*>(sdS + (kr * 16 + g + rr * 8) * SS + n * 8 + 2 * t) =
              M::pack(dpt[n][2 * rr], dpt[n][2 * rr + 1]);
    }

    // Algorithm 2, line 12: dV_j += P^T dO_i; line 17: dK_j += dS^T Q_i (scale applied at the end).
#pragma unroll
    for (int kq = 0; kq < Br / 16; ++kq) {
      uint32_t ap[4], ads[4];
      ap[0] = M::pack(st[2 * kq][0], st[2 * kq][1]);
      ap[1] = M::pack(st[2 * kq][2], st[2 * kq][3]);
      ap[2] = M::pack(st[2 * kq + 1][0], st[2 * kq + 1][1]);
      ap[3] = M::pack(st[2 * kq + 1][2], st[2 * kq + 1][3]);
      ads[0] = M::pack(dpt[2 * kq][0], dpt[2 * kq][1]);
      ads[1] = M::pack(dpt[2 * kq][2], dpt[2 * kq][3]);
      ads[2] = M::pack(dpt[2 * kq + 1][0], dpt[2 * kq + 1][1]);
      ads[3] = M::pack(dpt[2 * kq + 1][2], dpt[2 * kq + 1][3]);
#pragma unroll
      for (int dp = 0; dp < DC / 16; ++dp) {
        uint32_t bo[4], bq[4];
        const uint32_t off = bt_off + (kq * 16 * SD + cs * DC + dp * 16) * 2;
        ldmatrix_x4_trans(bo, sdO_a + off);
        ldmatrix_x4_trans(bq, sQ_a + off);
        M::mma(acc_dv[2 * dp], ap, bo[0], bo[1]);
        M::mma(acc_dv[2 * dp + 1], ap, bo[2], bo[3]);
        M::mma(acc_dk[2 * dp], ads, bq[0], bq[1]);
        M::mma(acc_dk[2 * dp + 1], ads, bq[2], bq[3]);
      }
    }
    __syncthreads();  // dS^T complete
    // Algorithm 2, line 18: dQ_i += dS K_j (unscaled; the convert kernel applies softmaxScale).
    int* sem = dq_turn_semaphore(p, b, h, mb, Br);
    dq_wait_turn(sem, s, nb, mb, Bc, Br);
#pragma unroll
    for (int c0 = 0; c0 < DQC; c0 += DQCH) {
      float dq[DQCH / 8][4];
#pragma unroll
      for (int n = 0; n < DQCH / 8; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < Bc / 16; ++kk) {
        uint32_t a[4];
        ldmatrix_x4_trans(a, sdS_a + ads_off + (kk * 16 * SS + rg * 16) * 2);
#pragma unroll
        for (int dp = 0; dp < DQCH / 16; ++dp) {
          uint32_t bk[4];
          ldmatrix_x4_trans(bk, sK_a + bt_off + (kk * 16 * SD + cg * DQC + c0 + dp * 16) * 2);
          M::mma(dq[2 * dp], a, bk[0], bk[1]);
          M::mma(dq[2 * dp + 1], a, bk[2], bk[3]);
        }
      }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      // sm_90: one float4 atomic per n8 tile. Lanes t and t^1 swap halves so that the even lane owns 4
      // consecutive columns of row g and the odd lane 4 of row g + 8 (2 shuffles instead of a second
      // atomic). Scalar -> float2 atomics: bwd 132 -> 171 TFLOP/s (D=128, N=2k, bf16); float2 -> float4: +0-1%.
      {
        const bool even = (t & 1) == 0;
        const int i = m0 + rg * 16 + g + (even ? 0 : 8);
        float* dst = gdQacc + (int64_t)i * dqa_rs + cg * DQC + c0 + 2 * (t & ~1);
#pragma unroll
        for (int n = 0; n < DQCH / 8; ++n) {
          const float s0 = even ? dq[n][2] : dq[n][0], s1 = even ? dq[n][3] : dq[n][1];
          const float r0 = __shfl_xor_sync(0xffffffff, s0, 1), r1 = __shfl_xor_sync(0xffffffff, s1, 1);
          const float4 val = even ? make_float4(dq[n][0], dq[n][1], r0, r1) : make_float4(r0, r1, dq[n][2], dq[n][3]);
          if (i < s.Nq) atomicAdd(reinterpret_cast<float4*>(dst + n * 8), val);
        }
      }
#else
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        const int i = m0 + rg * 16 + g + rr * 8;
        if (i < s.Nq) {
          float* dst = gdQacc + (int64_t)i * dqa_rs + cg * DQC + c0 + 2 * t;
#pragma unroll
          for (int n = 0; n < DQCH / 8; ++n) {
            atomicAdd(dst + n * 8, dq[n][2 * rr]);
            atomicAdd(dst + n * 8 + 1, dq[n][2 * rr + 1]);
          }
        }
      }
#endif
    }
    dq_pass_turn(sem);
    __syncthreads();  // done with this stage's Q/dO and with sdS before they are overwritten
  }

  // Algorithm 2, line 20: write dK_j (times softmaxScale) and dV_j. GQA/MQA: fp32 per query head, summed later.
  T* gdK = bi.dk<T>(p);  // (Nk, D) rows of stride dk_row_stride
  T* gdV = bi.dv<T>(p);
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int j = n0 + kr * 16 + g + rr * 8;
    if (j >= s.Nk) continue;
#pragma unroll
    for (int n = 0; n < DC / 8; ++n) {
      const int d = cs * DC + n * 8 + 2 * t;
      const float dk0 = acc_dk[n][2 * rr] * s.scale, dk1 = acc_dk[n][2 * rr + 1] * s.scale;
      const float dv0 = acc_dv[n][2 * rr], dv1 = acc_dv[n][2 * rr + 1];
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

// Tiles per head dim: Bc keys per block, Br queries per step, CS column splits, STAGES for Q/dO.
// MINB = blocks per SM the register allocation must allow.
// Bc=128, Br=64, 8 warps, 1 block/SM measured best on the H100 (bf16, D=64/128, N=2k/8k): Br=32 was 13-20%
// slower, Bc=64 with 2 blocks/SM (Br=64 or 32) 5-15% slower, computing dQ before dV/dK (so its atomics
// drain under the dV/dK mma) 1-5% slower.
template <int D> struct BwdTiles { static constexpr int Bc = 128, Br = 64, CS = 1, STAGES = 2, MINB = 1; };
template <> struct BwdTiles<256> { static constexpr int Bc = 64, Br = 64, CS = 2, STAGES = 1, MINB = 1; };

template <typename T, int D, int Bc, int Br, int CS, int ST, int MINB>
cudaError_t launch_flash_bwd_dkdv_tiles(const BwdParams& p, cudaStream_t stream) {
  constexpr int NT = Bc / 16 * CS * 32;
  const size_t smem = (size_t)(2 * Bc + 2 * ST * Br) * (D + 8) * sizeof(T) + (size_t)Bc * (Br + 8) * sizeof(T) +
                      2 * ST * Br * sizeof(float);
  auto kernel = flash_bwd_dkdv_kernel<T, D, Bc, Br, CS, ST, MINB>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (err != cudaSuccess) return err;
  dim3 grid((p.s.Nk + Bc - 1) / Bc, p.s.Hq, p.s.B);
  kernel<<<grid, NT, smem, stream>>>(p);
  return cudaGetLastError();
}

template <typename T, int D>
cudaError_t launch_flash_bwd_dkdv(const BwdParams& p, cudaStream_t stream) {
  using Tl = BwdTiles<D>;
  return launch_flash_bwd_dkdv_tiles<T, D, Tl::Bc, Tl::Br, Tl::CS, Tl::STAGES, Tl::MINB>(p, stream);
}

}  // namespace flash

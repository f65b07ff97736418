// C (M, N) = op(A) op(B) [+ bias | + C] on AVX2 + FMA: packs and blocks (gemm.h has the units). Built
// with -mavx2 -mfma; no std:: templates here (an inline template instantiated in this file could be
// merged by the linker with one from a file built without AVX and run on a CPU that lacks it).
//
// The register tile is MR x NR = 6 x 16: per step of K two 8-float loads of the B panel, six broadcasts
// of the A panel and 12 FMAs into 12 named ymm accumulators (15 of the 16 ymm registers). Named
// variables, not an array of __m256: GCC 12 keeps such an array in memory (issue #11 round 4).
#include <immintrin.h>

#include <cstring>

#include "gemm.h"

// Cache blocking (elements). KC = 256 keeps a (KC, 16) B panel (16 KiB) in L1 while the MC / 6 A panels
// of a block (MC KC 4 bytes = 72 KiB) stream from L2; NC columns per block unit (NC / 16 B panels).
// Sweep (native/dev/gemm_sweep.cc, one thread, Zen 3 2 vCPUs, L1d 32 KiB, L2 512 KiB, median of 7, the
// five GPT-2 bench shapes; apps/bench/figures/cpu/r5/gemm-sweep-2.log, load 1.8-2.9): MC 72 gave
// 78-91 GFLOP/s with KC 192 / 256 / 384 (lowest shape 83 / 78 / 84), MC 96 and 144 59-91 (lowest 59-80);
// NC 128 / 256 / 512 / 1024 at MC 96 within the same noise. MC 72 also makes more block units for the
// threads (29 row blocks at M = 2048). The dev harness compiles this file with other values (-DGEMM_MC=...).
#ifndef GEMM_MC
#define GEMM_MC 72
#endif
#ifndef GEMM_NC
#define GEMM_NC 256
#endif
#ifndef GEMM_KC
#define GEMM_KC 256
#endif

namespace flashattn_cpu {
namespace {

constexpr int MR = 6;
constexpr int NR = 16;
constexpr int MC = GEMM_MC;  // a multiple of MR
constexpr int NC = GEMM_NC;  // a multiple of NR
constexpr int KC = GEMM_KC;
static_assert(MC % MR == 0 && NC % NR == 0 && KC > 0, "blocking");

inline int imin(int a, int b) { return a < b ? a : b; }

// One 6 x 16 tile of C: acc = A_panel (kc, 6)^T B_panel (kc, 16), then C = acc [+ bias] when `store`
// (the first KC slice without accumulate), else C += acc. rows x cols of the tile lie inside C; a partial
// tile goes through `tmp` with the same float additions, so it rounds as a full one would.
void tile(int kc, const float* A, const float* B, float* C, int64_t ldc, int rows, int cols, bool store,
          const float* bias, int variant) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  const int steps = variant == kGemmDropLastK ? kc - 1 : kc;
#define FA_ROW(r, x0, x1)                            \
  {                                                  \
    const __m256 a = _mm256_broadcast_ss(A + (r));   \
    x0 = _mm256_fmadd_ps(a, b0, x0);                 \
    x1 = _mm256_fmadd_ps(a, b1, x1);                 \
  }
  for (int k = 0; k < steps; k++) {
    const __m256 b0 = _mm256_load_ps(B);
    const __m256 b1 = _mm256_load_ps(B + 8);
    FA_ROW(0, c00, c01)
    FA_ROW(1, c10, c11)
    FA_ROW(2, c20, c21)
    FA_ROW(3, c30, c31)
    FA_ROW(4, c40, c41)
    FA_ROW(5, c50, c51)
    A += MR;
    B += NR;
  }
#undef FA_ROW
  if (rows == MR && cols == NR) {
    const __m256 bias0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 bias1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
#define FA_STORE(r, x0, x1)                                                   \
  {                                                                           \
    float* cr = C + (r) * ldc;                                                \
    if (!store) {                                                             \
      x0 = _mm256_add_ps(_mm256_loadu_ps(cr), x0);                            \
      x1 = _mm256_add_ps(_mm256_loadu_ps(cr + 8), x1);                        \
    } else if (bias) {                                                        \
      x0 = _mm256_add_ps(x0, bias0);                                          \
      x1 = _mm256_add_ps(x1, bias1);                                          \
    }                                                                         \
    _mm256_storeu_ps(cr, x0);                                                 \
    _mm256_storeu_ps(cr + 8, x1);                                             \
  }
    FA_STORE(0, c00, c01)
    FA_STORE(1, c10, c11)
    FA_STORE(2, c20, c21)
    FA_STORE(3, c30, c31)
    FA_STORE(4, c40, c41)
    FA_STORE(5, c50, c51)
#undef FA_STORE
    return;
  }
  if (variant == kGemmDropEdgeCols && cols < NR) return;
  alignas(32) float tmp[MR][NR];
  _mm256_store_ps(tmp[0], c00), _mm256_store_ps(tmp[0] + 8, c01);
  _mm256_store_ps(tmp[1], c10), _mm256_store_ps(tmp[1] + 8, c11);
  _mm256_store_ps(tmp[2], c20), _mm256_store_ps(tmp[2] + 8, c21);
  _mm256_store_ps(tmp[3], c30), _mm256_store_ps(tmp[3] + 8, c31);
  _mm256_store_ps(tmp[4], c40), _mm256_store_ps(tmp[4] + 8, c41);
  _mm256_store_ps(tmp[5], c50), _mm256_store_ps(tmp[5] + 8, c51);
  for (int r = 0; r < rows; r++) {
    float* cr = C + r * ldc;
    for (int j = 0; j < cols; j++)
      cr[j] = !store ? cr[j] + tmp[r][j] : bias ? tmp[r][j] + bias[j] : tmp[r][j];
  }
}

}  // namespace

void gemm_layout(GemmParams& p) {
  p.Mp = (p.M + MR - 1) / MR * MR;
  p.Np = (p.N + NR - 1) / NR * NR;
  p.mBlocks = (p.M + MC - 1) / MC;
  p.nBlocks = (p.N + NC - 1) / NC;
}

// bp starts 64-byte aligned (the micro-kernel's aligned loads of the B panel need 32).
static size_t a_pack_floats(const GemmParams& p) {
  return (static_cast<size_t>(p.Mp) * p.K + 15) / 16 * 16;
}

size_t gemm_pack_floats(const GemmParams& p) {
  return a_pack_floats(p) + static_cast<size_t>(p.Np) * p.K;
}

void gemm_set_packs(GemmParams& p, float* mem) {
  p.ap = mem;
  p.bp = mem + a_pack_floats(p);
}

int gemm_pack_units(const GemmParams& p) { return p.Mp / MR + p.Np / NR; }

void gemm_pack(const GemmParams& p, int u) {
  const int64_t K = p.K;
  if (u < p.Mp / MR) {
    // (K, 6) panel of op(A) rows i0 .. i0 + 5
    float* dst = p.ap + u * K * MR;  // (K, 6)
    const int i0 = u * MR, rows = imin(MR, p.M - i0);
    if (rows < MR) std::memset(dst, 0, sizeof(float) * K * MR);
    for (int r = 0; r < rows; r++) {
      const float* src = p.a + (i0 + r) * p.a_rs;
      if (p.a_cs == 1)
        for (int64_t k = 0; k < K; k++) dst[k * MR + r] = src[k];
      else
        for (int64_t k = 0; k < K; k++) dst[k * MR + r] = src[k * p.a_cs];
    }
    return;
  }
  // (K, 16) panel of op(B) columns j0 .. j0 + 15
  const int q = u - p.Mp / MR;
  float* dst = p.bp + q * K * NR;  // (K, 16)
  const int j0 = q * NR, cols = imin(NR, p.N - j0);
  if (p.b_cs == 1) {
    for (int64_t k = 0; k < K; k++) {
      const float* src = p.b + k * p.b_rs + j0;
      float* d = dst + k * NR;
      if (cols == NR) {
        _mm256_store_ps(d, _mm256_loadu_ps(src));
        _mm256_store_ps(d + 8, _mm256_loadu_ps(src + 8));
      } else {
        for (int j = 0; j < cols; j++) d[j] = src[j];
        for (int j = cols; j < NR; j++) d[j] = 0;
      }
    }
    return;
  }
  if (cols < NR) std::memset(dst, 0, sizeof(float) * K * NR);
  for (int j = 0; j < cols; j++) {
    const float* src = p.b + (j0 + j) * p.b_cs;
    if (p.b_rs == 1)
      for (int64_t k = 0; k < K; k++) dst[k * NR + j] = src[k];
    else
      for (int64_t k = 0; k < K; k++) dst[k * NR + j] = src[k * p.b_rs];
  }
}

void gemm_block(const GemmParams& p, int u) {
  const int64_t K = p.K;
  const int mb = u / p.nBlocks, nb = u % p.nBlocks;
  const int i0 = mb * MC, i1 = imin(p.M, i0 + MC);
  const int j0 = nb * NC, j1 = imin(p.N, j0 + NC);
  for (int pc = 0; pc < p.K; pc += KC) {
    const int kc = imin(KC, p.K - pc);
    const bool store = pc == 0 && !p.accumulate;
    for (int j = j0; j < j1; j += NR) {
      const float* Bp = p.bp + (j / NR) * K * NR + pc * NR;  // (kc, 16) in L1 across the rows
      const float* bias = store && p.bias ? p.bias + j : nullptr;
      const int cols = imin(NR, j1 - j);
      for (int i = i0; i < i1; i += MR) {
        const float* Ap = p.ap + (i / MR) * K * MR + pc * MR;  // (kc, 6)
        tile(kc, Ap, Bp, p.c + static_cast<int64_t>(i) * p.N + j, p.N, imin(MR, i1 - i), cols, store,
             bias, p.variant);
      }
    }
  }
}

}  // namespace flashattn_cpu

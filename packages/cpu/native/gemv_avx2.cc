// The small-M path of the float32 matmul (gemm.h: gemv_units / gemv_block): C (M, N) = op(A) op(B)
// [+ bias | + C] for M <= kGemvMaxM rows on AVX2 + FMA, with nothing packed: B is read once, in its
// own layout, for all M rows at a time. In GPT-2 decoding every matmul has M = B (1..8 rows); the
// packed gemm (gemm_avx2.cc) copies all of B (K x N: the whole weight) per call and pads M to a 6-row
// panel, i.e. twice the memory traffic of the product and 1/6 of its FMAs useful at M = 1.
//   transB false  B (K, N): for each unit of GEMV_NC columns, C rows [0, M) x the unit's columns sum
//                 a[i, k] * B[k, j0 .. j1) over k in groups of GEMV_KG rows of B (GEMV_KG contiguous
//                 streams), the running sums in an (M, GEMV_NC) block that stays in L1.
//   transB true   B (N, K): for each unit of GEMV_NT rows of B (= columns of C), dot products of the A
//                 rows with the B rows: 8-lane FMA sums over K (the K % 8 tail masked), then one fixed
//                 horizontal sum, in tiles of 2 A rows x 4 B rows (8 ymm accumulators).
// Every C element is computed by the same instructions in the same order whichever unit or tile holds
// it (the tile edges run the same per-element sequence), so results are bitwise the same for any thread
// count. op(A) must have contiguous rows (a_cs == 1): the addon copies a transposed A (M K floats) first.
// Built with -mavx2 -mfma; the templates below have internal linkage (anonymous namespace), so no copy of
// them can be merged with one built without AVX (gemm_avx2.cc's note on std:: templates).
#include <immintrin.h>

#include "gemm.h"

// Columns of C per unit with transB false (a multiple of 8): the (M, GEMV_NC) running sums are at most
// 8 KiB. GEMV_KG rows of B per pass over that block. GEMV_NT rows of B per unit with transB true.
// native/dev/gemv_sweep.cc times other values (-DGEMV_NC=... -DGEMV_KG=... -DGEMV_NT=...).
#ifndef GEMV_NC
#define GEMV_NC 128
#endif
#ifndef GEMV_KG
#define GEMV_KG 4
#endif
#ifndef GEMV_NT
#define GEMV_NT 64
#endif

namespace flashattn_cpu {
namespace {

constexpr int NC = GEMV_NC;
constexpr int KG = GEMV_KG;
constexpr int NT = GEMV_NT;
static_assert(NC % 8 == 0 && KG >= 1 && KG <= 8 && NT >= 1, "gemv blocking");

inline int imin(int a, int b) { return a < b ? a : b; }

// Row r of op(A): the broken variant kGemvRowZero reads row 0 for every row.
inline const float* a_row(const GemmParams& p, int r) {
  return p.a + (p.variant == kGemvRowZero ? 0 : r) * p.a_rs;
}

// Write the sums s (R rows, `cols` columns, row stride lds) into C columns j0 .. j0 + cols - 1:
// C = s [+ bias] or C += s. The broken variant kGemmDropEdgeCols never writes the N % 8 last columns.
void write_c(const GemmParams& p, int R, const float* s, int64_t lds, int j0, int cols) {
  if (p.variant == kGemmDropEdgeCols) cols = imin(cols, p.N / 8 * 8 - j0);
  for (int r = 0; r < R; r++) {
    float* c = p.c + static_cast<int64_t>(r) * p.N + j0;
    const float* sr = s + r * lds;
    if (p.accumulate)
      for (int j = 0; j < cols; j++) c[j] = c[j] + sr[j];
    else if (p.bias)
      for (int j = 0; j < cols; j++) c[j] = sr[j] + p.bias[j0 + j];
    else
      for (int j = 0; j < cols; j++) c[j] = sr[j];
  }
}

// ---- transB false: B (K, N) row-major, C rows += a[i, k] B[k, :]

// acc (R, NC) += sum over g < G of a[r, k + g] * B[k + g, j0 .. j0 + w), one FMA per k in k order.
template <int R, int G>
inline void axpy_step(const GemmParams& p, const float* const* A, int k, int j0, int w,
                      float (*acc)[NC]) {
  __m256 a[R][G];
  for (int r = 0; r < R; r++)
    for (int g = 0; g < G; g++) a[r][g] = _mm256_broadcast_ss(A[r] + k + g);
  const float* b[G];  // G rows of B, at column j0
  for (int g = 0; g < G; g++) b[g] = p.b + (k + g) * p.b_rs + j0;
  const int wv = w / 8 * 8;
  for (int j = 0; j < wv; j += 8) {
    __m256 x[G];
    for (int g = 0; g < G; g++) x[g] = _mm256_loadu_ps(b[g] + j);
    for (int r = 0; r < R; r++) {
      __m256 s = _mm256_load_ps(acc[r] + j);
      for (int g = 0; g < G; g++) s = _mm256_fmadd_ps(a[r][g], x[g], s);
      _mm256_store_ps(acc[r] + j, s);
    }
  }
  // The last w % 8 columns: the same FMAs one lane at a time (an FMA rounds once either way).
  for (int j = wv; j < w; j++)
    for (int r = 0; r < R; r++) {
      float s = acc[r][j];
      for (int g = 0; g < G; g++) s = __builtin_fmaf(A[r][k + g], b[g][j], s);
      acc[r][j] = s;
    }
}

// Rows r0 .. r0 + R - 1 of C, the unit's columns.
template <int R>
void axpy_unit(const GemmParams& p, int u, int r0) {
  const int j0 = u * NC, w = imin(NC, p.N - j0);
  alignas(32) float acc[R][NC];  // (R, NC): the unit's running sums
  for (int r = 0; r < R; r++)
    for (int j = 0; j < NC; j++) acc[r][j] = 0.0f;
  const float* A[R];
  for (int r = 0; r < R; r++) A[r] = a_row(p, r0 + r);
  const int K = p.variant == kGemmDropLastK ? p.K - 1 : p.K;
  int k = 0;
  for (; k + KG <= K; k += KG) axpy_step<R, KG>(p, A, k, j0, w, acc);
  for (; k < K; k++) axpy_step<R, 1>(p, A, k, j0, w, acc);
  GemmParams q = p;
  q.c = p.c + static_cast<int64_t>(r0) * p.N;
  write_c(q, R, &acc[0][0], NC, j0, w);
}

// ---- transB true: B (N, K) row-major, C[i, j] = dot(A row i, B row j)

inline float hsum(__m256 v) {
  const __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 y = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(y, _mm_movehdup_ps(y)));
}

// s[r][j] = dot(A[r], B[j]) over K: per lane an FMA chain over k = lane, lane + 8, ... (the K % 8 tail
// through a masked load: the missing lanes add 0 * 0), then hsum. The same sequence for any R, J.
template <int R, int J>
inline void dot_tile(const float* const* A, const float* const* B, int K, __m256i tail,
                     float (*s)[4]) {
  __m256 acc[R][J];
  for (int r = 0; r < R; r++)
    for (int j = 0; j < J; j++) acc[r][j] = _mm256_setzero_ps();
  const int K8 = K / 8 * 8;
  for (int k = 0; k < K8; k += 8) {
    __m256 b[J];
    for (int j = 0; j < J; j++) b[j] = _mm256_loadu_ps(B[j] + k);
    for (int r = 0; r < R; r++) {
      const __m256 a = _mm256_loadu_ps(A[r] + k);
      for (int j = 0; j < J; j++) acc[r][j] = _mm256_fmadd_ps(a, b[j], acc[r][j]);
    }
  }
  if (K8 < K) {
    __m256 b[J];
    for (int j = 0; j < J; j++) b[j] = _mm256_maskload_ps(B[j] + K8, tail);
    for (int r = 0; r < R; r++) {
      const __m256 a = _mm256_maskload_ps(A[r] + K8, tail);
      for (int j = 0; j < J; j++) acc[r][j] = _mm256_fmadd_ps(a, b[j], acc[r][j]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int j = 0; j < J; j++) s[r][j] = hsum(acc[r][j]);
}

void dot_unit(const GemmParams& p, int u) {
  const int j0 = u * NT, j1 = imin(p.N, j0 + NT);
  const int K = p.variant == kGemmDropLastK ? p.K - 1 : p.K;
  alignas(32) int32_t lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  const __m256i tail = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lanes + 8 - K % 8));
  for (int j = j0; j < j1; j += 4) {
    const int J = imin(4, j1 - j);
    const float* B[4];  // rows j .. j + J - 1 of B
    for (int t = 0; t < J; t++) B[t] = p.b + static_cast<int64_t>(j + t) * p.b_cs;
    for (int r = 0; r < p.M; r += 2) {
      const int R = imin(2, p.M - r);
      const float* A[2] = {a_row(p, r), R == 2 ? a_row(p, r + 1) : nullptr};
      float s[2][4];  // (R, J) dot products
      if (J == 4) {
        if (R == 2) dot_tile<2, 4>(A, B, K, tail, s);
        else dot_tile<1, 4>(A, B, K, tail, s);
      } else {  // the unit's edge: one B row at a time, the same per-element sequence
        for (int q = 0; q < J; q++) {
          float t[2][4] = {};
          if (R == 2) dot_tile<2, 1>(A, B + q, K, tail, t);
          else dot_tile<1, 1>(A, B + q, K, tail, t);
          s[0][q] = t[0][0];
          s[1][q] = t[1][0];
        }
      }
      // C rows r .. r + R - 1, columns j .. j + J - 1
      GemmParams q = p;
      q.c = p.c + static_cast<int64_t>(r) * p.N;
      write_c(q, R, &s[0][0], 4, j, J);
    }
  }
}

}  // namespace

int gemv_units(const GemmParams& p) {
  return p.b_cs == 1 ? (p.N + NC - 1) / NC : (p.N + NT - 1) / NT;
}

void gemv_block(const GemmParams& p, int u) {
  if (p.b_cs != 1) return dot_unit(p, u);
  // Rows in groups of 8 (one pass over the unit's columns of B each; M <= kGemvMaxM in production).
  for (int r0 = 0; r0 < p.M; r0 += 8) {
    switch (imin(8, p.M - r0)) {
      case 1: axpy_unit<1>(p, u, r0); break;
      case 2: axpy_unit<2>(p, u, r0); break;
      case 3: axpy_unit<3>(p, u, r0); break;
      case 4: axpy_unit<4>(p, u, r0); break;
      case 5: axpy_unit<5>(p, u, r0); break;
      case 6: axpy_unit<6>(p, u, r0); break;
      case 7: axpy_unit<7>(p, u, r0); break;
      default: axpy_unit<8>(p, u, r0); break;
    }
  }
}

}  // namespace flashattn_cpu

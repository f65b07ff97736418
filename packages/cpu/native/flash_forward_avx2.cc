// FlashAttention-2 forward (Algorithm 1) on AVX2 + FMA: the only file built with -mavx2 -mfma (see
// flash_forward.h for the units; addon.cc checks the CPU before calling in). No std:: templates here:
// an inline template instantiated in this file could be merged by the linker with the one in a file
// built without AVX and run on a CPU that lacks it.
//
// Per query block Q_i (Br rows, times the softmax scale) and key block j (Bc keys), in register tiles
// of MR = 6 query rows:
//   S = Q_i K_j^T   6 x 16 tiles: 12 ymm accumulators, two 8-float loads of the packed K^T panel and
//                   6 broadcasts of Q per step of D (15 of the 16 ymm registers)
//   online softmax  masked (lo, hi per row), m_i, P = exp(S - m_i), l_i; acc rows *= exp(m_old - m_new)
//   acc += P V_j    6 x 16 tiles over D: 12 accumulators loaded from acc, two loads of a V row and 6
//                   broadcasts of P per key
// Each 6-row tile computes only the 16-key panels that some of its rows see (ca..cb), so a causal
// diagonal block costs about half a block and fully masked blocks are skipped.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "flash_forward.h"

namespace flashattn_cpu {
namespace {

constexpr int MR = 6;  // query rows per register tile

inline int imin(int a, int b) { return a < b ? a : b; }
inline int imax(int a, int b) { return a > b ? a : b; }
inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

// exp(x) for x <= 0 (or -inf, NaN), eight lanes: the wasm kernel's algorithm and constants
// (wasm/flash-simd.mjs expV), so its accuracy: 2^y, y = x log2(e) = n + r, n = round(y) with the
// 1.5 * 2^23 trick, |r| <= 1/2, 2^r by a degree-6 polynomial (max 0.81 ulp with FMA Horner steps), 2^n
// from the exponent bits. y is clamped below at -127: -inf and anything below -126.5 give exactly 0.
// _mm256_max_ps(lo, y) returns y when y is NaN, so a NaN stays NaN.
inline __m256 exp_nonpos(__m256 x) {
  const __m256 y = _mm256_max_ps(_mm256_set1_ps(-127.0f),
                                 _mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)));
  const __m256 magic = _mm256_set1_ps(12582912.0f);  // 1.5 * 2^23, bits 0x4B400000
  const __m256 t = _mm256_add_ps(y, magic);
  const __m256 r = _mm256_sub_ps(y, _mm256_sub_ps(t, magic));
  __m256 p = _mm256_set1_ps(1.537070493e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.339984825e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(9.618373588e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.550329015e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(2.402264774e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(6.931471825e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127 - 0x4B400000)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The register tiles name their accumulators (c00 .. c51) instead of indexing arrays: GCC 12 kept
// arrays of __m256 on the stack, storing all 12 accumulators every step (33 vs ~90 GFLOP/s peak;
// objdump of s_tile<6>, 2026-12-07).
#define FA_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define FA_DECL(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps();

// Algorithm 1, line 8 for R <= 6 rows and one 16-key panel: C (R, 16) = A (R, K) Kt (K, 16).
// A rows lda floats apart; Kt the packed panel (K rows of 16); C rows ldc floats apart.
template <int R>
inline void s_tile(const float* A, int lda, const float* Kt, int K, float* C, int ldc) {
  FA_ROWS(FA_DECL)
  for (int k = 0; k < K; k++) {
    const __m256 b0 = _mm256_load_ps(Kt + k * 16);
    const __m256 b1 = _mm256_load_ps(Kt + k * 16 + 8);
#define FA_STEP(i)                                                 \
  if constexpr (R > i) {                                           \
    const __m256 a = _mm256_broadcast_ss(A + i * lda + k);         \
    c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0);                     \
    c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1);                     \
  }
    FA_ROWS(FA_STEP)
#undef FA_STEP
  }
#define FA_STORE(i)                                \
  if constexpr (R > i) {                           \
    _mm256_storeu_ps(C + i * ldc, c##i##0);        \
    _mm256_storeu_ps(C + i * ldc + 8, c##i##1);    \
  }
  FA_ROWS(FA_STORE)
#undef FA_STORE
}

// Algorithm 1, line 10 (second half) for R <= 6 rows: acc (R, N) += P (R, K) V (K, N), N % 8 == 0.
template <int R>
inline void pv_tile(const float* P, int ldp, const float* V, int ldv, int K, float* acc, int ldc,
                    int N) {
  int n0 = 0;
  for (; n0 + 16 <= N; n0 += 16) {
    FA_ROWS(FA_DECL)
#define FA_LOAD(i)                                        \
  if constexpr (R > i) {                                  \
    c##i##0 = _mm256_loadu_ps(acc + i * ldc + n0);        \
    c##i##1 = _mm256_loadu_ps(acc + i * ldc + n0 + 8);    \
  }
    FA_ROWS(FA_LOAD)
#undef FA_LOAD
    for (int k = 0; k < K; k++) {
      const __m256 b0 = _mm256_loadu_ps(V + k * ldv + n0);
      const __m256 b1 = _mm256_loadu_ps(V + k * ldv + n0 + 8);
#define FA_STEP(i)                                                 \
  if constexpr (R > i) {                                           \
    const __m256 a = _mm256_broadcast_ss(P + i * ldp + k);         \
    c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0);                     \
    c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1);                     \
  }
      FA_ROWS(FA_STEP)
#undef FA_STEP
    }
#define FA_STORE(i)                                      \
  if constexpr (R > i) {                                 \
    _mm256_storeu_ps(acc + i * ldc + n0, c##i##0);       \
    _mm256_storeu_ps(acc + i * ldc + n0 + 8, c##i##1);   \
  }
    FA_ROWS(FA_STORE)
#undef FA_STORE
  }
  if (n0 < N) {  // one 8-column panel left
#define FA_DECL1(i) __m256 c##i##0 = _mm256_setzero_ps();
    FA_ROWS(FA_DECL1)
#undef FA_DECL1
#define FA_LOAD(i) \
  if constexpr (R > i) c##i##0 = _mm256_loadu_ps(acc + i * ldc + n0);
    FA_ROWS(FA_LOAD)
#undef FA_LOAD
    for (int k = 0; k < K; k++) {
      const __m256 b0 = _mm256_loadu_ps(V + k * ldv + n0);
#define FA_STEP(i) \
  if constexpr (R > i) c##i##0 = _mm256_fmadd_ps(_mm256_broadcast_ss(P + i * ldp + k), b0, c##i##0);
      FA_ROWS(FA_STEP)
#undef FA_STEP
    }
#define FA_STORE(i) \
  if constexpr (R > i) _mm256_storeu_ps(acc + i * ldc + n0, c##i##0);
    FA_ROWS(FA_STORE)
#undef FA_STORE
  }
}
#undef FA_DECL
#undef FA_ROWS

template <int R>
void s_panels(const float* A, int lda, const float* Kt, int K, int panels, float* S, int lds) {
  for (int q = 0; q < panels; q++) s_tile<R>(A, lda, Kt + q * 16 * K, K, S + q * 16, lds);
}

void s_rows(int R, const float* A, int lda, const float* Kt, int K, int panels, float* S, int lds) {
  switch (R) {
    case 6: s_panels<6>(A, lda, Kt, K, panels, S, lds); break;
    case 5: s_panels<5>(A, lda, Kt, K, panels, S, lds); break;
    case 4: s_panels<4>(A, lda, Kt, K, panels, S, lds); break;
    case 3: s_panels<3>(A, lda, Kt, K, panels, S, lds); break;
    case 2: s_panels<2>(A, lda, Kt, K, panels, S, lds); break;
    default: s_panels<1>(A, lda, Kt, K, panels, S, lds); break;
  }
}

void pv_rows(int R, const float* P, int ldp, const float* V, int ldv, int K, float* acc, int ldc,
             int N) {
  switch (R) {
    case 6: pv_tile<6>(P, ldp, V, ldv, K, acc, ldc, N); break;
    case 5: pv_tile<5>(P, ldp, V, ldv, K, acc, ldc, N); break;
    case 4: pv_tile<4>(P, ldp, V, ldv, K, acc, ldc, N); break;
    case 3: pv_tile<3>(P, ldp, V, ldv, K, acc, ldc, N); break;
    case 2: pv_tile<2>(P, ldp, V, ldv, K, acc, ldc, N); break;
    default: pv_tile<1>(P, ldp, V, ldv, K, acc, ldc, N); break;
  }
}

}  // namespace

void forward_layout(ForwardParams& p) {
  p.Dp = round_up(p.D, 8);
  p.Tr = (p.Nq + p.Br - 1) / p.Br;
  p.Tc = (p.Nk + p.Bc - 1) / p.Bc;
  p.NkPad = p.Tc * p.Bc;
}

size_t forward_pack_floats(const ForwardParams& p) {
  const size_t heads = static_cast<size_t>(p.B) * p.Hk;
  return heads * p.NkPad * p.D + heads * p.NkPad * p.Dp;
}

size_t forward_scratch_floats(const ForwardParams& p) {
  // Q_i (Br, Dp), acc (Br, Dp), S (Br, Bc), m and l (Br), each rounded to 16 floats (64 bytes), and
  // the row tiles' key ranges (2 ceil(Br / 6) ints).
  return 2 * static_cast<size_t>(round_up(p.Br * p.Dp, 16)) + round_up(p.Br * p.Bc, 16) +
         2 * round_up(p.Br, 16) + 2 * round_up((p.Br + MR - 1) / MR, 16);
}

void forward_pack(const ForwardParams& p, int u) {
  // One (b, hk): K^T into 16-key panels (NkPad / 16, D, 16); V into (NkPad, Dp) rows; V's flags.
  const int b = u / p.Hk, hk = u - b * p.Hk;
  const float* K = p.k.data + b * p.k.sB + hk * p.k.sH;
  const float* V = p.v.data + b * p.v.sB + hk * p.v.sH;
  float* kt = p.kt + static_cast<size_t>(u) * p.NkPad * p.D;
  float* vp = p.vp + static_cast<size_t>(u) * p.NkPad * p.Dp;
  const int D = p.D, Dp = p.Dp;
  for (int n0 = 0; n0 < p.NkPad; n0 += 16) {
    float* panel = kt + static_cast<size_t>(n0) * D;  // (D, 16)
    for (int c = 0; c < 16; c++) {
      const int n = n0 + c;
      if (n < p.Nk) {
        const float* row = K + n * p.k.sN;
        for (int d = 0; d < D; d++) panel[d * 16 + c] = row[d];
      } else {
        for (int d = 0; d < D; d++) panel[d * 16 + c] = 0.0f;
      }
    }
  }
  for (int t = 0; t < p.Tc; t++) {
    int bad = 0;
    for (int n = t * p.Bc; n < (t + 1) * p.Bc; n++) {
      float* dst = vp + static_cast<size_t>(n) * Dp;
      if (n < p.Nk) {
        const float* row = V + n * p.v.sN;
        for (int d = 0; d < D; d++) {
          const float x = row[d];
          bad |= !(x - x == 0.0f);  // NaN or an infinity
          dst[d] = x;
        }
        for (int d = D; d < Dp; d++) dst[d] = 0.0f;
      } else {
        std::memset(dst, 0, sizeof(float) * Dp);
      }
    }
    p.nf[static_cast<size_t>(u) * p.Tc + t] = static_cast<uint8_t>(bad);
  }
}

void forward_block(const ForwardParams& p, int u, float* scratch) {
  const int Dp = p.Dp, D = p.D, Bc = p.Bc;
  const int G = p.Hq / p.Hk;
  // Query blocks from the last (longest under a causal mask) to the first, so the tail is short.
  const int bh = u / p.Tr;
  const int i = p.Tr - 1 - (u - bh * p.Tr);
  const int b = bh / p.Hq, h = bh - b * p.Hq;
  const int bhk = b * p.Hk + h / G;
  const int r0 = i * p.Br;
  const int rows = imin(p.Br, p.Nq - r0);
  // Scratch: Q_i (Br, Dp), acc (Br, Dp), S (Br, Bc), m (Br), l (Br), tile ranges tca, tcb.
  float* Qi = scratch;
  float* acc = Qi + round_up(p.Br * Dp, 16);
  float* S = acc + round_up(p.Br * Dp, 16);
  float* m = S + round_up(p.Br * Bc, 16);
  float* l = m + round_up(p.Br, 16);
  int* tca = reinterpret_cast<int*>(l + round_up(p.Br, 16));
  int* tcb = tca + round_up((p.Br + MR - 1) / MR, 16);
  const int32_t* lo = p.lo;
  const int32_t* hi = p.hi;
  const bool off_by_one = p.variant == kMaskOffByOne;
  auto hi_of = [&](int row) { return off_by_one ? imin(hi[row] + 1, p.Nk) : hi[row]; };

  // line 4: load Q_i times the softmax scale (the kernels then read scale 1); line 5: acc = 0, l = 0,
  // m = -inf.
  const float scale = p.scale;
  for (int r = 0; r < rows; r++) {
    const float* src = p.q.data + b * p.q.sB + h * p.q.sH + static_cast<int64_t>(r0 + r) * p.q.sN;
    float* dst = Qi + r * Dp;
    for (int d = 0; d < D; d++) dst[d] = src[d] * scale;
    for (int d = D; d < Dp; d++) dst[d] = 0.0f;
    m[r] = -INFINITY;
    l[r] = 0.0f;
  }
  std::memset(acc, 0, sizeof(float) * rows * Dp);

  // Only the key blocks some row of Q_i sees (lo and hi grow with the row).
  const int kLo = lo[r0], kHi = hi_of(r0 + rows - 1);
  const int jStart = kLo / Bc;
  const int jEnd = kHi > kLo ? (kHi + Bc - 1) / Bc : jStart;
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
  for (int jj = jStart; jj < jEnd; jj++) {
    const int c0 = jj * Bc;
    const int cols = imin(Bc, p.Nk - c0);
    const size_t keyRow = static_cast<size_t>(bhk) * p.NkPad + c0;
    const float* kt = p.kt + keyRow * D;   // this block's panels
    const float* vb = p.vp + keyRow * Dp;  // this block's V rows
    const bool nonFinite = p.nf[static_cast<size_t>(bhk) * p.Tc + jj] != 0;
    // The key range [ca, cb) each 6-row tile sees in this block (ca on a 16-key panel); empty: cb <= ca.
    int tiles = 0;
    for (int rr = 0; rr < rows; rr += MR, tiles++) {
      const int n = imin(MR, rows - rr);
      tca[tiles] = imax(0, lo[r0 + rr] - c0) & ~15;
      tcb[tiles] = imin(cols, hi_of(r0 + rr + n - 1) - c0);
    }
    // line 8: S_ij = Q_i K_j^T (Q_i holds the scale), a 16-key panel of K^T at a time over every row
    // tile that sees it, so the panel (16 D floats) stays in L1.
    for (int c = 0; c < cols; c += 16) {
      const float* panel = kt + static_cast<size_t>(c) * D;
      for (int t = 0, rr = 0; t < tiles; t++, rr += MR)
        if (tca[t] <= c && c < tcb[t])
          s_rows(imin(MR, rows - rr), Qi + rr * Dp, Dp, panel, D, 1, S + rr * Bc + c, Bc);
    }
    // lines 9-10: m_i, P~_ij, l_i; acc *= exp(m_old - m_new)
    for (int t = 0, rr = 0; t < tiles; t++, rr += MR) {
      const int ca = tca[t], cb = tcb[t];
      if (cb <= ca) continue;
      const int wPad = (cb - ca + 15) & ~15;
      for (int r = 0; r < imin(MR, rows - rr); r++) {
        const int row = r0 + rr + r;
        float* s = S + (rr + r) * Bc + ca;
        const int a = lo[row] - c0 - ca;  // visible columns [a, e) from ca
        const int e = imin(hi_of(row), c0 + cols) - c0 - ca;
        const __m256i av = _mm256_set1_epi32(a), ev = _mm256_set1_epi32(e);
        __m256 mx = neg_inf;
        for (int c = 0; c < wPad; c += 8) {
          const __m256i idx = _mm256_add_epi32(iota, _mm256_set1_epi32(c));
          const __m256i vis =
              _mm256_andnot_si256(_mm256_cmpgt_epi32(av, idx), _mm256_cmpgt_epi32(ev, idx));
          const __m256 x =
              _mm256_blendv_ps(neg_inf, _mm256_loadu_ps(s + c), _mm256_castsi256_ps(vis));
          _mm256_storeu_ps(s + c, x);
          mx = _mm256_max_ps(x, mx);  // a NaN score keeps mx (the wasm kernel's pmax)
        }
        const int rl = rr + r;
        const float mOld = m[rl];
        const float mNew = fmaxf(mOld, hmax(mx));
        if (mNew == -INFINITY) {
          // no key visible yet: P~ row = 0, state unchanged
          for (int c = 0; c < wPad; c += 8) _mm256_storeu_ps(s + c, _mm256_setzero_ps());
          continue;
        }
        const float alpha = _mm256_cvtss_f32(exp_nonpos(_mm256_set1_ps(mOld - mNew)));
        const __m256 mv = _mm256_set1_ps(mNew);
        __m256 sum = _mm256_setzero_ps();
        for (int c = 0; c < wPad; c += 8) {
          const __m256 x = exp_nonpos(_mm256_sub_ps(_mm256_loadu_ps(s + c), mv));
          _mm256_storeu_ps(s + c, x);
          sum = _mm256_add_ps(sum, x);
        }
        l[rl] = alpha * l[rl] + hsum(sum);
        m[rl] = mNew;
        // line 10 (first half): acc = diag(alpha) acc
        if (alpha != 1.0f && p.variant != kNoRescale) {
          float* ar = acc + rl * Dp;
          const __m256 a8 = _mm256_set1_ps(alpha);
          for (int d = 0; d < Dp; d += 8)
            _mm256_storeu_ps(ar + d, _mm256_mul_ps(_mm256_loadu_ps(ar + d), a8));
        }
      }
    }
    // line 10 (second half): acc += P~_ij V_j, 16 columns of V_j at a time over every row tile, so
    // the (Bc, 16) slice of V stays in L1.
    if (!nonFinite) {
      for (int n0 = 0; n0 < Dp; n0 += 16) {
        const int nw = imin(16, Dp - n0);
        for (int t = 0, rr = 0; t < tiles; t++, rr += MR) {
          const int ca = tca[t], cb = tcb[t];
          if (cb <= ca) continue;
          pv_rows(imin(MR, rows - rr), S + rr * Bc + ca, Bc, vb + static_cast<size_t>(ca) * Dp + n0,
                  Dp, cb - ca, acc + rr * Dp + n0, Dp, nw);
        }
      }
    } else {
      // A block with a NaN or infinity in V: each row over its visible keys only (0 * NaN would leak
      // a NaN the row does not see).
      for (int r = 0; r < rows; r++) {
        const int row = r0 + r;
        const int a = imax(0, lo[row] - c0);
        const int e = imin(hi_of(row), c0 + cols) - c0;
        float* ar = acc + r * Dp;
        for (int c = a; c < e; c++) {
          const float pw = S[r * Bc + c];
          const float* vr = vb + static_cast<size_t>(c) * Dp;
          for (int d = 0; d < Dp; d++) ar[d] += pw * vr[d];
        }
      }
    }
  }
  // lines 12-15: O_i = acc / l_i, L_i = m_i + log(l_i); a row that saw no key: out = 0, lse = -inf.
  float* lseRow = p.lse + static_cast<size_t>(bh) * p.Nq + r0;
  for (int r = 0; r < rows; r++) {
    float* o = p.out.data + b * p.out.sB + h * p.out.sH + static_cast<int64_t>(r0 + r) * p.out.sN;
    const float lr = l[r];
    if (lr == 0.0f) {
      lseRow[r] = -INFINITY;
      for (int d = 0; d < D; d++) o[d] = 0.0f;
      continue;
    }
    lseRow[r] = static_cast<float>(static_cast<double>(m[r]) + std::log(static_cast<double>(lr)));
    const float inv = static_cast<float>(1.0 / static_cast<double>(lr));
    const float* ar = acc + r * Dp;
    for (int d = 0; d < D; d++) o[d] = ar[d] * inv;
  }
}

}  // namespace flashattn_cpu

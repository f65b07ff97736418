// C (M, N) = op(A) (M, K) op(B) (K, N) [+ bias (N) | + C] in float32 with AVX2 + FMA: the interface
// between the addon (addon.cc: arguments, CPU check, threads) and the kernel (gemm_avx2.cc, built with
// -mavx2 -mfma; call it only after the addon's run-time CPU check).
//
// The GotoBLAS / BLIS structure with both operands packed once per call (transA / transB only change
// how the packing reads, so all four layouts run the same micro-kernel):
//   pack A  (panel p)  rows 6p .. 6p + 5 of op(A) into a (K, 6) panel, zero rows past M
//   pack B  (panel q)  columns 16q .. 16q + 15 of op(B) into a (K, 16) panel, zero columns past N
//   block   (unit u)   one MC x NC block of C: for each KC slice of K, for each 16-column panel, for each
//                      6-row panel, the 6 x 16 register tile (12 ymm accumulators)
// Every C element is summed over the same KC slices in the same order whoever computes its block, so
// results are bitwise the same for any thread count. The packs are complete before any block runs, so
// C may even alias A or B.
//
// With M <= kGemvMaxM rows the addon runs the small-M path instead (gemv_avx2.cc: nothing packed, B read
// once in its own layout for all rows; units of C columns, same determinism; C must not alias A or B).
#pragma once
#include <cstddef>
#include <cstdint>

namespace flashattn_cpu {

// Testing only (broken variants that the ops conformance suite must reject); 0 in every production call.
enum GemmVariant : int {
  kGemmCorrect = 0,
  kGemmDropLastK = 1,      // each KC slice skips its last step of K
  kGemmDropEdgeCols = 2,   // the N % 16 columns of the last panel are never written (small-M: N % 8)
  kGemvRowZero = 3,        // small-M path only: every row of C is computed from row 0 of op(A)
};
// kGemmDropLastK on the small-M path drops the last step of K.

// Rows up to which the addon takes the small-M path (gemv_units / gemv_block below). native/dev/
// gemv_sweep.cc, one thread, the 8 GPT-2 decode shapes of `small` and gpt2-124m (2026-12-07, load
// 1.3-2.3; apps/bench/figures/cpu/gemv/sweep-*.log): small-M over packed 2.5-5.7x at M = 1, 1.7-3.1x at
// M = 8; at M = 12 (two passes over B) 0.86-2.0x, at 16 0.85-1.7x, at 24 0.77-1.7x: the small shapes
// (B of 1.8-2.4 MB) cross over at 12-16, so 8.
constexpr int kGemvMaxM = 8;

struct GemmParams {
  int M, N, K;
  // op(A)(i, k) = a[i * a_rs + k * a_cs]; op(B)(k, j) = b[k * b_rs + j * b_cs].
  const float* a;
  int64_t a_rs, a_cs;
  const float* b;
  int64_t b_rs, b_cs;
  float* c;            // (M, N) row-major
  const float* bias;   // (N) or nullptr
  bool accumulate;     // C += op(A) op(B) (never with bias)
  int variant;
  // Derived (gemm_layout): panels of 6 rows (Mp = 6 ceil(M / 6)) and 16 columns (Np); block units.
  int Mp, Np, mBlocks, nBlocks;
  float* ap;  // (Mp / 6, K, 6): op(A) in 6-row panels
  float* bp;  // (Np / 16, K, 16): op(B) in 16-column panels
};

// Fill the derived sizes (not the pack pointers). M, N, K >= 1.
void gemm_layout(GemmParams& p);
// Floats of the packs (ap + bp); gemm_set_packs points ap and bp into mem (64-byte aligned, that long).
size_t gemm_pack_floats(const GemmParams& p);
void gemm_set_packs(GemmParams& p, float* mem);
// Pack units [0, Mp / 6 + Np / 16): A panels first, then B panels.
int gemm_pack_units(const GemmParams& p);
void gemm_pack(const GemmParams& p, int u);
// Block units [0, mBlocks nBlocks), after every pack unit is done.
void gemm_block(const GemmParams& p, int u);

// The small-M path, 1 <= M <= kGemvMaxM, K >= 1, op(A) rows contiguous (a_cs == 1), no packs (ap, bp
// unused): units [0, gemv_units) of C columns, in any order on any threads.
int gemv_units(const GemmParams& p);
void gemv_block(const GemmParams& p, int u);

}  // namespace flashattn_cpu

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
#pragma once
#include <cstddef>
#include <cstdint>

namespace flashattn_cpu {

// Testing only (broken variants that the ops conformance suite must reject); 0 in every production call.
enum GemmVariant : int {
  kGemmCorrect = 0,
  kGemmDropLastK = 1,      // each KC slice skips its last step of K
  kGemmDropEdgeCols = 2,   // the N % 16 columns of the last panel are never written
};

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

}  // namespace flashattn_cpu

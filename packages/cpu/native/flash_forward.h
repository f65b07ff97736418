// FlashAttention-2 forward (Algorithm 1) with AVX2 + FMA tiles: the interface between the addon
// (addon.cc: arguments, CPU check, threads) and the kernel (flash_forward_avx2.cc, the only file built
// with -mavx2 -mfma; call it only after the addon's run-time CPU check).
//
// Work units, as in the wasm path (src/attention/flash-simd.ts), each computed whole by one thread with
// the same arithmetic whoever runs it, so results are bitwise identical for any thread count:
//   pack  (b, hk)     K^T of one kv head into 16-key panels, V into zero-padded (NkPad, Dp) rows
//   block (b, h, i)   one query block Q_i of one head: lines 4-15 of Algorithm 1
#pragma once
#include <cstddef>
#include <cstdint>

namespace flashattn_cpu {

// A (B, N, H, D) view: data points at element (0, 0, 0, 0); strides in elements; the D stride is 1.
struct View {
  float* data;
  int64_t sB, sN, sH;
};

// Testing only (the broken variants that conformance must reject); 0 in every production call.
enum Variant : int {
  kCorrect = 0,
  kMaskOffByOne = 1,  // every row sees one key past its last visible one
  kNoRescale = 2,     // acc is not multiplied by exp(m_old - m_new) when the row max grows
};

struct ForwardParams {
  int B, Nq, Nk, Hq, Hk, D;
  float scale;
  View q, k, v, out;
  float* lse;  // (B, Hq, Nq)
  // Visible keys [lo[i], hi[i]) of query row i (core's keyRange), both non-decreasing in i.
  const int32_t* lo;
  const int32_t* hi;
  int Br, Bc;  // query and key block sizes; Bc a multiple of 16
  int variant;
  // Derived (forward_layout): Dp = D rounded up to 8; NkPad = Tc Bc; Tr = ceil(Nq / Br).
  int Dp, NkPad, Tr, Tc;
  float* kt;    // (B Hk, NkPad / 16, D, 16): K^T in panels of 16 keys
  float* vp;    // (B Hk, NkPad, Dp): V rows, zero-padded
  uint8_t* nf;  // (B Hk, Tc): 1 where the V block holds a NaN or an infinity
};

// Fill the derived sizes of p (not the pack pointers).
void forward_layout(ForwardParams& p);
// Floats of packs (kt + vp) and of one thread's scratch.
size_t forward_pack_floats(const ForwardParams& p);
size_t forward_scratch_floats(const ForwardParams& p);

// Pack unit u in [0, B Hk); then block unit u in [0, B Hq Tr) with this thread's scratch (64-byte aligned).
void forward_pack(const ForwardParams& p, int u);
void forward_block(const ForwardParams& p, int u, float* scratch);

}  // namespace flashattn_cpu

// Parameters of the attention kernels. Every tensor is row-major (B, N, H, Dp) with Dp the padded head
// dim (32, 64, 96, 128 or 256); strides are in elements. lse and D_i are (B, Hq, Nq) float32.
#pragma once
#include <cstdint>

namespace flash {

enum DTypeId : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

struct AttnShape {
  int B, Hq, Hk, Nq, Nk, D;  // D = padded head dim the kernels run with
  float scale;               // softmaxScale (applied to Q K^T)
  float scale_log2;          // softmaxScale * log2(e)
  int window_left;           // -1 = unbounded; keys j visible to row i iff
  int window_right;          //   i + Nk - Nq - left <= j <= i + Nk - Nq + right  (and 0 <= j < Nk)
};

struct FwdParams {
  AttnShape s;
  const void* q;  // (B, Nq, Hq, D)
  const void* k;  // (B, Nk, Hk, D)
  const void* v;  // (B, Nk, Hk, D)
  void* o;        // (B, Nq, Hq, D)
  float* lse;     // (B, Hq, Nq), natural log; -inf for a fully masked row
};

struct BwdParams {
  AttnShape s;
  const void* q;      // (B, Nq, Hq, D)
  const void* k;      // (B, Nk, Hk, D)
  const void* v;      // (B, Nk, Hk, D)
  const void* o;      // (B, Nq, Hq, D)
  const void* dout;   // (B, Nq, Hq, D)
  const float* lse;   // (B, Hq, Nq)
  void* dq;           // (B, Nq, Hq, D)
  void* dk;           // (B, Nk, Hk, D)
  void* dv;           // (B, Nk, Hk, D)
  // workspace
  float* d_rowsum;    // D_i = rowsum(dO * O): (B, Hq, Nq)
  float* dq_accum;    // (B, Nq, Hq, D) fp32, zeroed before the dK/dV kernel
  float* dk_expanded; // (B, Nk, Hq, D) fp32 when Hq != Hk (GQA/MQA), else null
  float* dv_expanded; // (B, Nk, Hq, D) fp32 when Hq != Hk, else null
  int* dq_semaphore;  // (B, Hq, Tr) when deterministic, else null
};

}  // namespace flash

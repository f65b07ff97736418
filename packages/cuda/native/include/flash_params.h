// Parameters of the attention kernels. Every (B, N, H, D) operand is a strided view: the head-dim stride is 1
// and the batch / row / head strides are free (in elements), as in FlashAttention-2's params (q_batch_stride,
// q_row_stride, q_head_stride, ...). So q, k, v are read straight out of a packed (B, T, 3, H, D) qkv buffer
// (row stride 3 * H * D, head stride D) and dq, dk, dv written into the packed gradient, with no copies.
// The kernels' cp.async / 16-byte stores need every row start 16-byte aligned: pointers and strides
// multiples of 8 elements (the TypeScript layer stages anything else through a contiguous copy). The float32
// kernels (include/flash_f32.cuh) move single floats and take any strides and 4-byte aligned pointers.
// D is the kernel head dim (32, 64, 96, 128 or 256). lse, D_i are contiguous (B, Hq, Nq) float32; the
// backward's fp32 workspaces are contiguous (dq_accum (B, Nq, Hq, D), dk/dv_expanded (B, Nk, Hq, D)).
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
  float* lse;     // (B, Hq, Nq) contiguous, natural log; -inf for a fully masked row
  int64_t q_batch_stride, q_row_stride, q_head_stride;
  int64_t k_batch_stride, k_row_stride, k_head_stride;
  int64_t v_batch_stride, v_row_stride, v_head_stride;
  int64_t o_batch_stride, o_row_stride, o_head_stride;
};

struct BwdParams {
  AttnShape s;
  const void* q;      // (B, Nq, Hq, D)
  const void* k;      // (B, Nk, Hk, D)
  const void* v;      // (B, Nk, Hk, D)
  const void* o;      // (B, Nq, Hq, D)
  const void* dout;   // (B, Nq, Hq, D)
  const float* lse;   // (B, Hq, Nq) contiguous
  void* dq;           // (B, Nq, Hq, D)
  void* dk;           // (B, Nk, Hk, D)
  void* dv;           // (B, Nk, Hk, D)
  int64_t q_batch_stride, q_row_stride, q_head_stride;
  int64_t k_batch_stride, k_row_stride, k_head_stride;
  int64_t v_batch_stride, v_row_stride, v_head_stride;
  int64_t o_batch_stride, o_row_stride, o_head_stride;
  int64_t do_batch_stride, do_row_stride, do_head_stride;
  int64_t dq_batch_stride, dq_row_stride, dq_head_stride;
  int64_t dk_batch_stride, dk_row_stride, dk_head_stride;
  int64_t dv_batch_stride, dv_row_stride, dv_head_stride;
  // workspace (contiguous)
  float* d_rowsum;    // D_i = rowsum(dO * O): (B, Hq, Nq)
  float* dq_accum;    // (B, Nq, Hq, D) fp32, zeroed before the dK/dV kernel
  float* dk_expanded; // (B, Nk, Hq, D) fp32 when Hq != Hk (GQA/MQA), else null
  float* dv_expanded; // (B, Nk, Hq, D) fp32 when Hq != Hk, else null
  int* dq_semaphore;  // (B, Hq, Tr) when deterministic, else null
};

}  // namespace flash

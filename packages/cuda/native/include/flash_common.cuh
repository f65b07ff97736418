// Tensor-core building blocks shared by the kernels: mma.sync m16n8k16 (fp16 / bf16 in, fp32 accumulate),
// ldmatrix, cp.async, and the mask rule of @flashattn/core's keyRange.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

#include "flash_params.h"

namespace flash {

template <typename T>
struct MmaType;

template <>
struct MmaType<__half> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
  // d += a (16x16, row) * b (16x8, col)
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
  static __device__ __forceinline__ __half from_float(float x) { return __float2half_rn(x); }
};

template <>
struct MmaType<__nv_bfloat16> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __device__ __forceinline__ __nv_bfloat16 from_float(float x) { return __float2bfloat16_rn(x); }
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Four 8x8 b16 matrices; lane l gives the row address of matrix l/8, row l%8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// 16-byte global -> shared copy; src_bytes = 0 zero-fills (rows past the end of the sequence).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Copy rows [0, valid_rows) of a (rows, D) tile with row stride g_stride (elements) into shared memory
// with a padded row stride of D + 8 elements (odd number of 16-byte units: ldmatrix rows hit distinct
// banks). Rows >= valid_rows are zero-filled. `fallback` is any valid global address.
template <int ROWS, int D, int NT, typename T>
__device__ __forceinline__ void load_tile(T* s, const T* g, int64_t g_stride, int valid_rows, const T* fallback,
                                          int tid) {
  constexpr int CH = D / 8;
  constexpr int TOTAL = ROWS * CH;
  const uint32_t s0 = smem_addr(s);
#pragma unroll
  for (int i = 0; i < (TOTAL + NT - 1) / NT; ++i) {
    const int idx = tid + i * NT;
    if (TOTAL % NT == 0 || idx < TOTAL) {
      const int r = idx / CH, c = idx % CH;
      const bool ok = r < valid_rows;
      const T* src = ok ? g + r * g_stride + c * 8 : fallback;
      cp_async16(s0 + (r * (D + 8) + c * 8) * 2, src, ok);
    }
  }
}

// The mask rule of @flashattn/core keyRange(): key j is visible from query row i iff it lies in the
// sliding window around the bottom-right aligned diagonal and inside the sequence.
__device__ __forceinline__ bool visible(int i, int j, const AttnShape& s) {
  const int d = j - i - (s.Nk - s.Nq);
  return j < s.Nk && (s.window_left < 0 || d >= -s.window_left) && (s.window_right < 0 || d <= s.window_right);
}
// First visible key of row i (unclamped above) and one past the last, as in keyRange().
__device__ __forceinline__ int key_lo(int i, const AttnShape& s) {
  return s.window_left < 0 ? 0 : max(0, i + s.Nk - s.Nq - s.window_left);
}
__device__ __forceinline__ int key_hi(int i, const AttnShape& s) {
  return s.window_right < 0 ? s.Nk : min(s.Nk, i + s.Nk - s.Nq + s.window_right + 1);
}

// A Q block whose rows see no key at all (windows, Nk = 0 ranges): out = 0, lse = -inf for its rows_q rows.
template <int D, int NT, typename T>
__device__ __forceinline__ void write_fully_masked_rows(T* gO, int64_t o_rs, float* gLse, int rows_q, int tid) {
  for (int idx = tid; idx < rows_q * (D / 8); idx += NT) {
    const int r = idx / (D / 8), c = idx % (D / 8);
    *reinterpret_cast<uint4*>(gO + r * o_rs + c * 8) = make_uint4(0, 0, 0, 0);
  }
  for (int r = tid; r < rows_q; r += NT) gLse[r] = -INFINITY;
}

}  // namespace flash

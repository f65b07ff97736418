// Algorithm 2, line 4 (FlashAttention-2 form): D_i = rowsum(dO_i o O_i).
// Vector form: 16-byte loads, a group of G lanes per row (G = D / 8 rounded up to a power of two), 32 / G rows per
// warp; O and dO are strided views (flash_params.h). H100, D = 64, N = 4096, bf16 (ncu, clocks locked): the scalar form (one warp per row, 2-byte loads) took
// 159 us at 0.87 TB/s, 1.8% of the backward; README.md, tuning log. The scalar form stays for unaligned views.
#include <cstdint>
#include <cstring>

#include "../include/flash_common.cuh"
#include "../include/launchers.h"

namespace flash {

// Two packed 16-bit values (low half first) as floats.
template <typename T>
__device__ __forceinline__ float2 unpack2(uint32_t w) {
  T v[2];
  memcpy(v, &w, sizeof(w));
  return make_float2(MmaType<T>::to_float(v[0]), MmaType<T>::to_float(v[1]));
}

// Row `row` in (B, Nq, Hq) order: its (b, i, h), the element offsets of its O and dO rows (strided views), and
// its D_i slot in the contiguous (B, Hq, Nq) d_rowsum.
struct PreprocessRow {
  int64_t o, dout, di;
  __device__ __forceinline__ PreprocessRow(const BwdParams& p, int64_t row) {
    const AttnShape& s = p.s;
    const int64_t h = row % s.Hq, i = (row / s.Hq) % s.Nq, b = row / ((int64_t)s.Hq * s.Nq);
    o = b * p.o_batch_stride + i * p.o_row_stride + h * p.o_head_stride;
    dout = b * p.do_batch_stride + i * p.do_row_stride + h * p.do_head_stride;
    di = (b * s.Hq + h) * s.Nq + i;
  }
};

template <typename T>
__global__ void flash_bwd_preprocess_kernel(const BwdParams p) {
  const AttnShape& s = p.s;
  const int64_t rows = (int64_t)s.B * s.Nq * s.Hq;  // rows in (B, Nq, Hq) order
  const int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const PreprocessRow r(p, row);
  const T* o = reinterpret_cast<const T*>(p.o) + r.o;        // (D,)
  const T* dO = reinterpret_cast<const T*>(p.dout) + r.dout;  // (D,)
  float acc = 0.f;
  for (int d = lane; d < s.D; d += 32) acc += MmaType<T>::to_float(o[d]) * MmaType<T>::to_float(dO[d]);
#pragma unroll
  for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffff, acc, off);
  if (lane == 0) p.d_rowsum[r.di] = acc;
}

// G lanes per row, each lane 8 elements (one uint4) per step; needs D % 8 == 0 and 16-byte aligned O, dO.
template <typename T, int G>
__global__ void flash_bwd_preprocess_vec_kernel(const BwdParams p) {
  const AttnShape& s = p.s;
  const int64_t rows = (int64_t)s.B * s.Nq * s.Hq;
  const int lane = threadIdx.x % 32, sub = lane % G;
  const int64_t row = ((int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32) * (32 / G) + lane / G;
  float acc = 0.f;
  const PreprocessRow r(p, row < rows ? row : 0);
  if (row < rows) {
    const uint4* o = reinterpret_cast<const uint4*>(reinterpret_cast<const T*>(p.o) + r.o);        // (D/8,)
    const uint4* dO = reinterpret_cast<const uint4*>(reinterpret_cast<const T*>(p.dout) + r.dout);  // (D/8,)
    for (int c = sub; c < s.D / 8; c += G) {
      const uint4 a = __ldg(o + c), b = __ldg(dO + c);
      const uint32_t aw[4] = {a.x, a.y, a.z, a.w}, bw[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        const float2 fa = unpack2<T>(aw[w]), fb = unpack2<T>(bw[w]);
        acc = fmaf(fa.x, fb.x, acc);
        acc = fmaf(fa.y, fb.y, acc);
      }
    }
  }
#pragma unroll
  for (int off = G / 2; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffff, acc, off);
  if (row < rows && sub == 0) p.d_rowsum[r.di] = acc;
}

template <typename T>
static cudaError_t launch_preprocess(const BwdParams& p, cudaStream_t stream) {
  const int64_t rows = (int64_t)p.s.B * p.s.Nq * p.s.Hq;
  const int D = p.s.D;
  const bool vec = D % 8 == 0 && D <= 256 && reinterpret_cast<uintptr_t>(p.o) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(p.dout) % 16 == 0 && p.o_batch_stride % 8 == 0 &&
                   p.o_row_stride % 8 == 0 && p.o_head_stride % 8 == 0 && p.do_batch_stride % 8 == 0 &&
                   p.do_row_stride % 8 == 0 && p.do_head_stride % 8 == 0;
  if (!vec) {
    flash_bwd_preprocess_kernel<T><<<(unsigned)((rows + 7) / 8), 256, 0, stream>>>(p);
    return cudaGetLastError();
  }
  const int g = D / 8 <= 4 ? 4 : D / 8 <= 8 ? 8 : D / 8 <= 16 ? 16 : 32;  // lanes per row
  const int64_t rows_per_block = 8 * (32 / g);                            // 8 warps
  const unsigned blocks = (unsigned)((rows + rows_per_block - 1) / rows_per_block);
  switch (g) {
    case 4: flash_bwd_preprocess_vec_kernel<T, 4><<<blocks, 256, 0, stream>>>(p); break;
    case 8: flash_bwd_preprocess_vec_kernel<T, 8><<<blocks, 256, 0, stream>>>(p); break;
    case 16: flash_bwd_preprocess_vec_kernel<T, 16><<<blocks, 256, 0, stream>>>(p); break;
    default: flash_bwd_preprocess_vec_kernel<T, 32><<<blocks, 256, 0, stream>>>(p); break;
  }
  return cudaGetLastError();
}

cudaError_t launch_bwd_preprocess(int dtype, const BwdParams& p, cudaStream_t stream) {
  return dtype == kFloat16 ? launch_preprocess<__half>(p, stream) : launch_preprocess<__nv_bfloat16>(p, stream);
}

}  // namespace flash

// Storage conversion on the device: (rows, src_cols) of one dtype -> (rows, dst_cols) of another, zero
// padding or truncating columns. Used to turn float32 inputs into the 16-bit compute dtype, to pad a head dim
// up to a kernel's (32, 64, 96, 128, 256), and back.
#include "../include/flash_common.cuh"
#include "../include/launchers.h"

namespace flash {

template <typename S>
__device__ __forceinline__ float load_as_float(const S* p, int64_t i);
template <>
__device__ __forceinline__ float load_as_float<float>(const float* p, int64_t i) { return p[i]; }
template <>
__device__ __forceinline__ float load_as_float<__half>(const __half* p, int64_t i) { return __half2float(p[i]); }
template <>
__device__ __forceinline__ float load_as_float<__nv_bfloat16>(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ void store_float(float* p, int64_t i, float x) { p[i] = x; }
__device__ __forceinline__ void store_float(__half* p, int64_t i, float x) { p[i] = __float2half_rn(x); }
__device__ __forceinline__ void store_float(__nv_bfloat16* p, int64_t i, float x) { p[i] = __float2bfloat16_rn(x); }

template <typename S, typename Dt>
__global__ void convert_pad_kernel(const S* __restrict__ src, Dt* __restrict__ dst, int64_t rows, int src_cols,
                                   int dst_cols) {
  const int64_t n = rows * dst_cols;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int c = (int)(i % dst_cols);
    const int64_t r = i / dst_cols;
    store_float(dst, i, c < src_cols ? load_as_float(src, r * src_cols + c) : 0.f);
  }
}

template <typename S>
static cudaError_t launch_to(int dst_dtype, const void* src, void* dst, int64_t rows, int sc, int dc, cudaStream_t st) {
  const int64_t n = rows * dc;
  const unsigned blocks = (unsigned)std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, 65535));
  const S* s = reinterpret_cast<const S*>(src);
  if (dst_dtype == kFloat32) convert_pad_kernel<<<blocks, 256, 0, st>>>(s, reinterpret_cast<float*>(dst), rows, sc, dc);
  else if (dst_dtype == kFloat16)
    convert_pad_kernel<<<blocks, 256, 0, st>>>(s, reinterpret_cast<__half*>(dst), rows, sc, dc);
  else convert_pad_kernel<<<blocks, 256, 0, st>>>(s, reinterpret_cast<__nv_bfloat16*>(dst), rows, sc, dc);
  return cudaGetLastError();
}

cudaError_t launch_convert_pad(int src_dtype, int dst_dtype, const void* src, void* dst, int64_t rows, int src_cols,
                               int dst_cols, cudaStream_t stream) {
  if (rows * dst_cols == 0) return cudaSuccess;
  if (src_dtype == kFloat32) return launch_to<float>(dst_dtype, src, dst, rows, src_cols, dst_cols, stream);
  if (src_dtype == kFloat16) return launch_to<__half>(dst_dtype, src, dst, rows, src_cols, dst_cols, stream);
  return launch_to<__nv_bfloat16>(dst_dtype, src, dst, rows, src_cols, dst_cols, stream);
}

}  // namespace flash

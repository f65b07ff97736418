// dst = src between two strided (B, N, H, cols) views, casting between float32, float16 and bfloat16, and
// zero-padding (dst_cols > src_cols) or truncating columns. Stages inputs the attention kernels cannot read in
// place (float32 storage, a head dim without a kernel, unaligned views) into contiguous compute buffers and
// writes results back; with B = H = 1 it is a plain (rows, cols) cast (DeviceMemory.copy, upload, download).
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
__global__ void strided_convert_kernel(const StridedConvert a) {
  const S* src = reinterpret_cast<const S*>(a.src);
  Dt* dst = reinterpret_cast<Dt*>(a.dst);
  const int64_t n = a.B * a.N * a.H * a.dst_cols;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int c = (int)(i % a.dst_cols);
    const int64_t r = i / a.dst_cols;  // (b, n, h) in row-major order
    const int64_t h = r % a.H, nn = (r / a.H) % a.N, b = r / (a.H * a.N);
    const float x = c < a.src_cols ? load_as_float(src, b * a.src_strides[0] + nn * a.src_strides[1] +
                                                           h * a.src_strides[2] + c)
                                   : 0.f;
    store_float(dst, b * a.dst_strides[0] + nn * a.dst_strides[1] + h * a.dst_strides[2] + c, x);
  }
}

template <typename S>
static cudaError_t launch_to(const StridedConvert& a, cudaStream_t st) {
  const int64_t n = a.B * a.N * a.H * a.dst_cols;
  const unsigned blocks = (unsigned)std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, 65535));
  if (a.dst_dtype == kFloat32) strided_convert_kernel<S, float><<<blocks, 256, 0, st>>>(a);
  else if (a.dst_dtype == kFloat16) strided_convert_kernel<S, __half><<<blocks, 256, 0, st>>>(a);
  else strided_convert_kernel<S, __nv_bfloat16><<<blocks, 256, 0, st>>>(a);
  return cudaGetLastError();
}

cudaError_t launch_strided_convert(const StridedConvert& a, cudaStream_t stream) {
  if (a.B * a.N * a.H * a.dst_cols == 0) return cudaSuccess;
  if (a.src_dtype == kFloat32) return launch_to<float>(a, stream);
  if (a.src_dtype == kFloat16) return launch_to<__half>(a, stream);
  return launch_to<__nv_bfloat16>(a, stream);
}

}  // namespace flash

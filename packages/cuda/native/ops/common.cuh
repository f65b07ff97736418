// Device helpers shared by the training ops (one kernel per .cu file in this folder): loads and stores that
// convert between a buffer's dtype and float32 (every op computes and accumulates in float32; the 16-bit dtypes
// are storage), warp and block reductions, and the dtype dispatch of the launchers.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ops {

template <typename T>
__device__ __forceinline__ float load(const T* p) { return static_cast<float>(*p); }
template <>
__device__ __forceinline__ float load<__half>(const __half* p) { return __half2float(*p); }
template <>
__device__ __forceinline__ float load<__nv_bfloat16>(const __nv_bfloat16* p) { return __bfloat162float(*p); }

// Round to nearest even, as core's roundToDType does.
template <typename T>
__device__ __forceinline__ void store(T* p, float x) { *p = static_cast<T>(x); }
template <>
__device__ __forceinline__ void store<__half>(__half* p, float x) { *p = __float2half_rn(x); }
template <>
__device__ __forceinline__ void store<__nv_bfloat16>(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }

__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ double warp_sum(double x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. Fixed order, so
// deterministic. `shared` holds 32 values; the call ends with a barrier so it can be reused.
template <typename F>
__device__ __forceinline__ F block_sum(F x, F* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  x = warp_sum(x);
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  F total = lane < warps ? shared[lane] : F(0);
  total = warp_sum(total);
  __syncthreads();
  return total;
}

// 16-byte vectors (the widest single load/store): kVec<T> elements of T in one int4 (8 x float16/bfloat16, 4 x
// float32). The vectorised kernels need 16-byte aligned pointers and a row length that is a multiple of kVec<T>
// (is_vec_aligned); every launcher keeps its scalar kernel for other shapes and alignments.
template <typename T>
constexpr int kVec = 16 / (int)sizeof(T);

inline bool is_vec_aligned(const void* p) { return ((uintptr_t)p & 15u) == 0; }

template <typename T>
__device__ __forceinline__ void unpack(const int4& v, float (&f)[kVec<T>]) {
  const T* e = reinterpret_cast<const T*>(&v);
#pragma unroll
  for (int i = 0; i < kVec<T>; ++i) f[i] = load(e + i);
}
template <typename T>
__device__ __forceinline__ int4 pack(const float (&f)[kVec<T>]) {
  int4 v;
  T* e = reinterpret_cast<T*>(&v);
#pragma unroll
  for (int i = 0; i < kVec<T>; ++i) store(e + i, f[i]);
  return v;
}
// The i-th 16-byte vector of p (p 16-byte aligned).
template <typename T>
__device__ __forceinline__ int4 load_vec(const T* p, int64_t i) { return reinterpret_cast<const int4*>(p)[i]; }
template <typename T>
__device__ __forceinline__ void store_vec(T* p, int64_t i, int4 v) { reinterpret_cast<int4*>(p)[i] = v; }

inline unsigned grid_for(int64_t n, int block, int64_t cap = 65535LL * 8) {
  int64_t g = (n + block - 1) / block;
  if (g < 1) g = 1;
  return (unsigned)(g < cap ? g : cap);
}

}  // namespace ops

// Run `body` with T bound to the element type of float dtype id `id` (0 = float32, 1 = float16, 2 = bfloat16).
#define OPS_DISPATCH_FLOAT(id, T, ...)         \
  switch (id) {                                \
    case 0: {                                  \
      using T = float;                         \
      __VA_ARGS__;                             \
    } break;                                   \
    case 1: {                                  \
      using T = __half;                        \
      __VA_ARGS__;                             \
    } break;                                   \
    case 2: {                                  \
      using T = __nv_bfloat16;                 \
      __VA_ARGS__;                             \
    } break;                                   \
    default:                                   \
      return cudaErrorInvalidValue;            \
  }

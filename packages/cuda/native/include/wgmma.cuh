// Hopper warpgroup MMA (wgmma, sm_90a): shared-memory matrix descriptors for the no-swizzle ("interleave")
// canonical layout, the fence / commit / wait instructions, and a (dtype, N) front end over the generated
// asm wrappers in wgmma_ops.cuh. PTX ISA, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate".
//
// Shared-memory layout used with these descriptors ("core-matrix tiled"): a (R, C) tile of 16-bit values is
// stored as (R/8, C/8) core matrices of 8 rows x 8 columns (8 rows x 16 bytes = 128 contiguous bytes), core
// matrices row-major: element (r, c) sits at ((r/8) * (C/8) + c/8) * 64 + (r%8) * 8 + c%8. One such tile serves
// as a K-major operand (rows = M or N, columns = K) and as an MN-major one (rows = K, columns = M or N); only
// the descriptor's two strides differ:
//   LBO (leading byte offset)  = distance between core matrices adjacent in K,
//   SBO (stride byte offset)   = distance between core matrices adjacent in M / N.
#pragma once
#include <cstdint>

#include "flash_common.cuh"
#include "wgmma_ops.cuh"

namespace flash {
namespace wgmma {

// Byte offset of element (r, c) in a core-matrix tiled (R, C) tile.
template <int C>
__device__ __forceinline__ uint32_t cm_offset(int r, int c) {
  return (uint32_t)(((r / 8) * (C / 8) + c / 8) * 128 + (r % 8) * 16 + (c % 8) * 2);
}

// Descriptor bits: 0-13 start address >> 4, 16-29 LBO >> 4, 32-45 SBO >> 4, 49-51 base offset (0),
// 62-63 swizzle mode (0 = none).
__device__ __forceinline__ uint64_t desc(uint32_t smem_addr, uint32_t lbo, uint32_t sbo) {
  return (uint64_t)((smem_addr & 0x3FFFF) >> 4) | ((uint64_t)((lbo >> 4) & 0x3FFF) << 16) |
         ((uint64_t)((sbo >> 4) & 0x3FFF) << 32);
}
// K-major operand from a tile of C columns (= K) starting at the core matrix at smem_addr.
template <int C>
__device__ __forceinline__ uint64_t desc_k_major(uint32_t smem_addr) {
  return desc(smem_addr, 128, (C / 8) * 128);
}
// MN-major operand from a tile of C columns (= M or N) whose rows are K.
// Checked on the H100 (2026-11-21): with LBO and SBO exchanged, for K-major, MN-major or both operand kinds,
// every bf16 D = 128 conformance case of the backward fails; as written here, all pass.
template <int C>
__device__ __forceinline__ uint64_t desc_mn_major(uint32_t smem_addr) {
  return desc(smem_addr, (C / 8) * 128, 128);
}

// A descriptor split in its two 32-bit words, for one tile: at(off) is the descriptor of the core matrix at byte
// offset off (a compile-time constant at every call site) - one integer add per wgmma instead of rebuilding the
// whole descriptor (the start-address field cannot carry into LBO: shared memory is < 256 KB).
struct DescBase {
  uint32_t lo, hi;
  __device__ __forceinline__ uint64_t at(uint32_t off) const { return ((uint64_t)hi << 32) | (lo + (off >> 4)); }
};
template <int C>
__device__ __forceinline__ DescBase base_k_major(uint32_t smem_addr) {
  const uint64_t d = desc_k_major<C>(smem_addr);
  return {(uint32_t)d, (uint32_t)(d >> 32)};
}
template <int C>
__device__ __forceinline__ DescBase base_mn_major(uint32_t smem_addr) {
  const uint64_t d = desc_mn_major<C>(smem_addr);
  return {(uint32_t)d, (uint32_t)(d >> 32)};
}

// Orders register writes by ordinary instructions before the wgmma that read them (accumulators, A).
__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Makes this thread's generic-proxy shared-memory writes (st.shared, cp.async) visible to wgmma.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// Keeps the accumulators in registers across an asynchronous wgmma (the compiler must not move reads or
// writes of them over the wait).
template <int R>
__device__ __forceinline__ void pin(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// Copy rows [0, valid_rows) of a (ROWS, D) tile (global row stride g_stride) into the core-matrix tiled layout
// at s_addr; rows >= valid_rows are zero-filled. Eight consecutive threads fill one 128-byte core matrix (one
// 16-byte chunk of eight rows), so the shared-memory writes are conflict-free.
template <int ROWS, int D, int NT, typename T>
__device__ __forceinline__ void load_tile_cm(uint32_t s_addr, const T* g, int64_t g_stride, int valid_rows,
                                             const T* fallback, int tid) {
  constexpr int CH = D / 8, TOTAL = ROWS * CH;
  static_assert(TOTAL % NT == 0 && ROWS % 8 == 0, "tile");
#pragma unroll
  for (int i = 0; i < TOTAL / NT; ++i) {
    const int idx = tid + i * NT;
    const int r = (idx / (8 * CH)) * 8 + idx % 8, c = (idx / 8) % CH;
    const bool ok = r < valid_rows;
    cp_async16(s_addr + ((r / 8) * CH + c) * 128 + (r % 8) * 16, ok ? g + r * g_stride + c * 8 : fallback, ok);
  }
}

template <typename T, int N>
struct Mma;

#define FLASH_WGMMA_MMA(T, TY, N)                                                                         \
  template <>                                                                                             \
  struct Mma<T, N> {                                                                                      \
    template <int TA, int TB>                                                                             \
    static __device__ __forceinline__ void ss(float (&d)[N / 2], uint64_t da, uint64_t db, int scale_d) { \
      ss_##TY##_n##N<TA, TB>(d, da, db, scale_d);                                                         \
    }                                                                                                     \
    template <int TA, int TB>                                                                             \
    static __device__ __forceinline__ void ss0(float (&d)[N / 2], uint64_t da, uint64_t db) {              \
      ss0_##TY##_n##N<TA, TB>(d, da, db);                                                                 \
    }                                                                                                     \
    template <int TB>                                                                                     \
    static __device__ __forceinline__ void rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t db,     \
                                              int scale_d) {                                              \
      rs_##TY##_n##N<TB>(d, a, db, scale_d);                                                              \
    }                                                                                                     \
  };
FLASH_WGMMA_MMA(__nv_bfloat16, bf16, 32)
FLASH_WGMMA_MMA(__nv_bfloat16, bf16, 64)
FLASH_WGMMA_MMA(__nv_bfloat16, bf16, 128)
FLASH_WGMMA_MMA(__half, f16, 32)
FLASH_WGMMA_MMA(__half, f16, 64)
FLASH_WGMMA_MMA(__half, f16, 128)
#undef FLASH_WGMMA_MMA

}  // namespace wgmma
}  // namespace flash

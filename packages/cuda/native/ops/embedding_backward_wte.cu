// Embedding backward into the token table: dwte (V, C) += sum over positions bt with tokens[bt] == v of dout[bt].
//
// Deterministic without sorting on the host (llm.c sorts the tokens on the CPU; here they live on the device):
// one block per vocabulary row v scans the (B*T) tokens in order, compacts the matching positions into shared
// memory (a warp ballot and an in-order prefix), and adds their dout rows into a float32 row accumulator in
// position order; a row with no match is not touched, one with matches is rounded once. Cost: V * B*T token
// compares (GPT-2 124M, B*T = 16384: 8e8 compares read from shared memory; memory traffic is the B*T*C dout reads
// once per matching row, like atomics, but with no float atomics and a fixed order).
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr int kBlock = 256;

// dynamic shared memory: acc[C] float32
template <typename T>
__global__ void embedding_backward_wte_kernel(T* dwte, const T* dout, const int32_t* tokens, int64_t BT, int64_t C,
                                              int64_t V) {
  extern __shared__ float acc[];  // (C)
  __shared__ int64_t hits[kBlock];
  __shared__ int warp_base[kBlock / 32 + 1];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t v = blockIdx.x; v < V; v += gridDim.x) {
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) acc[c] = 0.0f;
    bool any = false;
    for (int64_t start = 0; start < BT; start += blockDim.x) {
      const int64_t bt = start + threadIdx.x;
      const bool match = bt < BT && tokens[bt] == v;
      const unsigned ballot = __ballot_sync(0xffffffffu, match);
      if (lane == 0) warp_base[warp + 1] = __popc(ballot);
      __syncthreads();
      if (threadIdx.x == 0) {
        warp_base[0] = 0;
        for (int w = 1; w <= kBlock / 32; ++w) warp_base[w] += warp_base[w - 1];
      }
      __syncthreads();
      const int count = warp_base[kBlock / 32];
      if (match) hits[warp_base[warp] + __popc(ballot & ((1u << lane) - 1u))] = bt;
      __syncthreads();
      if (count > 0) {
        any = true;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
          float a = acc[c];
          for (int j = 0; j < count; ++j) a += load(dout + hits[j] * C + c);
          acc[c] = a;
        }
      }
      __syncthreads();
    }
    if (any)
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x) store(dwte + v * C + c, load(dwte + v * C + c) + acc[c]);
    __syncthreads();
  }
}

}  // namespace

cudaError_t embedding_backward_wte(int dtype, void* dwte, const void* dout, const int32_t* tokens, int64_t BT,
                                   int64_t C, int64_t V, cudaStream_t s) {
  if (BT == 0 || C == 0 || V == 0) return cudaSuccess;
  const size_t smem = (size_t)C * sizeof(float);
  if (smem > 48 * 1024) return cudaErrorInvalidValue;  // C > 12288: checked on the TypeScript side first
  const unsigned grid = (unsigned)(V < 65535LL * 16 ? V : 65535LL * 16);
  OPS_DISPATCH_FLOAT(dtype, E, embedding_backward_wte_kernel<E><<<grid, kBlock, smem, s>>>(
      static_cast<E*>(dwte), static_cast<const E*>(dout), tokens, BT, C, V));
  return cudaGetLastError();
}

}  // namespace ops

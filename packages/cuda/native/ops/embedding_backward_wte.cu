// Embedding backward into the token table: dwte (V, C) += sum over positions bt with tokens[bt] == v of dout[bt].
//
// Deterministic, no float atomics: the positions are put in token order by a stable counting sort on the device
// (llm.c sorts the tokens on the CPU; here they live on the device), then each token's rows are added in position
// order into a float32 accumulator and dwte's row is rounded once. The same additions in the same order as the
// scan it replaces (one block per vocabulary row reading all B*T tokens: V * B*T compares, 2.2 ms of a 124M step on
// the H200, 2026-12-07 18:23 UTC), so the results are bit-identical; the work is now O(B*T*C + V * chunks).
//
// Passes (S = kChunk positions per chunk, NC = ceil(BT / S) chunks):
//   A  per chunk:      rank[bt] = #earlier positions of the chunk with tokens[bt]; the first of them writes the
//                      chunk's count of that token into table[chunk][v]                        (table: (NC, V) int32)
//   B  per token v:    table[c][v] = sum of table[c'][v] for c' < c (exclusive, in place); count[v] = the total
//   C  one block:      base[v] = sum of count[v'] for v' < v                                       (exclusive scan)
//   D  per position:   sorted[base[v] + table[chunk][v] + rank[bt]] = bt   (stable: chunk order, then rank)
//   E  per token v:    dwte[v] += sum over sorted[base[v] .. base[v] + count[v]) of dout rows, in that order
#include "common.cuh"
#include "launchers.h"

namespace ops {
namespace {

constexpr int kChunk = 256;   // positions per chunk (pass A's block; its compares are kChunk^2 in shared memory)
constexpr int kScan = 1024;   // pass C's block

__global__ void wte_rank_kernel(int32_t* table, int32_t* rank, const int32_t* tokens, int64_t BT, int64_t V) {
  __shared__ int32_t tok[kChunk];
  const int64_t chunk = blockIdx.x;
  const int64_t bt = chunk * kChunk + threadIdx.x;
  const int n = (int)min((int64_t)kChunk, BT - chunk * kChunk);
  tok[threadIdx.x] = threadIdx.x < n ? tokens[bt] : -1;
  __syncthreads();
  if ((int)threadIdx.x >= n) return;
  const int32_t v = tok[threadIdx.x];
  int before = 0, total = 0;
  for (int j = 0; j < n; ++j) {
    const bool same = tok[j] == v;
    total += same;
    before += same && j < (int)threadIdx.x;
  }
  rank[bt] = before;
  if (before == 0 && v >= 0 && v < V) table[chunk * V + v] = total;
}

__global__ void wte_chunk_offsets_kernel(int32_t* table, int32_t* count, int64_t NC, int64_t V) {
  for (int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; v < V; v += (int64_t)gridDim.x * blockDim.x) {
    int32_t running = 0;
    for (int64_t c = 0; c < NC; ++c) {
      const int32_t t = table[c * V + v];
      table[c * V + v] = running;
      running += t;
    }
    count[v] = running;
  }
}

// base = exclusive prefix sum of count (V elements), one block: each thread sums a contiguous slice, the slices'
// totals are scanned in shared memory, then each thread writes its slice's prefixes.
__global__ void wte_base_kernel(int32_t* base, const int32_t* count, int64_t V) {
  __shared__ int32_t part[kScan];
  const int64_t per = (V + kScan - 1) / kScan;
  const int64_t lo = threadIdx.x * per, hi = min(V, lo + per);
  int32_t s = 0;
  for (int64_t v = lo; v < hi; ++v) s += count[v];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int off = 1; off < kScan; off *= 2) {  // Hillis-Steele inclusive scan of the slice totals
    const int32_t add = threadIdx.x >= (unsigned)off ? part[threadIdx.x - off] : 0;
    __syncthreads();
    part[threadIdx.x] += add;
    __syncthreads();
  }
  int32_t running = threadIdx.x > 0 ? part[threadIdx.x - 1] : 0;
  for (int64_t v = lo; v < hi; ++v) {
    base[v] = running;
    running += count[v];
  }
}

__global__ void wte_scatter_kernel(int32_t* sorted, const int32_t* table, const int32_t* base, const int32_t* rank,
                                   const int32_t* tokens, int64_t BT, int64_t V) {
  for (int64_t bt = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; bt < BT; bt += (int64_t)gridDim.x * blockDim.x) {
    const int32_t v = tokens[bt];
    if (v < 0 || v >= V) continue;  // out-of-range tokens are the caller's error (checked on the host): skipped
    sorted[base[v] + table[(bt / kChunk) * V + v] + rank[bt]] = (int32_t)bt;
  }
}

template <typename T>
__global__ void wte_rows_kernel(T* dwte, const T* dout, const int32_t* sorted, const int32_t* base,
                                const int32_t* count, int64_t C, int64_t V) {
  for (int64_t v = blockIdx.x; v < V; v += gridDim.x) {
    const int32_t n = count[v];
    if (n == 0) continue;
    const int32_t* rows = sorted + base[v];
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      float acc = 0.0f;
      for (int32_t j = 0; j < n; ++j) acc += load(dout + (int64_t)rows[j] * C + c);
      store(dwte + v * C + c, load(dwte + v * C + c) + acc);
    }
  }
}

int64_t chunks_of(int64_t BT) { return (BT + kChunk - 1) / kChunk; }

}  // namespace

size_t embedding_backward_wte_workspace(int64_t BT, int64_t V) {
  // table (NC, V), count (V), base (V), rank (BT), sorted (BT): int32
  return (size_t)(chunks_of(BT) * V + 2 * V + 2 * BT) * sizeof(int32_t);
}

cudaError_t embedding_backward_wte(int dtype, void* dwte, const void* dout, const int32_t* tokens, int64_t BT,
                                   int64_t C, int64_t V, void* workspace, cudaStream_t s) {
  if (BT == 0 || C == 0 || V == 0) return cudaSuccess;
  const int64_t NC = chunks_of(BT);
  int32_t* table = static_cast<int32_t*>(workspace);
  int32_t* count = table + NC * V;
  int32_t* base = count + V;
  int32_t* rank = base + V;
  int32_t* sorted = rank + BT;
  if (cudaError_t e = cudaMemsetAsync(table, 0, (size_t)NC * V * sizeof(int32_t), s); e != cudaSuccess) return e;
  wte_rank_kernel<<<(unsigned)NC, kChunk, 0, s>>>(table, rank, tokens, BT, V);
  wte_chunk_offsets_kernel<<<grid_for(V, 256), 256, 0, s>>>(table, count, NC, V);
  wte_base_kernel<<<1, kScan, 0, s>>>(base, count, V);
  wte_scatter_kernel<<<grid_for(BT, 256), 256, 0, s>>>(sorted, table, base, rank, tokens, BT, V);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  const unsigned grid = (unsigned)(V < 65535LL * 16 ? V : 65535LL * 16);
  OPS_DISPATCH_FLOAT(dtype, E, wte_rows_kernel<E><<<grid, 256, 0, s>>>(
      static_cast<E*>(dwte), static_cast<const E*>(dout), sorted, base, count, C, V));
  return cudaGetLastError();
}

}  // namespace ops

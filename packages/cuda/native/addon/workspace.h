// One call's scratch memory from the device's stream-ordered pool (the attention backward's D_i / dQ_accum /
// expanded dK dV, the KV-cache call's metadata and split partials): taken before the kernels, returned right
// after them on the same stream, each part 256-byte aligned.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <string>

namespace addon {

inline size_t align256(size_t x) { return (x + 255) / 256 * 256; }

// *ws = `bytes` from the pool, ordered on `stream`. On failure the error is cleared (the stream stays usable) and
// *where names the `what` workspace and its size.
inline cudaError_t workspace_alloc(size_t bytes, cudaStream_t stream, char** ws, const char* what,
                                   std::string* where) {
  const cudaError_t err = cudaMallocAsync(reinterpret_cast<void**>(ws), bytes, stream);
  if (err != cudaSuccess) {
    cudaGetLastError();
    *ws = nullptr;
    *where = std::string("cudaMallocAsync(") + what + ", " + std::to_string(bytes) + " bytes)";
  }
  return err;
}

// Return ws to the pool after the work enqueued on `stream`; `err` is that work's status. The first failure
// wins: err if set, else the free's (with *where naming the `what` workspace).
inline cudaError_t workspace_free(char* ws, cudaStream_t stream, cudaError_t err, const char* what,
                                  std::string* where) {
  const cudaError_t ferr = cudaFreeAsync(ws, stream);
  if (err == cudaSuccess && ferr != cudaSuccess) {
    *where = std::string("cudaFreeAsync(") + what + ")";
    return ferr;
  }
  return err;
}

}  // namespace addon

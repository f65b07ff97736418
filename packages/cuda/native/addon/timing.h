// CUDA-event timing of the addon's benchmarks (attention.cpp's benchmark, inference.cpp's kvCacheBenchmark and
// copyBenchmark): milliseconds per call, each call bracketed by events on the stream, after untimed warm-ups.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "errors.h"

namespace addon {

// Per-iteration milliseconds of `once` (which enqueues one call on `stream` and returns its launch error) into
// *times, after `warmup` untimed runs. A failure stops the loop: {err, "benchmark warmup" or "benchmark"}.
template <typename F>
CudaFailure time_loop(cudaStream_t stream, int64_t warmup, int64_t iters, F once, std::vector<double>* times) {
  cudaError_t err = cudaSuccess;
  for (int64_t i = 0; i < warmup; ++i)
    if ((err = once()) != cudaSuccess) return {err, "benchmark warmup"};
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  for (int64_t i = 0; i < iters && err == cudaSuccess; ++i) {
    cudaEventRecord(e0, stream);
    err = once();
    cudaEventRecord(e1, stream);
    if (err == cudaSuccess) err = cudaEventSynchronize(e1);
    float ms = 0;
    if (err == cudaSuccess) cudaEventElapsedTime(&ms, e0, e1);
    times->push_back(ms);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  if (err != cudaSuccess) return {err, "benchmark"};
  return {cudaSuccess, ""};
}

}  // namespace addon

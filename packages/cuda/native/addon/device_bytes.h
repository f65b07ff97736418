// Device bytes the addon holds outside the stream-ordered pool. Every buffer, op scratch and attention workspace
// comes from cudaMallocAsync, whose pool counts its own use (cudaMemPoolAttrUsedMemCurrent / UsedMemHigh, read by
// memoryStats in memory.cpp); the few plain cudaMalloc allocations (the cuBLASLt workspace, the decode kernel's
// split counters) go through counted_malloc / counted_free, which keep their live bytes and peak per device, so
// memoryStats can report everything the addon holds on a device.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace addon {

// cudaMalloc on the current device, counted when it succeeds.
cudaError_t counted_malloc(void** ptr, size_t bytes);

// cudaFree of a pointer from counted_malloc, uncounted (nullptr: nothing to do).
cudaError_t counted_free(void* ptr);

struct OutsidePoolBytes {
  uint64_t live;  // bytes allocated by counted_malloc and not yet freed
  uint64_t peak;  // the largest `live` since the process started or the last reset
};

// Device dev's counts; reset_peak restarts the peak from the live bytes (after reading it).
OutsidePoolBytes outside_pool_bytes(int dev, bool reset_peak);

}  // namespace addon

// counted_malloc / counted_free: see device_bytes.h.
#include "device_bytes.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

namespace addon {
namespace {

std::mutex g_mu;
std::map<void*, std::pair<int, size_t>> g_sizes;  // pointer -> (device, bytes)
std::map<int, OutsidePoolBytes> g_bytes;          // device -> counts

}  // namespace

cudaError_t counted_malloc(void** ptr, size_t bytes) {
  int dev = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err == cudaSuccess) err = cudaMalloc(ptr, bytes);
  if (err != cudaSuccess) return err;
  std::lock_guard<std::mutex> lock(g_mu);
  g_sizes[*ptr] = {dev, bytes};
  OutsidePoolBytes& c = g_bytes[dev];
  c.live += bytes;
  c.peak = std::max(c.peak, c.live);
  return cudaSuccess;
}

cudaError_t counted_free(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_sizes.find(ptr);
    if (it != g_sizes.end()) {
      g_bytes[it->second.first].live -= it->second.second;
      g_sizes.erase(it);
    }
  }
  return cudaFree(ptr);
}

OutsidePoolBytes outside_pool_bytes(int dev, bool reset_peak) {
  std::lock_guard<std::mutex> lock(g_mu);
  OutsidePoolBytes& c = g_bytes[dev];
  const OutsidePoolBytes out = c;
  if (reset_peak) c.peak = c.live;
  return out;
}

}  // namespace addon

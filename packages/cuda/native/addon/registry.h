// Each entry-point file adds its functions to the module's exports table (addon.cpp calls every add_*), so a new
// group of entry points (the model's ops) is a new file, not a longer addon.cpp.
#pragma once
#include <node_api.h>

#include <vector>

namespace addon {

using Exports = std::vector<napi_property_descriptor>;

inline void add_function(Exports& e, const char* name, napi_callback fn) {
  e.push_back({name, nullptr, fn, nullptr, nullptr, nullptr, napi_enumerable, nullptr});
}

void add_memory_functions(Exports& e);     // memory.cpp: devices, buffers, copies, casts, the memory pool
void add_attention_functions(Exports& e);  // attention.cpp: forward, backward, benchmark
void add_ops_functions(Exports& e);        // ops.cpp: the training ops (cuBLASLt matmul, native/ops kernels)
void add_nccl_functions(Exports& e);       // nccl.cpp: NCCL collectives (libnccl loaded at run time)
void add_inference_functions(Exports& e);  // inference.cpp: KV-cache attention, combine, their benchmarks
void add_graph_functions(Exports& e);      // graphs.cpp: CUDA graphs of the device's stream (capture, launch)

}  // namespace addon

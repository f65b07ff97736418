// Node-API face of the CUDA kernels. Work is enqueued on one non-blocking stream per device (errors.cpp,
// device_stream); calls that wait for the device (copies to and from pageable host memory, synchronize,
// benchmark) run on libuv's thread pool and return Promises (jobs.cpp), so the event loop never blocks on the GPU.
// The TypeScript side serialises calls per device, which keeps stream order. Entry points by job: memory.cpp
// (devices, buffers, copies), attention.cpp (forward, backward, benchmark), ops.cpp (the
// training ops: cuBLASLt loaded at run time, cublaslt.cpp, and the kernels of native/ops).
#include <node_api.h>

#include "registry.h"

namespace {

napi_value Init(napi_env env, napi_value exports) {
  addon::Exports props;
  addon::add_memory_functions(props);
  addon::add_attention_functions(props);
  addon::add_ops_functions(props);
  addon::add_nccl_functions(props);
  addon::add_inference_functions(props);
  addon::add_graph_functions(props);
  napi_define_properties(env, exports, props.size(), props.data());
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)

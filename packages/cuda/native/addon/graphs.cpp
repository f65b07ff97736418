// CUDA graphs of the device's one stream (core's OpsGraphs, src/ops.ts): graphBegin starts capturing the stream, the
// ops called until graphEnd are recorded instead of run (kernels, cuBLASLt calls, the stream-ordered scratch
// allocations as graph memory nodes), graphEnd instantiates the recording and returns its id, graphLaunch enqueues
// the whole recording as one launch. A training step of GPT-2 124M is ~1,100 kernel launches from ~420 Node-API
// calls; replayed as a graph the host does one launch per micro-step (BENCHMARKS.md, issue #10).
//
// Capture mode relaxed: only this stream is recorded; the TypeScript side refuses every call that would wait for
// the device or allocate (download, upload, sum, alloc, free) while a capture is open, so nothing here has to.
#include <cuda_runtime.h>
#include <node_api.h>

#include <map>
#include <string>

#include "errors.h"
#include "registry.h"

namespace addon {
namespace {

struct Recorded {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  int dev = 0;
  int64_t id = 0;
};
std::map<int64_t, Recorded> g_graphs;
int64_t g_next_id = 1;

napi_value throw_cuda(napi_env env, cudaError_t err, const std::string& where) {
  cudaGetLastError();
  napi_throw(env, make_error(env, err, where));
  return nullptr;
}

// The start of every entry point: n arguments, the first the device; selects it and gets its stream (a JS error
// thrown and false on failure).
bool device_args(napi_env env, napi_callback_info info, size_t n, napi_value* argv, int64_t* dev,
                 cudaStream_t* stream) {
  if (!get_args(env, info, n, argv) || !get_i64(env, argv[0], dev, "device")) return false;
  const cudaError_t err = device_stream((int)*dev, stream);
  if (err != cudaSuccess) throw_cuda(env, err, "cudaSetDevice");
  return err == cudaSuccess;
}

// graphBegin(dev): start recording the device's stream.
napi_value GraphBegin(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t dev;
  cudaStream_t stream;
  if (!device_args(env, info, 1, argv, &dev, &stream)) return nullptr;
  const cudaError_t err = cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed);
  if (err != cudaSuccess) return throw_cuda(env, err, "cudaStreamBeginCapture");
  return nullptr;
}

// graphEnd(dev) -> {id, nodes}: stop recording and instantiate. An error during the recording (a call that is not
// allowed while capturing) surfaces here as cudaErrorStreamCaptureInvalidated and the stream is usable again.
napi_value GraphEnd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t dev;
  cudaStream_t stream;
  if (!device_args(env, info, 1, argv, &dev, &stream)) return nullptr;
  cudaGraph_t graph = nullptr;
  cudaError_t err = cudaStreamEndCapture(stream, &graph);
  if (err != cudaSuccess) {
    if (graph) cudaGraphDestroy(graph);
    return throw_cuda(env, err, "cudaStreamEndCapture");
  }
  size_t nodes = 0;
  cudaGraphGetNodes(graph, nullptr, &nodes);
  cudaGraphExec_t exec = nullptr;
  err = cudaGraphInstantiate(&exec, graph, 0);
  if (err != cudaSuccess) {
    cudaGraphDestroy(graph);
    return throw_cuda(env, err, "cudaGraphInstantiate");
  }
  const int64_t id = g_next_id++;
  g_graphs[id] = {graph, exec, (int)dev, id};
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_int64(env, id, &v);
  napi_set_named_property(env, out, "id", v);
  napi_create_int64(env, (int64_t)nodes, &v);
  napi_set_named_property(env, out, "nodes", v);
  return out;
}

// graphAbort(dev): end a recording whose body failed and drop it (no-op when the stream is not capturing).
napi_value GraphAbort(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t dev;
  cudaStream_t stream;
  if (!device_args(env, info, 1, argv, &dev, &stream)) return nullptr;
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  cudaStreamIsCapturing(stream, &st);
  if (st != cudaStreamCaptureStatusNone) {
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(stream, &graph);
    if (graph) cudaGraphDestroy(graph);
  }
  cudaGetLastError();
  return nullptr;
}

Recorded* find(napi_env env, napi_value* argv, int64_t dev) {
  int64_t id;
  if (!get_i64(env, argv[1], &id, "graph")) return nullptr;
  auto it = g_graphs.find(id);
  if (it == g_graphs.end() || it->second.dev != dev) {
    throw_type(env, "graph " + std::to_string(id) + " is not a live graph of device " + std::to_string(dev));
    return nullptr;
  }
  return &it->second;
}

// graphLaunch(dev, id): enqueue the recording on the device's stream.
napi_value GraphLaunch(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev;
  cudaStream_t stream;
  if (!device_args(env, info, 2, argv, &dev, &stream)) return nullptr;
  Recorded* r = find(env, argv, dev);
  if (!r) return nullptr;
  const cudaError_t err = cudaGraphLaunch(r->exec, stream);
  if (err != cudaSuccess) return throw_cuda(env, err, "cudaGraphLaunch");
  return nullptr;
}

// graphFree(dev, id): destroy the recording (after the launches enqueued before it: cudaGraphExecDestroy waits for
// none, so the stream is synchronised first).
napi_value GraphFree(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev;
  cudaStream_t stream;
  if (!device_args(env, info, 2, argv, &dev, &stream)) return nullptr;
  Recorded* r = find(env, argv, dev);
  if (!r) return nullptr;
  cudaStreamSynchronize(stream);
  cudaGraphExecDestroy(r->exec);
  cudaGraphDestroy(r->graph);
  g_graphs.erase(r->id);
  cudaGetLastError();
  return nullptr;
}

}  // namespace

void add_graph_functions(Exports& e) {
  add_function(e, "graphBegin", GraphBegin);
  add_function(e, "graphEnd", GraphEnd);
  add_function(e, "graphAbort", GraphAbort);
  add_function(e, "graphLaunch", GraphLaunch);
  add_function(e, "graphFree", GraphFree);
}

}  // namespace addon

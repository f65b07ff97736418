// Async jobs: run a function on libuv's thread pool (off the JS thread) and resolve or reject a Promise with it,
// so the event loop never waits on the GPU.
#pragma once
#include <node_api.h>

#include <functional>
#include <vector>

#include "errors.h"

namespace addon {

struct Job {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::vector<napi_ref> keep;       // host buffers that must outlive the job
  std::function<CudaFailure()> fn;  // runs off the JS thread
  CudaFailure result{cudaSuccess, ""};
  std::vector<double> values;       // resolved as an array of numbers when non-empty
};

// Queue `job` (owned by the queue from here on) and return its Promise.
napi_value queue_job(napi_env env, Job* job, const char* name);

}  // namespace addon

// Errors and argument reading shared by the addon's entry points (plain C Node-API, no node-addon-api).
// Every CUDA failure becomes a JS Error carrying the CUDA error name and text (`cudaError`, `cudaErrorCode`,
// mapped to core's typed errors by src/errors.ts); bad arguments throw a TypeError naming the argument. Nothing
// aborts the process.
#pragma once
#include <cuda_runtime.h>
#include <node_api.h>

#include <cstdint>
#include <string>

namespace addon {

struct CudaFailure {
  cudaError_t err;
  std::string where;
};

// A JS Error for a CUDA error at `where`.
napi_value make_error(napi_env env, cudaError_t err, const std::string& where);
// Throw a TypeError; returns nullptr for `return throw_type(...)`.
napi_value throw_type(napi_env env, const std::string& msg);

#define CHECK_NAPI(call)                                                                                  \
  do {                                                                                                    \
    if ((call) != napi_ok) {                                                                              \
      const napi_extended_error_info* info = nullptr;                                                     \
      napi_get_last_error_info(env, &info);                                                               \
      bool pending = false;                                                                               \
      napi_is_exception_pending(env, &pending);                                                           \
      if (!pending)                                                                                       \
        napi_throw_error(env, nullptr, info && info->error_message ? info->error_message : "napi call failed"); \
      return nullptr;                                                                                     \
    }                                                                                                     \
  } while (0)

// Each reader throws a TypeError naming the argument and returns false when it cannot read it.
bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv);
bool get_i64(napi_env env, napi_value v, int64_t* out, const char* name);
bool get_ptr(napi_env env, napi_value v, void** out, const char* name);
bool has_prop(napi_env env, napi_value obj, const char* key);
bool prop(napi_env env, napi_value obj, const char* key, napi_value* out);
bool prop_i64(napi_env env, napi_value obj, const char* key, int64_t* out);
bool prop_f64(napi_env env, napi_value obj, const char* key, double* out);
bool prop_bool(napi_env env, napi_value obj, const char* key, bool* out);
// A bigint device pointer; null / undefined read as nullptr.
bool prop_ptr(napi_env env, napi_value obj, const char* key, void** out);
// An array of n integers.
bool prop_i64s(napi_env env, napi_value obj, const char* key, int64_t* out, uint32_t n);

// Select the device and get its non-blocking stream (created on first use; see device_stream in jobs.cpp).
cudaError_t device_stream(int dev, cudaStream_t* out);

}  // namespace addon

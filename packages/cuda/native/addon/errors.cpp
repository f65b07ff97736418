#include "errors.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace addon {

static std::string cuda_message(cudaError_t err, const std::string& where) {
  return std::string("CUDA error ") + cudaGetErrorName(err) + " (" + std::to_string((int)err) + ") in " + where +
         ": " + cudaGetErrorString(err);
}

napi_value make_error(napi_env env, cudaError_t err, const std::string& where) {
  napi_value msg, error, code, num;
  const std::string text = cuda_message(err, where);
  napi_create_string_utf8(env, text.c_str(), text.size(), &msg);
  napi_create_error(env, nullptr, msg, &error);
  napi_create_string_utf8(env, cudaGetErrorName(err), NAPI_AUTO_LENGTH, &code);
  napi_set_named_property(env, error, "cudaError", code);
  napi_create_int32(env, (int)err, &num);
  napi_set_named_property(env, error, "cudaErrorCode", num);
  return error;
}

napi_value throw_type(napi_env env, const std::string& msg) {
  napi_throw_type_error(env, nullptr, msg.c_str());
  return nullptr;
}

bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < want) {
    napi_throw_type_error(env, nullptr, ("expected " + std::to_string(want) + " arguments").c_str());
    return false;
  }
  return true;
}

bool get_i64(napi_env env, napi_value v, int64_t* out, const char* name) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !std::isfinite(d) || d != std::floor(d)) {
    napi_throw_type_error(env, nullptr, (std::string(name) + " must be an integer").c_str());
    return false;
  }
  *out = (int64_t)d;
  return true;
}

bool get_ptr(napi_env env, napi_value v, void** out, const char* name) {
  uint64_t x;
  bool lossless;
  if (napi_get_value_bigint_uint64(env, v, &x, &lossless) != napi_ok) {
    napi_throw_type_error(env, nullptr, (std::string(name) + " must be a bigint device pointer").c_str());
    return false;
  }
  *out = reinterpret_cast<void*>(x);
  return true;
}

bool has_prop(napi_env env, napi_value obj, const char* key) {
  bool has = false;
  napi_has_named_property(env, obj, key, &has);
  if (!has) return false;
  napi_value v;
  napi_valuetype type;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_typeof(env, v, &type) != napi_ok) return false;
  return type != napi_undefined;
}

bool prop(napi_env env, napi_value obj, const char* key, napi_value* out) {
  bool has = false;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) {
    napi_throw_type_error(env, nullptr, (std::string("missing property ") + key).c_str());
    return false;
  }
  return napi_get_named_property(env, obj, key, out) == napi_ok;
}
bool prop_i64(napi_env env, napi_value obj, const char* key, int64_t* out) {
  napi_value v;
  return prop(env, obj, key, &v) && get_i64(env, v, out, key);
}
bool prop_f64(napi_env env, napi_value obj, const char* key, double* out) {
  napi_value v;
  if (!prop(env, obj, key, &v)) return false;
  if (napi_get_value_double(env, v, out) != napi_ok) {
    napi_throw_type_error(env, nullptr, (std::string(key) + " must be a number").c_str());
    return false;
  }
  return true;
}
bool prop_bool(napi_env env, napi_value obj, const char* key, bool* out) {
  napi_value v;
  if (!prop(env, obj, key, &v)) return false;
  if (napi_get_value_bool(env, v, out) != napi_ok) {
    napi_throw_type_error(env, nullptr, (std::string(key) + " must be a boolean").c_str());
    return false;
  }
  return true;
}
bool prop_ptr(napi_env env, napi_value obj, const char* key, void** out) {
  napi_value v;
  napi_valuetype type;
  if (!prop(env, obj, key, &v)) return false;
  napi_typeof(env, v, &type);
  if (type == napi_null || type == napi_undefined) {
    *out = nullptr;
    return true;
  }
  return get_ptr(env, v, out, key);
}
bool prop_i64s(napi_env env, napi_value obj, const char* key, int64_t* out, uint32_t n) {
  napi_value arr;
  bool is_array = false;
  uint32_t len = 0;
  if (!prop(env, obj, key, &arr)) return false;
  if (napi_is_array(env, arr, &is_array) != napi_ok || !is_array || napi_get_array_length(env, arr, &len) != napi_ok ||
      len != n) {
    napi_throw_type_error(env, nullptr, (std::string(key) + " must be an array of " + std::to_string(n) + " integers").c_str());
    return false;
  }
  for (uint32_t i = 0; i < n; ++i) {
    napi_value x;
    if (napi_get_element(env, arr, i, &x) != napi_ok || !get_i64(env, x, out + i, key)) return false;
  }
  return true;
}

static std::mutex g_mutex;
static std::map<int, cudaStream_t> g_streams;

cudaError_t device_stream(int dev, cudaStream_t* out) {
  cudaError_t err = cudaSetDevice(dev);
  if (err != cudaSuccess) return err;
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_streams.find(dev);
  if (it != g_streams.end()) {
    *out = it->second;
    return cudaSuccess;
  }
  // The default pool's release threshold is 0: every synchronize hands its free memory back, so the next
  // cudaMallocAsync of a backward workspace (fp32 dQ_accum, 4*B*Nq*Hq*D bytes) maps fresh pages while the
  // stream waits. Keep freed memory in the pool (as PyTorch's caching allocator does); used memory is
  // unchanged. FLASHATTN_CUDA_POOL_RELEASE=1 restores the driver default. H100 figures in README.md.
  const char* rel = std::getenv("FLASHATTN_CUDA_POOL_RELEASE");
  if (!(rel && std::strcmp(rel, "1") == 0)) {
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess) {
      uint64_t keep = UINT64_MAX;
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    }
    cudaGetLastError();
  }
  cudaStream_t s;
  err = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  if (err != cudaSuccess) return err;
  g_streams[dev] = s;
  *out = s;
  return cudaSuccess;
}

}  // namespace addon

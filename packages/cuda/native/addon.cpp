// Node-API face of the CUDA kernels. Plain C Node-API (no node-addon-api dependency).
// Every CUDA failure becomes a JS Error carrying the CUDA error name and text; nothing aborts the process.
// Work is enqueued on one non-blocking stream per device; calls that wait for the device (copies to and from
// pageable host memory, synchronize, benchmark) run on libuv's thread pool and return Promises, so the event
// loop never blocks on the GPU. The TypeScript side serialises calls per device, which keeps stream order.
#include <cuda_runtime.h>
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "include/launchers.h"

namespace {

struct CudaFailure {
  cudaError_t err;
  std::string where;
};

std::string cuda_message(cudaError_t err, const std::string& where) {
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

// Throw a plain JS error (argument problems found here; the TS side validates first).
napi_value throw_type(napi_env env, const std::string& msg) {
  napi_throw_type_error(env, nullptr, msg.c_str());
  return nullptr;
}

#define CHECK_NAPI(call)                                   \
  do {                                                     \
    if ((call) != napi_ok) {                               \
      const napi_extended_error_info* info = nullptr;      \
      napi_get_last_error_info(env, &info);                \
      bool pending = false;                                \
      napi_is_exception_pending(env, &pending);            \
      if (!pending)                                        \
        napi_throw_error(env, nullptr, info && info->error_message ? info->error_message : "napi call failed"); \
      return nullptr;                                      \
    }                                                      \
  } while (0)

std::mutex g_mutex;
std::map<int, cudaStream_t> g_streams;

// Select the device and get its stream (created on first use).
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

// ---- argument helpers -----------------------------------------------------------------------------------

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

// ---- async jobs: run `fn` on the thread pool, resolve or reject a promise ------------------------------

struct Job {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::vector<napi_ref> keep;          // host buffers that must outlive the job
  std::function<CudaFailure()> fn;     // runs off the JS thread
  CudaFailure result{cudaSuccess, ""};
  std::vector<double> values;          // resolved as an array of numbers when non-empty
};

void job_execute(napi_env, void* data) {
  Job* job = static_cast<Job*>(data);
  job->result = job->fn();
}

void job_complete(napi_env env, napi_status, void* data) {
  Job* job = static_cast<Job*>(data);
  if (job->result.err != cudaSuccess) {
    napi_reject_deferred(env, job->deferred, make_error(env, job->result.err, job->result.where));
  } else {
    napi_value value;
    if (job->values.empty()) {
      napi_get_undefined(env, &value);
    } else {
      napi_create_array_with_length(env, job->values.size(), &value);
      for (size_t i = 0; i < job->values.size(); ++i) {
        napi_value x;
        napi_create_double(env, job->values[i], &x);
        napi_set_element(env, value, (uint32_t)i, x);
      }
    }
    napi_resolve_deferred(env, job->deferred, value);
  }
  for (napi_ref r : job->keep) napi_delete_reference(env, r);
  napi_delete_async_work(env, job->work);
  delete job;
}

napi_value queue_job(napi_env env, Job* job, const char* name) {
  napi_value promise, resource_name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  napi_create_async_work(env, nullptr, resource_name, job_execute, job_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

// ---- exported functions -----------------------------------------------------------------------------------

napi_value DeviceCount(napi_env env, napi_callback_info) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    napi_throw(env, make_error(env, err, "cudaGetDeviceCount"));
    return nullptr;
  }
  napi_value out;
  napi_create_int32(env, n, &out);
  return out;
}

napi_value DeviceInfo(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t dev;
  if (!get_args(env, info, 1, argv) || !get_i64(env, argv[0], &dev, "device")) return nullptr;
  cudaDeviceProp prop;
  cudaError_t err = cudaGetDeviceProperties(&prop, (int)dev);
  if (err != cudaSuccess) {
    napi_throw(env, make_error(env, err, "cudaGetDeviceProperties"));
    return nullptr;
  }
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_string_utf8(env, prop.name, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, out, "name", v);
  napi_create_int32(env, prop.major, &v);
  napi_set_named_property(env, out, "major", v);
  napi_create_int32(env, prop.minor, &v);
  napi_set_named_property(env, out, "minor", v);
  napi_create_int32(env, prop.multiProcessorCount, &v);
  napi_set_named_property(env, out, "multiProcessorCount", v);
  napi_create_double(env, (double)prop.totalGlobalMem, &v);
  napi_set_named_property(env, out, "totalGlobalMem", v);
  napi_create_int32(env, driver, &v);
  napi_set_named_property(env, out, "driverVersion", v);
  napi_create_int32(env, runtime, &v);
  napi_set_named_property(env, out, "runtimeVersion", v);
  return out;
}

napi_value Malloc(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev, bytes;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &dev, "device") ||
      !get_i64(env, argv[1], &bytes, "bytes"))
    return nullptr;
  if (bytes < 0) return throw_type(env, "bytes must be >= 0");
  cudaStream_t stream;
  cudaError_t err = device_stream((int)dev, &stream);
  void* ptr = nullptr;
  if (err == cudaSuccess) err = cudaMallocAsync(&ptr, std::max<int64_t>(bytes, 256), stream);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the (non-sticky) error so later calls work
    napi_throw(env, make_error(env, err, "cudaMalloc(" + std::to_string(bytes) + " bytes)"));
    return nullptr;
  }
  napi_value out;
  napi_create_bigint_uint64(env, reinterpret_cast<uint64_t>(ptr), &out);
  return out;
}

napi_value Free(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev;
  void* ptr;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &dev, "device") || !get_ptr(env, argv[1], &ptr, "ptr"))
    return nullptr;
  cudaError_t err = cudaSetDevice((int)dev);
  cudaStream_t stream;
  if (err == cudaSuccess) err = device_stream((int)dev, &stream);
  if (err == cudaSuccess) err = cudaFreeAsync(ptr, stream);  // stream-ordered: pending work on it finishes first
  if (err != cudaSuccess) {
    napi_throw(env, make_error(env, err, "cudaFree"));
    return nullptr;
  }
  return nullptr;
}

// memcpy(dev, ptr, typedArray, toDevice: boolean) -> Promise<void>
napi_value Memcpy(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int64_t dev;
  void* ptr;
  if (!get_args(env, info, 4, argv) || !get_i64(env, argv[0], &dev, "device") || !get_ptr(env, argv[1], &ptr, "ptr"))
    return nullptr;
  bool is_ta = false;
  napi_is_typedarray(env, argv[2], &is_ta);
  if (!is_ta) return throw_type(env, "host must be a TypedArray");
  napi_typedarray_type type;
  size_t length, offset;
  void* data;
  napi_value ab;
  CHECK_NAPI(napi_get_typedarray_info(env, argv[2], &type, &length, &data, &ab, &offset));
  size_t elem = 1;
  switch (type) {
    case napi_uint16_array: case napi_int16_array: elem = 2; break;
    case napi_float32_array: case napi_uint32_array: case napi_int32_array: elem = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
    default: elem = 1;
  }
  bool to_device;
  CHECK_NAPI(napi_get_value_bool(env, argv[3], &to_device));
  const size_t bytes = length * elem;
  Job* job = new Job();
  napi_ref ref;
  napi_create_reference(env, argv[2], 1, &ref);
  job->keep.push_back(ref);
  const int d = (int)dev;
  job->fn = [d, ptr, data, bytes, to_device]() -> CudaFailure {
    cudaStream_t stream;
    cudaError_t err = device_stream(d, &stream);
    if (err != cudaSuccess) return {err, "cudaSetDevice"};
    if (bytes == 0) return {cudaSuccess, ""};
    err = to_device ? cudaMemcpyAsync(ptr, data, bytes, cudaMemcpyHostToDevice, stream)
                    : cudaMemcpyAsync(data, ptr, bytes, cudaMemcpyDeviceToHost, stream);
    if (err != cudaSuccess) return {err, to_device ? "cudaMemcpyAsync(host to device)" : "cudaMemcpyAsync(device to host)"};
    err = cudaStreamSynchronize(stream);
    if (err != cudaSuccess) return {err, "cudaStreamSynchronize after copy"};
    return {cudaSuccess, ""};
  };
  return queue_job(env, job, "flashattn.memcpy");
}

napi_value Synchronize(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t dev;
  if (!get_args(env, info, 1, argv) || !get_i64(env, argv[0], &dev, "device")) return nullptr;
  Job* job = new Job();
  const int d = (int)dev;
  job->fn = [d]() -> CudaFailure {
    cudaStream_t stream;
    cudaError_t err = device_stream(d, &stream);
    if (err != cudaSuccess) return {err, "cudaSetDevice"};
    err = cudaStreamSynchronize(stream);
    if (err != cudaSuccess) return {err, "kernel execution (cudaStreamSynchronize)"};
    return {cudaSuccess, ""};
  };
  return queue_job(env, job, "flashattn.synchronize");
}

// convert(dev, {src, srcDtype, dst, dstDtype, rows, srcCols, dstCols}) -> void (enqueued)
napi_value Convert(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev, sd, dd, rows, sc, dc;
  void *src, *dst;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &dev, "device") ||
      !prop_ptr(env, argv[1], "src", &src) || !prop_ptr(env, argv[1], "dst", &dst) ||
      !prop_i64(env, argv[1], "srcDtype", &sd) || !prop_i64(env, argv[1], "dstDtype", &dd) ||
      !prop_i64(env, argv[1], "rows", &rows) || !prop_i64(env, argv[1], "srcCols", &sc) ||
      !prop_i64(env, argv[1], "dstCols", &dc))
    return nullptr;
  cudaStream_t stream;
  cudaError_t err = device_stream((int)dev, &stream);
  if (err == cudaSuccess) err = flash::launch_convert_pad((int)sd, (int)dd, src, dst, rows, (int)sc, (int)dc, stream);
  if (err != cudaSuccess) napi_throw(env, make_error(env, err, "convert kernel launch"));
  return nullptr;
}

bool read_shape(napi_env env, napi_value o, flash::AttnShape* s, int64_t* dtype) {
  int64_t B, Hq, Hk, Nq, Nk, D, wl, wr;
  double scale;
  if (!prop_i64(env, o, "dtype", dtype) || !prop_i64(env, o, "batch", &B) || !prop_i64(env, o, "nheadsQ", &Hq) ||
      !prop_i64(env, o, "nheadsK", &Hk) || !prop_i64(env, o, "seqlenQ", &Nq) || !prop_i64(env, o, "seqlenK", &Nk) ||
      !prop_i64(env, o, "headDim", &D) || !prop_f64(env, o, "softmaxScale", &scale) ||
      !prop_i64(env, o, "windowLeft", &wl) || !prop_i64(env, o, "windowRight", &wr))
    return false;
  if (*dtype != flash::kFloat16 && *dtype != flash::kBFloat16) {
    throw_type(env, "dtype must be float16 (1) or bfloat16 (2)");
    return false;
  }
  if (B < 1 || Hq < 1 || Hk < 1 || Nq < 1 || Nk < 1 || Hq % Hk != 0 || B > 65535 || Hq > 65535) {
    throw_type(env, "bad attention shape");
    return false;
  }
  if (D != 32 && D != 64 && D != 96 && D != 128 && D != 256) {
    throw_type(env, "headDim must be 32, 64, 96, 128 or 256 (the TS layer pads others)");
    return false;
  }
  *s = flash::AttnShape{(int)B, (int)Hq, (int)Hk, (int)Nq, (int)Nk, (int)D, (float)scale,
                        (float)(scale * 1.4426950408889634), (int)wl, (int)wr};
  return true;
}

bool read_fwd(napi_env env, napi_value o, flash::FwdParams* p, int64_t* dtype) {
  void *q, *k, *v, *out, *lse;
  if (!read_shape(env, o, &p->s, dtype) || !prop_ptr(env, o, "q", &q) || !prop_ptr(env, o, "k", &k) ||
      !prop_ptr(env, o, "v", &v) || !prop_ptr(env, o, "out", &out) || !prop_ptr(env, o, "lse", &lse))
    return false;
  p->q = q; p->k = k; p->v = v; p->o = out; p->lse = static_cast<float*>(lse);
  return true;
}

struct BwdArgs {
  flash::BwdParams p;
  int64_t dtype;
  bool deterministic;
};

bool read_bwd(napi_env env, napi_value o, BwdArgs* a) {
  void *q, *k, *v, *out, *dout, *lse, *dq, *dk, *dv;
  napi_value det;
  if (!read_shape(env, o, &a->p.s, &a->dtype) || !prop_ptr(env, o, "q", &q) || !prop_ptr(env, o, "k", &k) ||
      !prop_ptr(env, o, "v", &v) || !prop_ptr(env, o, "out", &out) || !prop_ptr(env, o, "dout", &dout) ||
      !prop_ptr(env, o, "lse", &lse) || !prop_ptr(env, o, "dq", &dq) || !prop_ptr(env, o, "dk", &dk) ||
      !prop_ptr(env, o, "dv", &dv) || !prop(env, o, "deterministic", &det))
    return false;
  if (napi_get_value_bool(env, det, &a->deterministic) != napi_ok) {
    throw_type(env, "deterministic must be a boolean");
    return false;
  }
  flash::BwdParams& p = a->p;
  p.q = q; p.k = k; p.v = v; p.o = out; p.dout = dout; p.lse = static_cast<const float*>(lse);
  p.dq = dq; p.dk = dk; p.dv = dv;
  return true;
}

// Backward with its workspace taken from the stream-ordered pool and returned right after.
cudaError_t run_backward(BwdArgs a, cudaStream_t stream, std::string* where) {
  flash::BwdParams& p = a.p;
  const flash::AttnShape& s = p.s;
  const size_t rowsum = sizeof(float) * (size_t)s.B * s.Hq * s.Nq;
  const size_t dqacc = sizeof(float) * (size_t)s.B * s.Nq * s.Hq * s.D;
  const size_t expanded = s.Hq != s.Hk ? sizeof(float) * (size_t)s.B * s.Nk * s.Hq * s.D : 0;
  const int br = flash::bwd_block_q(s.D);
  const size_t sem = a.deterministic ? sizeof(int) * (size_t)s.B * s.Hq * ((s.Nq + br - 1) / br) : 0;
  auto align = [](size_t x) { return (x + 255) / 256 * 256; };
  const size_t total = align(rowsum) + align(dqacc) + 2 * align(expanded) + align(sem);
  char* ws = nullptr;
  cudaError_t err = cudaMallocAsync(reinterpret_cast<void**>(&ws), total, stream);
  if (err != cudaSuccess) {
    cudaGetLastError();
    *where = "cudaMallocAsync(backward workspace, " + std::to_string(total) + " bytes)";
    return err;
  }
  char* cur = ws;
  p.d_rowsum = reinterpret_cast<float*>(cur); cur += align(rowsum);
  p.dq_accum = reinterpret_cast<float*>(cur); cur += align(dqacc);
  p.dk_expanded = expanded ? reinterpret_cast<float*>(cur) : nullptr; cur += align(expanded);
  p.dv_expanded = expanded ? reinterpret_cast<float*>(cur) : nullptr; cur += align(expanded);
  p.dq_semaphore = sem ? reinterpret_cast<int*>(cur) : nullptr;
  err = flash::run_flash_bwd((int)a.dtype, p, stream);
  if (err != cudaSuccess) *where = "backward kernel launch";
  const cudaError_t ferr = cudaFreeAsync(ws, stream);
  if (err == cudaSuccess && ferr != cudaSuccess) {
    *where = "cudaFreeAsync(backward workspace)";
    err = ferr;
  }
  return err;
}

napi_value Forward(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev, dtype;
  flash::FwdParams p;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &dev, "device") || !read_fwd(env, argv[1], &p, &dtype))
    return nullptr;
  cudaStream_t stream;
  cudaError_t err = device_stream((int)dev, &stream);
  if (err == cudaSuccess) err = flash::run_flash_fwd((int)dtype, p, stream);
  if (err != cudaSuccess) napi_throw(env, make_error(env, err, "forward kernel launch"));
  return nullptr;
}

napi_value Backward(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev;
  BwdArgs a;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &dev, "device") || !read_bwd(env, argv[1], &a))
    return nullptr;
  cudaStream_t stream;
  std::string where = "cudaSetDevice";
  cudaError_t err = device_stream((int)dev, &stream);
  if (err == cudaSuccess) err = run_backward(a, stream, &where);
  if (err != cudaSuccess) napi_throw(env, make_error(env, err, where));
  return nullptr;
}

// benchmark(dev, fwdParams | null, bwdParams | null, warmup, iters) -> Promise<number[]> (ms per iteration of
// forward then backward, both when both are given), timed with CUDA events on the stream.
napi_value Benchmark(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int64_t dev, warmup, iters, dtype;
  if (!get_args(env, info, 5, argv) || !get_i64(env, argv[0], &dev, "device") ||
      !get_i64(env, argv[3], &warmup, "warmup") || !get_i64(env, argv[4], &iters, "iters"))
    return nullptr;
  napi_valuetype t1, t2;
  napi_typeof(env, argv[1], &t1);
  napi_typeof(env, argv[2], &t2);
  flash::FwdParams fp{};
  BwdArgs ba{};
  const bool has_f = t1 == napi_object, has_b = t2 == napi_object;
  if (has_f && !read_fwd(env, argv[1], &fp, &dtype)) return nullptr;
  if (has_b && !read_bwd(env, argv[2], &ba)) return nullptr;
  Job* job = new Job();
  const int d = (int)dev;
  const int64_t fdtype = has_f ? dtype : 0;
  Job* jp = job;
  job->fn = [=]() -> CudaFailure {
    cudaStream_t stream;
    cudaError_t err = device_stream(d, &stream);
    if (err != cudaSuccess) return {err, "cudaSetDevice"};
    std::string where;
    auto once = [&]() -> cudaError_t {
      cudaError_t e = cudaSuccess;
      if (has_f) {
        e = flash::run_flash_fwd((int)fdtype, fp, stream);
        if (e != cudaSuccess) { where = "forward launch"; return e; }
      }
      if (has_b) e = run_backward(ba, stream, &where);
      return e;
    };
    for (int64_t i = 0; i < warmup; ++i)
      if ((err = once()) != cudaSuccess) return {err, where};
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    std::vector<double> times;
    for (int64_t i = 0; i < iters && err == cudaSuccess; ++i) {
      cudaEventRecord(e0, stream);
      err = once();
      cudaEventRecord(e1, stream);
      if (err == cudaSuccess) err = cudaEventSynchronize(e1);
      float ms = 0;
      if (err == cudaSuccess) cudaEventElapsedTime(&ms, e0, e1);
      times.push_back(ms);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (err != cudaSuccess) return {err, where.empty() ? "benchmark" : where};
    jp->values = times;
    return {cudaSuccess, ""};
  };
  return queue_job(env, job, "flashattn.benchmark");
}

// memPoolUsage(dev, resetHigh: boolean) -> [current, high, reserved]: bytes of the stream-ordered pool in use
// now, its high watermark since the last reset, and the bytes it holds from the driver (in use or cached for
// reuse; every device buffer of this package comes from that pool).
napi_value MemPoolUsage(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev;
  bool reset;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &dev, "device")) return nullptr;
  CHECK_NAPI(napi_get_value_bool(env, argv[1], &reset));
  cudaMemPool_t pool;
  cudaError_t err = cudaDeviceGetDefaultMemPool(&pool, (int)dev);
  uint64_t current = 0, high = 0, reserved = 0;
  if (err == cudaSuccess) err = cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &current);
  if (err == cudaSuccess) err = cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high);
  if (err == cudaSuccess) err = cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved);
  if (err == cudaSuccess && reset) {
    uint64_t zero = 0;  // resetting to zero restarts the watermark from the current use
    err = cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero);
  }
  if (err != cudaSuccess) {
    napi_throw(env, make_error(env, err, "cudaMemPool attribute"));
    return nullptr;
  }
  napi_value out, a, b, c;
  napi_create_array_with_length(env, 3, &out);
  napi_create_double(env, (double)current, &a);
  napi_create_double(env, (double)high, &b);
  napi_create_double(env, (double)reserved, &c);
  napi_set_element(env, out, 0, a);
  napi_set_element(env, out, 1, b);
  napi_set_element(env, out, 2, c);
  return out;
}

// trimMemPool(dev): hand the pool's cached free memory back to the driver (the pool keeps freed memory for
// reuse, see SetDevice's release threshold). Memory in use is not touched. Call after a synchronize.
napi_value TrimMemPool(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t dev;
  if (!get_args(env, info, 1, argv) || !get_i64(env, argv[0], &dev, "device")) return nullptr;
  cudaMemPool_t pool;
  cudaError_t err = cudaDeviceGetDefaultMemPool(&pool, (int)dev);
  if (err == cudaSuccess) err = cudaMemPoolTrimTo(pool, 0);
  if (err != cudaSuccess) napi_throw(env, make_error(env, err, "cudaMemPoolTrimTo"));
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"deviceCount", nullptr, DeviceCount, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"deviceInfo", nullptr, DeviceInfo, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"malloc", nullptr, Malloc, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"free", nullptr, Free, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"memcpy", nullptr, Memcpy, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"synchronize", nullptr, Synchronize, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"convert", nullptr, Convert, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"forward", nullptr, Forward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"backward", nullptr, Backward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"benchmark", nullptr, Benchmark, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"memPoolUsage", nullptr, MemPoolUsage, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"trimMemPool", nullptr, TrimMemPool, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)

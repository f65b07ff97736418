// Entry points for devices and device memory: deviceCount, deviceInfo, malloc, free (stream-ordered), memcpy
// (host <-> device, a Promise), copyDevice and memset (enqueued), synchronize, convert (strided cast), and the
// stream-ordered pool's usage / trim.
#include <cuda_runtime.h>
#include <node_api.h>

#include <algorithm>
#include <string>
#include <utility>

#include "../include/launchers.h"
#include "device_bytes.h"
#include "errors.h"
#include "jobs.h"
#include "registry.h"

namespace addon {
namespace {

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

// malloc(dev, bytes) -> bigint pointer (stream-ordered pool; at least 256 bytes, 256-byte aligned).
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

// free(dev, ptr): stream-ordered, pending work on the stream that reads ptr finishes first.
napi_value Free(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev;
  void* ptr;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &dev, "device") || !get_ptr(env, argv[1], &ptr, "ptr"))
    return nullptr;
  cudaStream_t stream;
  cudaError_t err = device_stream((int)dev, &stream);
  if (err == cudaSuccess) err = cudaFreeAsync(ptr, stream);
  if (err != cudaSuccess) napi_throw(env, make_error(env, err, "cudaFree"));
  return nullptr;
}

// memcpy(dev, ptr, bytes, host: TypedArray, toDevice) -> Promise<void>. `bytes` is the device range; the host
// array must be exactly that long (a mismatch is a TypeError, never a copy past either end). Any TypedArray
// works, including one on a SharedArrayBuffer (it is referenced until the copy is done).
napi_value Memcpy(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int64_t dev, bytes;
  void* ptr;
  if (!get_args(env, info, 5, argv) || !get_i64(env, argv[0], &dev, "device") || !get_ptr(env, argv[1], &ptr, "ptr") ||
      !get_i64(env, argv[2], &bytes, "bytes"))
    return nullptr;
  bool is_ta = false;
  napi_is_typedarray(env, argv[3], &is_ta);
  if (!is_ta) return throw_type(env, "host must be a TypedArray");
  napi_typedarray_type type;
  size_t length, offset;
  void* data;
  napi_value ab;
  CHECK_NAPI(napi_get_typedarray_info(env, argv[3], &type, &length, &data, &ab, &offset));
  size_t elem = 1;
  switch (type) {
    case napi_uint16_array: case napi_int16_array: elem = 2; break;
    case napi_float32_array: case napi_uint32_array: case napi_int32_array: elem = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
    default: elem = 1;
  }
  if (bytes < 0 || (size_t)bytes != length * elem)
    return throw_type(env, "host has " + std::to_string(length * elem) + " bytes, the device range " +
                               std::to_string(bytes));
  if (bytes > 0 && data == nullptr) return throw_type(env, "host has no backing store (detached?)");
  bool to_device;
  CHECK_NAPI(napi_get_value_bool(env, argv[4], &to_device));
  Job* job = new Job();
  napi_ref ref;
  napi_create_reference(env, argv[3], 1, &ref);
  job->keep.push_back(ref);
  const int d = (int)dev;
  const size_t n = (size_t)bytes;
  job->fn = [d, ptr, data, n, to_device]() -> CudaFailure {
    cudaStream_t stream;
    cudaError_t err = device_stream(d, &stream);
    if (err != cudaSuccess) return {err, "cudaSetDevice"};
    if (n == 0) return {cudaSuccess, ""};
    err = to_device ? cudaMemcpyAsync(ptr, data, n, cudaMemcpyHostToDevice, stream)
                    : cudaMemcpyAsync(data, ptr, n, cudaMemcpyDeviceToHost, stream);
    if (err != cudaSuccess) return {err, to_device ? "cudaMemcpyAsync(host to device)" : "cudaMemcpyAsync(device to host)"};
    err = cudaStreamSynchronize(stream);
    if (err != cudaSuccess) return {err, "cudaStreamSynchronize after copy"};
    return {cudaSuccess, ""};
  };
  return queue_job(env, job, "flashattn.memcpy");
}

// copyDevice(dev, dst, src, bytes): enqueued device-to-device copy.
napi_value CopyDevice(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int64_t dev, bytes;
  void *dst, *src;
  if (!get_args(env, info, 4, argv) || !get_i64(env, argv[0], &dev, "device") || !get_ptr(env, argv[1], &dst, "dst") ||
      !get_ptr(env, argv[2], &src, "src") || !get_i64(env, argv[3], &bytes, "bytes"))
    return nullptr;
  if (bytes < 0) return throw_type(env, "bytes must be >= 0");
  cudaStream_t stream;
  cudaError_t err = device_stream((int)dev, &stream);
  if (err == cudaSuccess && bytes > 0) err = cudaMemcpyAsync(dst, src, (size_t)bytes, cudaMemcpyDeviceToDevice, stream);
  if (err != cudaSuccess) napi_throw(env, make_error(env, err, "cudaMemcpyAsync(device to device)"));
  return nullptr;
}

// memset(dev, ptr, bytes): enqueued, bytes = 0.
napi_value Memset(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int64_t dev, bytes;
  void* ptr;
  if (!get_args(env, info, 3, argv) || !get_i64(env, argv[0], &dev, "device") || !get_ptr(env, argv[1], &ptr, "ptr") ||
      !get_i64(env, argv[2], &bytes, "bytes"))
    return nullptr;
  if (bytes < 0) return throw_type(env, "bytes must be >= 0");
  cudaStream_t stream;
  cudaError_t err = device_stream((int)dev, &stream);
  if (err == cudaSuccess && bytes > 0) err = cudaMemsetAsync(ptr, 0, (size_t)bytes, stream);
  if (err != cudaSuccess) napi_throw(env, make_error(env, err, "cudaMemsetAsync"));
  return nullptr;
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

// convert(dev, {src, srcDtype, srcStrides: [3], dst, dstDtype, dstStrides: [3], shape: [B, N, H], srcCols,
// dstCols}) -> void (enqueued): the strided cast of kernels/strided_convert.cu. Dtypes 0 = float32, 1 = float16,
// 2 = bfloat16.
napi_value Convert(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev, sd, dd, sc, dc, shape[3];
  flash::StridedConvert a{};
  void *src, *dst;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &dev, "device") ||
      !prop_ptr(env, argv[1], "src", &src) || !prop_ptr(env, argv[1], "dst", &dst) ||
      !prop_i64(env, argv[1], "srcDtype", &sd) || !prop_i64(env, argv[1], "dstDtype", &dd) ||
      !prop_i64s(env, argv[1], "srcStrides", a.src_strides, 3) ||
      !prop_i64s(env, argv[1], "dstStrides", a.dst_strides, 3) || !prop_i64s(env, argv[1], "shape", shape, 3) ||
      !prop_i64(env, argv[1], "srcCols", &sc) || !prop_i64(env, argv[1], "dstCols", &dc))
    return nullptr;
  if (sd < 0 || sd > 2 || dd < 0 || dd > 2) return throw_type(env, "srcDtype / dstDtype must be 0, 1 or 2");
  if (shape[0] < 0 || shape[1] < 0 || shape[2] < 0 || sc < 0 || dc < 0 || sc > INT32_MAX || dc > INT32_MAX)
    return throw_type(env, "shape and cols must be non-negative");
  for (int i = 0; i < 3; ++i)
    if (a.src_strides[i] < 0 || a.dst_strides[i] < 0) return throw_type(env, "strides must be non-negative");
  const int64_t n = shape[0] * shape[1] * shape[2] * dc;
  if (n > 0 && (!src || !dst)) return throw_type(env, "src and dst must be device pointers");
  a.src = src;
  a.dst = dst;
  a.src_dtype = (int)sd;
  a.dst_dtype = (int)dd;
  a.B = shape[0];
  a.N = shape[1];
  a.H = shape[2];
  a.src_cols = (int)sc;
  a.dst_cols = (int)dc;
  cudaStream_t stream;
  cudaError_t err = device_stream((int)dev, &stream);
  if (err == cudaSuccess) err = flash::launch_strided_convert(a, stream);
  if (err != cudaSuccess) napi_throw(env, make_error(env, err, "convert kernel launch"));
  return nullptr;
}

// The default stream-ordered pool of dev: bytes in use now, the high watermark since the last reset, the bytes held
// from the driver; reset restarts the watermark from the current use (after reading it).
cudaError_t read_pool(int dev, bool reset, uint64_t* current, uint64_t* high, uint64_t* reserved) {
  cudaMemPool_t pool;
  cudaError_t err = cudaDeviceGetDefaultMemPool(&pool, dev);
  if (err == cudaSuccess) err = cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, current);
  if (err == cudaSuccess) err = cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, high);
  if (err == cudaSuccess) err = cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, reserved);
  if (err == cudaSuccess && reset) {
    uint64_t zero = 0;  // resetting to zero restarts the watermark from the current use
    err = cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero);
  }
  return err;
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
  uint64_t current = 0, high = 0, reserved = 0;
  const cudaError_t err = read_pool((int)dev, reset, &current, &high, &reserved);
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

// memoryStats(dev, resetPeak) -> { allocatedBytes, peakBytes, poolBytes, poolPeakBytes, poolReservedBytes,
// outsidePoolBytes, outsidePoolPeakBytes, graphBytes, graphPeakBytes }: the device bytes this process's addon holds on dev now and at most since
// the last reset (torch.cuda.memory_allocated / max_memory_allocated's counterparts). The pool's counters see every
// cudaMallocAsync (buffers, op scratch, attention workspaces); device_bytes.h counts the plain cudaMalloc ones (the
// cuBLASLt workspace, the split counters). peakBytes = the pool's high watermark + the outside peak: exact when the
// outside allocations are held across the pool's peak (they are allocated once and kept), else an upper bound.
// resetPeak restarts both watermarks from the bytes in use (after reading them).
napi_value MemoryStats(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev;
  bool reset;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &dev, "device")) return nullptr;
  CHECK_NAPI(napi_get_value_bool(env, argv[1], &reset));
  uint64_t current = 0, high = 0, reserved = 0;
  const cudaError_t err = read_pool((int)dev, reset, &current, &high, &reserved);
  if (err != cudaSuccess) {
    napi_throw(env, make_error(env, err, "cudaMemPool attribute"));
    return nullptr;
  }
  const OutsidePoolBytes outside = outside_pool_bytes((int)dev, reset);
  // CUDA graphs' own allocations (the scratch a recorded op allocates: graphs.cpp) live in the device's graph memory,
  // not in the default pool: counted beside it, the peak by the same rule (a sum of watermarks: an upper bound).
  uint64_t graph = 0, graph_high = 0;
  if (cudaDeviceGetGraphMemAttribute((int)dev, cudaGraphMemAttrUsedMemCurrent, &graph) != cudaSuccess ||
      cudaDeviceGetGraphMemAttribute((int)dev, cudaGraphMemAttrUsedMemHigh, &graph_high) != cudaSuccess)
    graph = graph_high = 0;
  if (reset) {
    uint64_t zero = 0;
    cudaDeviceSetGraphMemAttribute((int)dev, cudaGraphMemAttrUsedMemHigh, &zero);
  }
  cudaGetLastError();
  napi_value out, v;
  napi_create_object(env, &out);
  const std::pair<const char*, uint64_t> fields[] = {
      {"allocatedBytes", current + outside.live + graph},
      {"peakBytes", high + outside.peak + graph_high},
      {"poolBytes", current},
      {"poolPeakBytes", high},
      {"poolReservedBytes", reserved},
      {"outsidePoolBytes", outside.live},
      {"outsidePoolPeakBytes", outside.peak},
      {"graphBytes", graph},
      {"graphPeakBytes", graph_high},
  };
  for (const auto& f : fields) {
    napi_create_double(env, (double)f.second, &v);
    napi_set_named_property(env, out, f.first, v);
  }
  return out;
}

// trimMemPool(dev): hand the pool's cached free memory back to the driver (the pool keeps freed memory for
// reuse, see device_stream's release threshold). Memory in use is not touched. Call after a synchronize.
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

}  // namespace

void add_memory_functions(Exports& e) {
  add_function(e, "deviceCount", DeviceCount);
  add_function(e, "deviceInfo", DeviceInfo);
  add_function(e, "malloc", Malloc);
  add_function(e, "free", Free);
  add_function(e, "memcpy", Memcpy);
  add_function(e, "copyDevice", CopyDevice);
  add_function(e, "memset", Memset);
  add_function(e, "synchronize", Synchronize);
  add_function(e, "convert", Convert);
  add_function(e, "memPoolUsage", MemPoolUsage);
  add_function(e, "memoryStats", MemoryStats);
  add_function(e, "trimMemPool", TrimMemPool);
}

}  // namespace addon

// Entry points of the training ops (core's Ops<Buf>, src/ops.ts): each takes (device, {named arguments}), enqueues
// its kernels (native/ops/*.cu) or cuBLASLt call on the device's one stream and returns; only opsReduceSum waits
// (a Promise, on libuv's pool). Pointers are bigints; dtype ids 0 = float32, 1 = float16, 2 = bfloat16. Sizes and
// buffers are checked in TypeScript before any call; here only what would make a launch unsafe is rejected
// (TypeError). CUDA errors become JS errors with `cudaError` (errors.cpp); cuBLASLt failures carry
// `cublasStatus`, and CUBLAS_STATUS_ALLOC_FAILED reads as cudaErrorMemoryAllocation (-> BackendOutOfMemoryError).
// Scratch for the two-pass reductions comes from the stream-ordered pool and is freed on the stream.
#include <cuda_runtime.h>
#include <node_api.h>

#include <string>
#include <vector>

#include "../ops/launchers.h"
#include "cublaslt.h"
#include "errors.h"
#include "jobs.h"
#include "registry.h"

namespace addon {
namespace {

const lt::Api* g_lt = nullptr;

const char* lt_status_name(int s) {
  switch (s) {
    case lt::STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case lt::STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case lt::STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case lt::STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case lt::STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case lt::STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case lt::STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case lt::STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case lt::STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

void throw_lt(napi_env env, int status, const std::string& where) {
  napi_value msg, error, name, num;
  const std::string text = std::string("cuBLASLt error ") + lt_status_name(status) + " (" + std::to_string(status) +
                           ") in " + where + (g_lt && g_lt->getStatusString ? std::string(": ") + g_lt->getStatusString(status) : "");
  napi_create_string_utf8(env, text.c_str(), text.size(), &msg);
  napi_create_error(env, nullptr, msg, &error);
  napi_create_string_utf8(env, lt_status_name(status), NAPI_AUTO_LENGTH, &name);
  napi_set_named_property(env, error, "cublasStatus", name);
  napi_create_string_utf8(env, status == lt::STATUS_ALLOC_FAILED ? "cudaErrorMemoryAllocation" : lt_status_name(status),
                          NAPI_AUTO_LENGTH, &name);
  napi_set_named_property(env, error, "cudaError", name);
  napi_create_int32(env, status, &num);
  napi_set_named_property(env, error, "cudaErrorCode", num);
  napi_throw(env, error);
}

// Device, its stream and the argument object: the start of every entry point.
struct Call {
  int dev = 0;
  cudaStream_t stream = nullptr;
  napi_value obj = nullptr;
};

bool begin(napi_env env, napi_callback_info info, Call* c) {
  napi_value argv[2];
  int64_t dev;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &dev, "device")) return false;
  c->dev = (int)dev;
  c->obj = argv[1];
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t != napi_object) {
    throw_type(env, "the arguments must be an object");
    return false;
  }
  return true;
}

// Select the device and get its stream: after the arguments are read, so bad arguments are TypeErrors even where
// no GPU is present (the CI tests reach them).
bool open_stream(napi_env env, Call* c) {
  cudaError_t err = device_stream(c->dev, &c->stream);
  if (err != cudaSuccess) {
    napi_throw(env, make_error(env, err, "cudaSetDevice"));
    return false;
  }
  return true;
}

bool dtype_arg(napi_env env, napi_value obj, const char* key, int* out) {
  int64_t d;
  if (!prop_i64(env, obj, key, &d)) return false;
  if (d < 0 || d > 2) {
    throw_type(env, std::string(key) + " must be 0, 1 or 2");
    return false;
  }
  *out = (int)d;
  return true;
}

bool sizes(napi_env env, napi_value obj, std::initializer_list<std::pair<const char*, int64_t*>> keys) {
  for (auto& [k, p] : keys) {
    if (!prop_i64(env, obj, k, p)) return false;
    if (*p < 0) {
      throw_type(env, std::string(k) + " must be >= 0");
      return false;
    }
  }
  return true;
}

bool ptrs(napi_env env, napi_value obj, std::initializer_list<std::pair<const char*, void**>> keys) {
  for (auto& [k, p] : keys)
    if (!prop_ptr(env, obj, k, p)) return false;
  return true;
}

napi_value finish(napi_env env, cudaError_t err, const char* where) {
  if (err != cudaSuccess) napi_throw(env, make_error(env, err, where));
  return nullptr;
}

// A float32 scratch buffer of n elements on the stream (stream-ordered pool).
cudaError_t scratch(size_t bytes, cudaStream_t s, void** out) {
  cudaError_t e = cudaMallocAsync(out, bytes < 256 ? 256 : bytes, s);
  if (e != cudaSuccess) cudaGetLastError();
  return e;
}

// opsCublasLtLoad(path: string) -> { loaded: true, path, version } | { loaded: false, tried: string[] }. dlopen only:
// needs no GPU.
napi_value CublasLtLoad(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return nullptr;
  size_t len = 0;
  std::string path;
  if (napi_get_value_string_utf8(env, argv[0], nullptr, 0, &len) == napi_ok) {
    path.resize(len + 1);
    napi_get_value_string_utf8(env, argv[0], path.data(), len + 1, &len);
    path.resize(len);
  }
  std::vector<std::string> tried;
  std::string from;
  const lt::Api* api = lt::load(path, &tried, &from);
  napi_value out, v;
  napi_create_object(env, &out);
  napi_get_boolean(env, api != nullptr, &v);
  napi_set_named_property(env, out, "loaded", v);
  if (api) {
    g_lt = api;
    napi_create_string_utf8(env, from.c_str(), from.size(), &v);
    napi_set_named_property(env, out, "path", v);
    napi_create_double(env, (double)api->getVersion(), &v);
    napi_set_named_property(env, out, "version", v);
  } else {
    napi_create_array_with_length(env, tried.size(), &v);
    for (size_t i = 0; i < tried.size(); ++i) {
      napi_value s;
      napi_create_string_utf8(env, tried[i].c_str(), tried[i].size(), &s);
      napi_set_element(env, v, (uint32_t)i, s);
    }
    napi_set_named_property(env, out, "tried", v);
  }
  return out;
}

// The operands both matmul entry points take, read into *m: a, b, out, bias (may be null), abDtype, outDtype, M, N,
// K, transA, transB; m->device from the call.
bool matmul_args(napi_env env, const Call& c, lt::Matmul* m) {
  void *a, *b, *out, *bias;
  if (!ptrs(env, c.obj, {{"a", &a}, {"b", &b}, {"out", &out}, {"bias", &bias}}) ||
      !dtype_arg(env, c.obj, "abDtype", &m->ab_dtype) || !dtype_arg(env, c.obj, "outDtype", &m->out_dtype) ||
      !sizes(env, c.obj, {{"M", &m->M}, {"N", &m->N}, {"K", &m->K}}) ||
      !prop_bool(env, c.obj, "transA", &m->trans_a) || !prop_bool(env, c.obj, "transB", &m->trans_b))
    return false;
  m->device = c.dev;
  m->a = a;
  m->b = b;
  m->out = out;
  m->bias = bias;
  return true;
}

// opsMatmul(dev, {out, a, b, bias?, abDtype, outDtype, M, N, K, transA, transB, accumulate}): row-major
// out (M, N) (+)= op(A) op(B) [+ bias (N)] through cuBLASLt (fp32 compute, no TF32). The bias goes through the BIAS
// epilogue when 16-byte aligned, else (and when the heuristic has no epilogue kernel) it is broadcast into out
// first and the product added with beta = 1 (the same single rounding of the fp32 result).
napi_value Matmul(napi_env env, napi_callback_info info) {
  Call c;
  if (!begin(env, info, &c)) return nullptr;
  lt::Matmul m{};
  if (!matmul_args(env, c, &m) || !prop_bool(env, c.obj, "accumulate", &m.accumulate)) return nullptr;
  const void *a = m.a, *b = m.b, *bias = m.bias;
  void* out = m.out;
  const int64_t M = m.M, N = m.N, K = m.K;
  if (!g_lt) return throw_type(env, "cuBLASLt is not loaded (call opsCublasLtLoad first)");
  if (bias && m.accumulate) return throw_type(env, "bias and accumulate cannot be combined");
  if (M == 0 || N == 0) return nullptr;
  if (!a || !b || !out) return throw_type(env, "a, b and out must be device pointers");
  if (!open_stream(env, &c)) return nullptr;
  if (K == 0) {  // op(A) op(B) = 0
    if (m.accumulate) return nullptr;
    if (bias) return finish(env, ops::bias_broadcast(m.out_dtype, out, bias, M, N, c.stream), "bias_broadcast");
    return finish(env, cudaMemsetAsync(out, 0, (size_t)(M * N) * (m.out_dtype == 0 ? 4 : 2), c.stream), "cudaMemsetAsync");
  }
  const bool epilogue = bias && reinterpret_cast<uintptr_t>(bias) % 16 == 0;
  m.bias = epilogue ? bias : nullptr;
  auto broadcast_then_accumulate = [&]() -> bool {
    cudaError_t e = ops::bias_broadcast(m.out_dtype, out, bias, M, N, c.stream);
    if (e != cudaSuccess) {
      napi_throw(env, make_error(env, e, "bias_broadcast"));
      return false;
    }
    m.bias = nullptr;
    m.accumulate = true;
    return true;
  };
  if (bias && !epilogue && !broadcast_then_accumulate()) return nullptr;
  cudaError_t cerr = cudaSuccess;
  std::string what;
  int s = lt::run_matmul(*g_lt, m, c.stream, &cerr, &what);
  if (s == lt::STATUS_NOT_SUPPORTED && m.bias) {
    if (!broadcast_then_accumulate()) return nullptr;
    s = lt::run_matmul(*g_lt, m, c.stream, &cerr, &what);
  }
  if (s == lt::STATUS_NOT_SUPPORTED && what == "cublasLtMatmulAlgoGetHeuristic") {
    // no cuBLASLt kernel for these operands (alignment, layout): the plain kernel (bias already in out, if any)
    return finish(env,
                  ops::matmul_fallback(m.ab_dtype, m.out_dtype, out, a, b, m.bias, M, N, K, m.trans_a, m.trans_b,
                                       m.accumulate, c.stream),
                  "matmul_fallback");
  }
  if (s == -1) return finish(env, cerr, what.c_str());
  if (s != lt::STATUS_SUCCESS) throw_lt(env, s, what);
  return nullptr;
}

// opsMatmulGelu(dev, {a, b, out, bias, pre, abDtype, outDtype, M, N, K, transA, transB, gelu}) -> boolean: the matmul
// with cuBLASLt's GELU epilogue, gelu 1 = GELU_AUX[_BIAS] (out = GELU(op(A) op(B) [+ bias]), pre = the argument of
// GELU) or 2 = DGELU (out = op(A) op(B) * GELU'(pre)). Returns false, having enqueued nothing, where the fused call
// does not apply (K = 0, N not a multiple of 8, pre or the bias not 16-byte aligned, no cuBLASLt kernel for these
// operands): the caller then runs the matmul and the GELU kernel in turn.
napi_value MatmulGelu(napi_env env, napi_callback_info info) {
  Call c;
  if (!begin(env, info, &c)) return nullptr;
  lt::Matmul m{};
  void* pre;
  int64_t gelu;
  if (!matmul_args(env, c, &m) || !ptrs(env, c.obj, {{"pre", &pre}}) || !sizes(env, c.obj, {{"gelu", &gelu}}))
    return nullptr;
  if (!g_lt) return throw_type(env, "cuBLASLt is not loaded (call opsCublasLtLoad first)");
  if (gelu != 1 && gelu != 2) return throw_type(env, "gelu must be 1 (GELU_AUX) or 2 (DGELU)");
  if (gelu == 2 && m.bias) return throw_type(env, "DGELU takes no bias");
  if (!m.a || !m.b || !m.out || !pre) return throw_type(env, "a, b, out and pre must be device pointers");
  napi_value result;
  // cuBLASLt wants the GELU aux leading dimension (N here) divisible by 8 and 16-byte aligned aux and bias.
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const bool applies =
      m.M > 0 && m.N > 0 && m.K > 0 && m.N % 8 == 0 && aligned(pre) && (!m.bias || aligned(m.bias));
  if (!applies) {
    napi_get_boolean(env, false, &result);
    return result;
  }
  if (!open_stream(env, &c)) return nullptr;
  m.accumulate = false;
  m.gelu = (int)gelu;
  m.aux = pre;
  cudaError_t cerr = cudaSuccess;
  std::string what;
  const int s = lt::run_matmul(*g_lt, m, c.stream, &cerr, &what);
  if (s == lt::STATUS_NOT_SUPPORTED && what == "cublasLtMatmulAlgoGetHeuristic") {
    napi_get_boolean(env, false, &result);  // nothing was enqueued
    return result;
  }
  if (s == -1) return finish(env, cerr, what.c_str());
  if (s != lt::STATUS_SUCCESS) {
    throw_lt(env, s, what);
    return nullptr;
  }
  napi_get_boolean(env, true, &result);
  return result;
}

napi_value EmbeddingForward(napi_env env, napi_callback_info info) {
  Call c;
  int dt;
  void *out, *tokens, *wte, *wpe;
  int64_t B, T, C, V;
  if (!begin(env, info, &c) || !dtype_arg(env, c.obj, "dtype", &dt) ||
      !ptrs(env, c.obj, {{"out", &out}, {"tokens", &tokens}, {"wte", &wte}, {"wpe", &wpe}}) ||
      !sizes(env, c.obj, {{"B", &B}, {"T", &T}, {"C", &C}, {"V", &V}}))
    return nullptr;
  if (!open_stream(env, &c)) return nullptr;
  return finish(env, ops::embedding_forward(dt, out, static_cast<int32_t*>(tokens), wte, wpe, B, T, C, V, c.stream),
                "embedding_forward");
}

napi_value EmbeddingBackward(napi_env env, napi_callback_info info) {
  Call c;
  int dt;
  void *dwte, *dwpe, *dout, *tokens;
  int64_t B, T, C, V;
  if (!begin(env, info, &c) || !dtype_arg(env, c.obj, "dtype", &dt) ||
      !ptrs(env, c.obj, {{"dwte", &dwte}, {"dwpe", &dwpe}, {"dout", &dout}, {"tokens", &tokens}}) ||
      !sizes(env, c.obj, {{"B", &B}, {"T", &T}, {"C", &C}, {"V", &V}}))
    return nullptr;
  if (C > 12288) return throw_type(env, "C must be at most 12288 (the row accumulator lives in shared memory)");
  if (!open_stream(env, &c)) return nullptr;
  cudaError_t e = ops::embedding_backward_wte(dt, dwte, dout, static_cast<int32_t*>(tokens), B * T, C, V, c.stream);
  if (e == cudaSuccess) e = ops::embedding_backward_wpe(dt, dwpe, dout, B, T, C, c.stream);
  return finish(env, e, "embedding_backward");
}

napi_value LayernormForward(napi_env env, napi_callback_info info) {
  Call c;
  int dt;
  void *out, *mean, *rstd, *inp, *w, *b;
  int64_t N, C;
  if (!begin(env, info, &c) || !dtype_arg(env, c.obj, "dtype", &dt) ||
      !ptrs(env, c.obj, {{"out", &out}, {"mean", &mean}, {"rstd", &rstd}, {"inp", &inp}, {"w", &w}, {"b", &b}}) ||
      !sizes(env, c.obj, {{"N", &N}, {"C", &C}}))
    return nullptr;
  if (!open_stream(env, &c)) return nullptr;
  return finish(env,
                ops::layernorm_forward(dt, out, static_cast<float*>(mean), static_cast<float*>(rstd), inp, w, b, N, C,
                                       c.stream),
                "layernorm_forward");
}

napi_value LayernormBackward(napi_env env, napi_callback_info info) {
  Call c;
  int dt;
  void *dinp, *dw, *db, *dout, *inp, *w, *mean, *rstd;
  int64_t N, C;
  if (!begin(env, info, &c) || !dtype_arg(env, c.obj, "dtype", &dt) ||
      !ptrs(env, c.obj, {{"dinp", &dinp}, {"dw", &dw}, {"db", &db}, {"dout", &dout}, {"inp", &inp}, {"w", &w},
                         {"mean", &mean}, {"rstd", &rstd}}) ||
      !sizes(env, c.obj, {{"N", &N}, {"C", &C}}))
    return nullptr;
  if (N == 0 || C == 0) return nullptr;
  if (!open_stream(env, &c)) return nullptr;
  const float* m = static_cast<float*>(mean);
  const float* r = static_cast<float*>(rstd);
  cudaError_t e = ops::layernorm_backward_dinp(dt, dinp, dout, inp, w, m, r, N, C, c.stream);
  if (e != cudaSuccess) return finish(env, e, "layernorm_backward_dinp");
  const int chunks = ops::column_chunks(N);
  void* part = nullptr;
  if ((e = scratch((size_t)chunks * C * 2 * sizeof(float), c.stream, &part)) != cudaSuccess)
    return finish(env, e, "cudaMallocAsync(layernorm backward partials)");
  float* dw_part = static_cast<float*>(part);
  float* db_part = dw_part + (size_t)chunks * C;
  e = ops::layernorm_backward_weights(dt, dw_part, db_part, dout, inp, m, r, N, C, chunks, c.stream);
  if (e == cudaSuccess) e = ops::sum_partials_into(dt, dw, dw_part, C, chunks, c.stream);
  if (e == cudaSuccess) e = ops::sum_partials_into(dt, db, db_part, C, chunks, c.stream);
  cudaFreeAsync(part, c.stream);
  return finish(env, e, "layernorm_backward_weights");
}

napi_value GeluForward(napi_env env, napi_callback_info info) {
  Call c;
  int dt;
  void *out, *inp;
  int64_t n;
  if (!begin(env, info, &c) || !dtype_arg(env, c.obj, "dtype", &dt) || !ptrs(env, c.obj, {{"out", &out}, {"inp", &inp}}) ||
      !sizes(env, c.obj, {{"n", &n}}))
    return nullptr;
  if (!open_stream(env, &c)) return nullptr;
  return finish(env, ops::gelu_forward(dt, out, inp, n, c.stream), "gelu_forward");
}

napi_value GeluBackward(napi_env env, napi_callback_info info) {
  Call c;
  int dt;
  void *dinp, *inp, *dout;
  int64_t n;
  if (!begin(env, info, &c) || !dtype_arg(env, c.obj, "dtype", &dt) ||
      !ptrs(env, c.obj, {{"dinp", &dinp}, {"inp", &inp}, {"dout", &dout}}) || !sizes(env, c.obj, {{"n", &n}}))
    return nullptr;
  if (!open_stream(env, &c)) return nullptr;
  return finish(env, ops::gelu_backward(dt, dinp, inp, dout, n, c.stream), "gelu_backward");
}

napi_value Add(napi_env env, napi_callback_info info) {
  Call c;
  int dt;
  void *out, *a, *b;
  int64_t n;
  if (!begin(env, info, &c) || !dtype_arg(env, c.obj, "dtype", &dt) ||
      !ptrs(env, c.obj, {{"out", &out}, {"a", &a}, {"b", &b}}) || !sizes(env, c.obj, {{"n", &n}}))
    return nullptr;
  if (!open_stream(env, &c)) return nullptr;
  return finish(env, ops::residual_forward(dt, out, a, b, n, c.stream), "residual_forward");
}

napi_value SoftmaxCrossEntropy(napi_env env, napi_callback_info info) {
  Call c;
  int dt, ldt;
  void *losses, *dlogits, *logits, *targets;
  int64_t N, V, Vp;
  double scale;
  if (!begin(env, info, &c) || !dtype_arg(env, c.obj, "dtype", &dt) || !dtype_arg(env, c.obj, "lossDtype", &ldt) ||
      !ptrs(env, c.obj, {{"losses", &losses}, {"dlogits", &dlogits}, {"logits", &logits}, {"targets", &targets}}) ||
      !sizes(env, c.obj, {{"N", &N}, {"V", &V}, {"Vp", &Vp}}) || !prop_f64(env, c.obj, "scale", &scale))
    return nullptr;
  if (!open_stream(env, &c)) return nullptr;
  return finish(env,
                ops::softmax_cross_entropy(dt, ldt, losses, dlogits, logits, static_cast<int32_t*>(targets), N, V,
                                           Vp, (float)scale, c.stream),
                "softmax_cross_entropy");
}

napi_value BiasBackward(napi_env env, napi_callback_info info) {
  Call c;
  int dt;
  void *dbias, *dout;
  int64_t M, N;
  if (!begin(env, info, &c) || !dtype_arg(env, c.obj, "dtype", &dt) ||
      !ptrs(env, c.obj, {{"dbias", &dbias}, {"dout", &dout}}) || !sizes(env, c.obj, {{"M", &M}, {"N", &N}}))
    return nullptr;
  if (M == 0 || N == 0) return nullptr;
  if (!open_stream(env, &c)) return nullptr;
  const int chunks = ops::column_chunks(M);
  void* part = nullptr;
  cudaError_t e = scratch((size_t)chunks * N * sizeof(float), c.stream, &part);
  if (e != cudaSuccess) return finish(env, e, "cudaMallocAsync(bias backward partials)");
  e = ops::column_sums_partial(dt, static_cast<float*>(part), dout, M, N, chunks, c.stream);
  if (e == cudaSuccess) e = ops::sum_partials_into(dt, dbias, static_cast<float*>(part), N, chunks, c.stream);
  cudaFreeAsync(part, c.stream);
  return finish(env, e, "bias_backward");
}

// opsReduceSum(dev, {dtype, x, n, squares}) -> Promise<number>: the sum (or sum of squares) in float64, after
// everything enqueued before it (the one host sync of sum / sumSquares).
napi_value ReduceSum(napi_env env, napi_callback_info info) {
  Call c;
  int dt;
  void* x;
  int64_t n;
  bool squares;
  if (!begin(env, info, &c) || !dtype_arg(env, c.obj, "dtype", &dt) || !ptrs(env, c.obj, {{"x", &x}}) ||
      !sizes(env, c.obj, {{"n", &n}}) || !prop_bool(env, c.obj, "squares", &squares))
    return nullptr;
  if (!open_stream(env, &c)) return nullptr;
  void* tmp = nullptr;
  const size_t parts = (size_t)ops::reduce_partials_count();
  cudaError_t e = scratch((parts + 1) * sizeof(double), c.stream, &tmp);
  if (e != cudaSuccess) return finish(env, e, "cudaMallocAsync(reduction partials)");
  double* result = static_cast<double*>(tmp);
  e = ops::reduce_sum(dt, result, result + 1, x, n, squares, c.stream);
  if (e != cudaSuccess) {
    cudaFreeAsync(tmp, c.stream);
    return finish(env, e, "reduce_sum");
  }
  Job* job = new Job();
  const int d = c.dev;
  job->fn = [d, tmp, job]() -> CudaFailure {
    cudaStream_t stream;
    cudaError_t err = device_stream(d, &stream);
    if (err != cudaSuccess) return {err, "cudaSetDevice"};
    double host = 0;
    err = cudaMemcpyAsync(&host, tmp, sizeof(double), cudaMemcpyDeviceToHost, stream);
    if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
    cudaFreeAsync(tmp, stream);
    if (err != cudaSuccess) return {err, "reduce_sum (cudaMemcpy to host)"};
    job->values.push_back(host);
    return {cudaSuccess, ""};
  };
  return queue_job(env, job, "flashattn.opsReduceSum");
}

// opsReduceSumTo(dev, {dtype, x, n, squares, accumulate, out}): out[0] (float32 on the device) (+)= the sum (or sum of
// squares) of x, enqueued; nothing waits (core's DeviceStepOps.sumTo).
napi_value ReduceSumTo(napi_env env, napi_callback_info info) {
  Call c;
  int dt;
  void *x, *out;
  int64_t n;
  bool squares, accumulate;
  if (!begin(env, info, &c) || !dtype_arg(env, c.obj, "dtype", &dt) || !ptrs(env, c.obj, {{"x", &x}, {"out", &out}}) ||
      !sizes(env, c.obj, {{"n", &n}}) || !prop_bool(env, c.obj, "squares", &squares) ||
      !prop_bool(env, c.obj, "accumulate", &accumulate))
    return nullptr;
  if (!open_stream(env, &c)) return nullptr;
  void* part = nullptr;
  cudaError_t e = scratch((size_t)ops::reduce_partials_count() * sizeof(double), c.stream, &part);
  if (e != cudaSuccess) return finish(env, e, "cudaMallocAsync(reduction partials)");
  e = ops::reduce_sum_to(dt, static_cast<float*>(out), static_cast<double*>(part), x, n, squares, accumulate, c.stream);
  cudaFreeAsync(part, c.stream);
  return finish(env, e, "reduce_sum_to");
}

napi_value Scale(napi_env env, napi_callback_info info) {
  Call c;
  int dt;
  void* x;
  int64_t n;
  double s;
  if (!begin(env, info, &c) || !dtype_arg(env, c.obj, "dtype", &dt) || !ptrs(env, c.obj, {{"x", &x}}) ||
      !sizes(env, c.obj, {{"n", &n}}) || !prop_f64(env, c.obj, "scale", &s))
    return nullptr;
  if (!open_stream(env, &c)) return nullptr;
  return finish(env, ops::scale_inplace(dt, x, n, (float)s, c.stream), "scale");
}

napi_value AdamW(napi_env env, napi_callback_info info) {
  Call c;
  int gdt;
  void *params, *grads, *m, *v;
  int64_t n;
  double lr, b1, b2, eps, wd, c1, c2;
  if (!begin(env, info, &c) || !dtype_arg(env, c.obj, "gradDtype", &gdt) ||
      !ptrs(env, c.obj, {{"params", &params}, {"grads", &grads}, {"m", &m}, {"v", &v}}) ||
      !sizes(env, c.obj, {{"n", &n}}) || !prop_f64(env, c.obj, "lr", &lr) || !prop_f64(env, c.obj, "beta1", &b1) ||
      !prop_f64(env, c.obj, "beta2", &b2) || !prop_f64(env, c.obj, "eps", &eps) ||
      !prop_f64(env, c.obj, "weightDecay", &wd) || !prop_f64(env, c.obj, "c1", &c1) || !prop_f64(env, c.obj, "c2", &c2))
    return nullptr;
  if (!open_stream(env, &c)) return nullptr;
  return finish(env,
                ops::adamw(gdt, static_cast<float*>(params), grads, static_cast<float*>(m), static_cast<float*>(v), n,
                           (float)lr, (float)b1, (float)b2, (float)(1.0 - b1), (float)(1.0 - b2), (float)eps, (float)wd,
                           (float)c1, (float)c2, c.stream),
                "adamw");
}

// opsAdamWFrom(dev, {gradDtype, params, grads, m, v, n, hyper, normSq (bigint or null), maxNorm, K, beta1, beta2, eps,
// weightDecay}): AdamW with lr, c1, c2 read from hyper (float32 (3) on the device) and the clip factor from normSq
// (core's DeviceStepOps.adamwFrom).
napi_value AdamWFrom(napi_env env, napi_callback_info info) {
  Call c;
  int gdt;
  void *params, *grads, *m, *v, *hyper, *norm_sq = nullptr;
  int64_t n;
  double b1, b2, eps, wd, max_norm = 0, K = 1;
  if (!begin(env, info, &c) || !dtype_arg(env, c.obj, "gradDtype", &gdt) ||
      !ptrs(env, c.obj, {{"params", &params}, {"grads", &grads}, {"m", &m}, {"v", &v}, {"hyper", &hyper}}) ||
      !sizes(env, c.obj, {{"n", &n}}) || !prop_f64(env, c.obj, "beta1", &b1) || !prop_f64(env, c.obj, "beta2", &b2) ||
      !prop_f64(env, c.obj, "eps", &eps) || !prop_f64(env, c.obj, "weightDecay", &wd))
    return nullptr;
  napi_value ns;
  napi_valuetype t;
  CHECK_NAPI(napi_get_named_property(env, c.obj, "normSq", &ns));
  CHECK_NAPI(napi_typeof(env, ns, &t));
  if (t != napi_null && t != napi_undefined) {
    if (!prop_ptr(env, c.obj, "normSq", &norm_sq) || !prop_f64(env, c.obj, "maxNorm", &max_norm) ||
        !prop_f64(env, c.obj, "K", &K))
      return nullptr;
    if (!(K >= 1)) return throw_type(env, "K must be >= 1");
  }
  if (!open_stream(env, &c)) return nullptr;
  return finish(env,
                ops::adamw_from(gdt, static_cast<float*>(params), grads, static_cast<float*>(m), static_cast<float*>(v),
                                n, static_cast<const float*>(hyper), static_cast<const float*>(norm_sq), max_norm, K,
                                (float)b1, (float)b2, (float)(1.0 - b1), (float)(1.0 - b2), (float)eps, (float)wd,
                                c.stream),
                "adamw_from");
}

// opsRelease(dev): free the device's cuBLASLt handle and workspace (CudaOps.dispose of the last CudaOps on it,
// after a synchronize).
napi_value Release(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t dev;
  if (!get_args(env, info, 1, argv) || !get_i64(env, argv[0], &dev, "device")) return nullptr;
  if (g_lt) {
    cudaSetDevice((int)dev);
    lt::release(*g_lt, (int)dev);
  }
  return nullptr;
}

}  // namespace

void add_ops_functions(Exports& e) {
  add_function(e, "opsCublasLtLoad", CublasLtLoad);
  add_function(e, "opsMatmul", Matmul);
  add_function(e, "opsMatmulGelu", MatmulGelu);
  add_function(e, "opsEmbeddingForward", EmbeddingForward);
  add_function(e, "opsEmbeddingBackward", EmbeddingBackward);
  add_function(e, "opsLayernormForward", LayernormForward);
  add_function(e, "opsLayernormBackward", LayernormBackward);
  add_function(e, "opsGeluForward", GeluForward);
  add_function(e, "opsGeluBackward", GeluBackward);
  add_function(e, "opsAdd", Add);
  add_function(e, "opsSoftmaxCrossEntropy", SoftmaxCrossEntropy);
  add_function(e, "opsBiasBackward", BiasBackward);
  add_function(e, "opsReduceSum", ReduceSum);
  add_function(e, "opsScale", Scale);
  add_function(e, "opsAdamW", AdamW);
  add_function(e, "opsReduceSumTo", ReduceSumTo);
  add_function(e, "opsAdamWFrom", AdamWFrom);
  add_function(e, "opsRelease", Release);
}

}  // namespace addon

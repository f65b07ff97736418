// Entry points of the inference kernels (native/inference/): attention with a KV cache (append, split-KV decode,
// combine), the combine on its own, and two benchmarks (the KV-cache call and a device-to-device copy, the
// bandwidth yardstick of the decode benchmark). Arguments are one object, read and checked in full before
// anything is enqueued (a TypeError naming the field otherwise): sizes, device pointers to element (0, 0, 0, 0)
// of each view and its [batch, row, head] strides in elements, and the host metadata as Int32Arrays
// (cacheSeqlens (B), table (B, mb): the block table, or cache_batch_idx with mb = 1). The metadata and the
// split partials live in one stream-ordered workspace per call; the split counters of the decode kernel's fused
// combine in a small persistent array per device (split_counters). The TypeScript layer (src/inference-kv-cache.ts)
// has already validated everything with core's validateKvCacheArgs; the range checks here keep a direct caller
// from reading or writing outside the caches.
#include <cuda_runtime.h>
#include <node_api.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../inference/kv_params.h"
#include "device_bytes.h"
#include "errors.h"
#include "jobs.h"
#include "registry.h"
#include "timing.h"
#include "workspace.h"

namespace addon {
namespace {

bool fail(napi_env env, const std::string& msg) {
  throw_type(env, msg);
  return false;
}

bool prop_int32_array(napi_env env, napi_value o, const char* key, size_t want, std::vector<int32_t>* out) {
  napi_value v;
  if (!prop(env, o, key, &v)) return false;
  bool is_ta = false;
  napi_is_typedarray(env, v, &is_ta);
  napi_typedarray_type type;
  size_t length = 0, offset;
  void* data = nullptr;
  napi_value ab;
  if (!is_ta || napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset) != napi_ok ||
      type != napi_int32_array) {
    throw_type(env, std::string(key) + " must be an Int32Array");
    return false;
  }
  if (length != want) {
    throw_type(env, std::string(key) + " must have " + std::to_string(want) + " elements, has " + std::to_string(length));
    return false;
  }
  const int32_t* p = static_cast<const int32_t*>(data);
  out->assign(p, p + length);
  return true;
}

// A strided view `name` with strides `name`Strides: pointer (required unless optional) and three strides >= 0.
bool read_view(napi_env env, napi_value o, const char* name, bool optional, void** ptr, int64_t* st) {
  if (!prop_ptr(env, o, name, ptr)) return false;
  if (*ptr == nullptr) {
    if (optional) return true;
    throw_type(env, std::string(name) + " must be a device pointer");
    return false;
  }
  const std::string key = std::string(name) + "Strides";
  if (!prop_i64s(env, o, key.c_str(), st, 3)) return false;
  for (int i = 0; i < 3; ++i)
    if (st[i] < 0) {
      throw_type(env, key + " must be non-negative");
      return false;
    }
  return true;
}

struct KvCall {
  infer::KvCacheParams p{};
  std::vector<int32_t> meta;  // cache_seqlens (B) | table (B, mb)
};

bool read_kv(napi_env env, napi_value o, KvCall* c) {
  infer::KvCacheParams& p = c->p;
  int64_t dtype, B, Nq, Hq, Hk, D, Nnew, ps, mb, nb, S, kps, wl, wr;
  double scale;
  if (!prop_i64(env, o, "dtype", &dtype) || !prop_i64(env, o, "batch", &B) || !prop_i64(env, o, "seqlenQ", &Nq) ||
      !prop_i64(env, o, "nheadsQ", &Hq) || !prop_i64(env, o, "nheadsK", &Hk) || !prop_i64(env, o, "headDim", &D) ||
      !prop_i64(env, o, "seqlenNew", &Nnew) || !prop_i64(env, o, "pageSize", &ps) ||
      !prop_i64(env, o, "blocksPerSeq", &mb) || !prop_i64(env, o, "numBlocks", &nb) ||
      !prop_i64(env, o, "numSplits", &S) || !prop_i64(env, o, "keysPerSplit", &kps) ||
      !prop_f64(env, o, "softmaxScale", &scale) || !prop_i64(env, o, "windowLeft", &wl) ||
      !prop_i64(env, o, "windowRight", &wr) || !prop_bool(env, o, "vectorLoads", &p.vector_loads))
    return false;
  if (dtype < 0 || dtype > 2) return fail(env, "dtype must be 0 (float32), 1 (float16) or 2 (bfloat16)");
  if (B < 1 || B > 65535 || Nq < 0 || Hk < 1 || Hk > 65535 || Hq < 0 || Hq % Hk != 0 || Hq > 65535 ||
      Nq * (Hq / Hk) > (int64_t)1 << 24 || Nnew < 0 || Nnew > INT32_MAX / 2)
    return fail(env, "bad kv-cache shape (batch, seqlenQ, nheadsQ, nheadsK, seqlenNew)");
  if (D < 1 || D > 256) return fail(env, "headDim must be between 1 and 256");
  if (ps < 1 || mb < 1 || nb < 1 || ps * mb > INT32_MAX / 2 || B * mb > INT32_MAX / 2)
    return fail(env, "pageSize, blocksPerSeq and numBlocks must be positive");
  if (S < 1 || S > infer::kMaxSplits) return fail(env, "numSplits must be between 1 and 128");
  if (kps < 1) return fail(env, "keysPerSplit must be positive");
  if (!std::isfinite(scale)) return fail(env, "softmaxScale must be finite");
  p.dtype = (int)dtype; p.B = (int)B; p.Nq = (int)Nq; p.Hq = (int)Hq; p.Hk = (int)Hk; p.D = (int)D;
  p.Nnew = (int)Nnew; p.page_size = (int)ps; p.mb = (int)mb; p.S = (int)S; p.kps = (int)kps;
  p.scale_log2 = (float)(scale * 1.4426950408889634);
  p.window_left = (int)(wl < -1 ? -1 : wl);
  p.window_right = (int)(wr < -1 ? -1 : wr);
  int64_t st[3];
  void* ptr;
  if (!read_view(env, o, "q", false, &ptr, st)) return false;
  p.q = ptr; p.q_batch_stride = st[0]; p.q_row_stride = st[1]; p.q_head_stride = st[2];
  if (!read_view(env, o, "k", false, &ptr, st)) return false;
  p.k = ptr; p.k_batch_stride = st[0]; p.k_row_stride = st[1]; p.k_head_stride = st[2];
  if (!read_view(env, o, "v", false, &ptr, st)) return false;
  p.v = ptr; p.v_batch_stride = st[0]; p.v_row_stride = st[1]; p.v_head_stride = st[2];
  if (!read_view(env, o, "out", false, &ptr, st)) return false;
  p.o = ptr; p.o_batch_stride = st[0]; p.o_row_stride = st[1]; p.o_head_stride = st[2];
  if (Nnew > 0) {
    if (!read_view(env, o, "kNew", false, &ptr, st)) return false;
    p.k_new = ptr; p.kn_batch_stride = st[0]; p.kn_row_stride = st[1]; p.kn_head_stride = st[2];
    if (!read_view(env, o, "vNew", false, &ptr, st)) return false;
    p.v_new = ptr; p.vn_batch_stride = st[0]; p.vn_row_stride = st[1]; p.vn_head_stride = st[2];
  }
  if (!prop_ptr(env, o, "lse", &ptr)) return false;
  p.lse = static_cast<float*>(ptr);
  if (p.vector_loads) {
    // 16-byte rows: pointers 16-byte aligned, strides and D multiples of the 16-byte vector
    const int64_t vec = dtype == 0 ? 4 : 8;
    const bool ok = reinterpret_cast<uintptr_t>(p.k) % 16 == 0 && reinterpret_cast<uintptr_t>(p.v) % 16 == 0 &&
                    D % vec == 0 && p.k_batch_stride % vec == 0 && p.k_row_stride % vec == 0 &&
                    p.k_head_stride % vec == 0 && p.v_batch_stride % vec == 0 && p.v_row_stride % vec == 0 &&
                    p.v_head_stride % vec == 0;
    if (!ok)
      return fail(env, "vectorLoads needs 16-byte aligned k and v pointers and strides and headDim multiples of " +
                                 std::to_string(vec) + " elements");
  }
  std::vector<int32_t> seqlens, table;
  if (!prop_int32_array(env, o, "cacheSeqlens", (size_t)B, &seqlens) ||
      !prop_int32_array(env, o, "table", (size_t)(B * mb), &table))
    return false;
  // Every key a sequence attends to (and every appended one) inside its capacity and a valid page.
  for (int64_t b = 0; b < B; ++b) {
    const int64_t L = seqlens[b];
    if (L < 0 || L + Nnew > ps * mb)
      return fail(env, "cacheSeqlens[" + std::to_string(b) + "] + seqlenNew exceeds the capacity");
    for (int64_t j = 0; j < (L + Nnew + ps - 1) / ps; ++j) {
      const int32_t page = table[b * mb + j];
      if (page < 0 || page >= nb)
        return fail(env, "table[" + std::to_string(b) + ", " + std::to_string(j) + "] is not a page");
    }
  }
  c->meta = seqlens;
  c->meta.insert(c->meta.end(), table.begin(), table.end());
  return true;
}

// The decode kernel's split counters (kv_params.h), per device: (B, Hk, row blocks) int32 that the kernels keep
// at 0 between calls, so they are zeroed once (stream-ordered) and only grow. A plain cudaMalloc, not the
// stream-ordered pool, so dispose()'s pool trim is unaffected; a few KiB per device for the process's life.
std::mutex g_counters_mu;
std::map<int, std::pair<int*, size_t>> g_counters;

cudaError_t split_counters(int dev, cudaStream_t stream, size_t n, int** out, std::string* where) {
  std::lock_guard<std::mutex> lock(g_counters_mu);
  std::pair<int*, size_t>& c = g_counters[dev];
  if (c.second < n) {
    const size_t cap = std::max<size_t>({n, 2 * c.second, 4096});
    cudaError_t err = cudaSuccess;
    if (c.first != nullptr) {
      // earlier kernels on this stream may still count in the old array
      err = cudaStreamSynchronize(stream);
      if (err == cudaSuccess) err = counted_free(c.first);
      c = {nullptr, 0};
      if (err != cudaSuccess) return *where = "freeing the split counters", err;
    }
    int* p = nullptr;
    err = counted_malloc(reinterpret_cast<void**>(&p), cap * sizeof(int));
    if (err != cudaSuccess) {
      cudaGetLastError();
      return *where = "cudaMalloc(split counters, " + std::to_string(cap * sizeof(int)) + " bytes)", err;
    }
    err = cudaMemsetAsync(p, 0, cap * sizeof(int), stream);
    if (err != cudaSuccess) {
      counted_free(p);
      return *where = "cudaMemsetAsync(split counters)", err;
    }
    c = {p, cap};
  }
  *out = c.first;
  return cudaSuccess;
}

// The workspace of one call: metadata, then (S > 1) the partials; the split counters. Uploads the metadata; the
// caller frees ws.
cudaError_t prepare_kv(int dev, KvCall& c, cudaStream_t stream, char** ws, std::string* where) {
  infer::KvCacheParams& p = c.p;
  p.split_counters = nullptr;
  if (p.S > 1) {
    const size_t n = (size_t)p.B * p.Hk * infer::decode_row_blocks(p.Hq, p.Hk, p.Nq);
    const cudaError_t err = split_counters(dev, stream, n, &p.split_counters, where);
    if (err != cudaSuccess) return err;
  }
  const size_t meta = sizeof(int32_t) * c.meta.size();
  const size_t n = p.S > 1 ? (size_t)p.S * p.B * p.Nq * p.Hq : 0;
  const size_t total = align256(meta) + align256(sizeof(float) * n * p.D) + align256(sizeof(float) * n);
  cudaError_t err = workspace_alloc(total, stream, ws, "kv-cache workspace", where);
  if (err != cudaSuccess) return err;
  char* cur = *ws;
  int32_t* m = reinterpret_cast<int32_t*>(cur);
  cur += align256(meta);
  p.cache_seqlens = m;
  p.table = m + p.B;
  p.o_partial = n ? reinterpret_cast<float*>(cur) : nullptr;
  cur += align256(sizeof(float) * n * p.D);
  p.lse_partial = n ? reinterpret_cast<float*>(cur) : nullptr;
  // pageable source: the copy is staged before cudaMemcpyAsync returns, so c.meta may go away afterwards
  err = cudaMemcpyAsync(m, c.meta.data(), meta, cudaMemcpyHostToDevice, stream);
  if (err != cudaSuccess) *where = "cudaMemcpyAsync(kv-cache metadata)";
  return err;
}

cudaError_t run_kv(int dev, KvCall& c, cudaStream_t stream, std::string* where) {
  char* ws = nullptr;
  cudaError_t err = prepare_kv(dev, c, stream, &ws, where);
  if (ws == nullptr) return err;
  if (err == cudaSuccess) {
    err = infer::attention_with_kv_cache(c.p, stream);
    if (err != cudaSuccess) *where = "kv-cache attention launch";
  }
  return workspace_free(ws, stream, err, "kv-cache workspace", where);
}

// kvCacheAttention(dev, args): append, attention, combine, enqueued.
napi_value KvCacheAttention(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev;
  KvCall c;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &dev, "device") || !read_kv(env, argv[1], &c))
    return nullptr;
  cudaStream_t stream;
  std::string where = "cudaSetDevice";
  cudaError_t err = device_stream((int)dev, &stream);
  if (err == cudaSuccess) err = run_kv((int)dev, c, stream, &where);
  if (err != cudaSuccess) napi_throw(env, make_error(env, err, where));
  return nullptr;
}

// attentionCombine(dev, { dtype, numSplits, batch, seqlenQ, nheadsQ, headDim, outPartial, lsePartial, out,
// outStrides, lse }): enqueued.
napi_value AttentionCombine(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev, dtype, S, B, Nq, Hq, D;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &dev, "device")) return nullptr;
  napi_value o = argv[1];
  if (!prop_i64(env, o, "dtype", &dtype) || !prop_i64(env, o, "numSplits", &S) || !prop_i64(env, o, "batch", &B) ||
      !prop_i64(env, o, "seqlenQ", &Nq) || !prop_i64(env, o, "nheadsQ", &Hq) || !prop_i64(env, o, "headDim", &D))
    return nullptr;
  if (dtype < 0 || dtype > 2) return throw_type(env, "dtype must be 0 (float32), 1 (float16) or 2 (bfloat16)");
  if (S < 1 || S > infer::kMaxSplits) return throw_type(env, "numSplits must be between 1 and 128");
  if (B < 0 || Nq < 0 || Hq < 0 || D < 0 || B * Nq * Hq > ((int64_t)1 << 40))
    return throw_type(env, "bad combine shape");
  void *op, *lp, *out, *lse;
  int64_t st[3];
  if (!prop_ptr(env, o, "outPartial", &op) || !prop_ptr(env, o, "lsePartial", &lp) ||
      !read_view(env, o, "out", false, &out, st) || !prop_ptr(env, o, "lse", &lse))
    return nullptr;
  if (!op || !lp) return throw_type(env, "outPartial and lsePartial must be device pointers");
  infer::CombineParams p{(int)dtype, (int)S, (int)B, (int)Nq, (int)Hq, (int)D, static_cast<const float*>(op),
                         static_cast<const float*>(lp), out, st[0], st[1], st[2], static_cast<float*>(lse)};
  cudaStream_t stream;
  cudaError_t err = device_stream((int)dev, &stream);
  if (err == cudaSuccess) err = infer::combine_by_lse(p, stream);
  if (err != cudaSuccess) napi_throw(env, make_error(env, err, "combine kernel launch"));
  return nullptr;
}

// kvCacheBenchmark(dev, args, warmup, iters) -> Promise<number[]>: ms per KV-cache call (append when seqlenNew >
// 0, attention, combine), the metadata uploaded once before timing.
napi_value KvCacheBenchmark(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int64_t dev, warmup, iters;
  KvCall c;
  if (!get_args(env, info, 4, argv) || !get_i64(env, argv[0], &dev, "device") || !read_kv(env, argv[1], &c) ||
      !get_i64(env, argv[2], &warmup, "warmup") || !get_i64(env, argv[3], &iters, "iters"))
    return nullptr;
  Job* job = new Job();
  Job* jp = job;
  const int d = (int)dev;
  job->fn = [=]() mutable -> CudaFailure {
    cudaStream_t stream;
    cudaError_t err = device_stream(d, &stream);
    if (err != cudaSuccess) return {err, "cudaSetDevice"};
    std::string where;
    char* ws = nullptr;
    err = prepare_kv(d, c, stream, &ws, &where);
    if (err != cudaSuccess) {
      if (ws) cudaFreeAsync(ws, stream);
      return {err, where};
    }
    CudaFailure f = time_loop(stream, warmup, iters, [&]() { return infer::attention_with_kv_cache(c.p, stream); },
                              &jp->values);
    cudaFreeAsync(ws, stream);
    return f;
  };
  return queue_job(env, job, "flashattn.kvCacheBenchmark");
}

// copyBenchmark(dev, dst, src, bytes, warmup, iters) -> Promise<number[]>: ms per cudaMemcpyAsync device to
// device of `bytes` (the copy bandwidth the decode benchmark is compared with: 2 * bytes moved per copy).
napi_value CopyBenchmark(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int64_t dev, bytes, warmup, iters;
  void *dst, *src;
  if (!get_args(env, info, 6, argv) || !get_i64(env, argv[0], &dev, "device") || !get_ptr(env, argv[1], &dst, "dst") ||
      !get_ptr(env, argv[2], &src, "src") || !get_i64(env, argv[3], &bytes, "bytes") ||
      !get_i64(env, argv[4], &warmup, "warmup") || !get_i64(env, argv[5], &iters, "iters"))
    return nullptr;
  if (bytes < 0 || !dst || !src) return throw_type(env, "copyBenchmark needs two device pointers and bytes >= 0");
  Job* job = new Job();
  Job* jp = job;
  const int d = (int)dev;
  job->fn = [=]() -> CudaFailure {
    cudaStream_t stream;
    cudaError_t err = device_stream(d, &stream);
    if (err != cudaSuccess) return {err, "cudaSetDevice"};
    return time_loop(stream, warmup, iters,
                     [&]() { return cudaMemcpyAsync(dst, src, (size_t)bytes, cudaMemcpyDeviceToDevice, stream); },
                     &jp->values);
  };
  return queue_job(env, job, "flashattn.copyBenchmark");
}

}  // namespace

void add_inference_functions(Exports& e) {
  add_function(e, "kvCacheAttention", KvCacheAttention);
  add_function(e, "attentionCombine", AttentionCombine);
  add_function(e, "kvCacheBenchmark", KvCacheBenchmark);
  add_function(e, "copyBenchmark", CopyBenchmark);
}

}  // namespace addon

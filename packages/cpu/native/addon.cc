// The native CPU addon (Node-API): FlashAttention-2 forward (flash_forward_avx2.cc) and the float32
// gemm (gemm_avx2.cc) on AVX2 + FMA.
//   cpuFeatures()   -> { avx2, fma }: what this CPU (and OS) supports, checked at run time
//   forward(args)   -> Promise<void>: the forward on native threads, off the event loop
//   gemm(args)      -> Promise<kernel>: C = op(A) op(B) [+ bias | + C] on native threads, off the event loop
//   gemmSync(args)  -> kernel: the same blocking the calling thread (small problems: threads = 1)
//                      kernel: 'gemm' (packed, gemm_avx2.cc), 'gemv' (M <= kGemvMaxM, gemv_avx2.cc) or
//                      'none' (M, N or K = 0: nothing to multiply)
//   gemvMaxM        -> the M up to which gemm takes the small-M path (gemm.h kGemvMaxM)
// This file is built without -mavx2 so that loading it and asking cpuFeatures() is safe on any x86-64;
// the kernels refuse to run (TypeError) where the check fails. Every argument is checked here (a
// TypeError naming it) although the TypeScript side validates first: a bad call never reaches a kernel.
//
// Threads: forward() and gemm() hand their units straight to `threads` threads of a persistent pool
// (thread_pool.h: one per Node environment, kept in the addon's instance data, joined when the
// environment goes away; a worker_thread that loads the addon gets its own) and return a promise that
// the last of them settles; when the pool is busy (another call in flight) a libuv pool thread runs the
// call instead (napi_async_work). Each thread takes units from atomic counters; the blocks start once
// every pack is done. Round 4 started std::threads per call from a libuv thread (~130 us a call before
// any work, ~35 us a thread start, and late under load).
#include <node_api.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "flash_forward.h"
#include "gemm.h"
#include "thread_pool.h"

namespace {

using flashattn_cpu::ForwardParams;
using flashattn_cpu::GemmParams;
using flashattn_cpu::ThreadPool;
using flashattn_cpu::View;

// Per Node environment (napi_set_instance_data): the thread pool (stopped by the environment's cleanup
// hook, registered after `done` so that it runs first: a run in progress still finds `done` alive), the
// completion of forward() and gemm() (a thread-safe function: the pool thread that finishes a call
// settles its promise through it) and a
// reusable buffer for the gemm's packs (a large fresh allocation each call costs page faults: kept up
// to kPackCacheBytes, used by one call at a time).
struct AddonData {
  std::unique_ptr<ThreadPool> pool = std::make_unique<ThreadPool>();
  napi_threadsafe_function done = nullptr;
  int submitted = 0;  // calls on the pool not yet settled (JS thread only): `done` is ref'd while > 0
  std::atomic<bool> packBusy{false};
  float* pack = nullptr;
  size_t packFloats = 0;
  ~AddonData() { std::free(pack); }
};
constexpr size_t kPackCacheBytes = size_t{256} << 20;

AddonData* addon_data(napi_env env) {
  void* d = nullptr;
  napi_get_instance_data(env, &d);
  return static_cast<AddonData*>(d);
}

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

// A pending napi call failed (an exception is pending): return nullptr from the entry point.
struct Thrown {};

void check(napi_env env, napi_status s, const char* what) {
  if (s == napi_ok) return;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, nullptr, what);
  throw Thrown{};
}

[[noreturn]] void type_error(napi_env env, const std::string& msg) {
  napi_throw_type_error(env, nullptr, ("flashattn cpu addon: " + msg).c_str());
  throw Thrown{};
}

napi_value prop(napi_env env, napi_value obj, const char* name) {
  napi_value v;
  check(env, napi_get_named_property(env, obj, name, &v), name);
  return v;
}

double number(napi_env env, napi_value v, const std::string& name) {
  napi_valuetype t;
  check(env, napi_typeof(env, v, &t), name.c_str());
  if (t != napi_number) type_error(env, name + ": expected a number");
  double x;
  check(env, napi_get_value_double(env, v, &x), name.c_str());
  return x;
}

int64_t integer(napi_env env, napi_value v, const std::string& name, int64_t lo, int64_t hi) {
  const double x = number(env, v, name);
  if (!(x >= static_cast<double>(lo) && x <= static_cast<double>(hi)) ||
      x != static_cast<double>(static_cast<int64_t>(x)))
    type_error(env, name + ": expected an integer in [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "], got " + std::to_string(x));
  return static_cast<int64_t>(x);
}

// A typed array of the given type: its data and length; refs keeps it alive until the call ends.
void* typed(napi_env env, napi_value v, const std::string& name, napi_typedarray_type want,
            size_t* length, std::vector<napi_ref>& refs) {
  bool is = false;
  check(env, napi_is_typedarray(env, v, &is), name.c_str());
  const char* kind = want == napi_float32_array ? "a Float32Array" : "an Int32Array";
  if (!is) type_error(env, name + ": expected " + kind);
  napi_typedarray_type t;
  void* data = nullptr;
  napi_value ab;
  size_t off;
  check(env, napi_get_typedarray_info(env, v, &t, length, &data, &ab, &off), name.c_str());
  if (t != want) type_error(env, name + ": expected " + kind);
  if (*length > 0 && data == nullptr) type_error(env, name + ": detached buffer");
  napi_ref ref;
  check(env, napi_create_reference(env, v, 1, &ref), name.c_str());
  refs.push_back(ref);
  return data;
}

// A (B, N, H, D) view: buffer `name`, layout `name`Layout = [offset, sB, sN, sH] (elements), every
// element inside the buffer.
View view(napi_env env, napi_value args, const std::string& name, int64_t B, int64_t N, int64_t H,
          int64_t D, std::vector<napi_ref>& refs) {
  size_t length;
  float* data = static_cast<float*>(
      typed(env, prop(env, args, name.c_str()), name, napi_float32_array, &length, refs));
  const std::string ln = name + "Layout";
  napi_value lay = prop(env, args, ln.c_str());
  bool isArray = false;
  check(env, napi_is_array(env, lay, &isArray), ln.c_str());
  uint32_t n = 0;
  if (isArray) check(env, napi_get_array_length(env, lay, &n), ln.c_str());
  if (!isArray || n != 4) type_error(env, ln + ": expected [offset, sB, sN, sH]");
  int64_t f[4];
  const int64_t big = int64_t{1} << 40;
  for (uint32_t i = 0; i < 4; i++) {
    napi_value x;
    check(env, napi_get_element(env, lay, i, &x), ln.c_str());
    f[i] = integer(env, x, ln + "[" + std::to_string(i) + "]", 0, big);
  }
  const int64_t last = f[0] + (B - 1) * f[1] + (N - 1) * f[2] + (H - 1) * f[3] + D;
  if (last > static_cast<int64_t>(length))
    type_error(env, name + ": the view ends at element " + std::to_string(last) +
                        ", past the buffer's " + std::to_string(length));
  return View{data + f[0], f[1], f[2], f[3]};
}

// A call whose promise is settled on the JS thread: by the pool's completion (AddonData::done), or by
// napi_async_work's complete when the pool was busy.
struct PoolCall {
  virtual ~PoolCall() = default;
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::vector<napi_ref> refs;
  AddonData* data = nullptr;
  int threads = 1;
  const char* what = "";
  const char* result = nullptr;  // the promise's value (a string), or undefined when null
  std::string error;
  bool oom = false;
};

struct ForwardWork : PoolCall {
  ForwardParams p{};
  std::vector<int32_t> lo, hi;
  // forward_prepare's: packs + per-thread scratch + the nf flags in one allocation, and the units
  void* mem = nullptr;
  float* scratch = nullptr;
  size_t scratchF = 0;
  int packUnits = 0, blockUnits = 0;
  std::atomic<int> packNext{0}, packDone{0}, blockNext{0};
};

// Allocate the packs and scratch (false, with the error set, when that fails).
bool forward_prepare(ForwardWork& w) {
  ForwardParams& p = w.p;
  const size_t packF = flashattn_cpu::forward_pack_floats(p);
  w.scratchF = (flashattn_cpu::forward_scratch_floats(p) + 15) / 16 * 16;
  const size_t heads = static_cast<size_t>(p.B) * p.Hk;
  const size_t nfBytes = heads * p.Tc;
  const size_t bytes = (packF + w.scratchF * w.threads) * sizeof(float) + (nfBytes + 63) / 64 * 64;
  w.mem = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (w.mem == nullptr) {
    w.oom = true;
    w.error = "cannot allocate " + std::to_string(bytes) + " bytes of attention scratch";
    return false;
  }
  float* base = static_cast<float*>(w.mem);
  p.kt = base;
  p.vp = base + heads * p.NkPad * p.D;
  w.scratch = base + packF;
  p.nf = reinterpret_cast<uint8_t*>(w.scratch + w.scratchF * w.threads);
  w.packUnits = p.B * p.Hk;
  w.blockUnits = p.B * p.Hq * p.Tr;
  return true;
}

// Thread t's share (t < threads: its scratch): packs, then query blocks, from atomic counters. Packs
// before blocks: a thread that finds no pack unit left waits only for the packs in progress (packDone),
// not for the other threads to arrive (a barrier made the first thread wait for a second one to start:
// a halted vCPU takes long to wake, and at N = 256 two threads ran no faster than one).
void forward_body(ForwardWork& w, int t) {
  for (int u; (u = w.packNext.fetch_add(1, std::memory_order_relaxed)) < w.packUnits;) {
    flashattn_cpu::forward_pack(w.p, u);
    w.packDone.fetch_add(1, std::memory_order_release);
  }
  while (w.packDone.load(std::memory_order_acquire) < w.packUnits) std::this_thread::yield();
  for (int u; (u = w.blockNext.fetch_add(1, std::memory_order_relaxed)) < w.blockUnits;)
    flashattn_cpu::forward_block(w.p, u, w.scratch + w.scratchF * t);
}

void forward_finish(ForwardWork& w) {
  std::free(w.mem);
  w.mem = nullptr;
}

// The way in when the pool is busy: a libuv pool thread runs the units with the pool's run() (alone if
// it is still busy).
void execute(napi_env, void* data) {
  auto* w = static_cast<ForwardWork*>(data);
  w->data->pool->run(w->threads, [w](int t) { forward_body(*w, t); });
  forward_finish(*w);
}

// An Error "flashattn cpu addon: <what> failed: <error>" with code ENOMEM (out of memory) or EFAILED.
napi_value failure(napi_env env, const char* what, const std::string& error, bool oom) {
  const std::string msg =
      std::string("flashattn cpu addon: ") + what + " failed: " + (error.empty() ? "cancelled" : error);
  napi_value m, err, code;
  napi_create_string_utf8(env, msg.c_str(), msg.size(), &m);
  napi_create_error(env, nullptr, m, &err);
  napi_create_string_utf8(env, oom ? "ENOMEM" : "EFAILED", NAPI_AUTO_LENGTH, &code);
  napi_set_named_property(env, err, "code", code);
  return err;
}

// Settle a call's promise: resolved when status is ok and error empty, else rejected with failure().
void settle(napi_env env, napi_deferred deferred, napi_status status, const char* what,
            const std::string& error, bool oom, const char* result) {
  if (status == napi_ok && error.empty()) {
    napi_value value;
    if (result) napi_create_string_utf8(env, result, NAPI_AUTO_LENGTH, &value);
    else napi_get_undefined(env, &value);
    napi_resolve_deferred(env, deferred, value);
  } else {
    napi_reject_deferred(env, deferred, failure(env, what, error, oom));
  }
}

void release(napi_env env, PoolCall* w) {
  for (napi_ref r : w->refs) napi_delete_reference(env, r);
  if (w->work) napi_delete_async_work(env, w->work);
  delete w;
}

void complete(napi_env env, napi_status status, void* data) {
  auto* w = static_cast<PoolCall*>(data);
  settle(env, w->deferred, status, w->what, w->error, w->oom, w->result);
  release(env, w);
}

// The pool's completion, on the JS thread (env is null when the environment is going away).
void pool_done(napi_env env, napi_value, void*, void* data) {
  auto* w = static_cast<PoolCall*>(data);
  if (env == nullptr) {
    delete w;  // its references went with the environment
    return;
  }
  if (--w->data->submitted == 0) napi_unref_threadsafe_function(env, w->data->done);
  complete(env, napi_ok, w);
}

// Run a prepared call's units on the pool's threads straight from the JS thread (no libuv hop; the
// last thread settles the promise through AddonData::done), or, when the pool is busy, on a libuv pool
// thread (execute). body(t) for t < threads; finish() after the last.
void dispatch(napi_env env, PoolCall* w, std::function<void(int)> body, std::function<void()> finish,
              napi_async_execute_callback execute_cb) {
  AddonData* d = w->data;
  // The event loop stays alive while a call is on the pool: `done` is ref'd from the first to the last.
  if (d->submitted == 0) check(env, napi_ref_threadsafe_function(env, d->done), "done");
  d->submitted++;
  if (d->pool->submit(w->threads, std::move(body), [w, d, finish] {
        finish();
        if (napi_call_threadsafe_function(d->done, w, napi_tsfn_nonblocking) != napi_ok)
          delete w;  // the environment is going away: nobody waits for the promise
      }))
    return;
  if (--d->submitted == 0) napi_unref_threadsafe_function(env, d->done);
  napi_value name;
  check(env, napi_create_string_utf8(env, "flashattn_cpu", NAPI_AUTO_LENGTH, &name), "name");
  check(env, napi_create_async_work(env, nullptr, name, execute_cb, complete, w, &w->work), "work");
  check(env, napi_queue_async_work(env, w->work), "queue");
}

napi_value forward(napi_env env, napi_callback_info info) {
  auto* w = new ForwardWork();
  w->what = "forward";
  try {
    size_t argc = 1;
    napi_value args;
    check(env, napi_get_cb_info(env, info, &argc, &args, nullptr, nullptr), "arguments");
    napi_valuetype t = napi_undefined;
    if (argc >= 1) check(env, napi_typeof(env, args, &t), "args");
    if (argc < 1 || t != napi_object) type_error(env, "forward(args): expected an object");
    if (!cpu_has_avx2_fma()) type_error(env, "forward: this CPU lacks AVX2 or FMA");
    ForwardParams& p = w->p;
    const int64_t big = int64_t{1} << 30;
    auto dim = [&](const char* n, int64_t lo, int64_t hi) {
      return static_cast<int>(integer(env, prop(env, args, n), n, lo, hi));
    };
    p.B = dim("B", 1, big);
    p.Nq = dim("Nq", 1, big);
    p.Nk = dim("Nk", 1, big);
    p.Hq = dim("Hq", 1, 1 << 16);
    p.Hk = dim("Hk", 1, 1 << 16);
    p.D = dim("D", 1, 1024);
    if (p.Hq % p.Hk != 0)
      type_error(env, "Hq: expected a multiple of Hk = " + std::to_string(p.Hk) + ", got " +
                          std::to_string(p.Hq));
    const double scale = number(env, prop(env, args, "scale"), "scale");
    if (!(scale > 0 && scale < 1e30)) type_error(env, "scale: expected a positive finite number");
    p.scale = static_cast<float>(scale);
    p.Br = dim("Br", 1, 512);
    p.Bc = dim("Bc", 16, 512);
    if (p.Bc % 16 != 0) type_error(env, "Bc: expected a multiple of 16");
    p.variant = dim("variant", 0, 2);
    w->threads = dim("threads", 1, 256);
    if (static_cast<int64_t>(p.B) * p.Hq * ((p.Nq + p.Br - 1) / p.Br) > big)
      type_error(env, "B Hq Nq: too many query blocks");
    p.q = view(env, args, "q", p.B, p.Nq, p.Hq, p.D, w->refs);
    p.k = view(env, args, "k", p.B, p.Nk, p.Hk, p.D, w->refs);
    p.v = view(env, args, "v", p.B, p.Nk, p.Hk, p.D, w->refs);
    p.out = view(env, args, "out", p.B, p.Nq, p.Hq, p.D, w->refs);
    size_t n;
    p.lse = static_cast<float*>(
        typed(env, prop(env, args, "lse"), "lse", napi_float32_array, &n, w->refs));
    if (n != static_cast<size_t>(p.B) * p.Hq * p.Nq)
      type_error(env, "lse: expected B Hq Nq = " + std::to_string(static_cast<size_t>(p.B) * p.Hq * p.Nq) +
                          " elements, got " + std::to_string(n));
    // The mask, copied: lo and hi in [0, Nk], each non-decreasing (the kernel relies on it).
    for (const char* name : {"lo", "hi"}) {
      std::vector<napi_ref> tmp;
      const int32_t* src = static_cast<const int32_t*>(
          typed(env, prop(env, args, name), name, napi_int32_array, &n, tmp));
      for (napi_ref r : tmp) napi_delete_reference(env, r);
      if (n != static_cast<size_t>(p.Nq))
        type_error(env, std::string(name) + ": expected Nq = " + std::to_string(p.Nq) + " elements");
      auto& dst = name[0] == 'l' ? w->lo : w->hi;
      dst.assign(src, src + n);
      for (size_t i = 0; i < n; i++)
        if (dst[i] < 0 || dst[i] > p.Nk || (i > 0 && dst[i] < dst[i - 1]))
          type_error(env, std::string(name) + ": expected non-decreasing values in [0, Nk], element " +
                              std::to_string(i) + " is " + std::to_string(dst[i]));
    }
    p.lo = w->lo.data();
    p.hi = w->hi.data();
    w->data = addon_data(env);
    flashattn_cpu::forward_layout(p);
    napi_value promise;
    check(env, napi_create_promise(env, &w->deferred, &promise), "promise");
    if (!forward_prepare(*w)) {  // no memory for the scratch
      complete(env, napi_ok, w);
      return promise;
    }
    dispatch(env, w, [w](int t) { forward_body(*w, t); }, [w] { forward_finish(*w); }, execute);
    return promise;
  } catch (const Thrown&) {
    if (w->mem) forward_finish(*w);
    release(env, w);
    return nullptr;
  }
}

// ---- gemm

struct GemmWork : PoolCall {
  GemmParams p{};
  bool gemv = false;  // the small-M path: units of C columns, no packs (mem: op(A) copied when transposed)
  // gemm_prepare's: the packs (the cached buffer, or one of this call's own) and the units
  float* mem = nullptr;
  bool ownMem = false, cached = false;
  int packUnits = 0, blockUnits = 0;
  std::atomic<int> packNext{0}, packDone{0}, blockNext{0};
};

// Before the threads: K = 0 (C = bias, zeros, or unchanged with accumulate) and M or N = 0 are done
// here; else the packs are allocated. True when units are left to run (then gemm_finish after them).
bool gemm_prepare(GemmWork& w) {
  GemmParams& p = w.p;
  w.result = "none";
  if (p.M == 0 || p.N == 0) return false;
  if (p.K == 0) {
    if (p.accumulate) return false;
    for (int64_t i = 0; i < p.M; i++)
      for (int64_t j = 0; j < p.N; j++) p.c[i * p.N + j] = p.bias ? p.bias[j] : 0.0f;
    return false;
  }
  if (p.M <= flashattn_cpu::kGemvMaxM) {
    w.result = "gemv";
    w.gemv = true;
    if (p.a_cs != 1) {  // transA: op(A) (M, K) copied row-major (at most kGemvMaxM K floats)
      const size_t bytes = (static_cast<size_t>(p.M) * p.K * sizeof(float) + 63) / 64 * 64;
      w.mem = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (w.mem == nullptr) {
        w.oom = true;
        w.error = "cannot allocate " + std::to_string(bytes) + " bytes for op(A)";
        return false;
      }
      w.ownMem = true;
      for (int64_t i = 0; i < p.M; i++)
        for (int64_t k = 0; k < p.K; k++) w.mem[i * p.K + k] = p.a[i * p.a_rs + k * p.a_cs];
      p.a = w.mem;
      p.a_rs = p.K;
      p.a_cs = 1;
    }
    w.blockUnits = flashattn_cpu::gemv_units(p);
    return true;
  }
  w.result = "gemm";
  flashattn_cpu::gemm_layout(p);
  const size_t floats = flashattn_cpu::gemm_pack_floats(p);
  const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
  AddonData& d = *w.data;
  w.cached = !d.packBusy.exchange(true, std::memory_order_acquire);
  if (w.cached && d.packFloats >= floats) {
    w.mem = d.pack;
  } else {
    w.mem = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (w.mem == nullptr) {
      if (w.cached) d.packBusy.store(false, std::memory_order_release);
      w.cached = false;
      w.oom = true;
      w.error = "cannot allocate " + std::to_string(bytes) + " bytes of gemm packs";
      return false;
    }
    if (w.cached && bytes <= kPackCacheBytes) {
      std::free(d.pack);
      d.pack = w.mem;
      d.packFloats = bytes / sizeof(float);
    } else {
      if (w.cached) d.packBusy.store(false, std::memory_order_release);
      w.cached = false;
      w.ownMem = true;
    }
  }
  flashattn_cpu::gemm_set_packs(p, w.mem);
  w.packUnits = flashattn_cpu::gemm_pack_units(p);
  w.blockUnits = p.mBlocks * p.nBlocks;
  return true;
}

// One thread's share: pack units, then (once every pack is done) block units, from atomic counters.
void gemm_body(GemmWork& w) {
  if (w.gemv) {
    for (int u; (u = w.blockNext.fetch_add(1, std::memory_order_relaxed)) < w.blockUnits;)
      flashattn_cpu::gemv_block(w.p, u);
    return;
  }
  for (int u; (u = w.packNext.fetch_add(1, std::memory_order_relaxed)) < w.packUnits;) {
    flashattn_cpu::gemm_pack(w.p, u);
    w.packDone.fetch_add(1, std::memory_order_release);
  }
  while (w.packDone.load(std::memory_order_acquire) < w.packUnits) std::this_thread::yield();
  for (int u; (u = w.blockNext.fetch_add(1, std::memory_order_relaxed)) < w.blockUnits;)
    flashattn_cpu::gemm_block(w.p, u);
}

void gemm_finish(GemmWork& w) {
  if (w.ownMem) std::free(w.mem);
  if (w.cached) w.data->packBusy.store(false, std::memory_order_release);
  w.mem = nullptr;
  w.ownMem = w.cached = false;
}


// The way in when the pool is busy (another environment's call, or the forward): a libuv pool thread
// runs the units with the pool's run() (alone if it is still busy).
void gemm_execute(napi_env, void* data) {
  auto* w = static_cast<GemmWork*>(data);
  w->data->pool->run(w->threads, [w](int) { gemm_body(*w); });
  gemm_finish(*w);
}



bool boolean(napi_env env, napi_value v, const std::string& name) {
  napi_valuetype t;
  check(env, napi_typeof(env, v, &t), name.c_str());
  if (t != napi_boolean) type_error(env, name + ": expected a boolean");
  bool b;
  check(env, napi_get_value_bool(env, v, &b), name.c_str());
  return b;
}

// A Float32Array of exactly n elements (refs keeps it alive until the call ends).
float* f32_exact(napi_env env, napi_value args, const char* name, int64_t n, const char* what,
                 std::vector<napi_ref>& refs) {
  size_t length;
  float* data = static_cast<float*>(
      typed(env, prop(env, args, name), name, napi_float32_array, &length, refs));
  if (static_cast<int64_t>(length) != n)
    type_error(env, std::string(name) + ": expected " + what + " = " + std::to_string(n) +
                        " elements, got " + std::to_string(length));
  return data;
}

// gemm(args) / gemmSync(args): args = { M, N, K, transA, transB, accumulate, a, b, c, bias (a
// Float32Array or null), threads, variant }. a: (M, K) or (K, M) with transA; b: (K, N) or (N, K) with
// transB; c: (M, N); bias: (N), not with accumulate.
void parse_gemm(napi_env env, napi_callback_info info, GemmWork& w, const char* fn) {
  size_t argc = 1;
  napi_value args;
  check(env, napi_get_cb_info(env, info, &argc, &args, nullptr, nullptr), "arguments");
  napi_valuetype t = napi_undefined;
  if (argc >= 1) check(env, napi_typeof(env, args, &t), "args");
  if (argc < 1 || t != napi_object) type_error(env, std::string(fn) + "(args): expected an object");
  if (!cpu_has_avx2_fma()) type_error(env, std::string(fn) + ": this CPU lacks AVX2 or FMA");
  GemmParams& p = w.p;
  const int64_t big = (int64_t{1} << 31) - 1;
  auto dim = [&](const char* n, int64_t lo, int64_t hi) {
    return static_cast<int>(integer(env, prop(env, args, n), n, lo, hi));
  };
  p.M = dim("M", 0, big);
  p.N = dim("N", 0, big);
  p.K = dim("K", 0, big);
  const bool transA = boolean(env, prop(env, args, "transA"), "transA");
  const bool transB = boolean(env, prop(env, args, "transB"), "transB");
  p.accumulate = boolean(env, prop(env, args, "accumulate"), "accumulate");
  w.threads = dim("threads", 1, 256);
  p.variant = dim("variant", 0, 3);
  const int64_t M = p.M, N = p.N, K = p.K;
  if (M * K > (int64_t{1} << 40) || K * N > (int64_t{1} << 40) || M * N > (int64_t{1} << 40))
    type_error(env, "M N K: operands too large");
  p.a = f32_exact(env, args, "a", M * K, "M K", w.refs);
  p.b = f32_exact(env, args, "b", K * N, "K N", w.refs);
  p.c = f32_exact(env, args, "c", M * N, "M N", w.refs);
  napi_value bias = prop(env, args, "bias");
  napi_valuetype bt;
  check(env, napi_typeof(env, bias, &bt), "bias");
  p.bias = nullptr;
  if (bt != napi_null && bt != napi_undefined) {
    if (p.accumulate) type_error(env, "bias: expected null with accumulate");
    p.bias = f32_exact(env, args, "bias", N, "N", w.refs);
  }
  // op(A)(i, k) = a[i a_rs + k a_cs]; op(B)(k, j) = b[k b_rs + j b_cs]
  p.a_rs = transA ? 1 : K;
  p.a_cs = transA ? M : 1;
  p.b_rs = transB ? 1 : N;
  p.b_cs = transB ? K : 1;
  w.data = addon_data(env);
}


napi_value gemm(napi_env env, napi_callback_info info) {
  auto* w = new GemmWork();
  w->what = "gemm";
  try {
    parse_gemm(env, info, *w, "gemm");
    napi_value promise;
    check(env, napi_create_promise(env, &w->deferred, &promise), "promise");
    if (!gemm_prepare(*w)) {  // nothing to run on threads (or no memory for the packs)
      complete(env, napi_ok, w);
      return promise;
    }
    dispatch(env, w, [w](int) { gemm_body(*w); }, [w] { gemm_finish(*w); }, gemm_execute);
    return promise;
  } catch (const Thrown&) {
    if (w->mem) gemm_finish(*w);
    release(env, w);
    return nullptr;
  }
}

napi_value gemm_sync(napi_env env, napi_callback_info info) {
  auto* w = new GemmWork();
  w->what = "gemm";
  try {
    parse_gemm(env, info, *w, "gemmSync");
    if (gemm_prepare(*w)) {
      w->data->pool->run(w->threads, [w](int) { gemm_body(*w); });
      gemm_finish(*w);
    }
    napi_value kernel = nullptr;
    if (!w->error.empty()) napi_throw(env, failure(env, "gemm", w->error, w->oom));
    else napi_create_string_utf8(env, w->result, NAPI_AUTO_LENGTH, &kernel);
    release(env, w);
    return kernel;
  } catch (const Thrown&) {
    release(env, w);
    return nullptr;
  }
}

napi_value cpu_features(napi_env env, napi_callback_info) {
  napi_value obj, t;
  napi_create_object(env, &obj);
  bool avx2 = false, fma = false;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  avx2 = __builtin_cpu_supports("avx2");
  fma = __builtin_cpu_supports("fma");
#endif
  napi_get_boolean(env, avx2, &t);
  napi_set_named_property(env, obj, "avx2", t);
  napi_get_boolean(env, fma, &t);
  napi_set_named_property(env, obj, "fma", t);
  return obj;
}

}  // namespace

NAPI_MODULE_INIT() {
  auto* data = new (std::nothrow) AddonData();
  napi_value doneName;
  if (data == nullptr ||
      napi_set_instance_data(
          env, data, [](napi_env, void* d, void*) { delete static_cast<AddonData*>(d); },
          nullptr) != napi_ok ||
      napi_create_string_utf8(env, "flashattn_cpu_done", NAPI_AUTO_LENGTH, &doneName) != napi_ok ||
      napi_create_threadsafe_function(env, nullptr, nullptr, doneName, 0, 1, nullptr, nullptr, nullptr,
                                      pool_done, &data->done) != napi_ok ||
      napi_unref_threadsafe_function(env, data->done) != napi_ok ||
      napi_add_env_cleanup_hook(
          env, [](void* d) { static_cast<AddonData*>(d)->pool.reset(); }, data) != napi_ok) {
    napi_throw_error(env, nullptr, "flashattn cpu addon: cannot set up its instance data");
    return nullptr;
  }
  napi_value fn, maxM;
  napi_create_int32(env, flashattn_cpu::kGemvMaxM, &maxM);
  napi_set_named_property(env, exports, "gemvMaxM", maxM);
  napi_create_function(env, "gemm", NAPI_AUTO_LENGTH, gemm, nullptr, &fn);
  napi_set_named_property(env, exports, "gemm", fn);
  napi_create_function(env, "gemmSync", NAPI_AUTO_LENGTH, gemm_sync, nullptr, &fn);
  napi_set_named_property(env, exports, "gemmSync", fn);
  napi_create_function(env, "forward", NAPI_AUTO_LENGTH, forward, nullptr, &fn);
  napi_set_named_property(env, exports, "forward", fn);
  napi_create_function(env, "cpuFeatures", NAPI_AUTO_LENGTH, cpu_features, nullptr, &fn);
  napi_set_named_property(env, exports, "cpuFeatures", fn);
  return exports;
}

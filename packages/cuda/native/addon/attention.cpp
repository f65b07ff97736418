// Entry points of the attention kernels: forward, backward (enqueued on the device's stream) and benchmark
// (a Promise of per-iteration milliseconds). Arguments are one object: the problem shape, device pointers to
// element (0, 0, 0, 0) of each operand, and each operand's [batch, row, head] strides in elements (optional:
// contiguous (B, N, H, D) when absent). See include/flash_params.h.
#include <cuda_runtime.h>
#include <node_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../include/launchers.h"
#include "errors.h"
#include "jobs.h"
#include "registry.h"
#include "timing.h"
#include "workspace.h"

namespace addon {
namespace {

bool read_shape(napi_env env, napi_value o, flash::AttnShape* s, int64_t* dtype) {
  int64_t B, Hq, Hk, Nq, Nk, D, wl, wr;
  double scale;
  if (!prop_i64(env, o, "dtype", dtype) || !prop_i64(env, o, "batch", &B) || !prop_i64(env, o, "nheadsQ", &Hq) ||
      !prop_i64(env, o, "nheadsK", &Hk) || !prop_i64(env, o, "seqlenQ", &Nq) || !prop_i64(env, o, "seqlenK", &Nk) ||
      !prop_i64(env, o, "headDim", &D) || !prop_f64(env, o, "softmaxScale", &scale) ||
      !prop_i64(env, o, "windowLeft", &wl) || !prop_i64(env, o, "windowRight", &wr))
    return false;
  if (*dtype != flash::kFloat32 && *dtype != flash::kFloat16 && *dtype != flash::kBFloat16) {
    throw_type(env, "dtype must be float32 (0), float16 (1) or bfloat16 (2)");
    return false;
  }
  if (B < 1 || Hq < 1 || Hk < 1 || Nq < 1 || Nk < 1 || Hq % Hk != 0 || B > 65535 || Hq > 65535 || Nq > INT32_MAX / 2 ||
      Nk > INT32_MAX / 2) {
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

// Operand `name`: its pointer and strides ([name]Strides, default contiguous (B, N, H, D) with H heads). The
// 16-bit kernels load and store 16 bytes per row chunk, so the pointer must be 16-byte aligned and the strides
// multiples of 8 elements; anything else is a TypeError here (the TypeScript layer stages such views instead).
// The float32 kernels load and store single floats: any 4-byte aligned pointer and any non-negative strides.
bool read_operand(napi_env env, napi_value o, int64_t dtype, const char* name, int N, int H, int D, void** ptr,
                  int64_t* sb, int64_t* sr, int64_t* sh) {
  if (!prop_ptr(env, o, name, ptr)) return false;
  const std::string key = std::string(name) + "Strides";
  int64_t st[3] = {(int64_t)N * H * D, (int64_t)H * D, D};
  if (has_prop(env, o, key.c_str()) && !prop_i64s(env, o, key.c_str(), st, 3)) return false;
  const bool f32 = dtype == flash::kFloat32;
  const uintptr_t align = f32 ? 4 : 16;
  if (!*ptr || reinterpret_cast<uintptr_t>(*ptr) % align != 0) {
    throw_type(env, std::string(name) + (f32 ? " must be a 4-byte aligned device pointer"
                                             : " must be a 16-byte aligned device pointer"));
    return false;
  }
  for (int i = 0; i < 3; ++i) {
    if (st[i] < 0 || (!f32 && st[i] % 8 != 0)) {
      throw_type(env, key + (f32 ? " must be non-negative" : " must be non-negative multiples of 8 elements"));
      return false;
    }
  }
  *sb = st[0];
  *sr = st[1];
  *sh = st[2];
  return true;
}

// testFault (optional, test-only): a deliberately broken float32 kernel (include/flash_f32.cuh), 0 = none.
bool read_fault(napi_env env, napi_value o, int64_t dtype, int* fault) {
  int64_t f = 0;
  if (has_prop(env, o, "testFault") && !prop_i64(env, o, "testFault", &f)) return false;
  if (f < 0 || f > 1 || (f != 0 && dtype != flash::kFloat32)) {
    throw_type(env, "testFault must be 0, or 1 (drop the last key block) with dtype float32 (0)");
    return false;
  }
  *fault = (int)f;
  return true;
}

bool read_fwd(napi_env env, napi_value o, flash::FwdParams* p, int64_t* dtype, int* fault) {
  void *q, *k, *v, *out, *lse;
  if (!read_shape(env, o, &p->s, dtype) || !read_fault(env, o, *dtype, fault)) return false;
  const flash::AttnShape& s = p->s;
  if (!read_operand(env, o, *dtype, "q", s.Nq, s.Hq, s.D, &q, &p->q_batch_stride, &p->q_row_stride, &p->q_head_stride) ||
      !read_operand(env, o, *dtype, "k", s.Nk, s.Hk, s.D, &k, &p->k_batch_stride, &p->k_row_stride, &p->k_head_stride) ||
      !read_operand(env, o, *dtype, "v", s.Nk, s.Hk, s.D, &v, &p->v_batch_stride, &p->v_row_stride, &p->v_head_stride) ||
      !read_operand(env, o, *dtype, "out", s.Nq, s.Hq, s.D, &out, &p->o_batch_stride, &p->o_row_stride, &p->o_head_stride) ||
      !prop_ptr(env, o, "lse", &lse))
    return false;
  if (!lse) {
    throw_type(env, "lse must be a device pointer");
    return false;
  }
  p->q = q; p->k = k; p->v = v; p->o = out; p->lse = static_cast<float*>(lse);
  return true;
}

struct BwdArgs {
  flash::BwdParams p;
  int64_t dtype;
  bool deterministic;  // float32: always deterministic (no atomics)
  int fault;
};

bool read_bwd(napi_env env, napi_value o, BwdArgs* a) {
  void *q, *k, *v, *out, *dout, *lse, *dq, *dk, *dv;
  flash::BwdParams& p = a->p;
  if (!read_shape(env, o, &p.s, &a->dtype) || !read_fault(env, o, a->dtype, &a->fault)) return false;
  const flash::AttnShape& s = p.s;
  if (!read_operand(env, o, a->dtype, "q", s.Nq, s.Hq, s.D, &q, &p.q_batch_stride, &p.q_row_stride, &p.q_head_stride) ||
      !read_operand(env, o, a->dtype, "k", s.Nk, s.Hk, s.D, &k, &p.k_batch_stride, &p.k_row_stride, &p.k_head_stride) ||
      !read_operand(env, o, a->dtype, "v", s.Nk, s.Hk, s.D, &v, &p.v_batch_stride, &p.v_row_stride, &p.v_head_stride) ||
      !read_operand(env, o, a->dtype, "out", s.Nq, s.Hq, s.D, &out, &p.o_batch_stride, &p.o_row_stride, &p.o_head_stride) ||
      !read_operand(env, o, a->dtype, "dout", s.Nq, s.Hq, s.D, &dout, &p.do_batch_stride, &p.do_row_stride, &p.do_head_stride) ||
      !read_operand(env, o, a->dtype, "dq", s.Nq, s.Hq, s.D, &dq, &p.dq_batch_stride, &p.dq_row_stride, &p.dq_head_stride) ||
      !read_operand(env, o, a->dtype, "dk", s.Nk, s.Hk, s.D, &dk, &p.dk_batch_stride, &p.dk_row_stride, &p.dk_head_stride) ||
      !read_operand(env, o, a->dtype, "dv", s.Nk, s.Hk, s.D, &dv, &p.dv_batch_stride, &p.dv_row_stride, &p.dv_head_stride) ||
      !prop_ptr(env, o, "lse", &lse) || !prop_bool(env, o, "deterministic", &a->deterministic))
    return false;
  if (!lse) {
    throw_type(env, "lse must be a device pointer");
    return false;
  }
  p.q = q; p.k = k; p.v = v; p.o = out; p.dout = dout; p.lse = static_cast<const float*>(lse);
  p.dq = dq; p.dk = dk; p.dv = dv;
  return true;
}

// Backward with its workspace taken from the stream-ordered pool and returned right after.
cudaError_t run_backward(BwdArgs a, cudaStream_t stream, std::string* where) {
  flash::BwdParams& p = a.p;
  const flash::AttnShape& s = p.s;
  // float32: D_i only (its dK/dV and dQ kernels write the outputs directly, GQA groups summed in the dK/dV block).
  const bool f32 = a.dtype == flash::kFloat32;
  const size_t rowsum = sizeof(float) * (size_t)s.B * s.Hq * s.Nq;                  // D_i (B, Hq, Nq)
  const size_t dqacc = f32 ? 0 : sizeof(float) * (size_t)s.B * s.Nq * s.Hq * s.D;   // (B, Nq, Hq, D)
  const size_t expanded =
      !f32 && s.Hq != s.Hk ? sizeof(float) * (size_t)s.B * s.Nk * s.Hq * s.D : 0;  // (B, Nk, Hq, D)
  const int br = flash::bwd_block_q(s.D);
  const size_t sem = !f32 && a.deterministic ? sizeof(int) * (size_t)s.B * s.Hq * ((s.Nq + br - 1) / br) : 0;
  const size_t total = align256(rowsum) + align256(dqacc) + 2 * align256(expanded) + align256(sem);
  char* ws = nullptr;
  cudaError_t err = workspace_alloc(total, stream, &ws, "backward workspace", where);
  if (err != cudaSuccess) return err;
  char* cur = ws;
  p.d_rowsum = reinterpret_cast<float*>(cur); cur += align256(rowsum);
  p.dq_accum = dqacc ? reinterpret_cast<float*>(cur) : nullptr; cur += align256(dqacc);
  p.dk_expanded = expanded ? reinterpret_cast<float*>(cur) : nullptr; cur += align256(expanded);
  p.dv_expanded = expanded ? reinterpret_cast<float*>(cur) : nullptr; cur += align256(expanded);
  p.dq_semaphore = sem ? reinterpret_cast<int*>(cur) : nullptr;
  err = flash::run_flash_bwd((int)a.dtype, p, stream, a.fault);
  if (err != cudaSuccess) *where = "backward kernel launch";
  return workspace_free(ws, stream, err, "backward workspace", where);
}

napi_value Forward(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev, dtype;
  int fault = 0;
  flash::FwdParams p{};
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[0], &dev, "device") ||
      !read_fwd(env, argv[1], &p, &dtype, &fault))
    return nullptr;
  cudaStream_t stream;
  cudaError_t err = device_stream((int)dev, &stream);
  if (err == cudaSuccess) err = flash::run_flash_fwd((int)dtype, p, stream, fault);
  if (err != cudaSuccess) napi_throw(env, make_error(env, err, "forward kernel launch"));
  return nullptr;
}

napi_value Backward(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev;
  BwdArgs a{};
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
  int64_t dev, warmup, iters, dtype = 0;
  int ffault = 0;
  if (!get_args(env, info, 5, argv) || !get_i64(env, argv[0], &dev, "device") ||
      !get_i64(env, argv[3], &warmup, "warmup") || !get_i64(env, argv[4], &iters, "iters"))
    return nullptr;
  napi_valuetype t1, t2;
  napi_typeof(env, argv[1], &t1);
  napi_typeof(env, argv[2], &t2);
  flash::FwdParams fp{};
  BwdArgs ba{};
  const bool has_f = t1 == napi_object, has_b = t2 == napi_object;
  if (has_f && !read_fwd(env, argv[1], &fp, &dtype, &ffault)) return nullptr;
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
        e = flash::run_flash_fwd((int)fdtype, fp, stream, ffault);
        if (e != cudaSuccess) { where = "forward launch"; return e; }
      }
      if (has_b) e = run_backward(ba, stream, &where);
      return e;
    };
    std::vector<double> times;
    const CudaFailure f = time_loop(stream, warmup, iters, once, &times);
    if (f.err != cudaSuccess) return {f.err, where.empty() ? f.where : where};  // a launch names itself
    jp->values = times;
    return {cudaSuccess, ""};
  };
  return queue_job(env, job, "flashattn.benchmark");
}

}  // namespace

void add_attention_functions(Exports& e) {
  add_function(e, "forward", Forward);
  add_function(e, "backward", Backward);
  add_function(e, "benchmark", Benchmark);
}

}  // namespace addon

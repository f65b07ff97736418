// dev/cuda harness (llm.c's dev/cuda manner): every retired backward variant beside the production kernels, each
// checked against a float64 CPU reference on fresh random inputs and timed with CUDA events. Not part of the
// addon build; `bash dev/cuda/build.sh` makes ./bwd_dkdv_variants, run on a GPU:
//   ./bwd_dkdv_variants [D=64|128] [--seed N]
// Variants (the old FLASHATTN_CUDA_BWD values; README.md's tuning log has their H100 figures):
//   16x1  flash_bwd_dkdv (16 keys per warp, the production kernel for D = 32 / 96 / 256)
//   2x4   w2x4, Br = 64                       2x4s  w2x4, P^T / dS^T only from shared memory
//   2x4b  w2x4, Br = 128 at D = 64 (= sm80)   2x4r  2x4b with rotated Q-block order
//   2x4c  2x4b with rolled loops              prod  the production backward (wgmma on sm_90a, else sm80)
// Check rule: each variant's max |error| against the float64 reference (per output dq, dk, dv) must be at most
// 2x the production kernel's error + u_bf16 * max |reference| (the production kernel itself passes the
// conformance suite's rule, so this bounds every variant by the same rule up to a factor 2).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "../../native/include/launchers.h"
#include "../../native/kernels/flash_bwd_dkdv.cuh"
#include "../../native/kernels/flash_bwd_dkdv_sm80.cuh"
#include "../../native/kernels/flash_fwd.cuh"
#include "flash_bwd_dkdv_w2x4_variants.cuh"

using T = __nv_bfloat16;
using namespace flash;

#define CK(x)                                                                                   \
  do {                                                                                          \
    cudaError_t e_ = (x);                                                                       \
    if (e_ != cudaSuccess) {                                                                    \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

struct Problem {
  int B, N, H, D;
  bool causal;
};

static float bf(float x) { return __bfloat162float(__float2bfloat16(x)); }

// Float64 reference of Algorithm 2 on the bf16-rounded inputs (all (B, N, H, D), Nq = Nk, Hq = Hk).
static void reference(const Problem& P, const std::vector<float>& q, const std::vector<float>& k,
                      const std::vector<float>& v, const std::vector<float>& dO, std::vector<double>& dq,
                      std::vector<double>& dk, std::vector<double>& dv) {
  const int N = P.N, H = P.H, D = P.D;
  const double scale = 1.0 / std::sqrt((double)D);
  auto at = [&](int b, int i, int h) { return (((size_t)b * N + i) * H + h) * D; };
  dq.assign(q.size(), 0);
  dk.assign(q.size(), 0);
  dv.assign(q.size(), 0);
  std::vector<double> p(N), dp(N);
  for (int b = 0; b < P.B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < N; ++i) {
        const int jn = P.causal ? i + 1 : N;
        double m = -INFINITY, l = 0, di = 0;
        for (int j = 0; j < jn; ++j) {
          double s = 0;
          for (int d = 0; d < D; ++d) s += (double)q[at(b, i, h) + d] * k[at(b, j, h) + d];
          p[j] = s * scale;
          m = std::max(m, p[j]);
        }
        for (int j = 0; j < jn; ++j) l += (p[j] = std::exp(p[j] - m));
        for (int j = 0; j < jn; ++j) p[j] /= l;
        // D_i = rowsum(dO o O) = sum_j P_ij (dO_i . V_j)
        for (int j = 0; j < jn; ++j) {
          double s = 0;
          for (int d = 0; d < D; ++d) s += (double)dO[at(b, i, h) + d] * v[at(b, j, h) + d];
          dp[j] = s;
          di += p[j] * s;
        }
        for (int j = 0; j < jn; ++j) {
          const double ds = p[j] * (dp[j] - di) * scale;
          for (int d = 0; d < D; ++d) {
            dq[at(b, i, h) + d] += ds * k[at(b, j, h) + d];
            dk[at(b, j, h) + d] += ds * q[at(b, i, h) + d];
            dv[at(b, j, h) + d] += p[j] * dO[at(b, i, h) + d];
          }
        }
      }
}

struct Device {
  T *q, *k, *v, *o, *dO, *dq, *dk, *dv;
  float *lse, *di, *dqacc;
};

static BwdParams params(const Problem& P, const Device& d) {
  BwdParams p{};
  p.s = AttnShape{P.B, P.H, P.H, P.N, P.N, P.D, (float)(1.0 / std::sqrt((double)P.D)),
                  (float)(1.4426950408889634 / std::sqrt((double)P.D)), -1, P.causal ? 0 : -1};
  p.q = d.q; p.k = d.k; p.v = d.v; p.o = d.o; p.dout = d.dO; p.lse = d.lse;
  p.dq = d.dq; p.dk = d.dk; p.dv = d.dv;
  const int64_t sb = (int64_t)P.N * P.H * P.D, sr = (int64_t)P.H * P.D, sh = P.D;
  for (int64_t* s : {&p.q_batch_stride, &p.k_batch_stride, &p.v_batch_stride, &p.o_batch_stride, &p.do_batch_stride,
                     &p.dq_batch_stride, &p.dk_batch_stride, &p.dv_batch_stride}) *s = sb;
  for (int64_t* s : {&p.q_row_stride, &p.k_row_stride, &p.v_row_stride, &p.o_row_stride, &p.do_row_stride,
                     &p.dq_row_stride, &p.dk_row_stride, &p.dv_row_stride}) *s = sr;
  for (int64_t* s : {&p.q_head_stride, &p.k_head_stride, &p.v_head_stride, &p.o_head_stride, &p.do_head_stride,
                     &p.dq_head_stride, &p.dk_head_stride, &p.dv_head_stride}) *s = sh;
  p.d_rowsum = d.di;
  p.dq_accum = d.dqacc;
  return p;
}

using Launch = std::function<cudaError_t(const BwdParams&, cudaStream_t)>;

// The whole backward around one dK/dV/dQ kernel, as dispatch.cu's run_flash_bwd does it.
static cudaError_t backward(const Launch& dkdv, const BwdParams& p, cudaStream_t st) {
  cudaError_t e = cudaMemsetAsync(p.dq_accum, 0, sizeof(float) * (size_t)p.s.B * p.s.Nq * p.s.Hq * p.s.D, st);
  if (e == cudaSuccess) e = launch_bwd_preprocess(kBFloat16, p, st);
  if (e == cudaSuccess) e = dkdv(p, st);
  if (e == cudaSuccess) e = launch_bwd_dq_convert(kBFloat16, p, st);
  return e;
}

template <int D>
static std::vector<std::pair<std::string, Launch>> variants() {
  std::vector<std::pair<std::string, Launch>> v = {
      {"prod", [](const BwdParams& p, cudaStream_t s) {
         return wgmma_available() ? run_bwd_wgmma(kBFloat16, p, s) : launch_flash_bwd_dkdv_sm80<T, D>(p, s);
       }},
      {"16x1", launch_flash_bwd_dkdv<T, D>},
      {"2x4", launch_flash_bwd_dkdv_w2x4<T, D, 64, true>},
      {"2x4s", launch_flash_bwd_dkdv_w2x4<T, D, 64, false>},
      {"2x4b", launch_flash_bwd_dkdv_w2x4<T, D, D == 64 ? 128 : 64, true>},
      {"2x4r", launch_flash_bwd_dkdv_w2x4<T, D, D == 64 ? 128 : 64, true, true>},
      {"2x4c", launch_flash_bwd_dkdv_w2x4<T, D, D == 64 ? 128 : 64, true, false, true>},
  };
  return v;
}

static Device alloc(const Problem& P) {
  const size_t n = (size_t)P.B * P.N * P.H * P.D;
  Device d{};
  for (T** p : {&d.q, &d.k, &d.v, &d.o, &d.dO, &d.dq, &d.dk, &d.dv}) CK(cudaMalloc(p, n * sizeof(T)));
  CK(cudaMalloc(&d.lse, sizeof(float) * P.B * P.H * P.N));
  CK(cudaMalloc(&d.di, sizeof(float) * P.B * P.H * P.N));
  CK(cudaMalloc(&d.dqacc, sizeof(float) * n));
  return d;
}

static void release(Device& d) {
  for (T* p : {d.q, d.k, d.v, d.o, d.dO, d.dq, d.dk, d.dv}) cudaFree(p);
  cudaFree(d.lse);
  cudaFree(d.di);
  cudaFree(d.dqacc);
}

// Random bf16 inputs (host copies as the rounded floats), forward for out and lse.
static void inputs(const Problem& P, Device& d, std::mt19937& rng, std::vector<float>* host) {
  const size_t n = (size_t)P.B * P.N * P.H * P.D;
  std::normal_distribution<float> nd;
  std::vector<T> buf(n);
  T* dst[4] = {d.q, d.k, d.v, d.dO};
  for (int t = 0; t < 4; ++t) {
    for (size_t i = 0; i < n; ++i) {
      buf[i] = __float2bfloat16(nd(rng));
      if (host) host[t].push_back(__bfloat162float(buf[i]));
    }
    CK(cudaMemcpy(dst[t], buf.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  FwdParams f{};
  const BwdParams b = params(P, d);
  f.s = b.s;
  f.q = d.q; f.k = d.k; f.v = d.v; f.o = d.o; f.lse = d.lse;
  f.q_batch_stride = f.k_batch_stride = f.v_batch_stride = f.o_batch_stride = b.q_batch_stride;
  f.q_row_stride = f.k_row_stride = f.v_row_stride = f.o_row_stride = b.q_row_stride;
  f.q_head_stride = f.k_head_stride = f.v_head_stride = f.o_head_stride = b.q_head_stride;
  CK((P.D == 64 ? launch_flash_fwd<T, 64>(f, 0) : launch_flash_fwd<T, 128>(f, 0)));
  CK(cudaDeviceSynchronize());
}

static std::vector<float> download(const T* p, size_t n) {
  std::vector<T> b(n);
  CK(cudaMemcpy(b.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
  std::vector<float> f(n);
  for (size_t i = 0; i < n; ++i) f[i] = __bfloat162float(b[i]);
  return f;
}

template <int D>
static int run(unsigned seed) {
  int bad = 0;
  std::mt19937 rng(seed);
  // Check: a small problem against the float64 reference, causal and not, ragged N (not a multiple of 64 / 128).
  for (bool causal : {false, true}) {
    const Problem P{2, 333, 2, D, causal};
    Device d = alloc(P);
    std::vector<float> host[4];
    inputs(P, d, rng, host);
    std::vector<double> rq, rk, rv;
    reference(P, host[0], host[1], host[2], host[3], rq, rk, rv);
    const size_t n = rq.size();
    double prod_err[3] = {0, 0, 0};
    for (const auto& [name, launch] : variants<D>()) {
      CK(backward(launch, params(P, d), 0));
      CK(cudaDeviceSynchronize());
      const std::vector<double>* refs[3] = {&rq, &rk, &rv};
      const T* outs[3] = {d.dq, d.dk, d.dv};
      std::string line;
      bool ok = true;
      for (int o = 0; o < 3; ++o) {
        const std::vector<float> got = download(outs[o], n);
        double err = 0, mag = 0;
        for (size_t i = 0; i < n; ++i) {
          err = std::max(err, std::fabs(got[i] - (*refs[o])[i]));
          mag = std::max(mag, std::fabs((*refs[o])[i]));
        }
        if (name == "prod") prod_err[o] = err;
        const double allowed = 2 * prod_err[o] + std::ldexp(1.0, -8) * mag;
        ok = ok && std::isfinite(err) && err <= allowed;
        char buf[96];
        std::snprintf(buf, sizeof buf, " d%c %.2e (%.2fx prod)", "qkv"[o], err, err / std::max(prod_err[o], 1e-30));
        line += buf;
      }
      std::printf("check D=%d causal=%d %-5s%s %s\n", D, causal, name.c_str(), line.c_str(), ok ? "ok" : "FAIL");
      bad += !ok;
    }
    release(d);
  }
  // Benchmark: B = 4, N = 4096, H = 2048 / D, bf16 (the README's quick shapes), causal and not.
  for (bool causal : {false, true}) {
    const Problem P{4, 4096, 2048 / D, D, causal};
    Device d = alloc(P);
    inputs(P, d, rng, nullptr);
    const double flops = 2.5 * 4.0 * P.B * P.H * (double)P.N * P.N * D / (causal ? 2 : 1);
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (const auto& [name, launch] : variants<D>()) {
      const BwdParams p = params(P, d);
      for (int i = 0; i < 3; ++i) CK(backward(launch, p, 0));
      std::vector<float> ms;
      for (int i = 0; i < 20; ++i) {
        CK(cudaEventRecord(e0));
        CK(backward(launch, p, 0));
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float t = 0;
        CK(cudaEventElapsedTime(&t, e0, e1));
        ms.push_back(t);
      }
      std::sort(ms.begin(), ms.end());
      std::printf("bench D=%d causal=%d N=%d %-5s %7.3f ms  %6.1f TFLOP/s\n", D, causal, P.N, name.c_str(), ms[10],
                  flops / ms[10] / 1e9);
    }
    release(d);
  }
  return bad;
}

int main(int argc, char** argv) {
  int D = 64;
  unsigned seed = std::random_device{}();
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "D=", 2) == 0) D = std::atoi(argv[i] + 2);
    else if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = (unsigned)std::strtoul(argv[++i], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: %s [D=64|128] [--seed N]\n", argv[0]);
      return 2;
    }
  }
  std::printf("seed %u\n", seed);
  const int bad = D == 64 ? run<64>(seed) : D == 128 ? run<128>(seed) : -1;
  if (bad < 0) {
    std::fprintf(stderr, "D must be 64 or 128\n");
    return 2;
  }
  std::printf("%d variant check(s) failed\n", bad);
  return bad == 0 ? 0 : 1;
}

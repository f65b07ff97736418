// dev/cuda harness for the row and elementwise training ops (native/ops: layernorm_forward, layernorm_backward_dinp,
// layernorm_backward_weights + sum_partials_into, column_sums_partial, gelu_forward, gelu_backward,
// residual_forward), llm.c's dev/cuda manner. Each op runs twice through its launcher on the same data: on 16-byte
// aligned buffers (the vectorised fast path where the shape allows) and on buffers offset by one element (the scalar
// fallback, the former kernels), both checked against a float64 CPU reference on fresh random inputs, and the fast
// path run twice to check it is bitwise deterministic. Then both paths are timed with CUDA events at GPT-2 124M's
// shapes (B T = 16384, C = 768, 4C = 3072, bf16). Not part of the addon build; `bash dev/cuda/build.sh` makes
// ./rowops_check, run on a GPU:  ./rowops_check [--seed N] [--iters N]
// Check rule (conformance's): the fast path's max |error| against float64 must be at most 2x the scalar path's
// (a naive same-precision implementation that passes the ops conformance suite) + u * max |reference|, u the
// output dtype's unit roundoff.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
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

#include "../../native/ops/launchers.h"

#define CK(x)                                                                                   \
  do {                                                                                          \
    cudaError_t e_ = (x);                                                                       \
    if (e_ != cudaSuccess) {                                                                    \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

namespace {

std::mt19937_64 rng;
int failures = 0;

template <typename T>
struct DT;
template <>
struct DT<float> {
  static constexpr int id = 0;
  static constexpr double u = 5.96e-8;  // 2^-24
  static const char* name() { return "f32"; }
  static float to(float x) { return x; }
  static float from(float x) { return x; }
};
template <>
struct DT<__half> {
  static constexpr int id = 1;
  static constexpr double u = 4.88e-4;  // 2^-11
  static const char* name() { return "f16"; }
  static __half to(float x) { return __float2half_rn(x); }
  static float from(__half x) { return __half2float(x); }
};
template <>
struct DT<__nv_bfloat16> {
  static constexpr int id = 2;
  static constexpr double u = 3.91e-3;  // 2^-8
  static const char* name() { return "bf16"; }
  static __nv_bfloat16 to(float x) { return __float2bfloat16_rn(x); }
  static float from(__nv_bfloat16 x) { return __bfloat162float(x); }
};

// Random values rounded to T, returned as float (what the device sees).
template <typename T>
std::vector<float> random_values(size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = DT<T>::from(DT<T>::to(d(rng)));
  return v;
}

// Device copy of h in T; offset 1 makes every pointer 2 or 4 bytes off 16-byte alignment (the scalar path).
template <typename T>
T* upload(const std::vector<float>& h, int offset) {
  T* base;
  CK(cudaMalloc(&base, (h.size() + 16) * sizeof(T)));
  std::vector<T> t(h.size());
  for (size_t i = 0; i < h.size(); ++i) t[i] = DT<T>::to(h[i]);
  CK(cudaMemcpy(base + offset, t.data(), t.size() * sizeof(T), cudaMemcpyHostToDevice));
  return base + offset;
}
template <typename T>
std::vector<float> download(const T* d, size_t n) {
  std::vector<T> t(n);
  CK(cudaMemcpy(t.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  std::vector<float> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = DT<T>::from(t[i]);
  return h;
}
template <typename T>
std::vector<unsigned char> raw(const T* d, size_t n) {
  std::vector<unsigned char> b(n * sizeof(T));
  CK(cudaMemcpy(b.data(), d, b.size(), cudaMemcpyDeviceToHost));
  return b;
}
void free_offset(void* p) { CK(cudaFree(reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t(15)))); }

double max_err(const std::vector<float>& got, const std::vector<double>& ref) {
  double e = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs((double)got[i] - ref[i]);
    if (!(d <= e)) e = d;  // NaN propagates
  }
  return e;
}
double max_abs(const std::vector<double>& ref) {
  double m = 0;
  for (double x : ref) m = std::max(m, std::fabs(x));
  return m;
}

void judge(const std::string& what, double u, double err_vec, double err_scalar, double ref_max, bool deterministic) {
  const double bound = 2 * err_scalar + u * ref_max;
  const bool ok = err_vec <= bound && deterministic;
  if (!ok) ++failures;
  std::printf("%-4s %-44s fast %.3e scalar %.3e bound %.3e %s%s\n", ok ? "ok" : "FAIL", what.c_str(), err_vec,
              err_scalar, bound, deterministic ? "" : "NONDETERMINISTIC ", ok ? "" : "<--");
}

// ---- float64 references (core's ops-reference formulas) ----
void ref_layernorm(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b, int64_t N,
                   int64_t C, std::vector<double>& out, std::vector<double>& mean, std::vector<double>& rstd) {
  out.assign(N * C, 0);
  mean.assign(N, 0);
  rstd.assign(N, 0);
  for (int64_t r = 0; r < N; ++r) {
    double m = 0, v = 0;
    for (int64_t c = 0; c < C; ++c) m += x[r * C + c];
    m /= C;
    for (int64_t c = 0; c < C; ++c) v += (x[r * C + c] - m) * (x[r * C + c] - m);
    const double s = 1 / std::sqrt(v / C + 1e-5);
    for (int64_t c = 0; c < C; ++c) out[r * C + c] = (x[r * C + c] - m) * s * w[c] + b[c];
    mean[r] = m;
    rstd[r] = s;
  }
}
double gelu_ref(double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }
double gelu_grad_ref(double x) {
  const double k = std::sqrt(2 / M_PI), u = k * (x + 0.044715 * x * x * x), ch = std::cosh(u);
  return 0.5 * (1 + std::tanh(u)) + 0.5 * x / (ch * ch) * k * (1 + 3 * 0.044715 * x * x);
}

// ---- checks ----
template <typename T>
void check_layernorm(int64_t N, int64_t C) {
  const double u = DT<T>::u;
  auto x = random_values<T>(N * C, -2.0f, 4.0f);  // (N, C), mean off zero
  auto w = random_values<T>(C, 0.5f, 1.5f);       // (C)
  auto b = random_values<T>(C, -0.5f, 0.5f);      // (C)
  auto dy = random_values<T>(N * C, -1.0f, 1.0f);  // (N, C)
  auto dx0 = random_values<T>(N * C, -0.1f, 0.1f);  // (N, C) accumulated into
  auto dw0 = random_values<T>(C, -0.1f, 0.1f), db0 = random_values<T>(C, -0.1f, 0.1f);
  std::vector<double> out_ref, mean_ref, rstd_ref;
  ref_layernorm(x, w, b, N, C, out_ref, mean_ref, rstd_ref);
  // backward reference from the float64 mean / rstd
  std::vector<double> dx_ref(N * C), dw_ref(dw0.begin(), dw0.end()), db_ref(db0.begin(), db0.end());
  for (int64_t r = 0; r < N; ++r) {
    double sd = 0, sdx = 0;
    for (int64_t c = 0; c < C; ++c) {
      const double xh = (x[r * C + c] - mean_ref[r]) * rstd_ref[r], dn = (double)dy[r * C + c] * w[c];
      sd += dn;
      sdx += dn * xh;
      dw_ref[c] += (double)dy[r * C + c] * xh;
      db_ref[c] += dy[r * C + c];
    }
    sd /= C;
    sdx /= C;
    for (int64_t c = 0; c < C; ++c) {
      const double xh = (x[r * C + c] - mean_ref[r]) * rstd_ref[r], dn = (double)dy[r * C + c] * w[c];
      dx_ref[r * C + c] = dx0[r * C + c] + (dn - sd - xh * sdx) * rstd_ref[r];
    }
  }
  struct Res {
    std::vector<float> out, mean, rstd, dx, dw, db;
    std::vector<unsigned char> out_raw, dx_raw, dw_raw;
  } res[3];
  const int chunks = ops::column_chunks(N);
  for (int pass = 0; pass < 3; ++pass) {  // 0 fast, 1 fast again (determinism), 2 scalar
    const int off = pass == 2 ? 1 : 0;
    T *dx_d = upload<T>(x, off), *dw_d = upload<T>(w, off), *db_d = upload<T>(b, off), *ddy = upload<T>(dy, off);
    T *ddx = upload<T>(dx0, off), *ddw = upload<T>(dw0, off), *ddb = upload<T>(db0, off);
    T* dout = upload<T>(std::vector<float>(N * C, 0.0f), off);
    float *mean, *rstd, *part;
    CK(cudaMalloc(&mean, std::max<int64_t>(N, 1) * 4));
    CK(cudaMalloc(&rstd, std::max<int64_t>(N, 1) * 4));
    CK(cudaMalloc(&part, (size_t)chunks * C * 2 * 4));
    CK(ops::layernorm_forward(DT<T>::id, dout, mean, rstd, dx_d, dw_d, db_d, N, C, 0));
    CK(ops::layernorm_backward_dinp(DT<T>::id, ddx, ddy, dx_d, dw_d, mean, rstd, N, C, 0));
    CK(ops::layernorm_backward_weights(DT<T>::id, part, part + (size_t)chunks * C, ddy, dx_d, mean, rstd, N, C, chunks,
                                       0));
    CK(ops::sum_partials_into(DT<T>::id, ddw, part, C, chunks, 0));
    CK(ops::sum_partials_into(DT<T>::id, ddb, part + (size_t)chunks * C, C, chunks, 0));
    CK(cudaDeviceSynchronize());
    Res& q = res[pass];
    q.out = download(dout, N * C);
    q.dx = download(ddx, N * C);
    q.dw = download(ddw, C);
    q.db = download(ddb, C);
    q.mean.resize(N);
    q.rstd.resize(N);
    CK(cudaMemcpy(q.mean.data(), mean, N * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(q.rstd.data(), rstd, N * 4, cudaMemcpyDeviceToHost));
    q.out_raw = raw(dout, N * C);
    q.dx_raw = raw(ddx, N * C);
    q.dw_raw = raw(ddw, C);
    for (T* p : {dx_d, dw_d, db_d, ddy, ddx, ddw, ddb, dout}) free_offset(p);
    CK(cudaFree(mean));
    CK(cudaFree(rstd));
    CK(cudaFree(part));
  }
  const bool det = res[0].out_raw == res[1].out_raw && res[0].dx_raw == res[1].dx_raw &&
                   res[0].dw_raw == res[1].dw_raw && res[0].mean == res[1].mean;
  char tag[96];
  std::snprintf(tag, sizeof tag, "%s layernorm N=%lld C=%lld", DT<T>::name(), (long long)N, (long long)C);
  const std::string t(tag);
  judge(t + " out", u, max_err(res[0].out, out_ref), max_err(res[2].out, out_ref), max_abs(out_ref), det);
  judge(t + " mean", 5.96e-8, max_err(res[0].mean, mean_ref), max_err(res[2].mean, mean_ref), max_abs(mean_ref), det);
  judge(t + " rstd", 5.96e-8, max_err(res[0].rstd, rstd_ref), max_err(res[2].rstd, rstd_ref), max_abs(rstd_ref), det);
  judge(t + " dinp", u, max_err(res[0].dx, dx_ref), max_err(res[2].dx, dx_ref), max_abs(dx_ref), det);
  judge(t + " dw", u, max_err(res[0].dw, dw_ref), max_err(res[2].dw, dw_ref), max_abs(dw_ref), det);
  judge(t + " db", u, max_err(res[0].db, db_ref), max_err(res[2].db, db_ref), max_abs(db_ref), det);
}

template <typename T>
void check_bias_backward(int64_t M, int64_t N) {
  auto x = random_values<T>(M * N, -1.0f, 1.0f);   // dout (M, N)
  auto d0 = random_values<T>(N, -0.1f, 0.1f);      // dbias (N)
  std::vector<double> ref(d0.begin(), d0.end());
  for (int64_t r = 0; r < M; ++r)
    for (int64_t c = 0; c < N; ++c) ref[c] += x[r * N + c];
  const int chunks = ops::column_chunks(M);
  std::vector<float> got[3];
  std::vector<unsigned char> bits[2];
  for (int pass = 0; pass < 3; ++pass) {
    const int off = pass == 2 ? 1 : 0;
    T *dx = upload<T>(x, off), *dd = upload<T>(d0, off);
    float* part;
    CK(cudaMalloc(&part, (size_t)chunks * N * 4));
    CK(ops::column_sums_partial(DT<T>::id, part, dx, M, N, chunks, 0));
    CK(ops::sum_partials_into(DT<T>::id, dd, part, N, chunks, 0));
    CK(cudaDeviceSynchronize());
    got[pass] = download(dd, N);
    if (pass < 2) bits[pass] = raw(dd, N);
    free_offset(dx);
    free_offset(dd);
    CK(cudaFree(part));
  }
  char tag[96];
  std::snprintf(tag, sizeof tag, "%s bias backward M=%lld N=%lld", DT<T>::name(), (long long)M, (long long)N);
  judge(tag, DT<T>::u, max_err(got[0], ref), max_err(got[2], ref), max_abs(ref), bits[0] == bits[1]);
}

template <typename T>
void check_elementwise(int64_t n) {
  auto x = random_values<T>(n, -6.0f, 6.0f);   // (n)
  auto y = random_values<T>(n, -1.0f, 1.0f);   // (n)
  std::vector<double> gf(n), gb(n), rs(n);
  for (int64_t i = 0; i < n; ++i) {
    gf[i] = gelu_ref(x[i]);
    gb[i] = gelu_grad_ref(x[i]) * y[i];
    rs[i] = (double)x[i] + y[i];
  }
  std::vector<float> f[3], g[3], r[3];
  std::vector<unsigned char> bits[2];
  for (int pass = 0; pass < 3; ++pass) {
    const int off = pass == 2 ? 1 : 0;
    T *dx = upload<T>(x, off), *dy = upload<T>(y, off), *o = upload<T>(std::vector<float>(n, 0.0f), off);
    CK(ops::gelu_forward(DT<T>::id, o, dx, n, 0));
    f[pass] = download(o, n);
    if (pass < 2) bits[pass] = raw(o, n);
    CK(ops::gelu_backward(DT<T>::id, o, dx, dy, n, 0));
    g[pass] = download(o, n);
    CK(ops::residual_forward(DT<T>::id, o, dx, dy, n, 0));
    r[pass] = download(o, n);
    for (T* p : {dx, dy, o}) free_offset(p);
  }
  char tag[64];
  std::snprintf(tag, sizeof tag, "%s n=%lld", DT<T>::name(), (long long)n);
  const std::string t(tag);
  const bool det = bits[0] == bits[1] && g[0] == g[1] && r[0] == r[1];
  judge(t + " gelu_forward", DT<T>::u, max_err(f[0], gf), max_err(f[2], gf), max_abs(gf), det);
  judge(t + " gelu_backward", DT<T>::u, max_err(g[0], gb), max_err(g[2], gb), max_abs(gb), det);
  judge(t + " residual_forward", DT<T>::u, max_err(r[0], rs), max_err(r[2], rs), max_abs(rs), det);
}

template <typename T>
void check_all() {
  // (N, C): the fast path at 1..8 chunks per lane, the fallback for C not a multiple of kVec and for C above the
  // register limit, N = 1 and N not a multiple of the 8 rows per block or of the 64-row chunks.
  const int64_t shapes[][2] = {{1, 768}, {37, 768}, {130, 64}, {65, 1024}, {9, 1600}, {16, 2048},
                               {5, 2056}, {11, 771}, {3, 8},   {200, 1280}, {4, 3072}};
  for (auto& s : shapes) check_layernorm<T>(s[0], s[1]);
  for (auto& s : shapes) check_bias_backward<T>(s[0], s[1]);
  for (int64_t n : {1, 7, 8, 1000, 12345, 3 * 65536 + 5}) check_elementwise<T>(n);
}

// ---- timing at GPT-2 124M's shapes, bf16 ----
float time_ms(const std::function<void()>& f, int iters) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  f();
  CK(cudaEventRecord(a));
  for (int i = 0; i < iters; ++i) f();
  CK(cudaEventRecord(b));
  CK(cudaEventSynchronize(b));
  float ms;
  CK(cudaEventElapsedTime(&ms, a, b));
  CK(cudaGetLastError());
  return ms / iters;
}

void bench(int iters) {
  using T = __nv_bfloat16;
  const int id = 2;
  const int64_t N = 16384, C = 768, C4 = 3072;
  std::printf("\nbf16, N = B T = %lld, C = %lld (ms per call; GB/s of the bytes each op must move)\n", (long long)N,
              (long long)C);
  std::printf("%-34s %10s %8s %10s %8s %7s\n", "op", "fast ms", "GB/s", "scalar ms", "GB/s", "speedup");
  auto big = random_values<T>(N * C4, -2.0f, 2.0f);
  auto row = random_values<T>(C4, 0.5f, 1.5f);
  T *a[2], *b2[2], *c2[2], *w[2], *bias[2];
  for (int p = 0; p < 2; ++p) {
    a[p] = upload<T>(big, p);
    b2[p] = upload<T>(big, p);
    c2[p] = upload<T>(big, p);
    w[p] = upload<T>(row, p);
    bias[p] = upload<T>(row, p);
  }
  float *mean, *rstd, *part;
  CK(cudaMalloc(&mean, N * 4));
  CK(cudaMalloc(&rstd, N * 4));
  const int chunks = ops::column_chunks(N);
  CK(cudaMalloc(&part, (size_t)chunks * C4 * 2 * 4));
  CK(ops::layernorm_forward(id, c2[0], mean, rstd, a[0], w[0], bias[0], N, C, 0));
  auto row_line = [&](const char* name, double bytes, const std::function<void(int)>& f) {
    const float t0 = time_ms([&] { f(0); }, iters), t1 = time_ms([&] { f(1); }, iters);
    std::printf("%-34s %10.4f %8.0f %10.4f %8.0f %6.2fx\n", name, t0, bytes / t0 / 1e6, t1, bytes / t1 / 1e6, t1 / t0);
  };
  const double e = 2, act = N * C * e, act4 = N * C4 * e;
  row_line("layernorm_forward", 2 * act, [&](int p) {
    CK(ops::layernorm_forward(id, c2[p], mean, rstd, a[p], w[p], bias[p], N, C, 0));
  });
  row_line("layernorm_backward_dinp", 4 * act, [&](int p) {
    CK(ops::layernorm_backward_dinp(id, b2[p], c2[p], a[p], w[p], mean, rstd, N, C, 0));
  });
  row_line("layernorm_backward_weights+2 sums", 2 * act, [&](int p) {
    CK(ops::layernorm_backward_weights(id, part, part + (size_t)chunks * C, c2[p], a[p], mean, rstd, N, C, chunks, 0));
    CK(ops::sum_partials_into(id, w[p], part, C, chunks, 0));
    CK(ops::sum_partials_into(id, bias[p], part + (size_t)chunks * C, C, chunks, 0));
  });
  row_line("gelu_forward (N, 4C)", 2 * act4, [&](int p) { CK(ops::gelu_forward(id, b2[p], a[p], N * C4, 0)); });
  row_line("gelu_backward (N, 4C)", 3 * act4,
           [&](int p) { CK(ops::gelu_backward(id, c2[p], a[p], b2[p], N * C4, 0)); });
  row_line("residual_forward (N, C)", 3 * act, [&](int p) { CK(ops::residual_forward(id, c2[p], a[p], b2[p], N * C, 0)); });
  row_line("bias backward (N, 4C)", act4, [&](int p) {
    CK(ops::column_sums_partial(id, part, a[p], N, C4, chunks, 0));
    CK(ops::sum_partials_into(id, bias[p], part, C4, chunks, 0));
  });
}

}  // namespace

int main(int argc, char** argv) {
  unsigned long long seed = std::random_device{}();
  int iters = 50;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--seed")) seed = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(argv[i + 1]);
  }
  rng.seed(seed);
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("rowops_check on %s, seed %llu\n", prop.name, seed);
  check_all<float>();
  check_all<__half>();
  check_all<__nv_bfloat16>();
  std::printf("%s: %d failed checks\n", failures ? "FAIL" : "PASS", failures);
  bench(iters);
  return failures ? 1 : 0;
}

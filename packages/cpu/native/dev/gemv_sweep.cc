// The small-M path (gemv_avx2.cc) against the packed gemm (gemm_avx2.cc) at the GPT-2 decode shapes,
// one thread, no Node: median time of R runs per (shape, M) for M = 1 .. 12 (or the rows given), each result first checked
// against float64 (a wrong kernel never gets a time). Sets kGemvMaxM (gemm.h) and the blocking
// (-DGEMV_NC / -DGEMV_KG / -DGEMV_NT). Build and run from the repo root (BENCHMARKS.md, "CPU: GPT-2
// generation"):
//   g++ -std=c++20 -O3 -mavx2 -mfma packages/cpu/native/dev/gemv_sweep.cc
//     packages/cpu/native/gemm_avx2.cc packages/cpu/native/gemv_avx2.cc -o /tmp/gemv_sweep
//   /tmp/gemv_sweep 9            (R = 9 runs; then optionally the rows: /tmp/gemv_sweep 5 12 16 24)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "../gemm.h"

using namespace flashattn_cpu;

static std::vector<float> pack;

static void packed(GemmParams p) {
  gemm_layout(p);
  pack.resize(gemm_pack_floats(p) + 16);
  gemm_set_packs(p, reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(pack.data()) + 63) / 64 * 64));
  for (int u = 0, n = gemm_pack_units(p); u < n; u++) gemm_pack(p, u);
  for (int u = 0, n = p.mBlocks * p.nBlocks; u < n; u++) gemm_block(p, u);
}

static void small_m(const GemmParams& p) {
  for (int u = 0, n = gemv_units(p); u < n; u++) gemv_block(p, u);
}

struct Problem {
  int M, N, K;
  bool transB;
  std::vector<float> a, b, c, bias;
  GemmParams params() {
    GemmParams p{};
    p.M = M, p.N = N, p.K = K, p.a = a.data(), p.a_rs = K, p.a_cs = 1, p.b = b.data();
    p.b_rs = transB ? 1 : N, p.b_cs = transB ? K : 1, p.c = c.data();
    p.bias = bias.empty() ? nullptr : bias.data();
    return p;
  }
  // max |C - float64| over C (bias included)
  double error() const {
    double worst = 0;
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        double s = bias.empty() ? 0 : bias[j];
        for (int k = 0; k < K; k++)
          s += double(a[size_t(i) * K + k]) * b[transB ? size_t(j) * K + k : size_t(k) * N + j];
        worst = std::max(worst, std::fabs(s - c[size_t(i) * N + j]));
      }
    return worst;
  }
};

template <class F>
static double median_us(int R, F f) {
  std::vector<double> t;
  for (int r = 0; r < R; r++) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int main(int argc, char** argv) {
  const int R = argc > 1 ? atoi(argv[1]) : 7;
  // Rows: argv[2..] (default 1 2 4 8 10 12).
  std::vector<int> ms;
  for (int i = 2; i < argc; i++) ms.push_back(atoi(argv[i]));
  if (ms.empty()) ms = {1, 2, 4, 8, 10, 12};
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  struct Shape { const char* name; int N, K; bool transB; };
  // GPT-2 decode: small (C = 384, V = 8192) and gpt2-124m (C = 768, V = 50257); lm = the tied head.
  const std::vector<Shape> all = {{"small qkv", 1152, 384, false},  {"small fc", 1536, 384, false},
                          {"small fcproj", 384, 1536, false}, {"small lm", 8192, 384, true},
                          {"124m qkv", 2304, 768, false},    {"124m fc", 3072, 768, false},
                          {"124m fcproj", 768, 3072, false}, {"124m lm", 50257, 768, true},
                          // the heads as (K, N) (attention-vs-ort.js matmul --decode's layout)
                          {"small lm KN", 8192, 384, false}, {"124m lm KN", 50257, 768, false}};
  // FILTER=substring: only the shapes whose name contains it.
  std::vector<Shape> shapes;
  for (const Shape& s : all)
    if (!getenv("FILTER") || strstr(s.name, getenv("FILTER"))) shapes.push_back(s);
  printf("GEMV_NC/KG/NT as built; us per call, median of %d, one thread; packed = gemm_avx2 (packs B)\n", R);
  printf("%-12s %3s %10s %10s %7s\n", "shape", "M", "small-M", "packed", "ratio");
  for (const Shape& s : shapes)
    for (int M : ms) {
      Problem pr{M, s.N, s.K, s.transB, {}, {}, {}, {}};
      pr.a.resize(size_t(M) * s.K), pr.b.resize(size_t(s.K) * s.N), pr.c.resize(size_t(M) * s.N);
      pr.bias.resize(s.N);
      for (auto* v : {&pr.a, &pr.b, &pr.bias})
        for (auto& x : *v) x = nd(rng);
      GemmParams p = pr.params();
      small_m(p);
      const double e1 = M <= 2 ? pr.error() : 0;  // the float64 check (M <= 2: it is K N M slow)
      packed(p);
      const double e2 = M <= 2 ? pr.error() : 0;
      if (e1 > 1e-3 * std::sqrt(s.K) || e2 > 1e-3 * std::sqrt(s.K)) {
        printf("WRONG: %s M %d error small-M %g packed %g\n", s.name, M, e1, e2);
        return 1;
      }
      const double tg = median_us(R, [&] { small_m(p); });
      const double tp = median_us(R, [&] { packed(p); });
      printf("%-12s %3d %10.1f %10.1f %7.2f\n", s.name, M, tg, tp, tp / tg);
      fflush(stdout);
    }
  return 0;
}

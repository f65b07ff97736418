// Blocking sweep of the native gemm (gemm_avx2.cc), one thread, no Node: the GPT-2 bench shapes of
// apps/bench/src/cpu/attention-vs-ort.ts `matmul`, median of R runs, GFLOP/s, plus a float64 check of
// one odd shape so a sweep never reports a wrong kernel. Build and run (BENCHMARKS.md, issue #11 round 5):
//   for mc in 48 72 96 144; do for kc in 128 256 384; do g++ -std=c++20 -O3 -mavx2 -mfma \
//     -DGEMM_MC=$mc -DGEMM_KC=$kc -DGEMM_NC=256 packages/cpu/native/dev/gemm_sweep.cc -o /tmp/sweep \
//     && /tmp/sweep; done; done
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "../gemm_avx2.cc"

using namespace flashattn_cpu;

static void run(GemmParams& p, std::vector<float>& pack) {
  gemm_layout(p);
  pack.resize(gemm_pack_floats(p) + 16);
  gemm_set_packs(p, reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(pack.data()) + 63) / 64 * 64));
  for (int u = 0, n = gemm_pack_units(p); u < n; u++) gemm_pack(p, u);
  for (int u = 0, n = p.mBlocks * p.nBlocks; u < n; u++) gemm_block(p, u);
}

int main(int argc, char** argv) {
  const int R = argc > 1 ? atoi(argv[1]) : 5;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> pack;
  {  // check: an odd shape, transB, bias, against float64
    const int M = 67, N = 45, K = 600;
    std::vector<float> a(M * K), b(N * K), c(M * N), bias(N);
    for (auto* v : {&a, &b, &bias})
      for (auto& x : *v) x = nd(rng);
    GemmParams p{};
    p.M = M, p.N = N, p.K = K, p.a = a.data(), p.a_rs = K, p.a_cs = 1, p.b = b.data(), p.b_rs = 1,
    p.b_cs = K, p.c = c.data(), p.bias = bias.data();
    run(p, pack);
    double worst = 0;
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        double s = bias[j];
        for (int k = 0; k < K; k++) s += double(a[i * K + k]) * b[j * K + k];
        worst = std::max(worst, std::fabs(s - c[i * N + j]));
      }
    if (worst > 1e-3) {
      printf("WRONG: max error %g\n", worst);
      return 1;
    }
  }
  struct Shape { const char* name; int M, N, K; };
  const Shape shapes[] = {{"tiny qkv", 2048, 384, 128},  {"tiny fc", 2048, 512, 128},
                          {"small qkv", 2048, 2304, 768}, {"small fc", 2048, 3072, 768},
                          {"small proj", 2048, 768, 3072}};
  printf("MC %d NC %d KC %d:", MC, NC, KC);
  for (const Shape& s : shapes) {
    std::vector<float> a(size_t(s.M) * s.K), b(size_t(s.K) * s.N), c(size_t(s.M) * s.N);
    for (auto& x : a) x = nd(rng);
    for (auto& x : b) x = nd(rng);
    std::vector<double> t;
    for (int r = 0; r < R; r++) {
      GemmParams p{};
      p.M = s.M, p.N = s.N, p.K = s.K, p.a = a.data(), p.a_rs = s.K, p.a_cs = 1, p.b = b.data(),
      p.b_rs = s.N, p.b_cs = 1, p.c = c.data();
      const auto t0 = std::chrono::steady_clock::now();
      run(p, pack);
      t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    printf("  %s %.1f", s.name, 2.0 * s.M * s.N * s.K / t[t.size() / 2] / 1e9);
  }
  printf("  GFLOP/s\n");
}

// Loading cuBLASLt with dlopen and running one row-major matmul through it (see cublaslt.h).
//
// Row-major out (M, N) = op(A) (M, K) op(B) (K, N) is, read column-major, out^T (N, M) = op(B)^T op(A)^T: the
// column-major product of B's memory (first operand) and A's memory (second), with the same transpose flags, and
// a bias of length N (the rows of the column-major out^T) as cuBLASLt's BIAS epilogue adds it. One handle and one
// 32 MiB workspace per device (allocated on first use, as NVIDIA recommends for Hopper); the heuristic's algorithm
// is cached per (shape, transposes, dtypes, epilogue, pointer alignments).
#include "cublaslt.h"
#include "device_bytes.h"

#include "dl_library.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>

namespace lt {
namespace {

std::mutex g_mutex;
Api g_api{};
bool g_loaded = false;
std::string g_loaded_from;

bool try_open(const std::string& path, std::vector<std::string>* tried) {
  void* lib = dl::open(path, tried);
  if (!lib) return false;
  Api a{};
  std::string missing;
  dl::sym(lib, "cublasLtCreate", &a.create, &missing);
  dl::sym(lib, "cublasLtDestroy", &a.destroy, &missing);
  dl::sym(lib, "cublasLtMatmulDescCreate", &a.matmulDescCreate, &missing);
  dl::sym(lib, "cublasLtMatmulDescDestroy", &a.matmulDescDestroy, &missing);
  dl::sym(lib, "cublasLtMatmulDescSetAttribute", &a.matmulDescSetAttribute, &missing);
  dl::sym(lib, "cublasLtMatrixLayoutCreate", &a.matrixLayoutCreate, &missing);
  dl::sym(lib, "cublasLtMatrixLayoutDestroy", &a.matrixLayoutDestroy, &missing);
  dl::sym(lib, "cublasLtMatmulPreferenceCreate", &a.matmulPreferenceCreate, &missing);
  dl::sym(lib, "cublasLtMatmulPreferenceDestroy", &a.matmulPreferenceDestroy, &missing);
  dl::sym(lib, "cublasLtMatmulPreferenceSetAttribute", &a.matmulPreferenceSetAttribute, &missing);
  dl::sym(lib, "cublasLtMatmulAlgoGetHeuristic", &a.matmulAlgoGetHeuristic, &missing);
  dl::sym(lib, "cublasLtMatmul", &a.matmul, &missing);
  dl::sym(lib, "cublasLtGetStatusString", &a.getStatusString, &missing);
  dl::sym(lib, "cublasLtGetVersion", &a.getVersion, &missing);
  if (!dl::complete(lib, path, missing, tried)) return false;
  g_api = a;  // the library stays loaded for the life of the process
  return true;
}

cudaDataType_t data_type(int id) { return id == 0 ? CUDA_R_32F : id == 1 ? CUDA_R_16F : CUDA_R_16BF; }

// Largest power of two (<= 256) dividing the address: the heuristic must not pick kernels that need more.
uint32_t alignment(const void* p) {
  uint32_t a = 256;
  while (a > 1 && (reinterpret_cast<uintptr_t>(p) % a) != 0) a >>= 1;
  return a;
}

struct DeviceState {
  Handle handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 32u << 20;
  using Key =
      std::tuple<int, int, int64_t, int64_t, int64_t, bool, bool, uint32_t, uint32_t, uint32_t, uint32_t, int, uint32_t>;
  std::map<Key, HeuristicResult> algos;
};
std::map<int, DeviceState> g_devices;

// RAII holders for the descriptors of one call.
struct Descs {
  const Api& api;
  MatmulDesc desc = nullptr;
  MatrixLayout la = nullptr, lb = nullptr, lc = nullptr;
  MatmulPreference pref = nullptr;
  explicit Descs(const Api& a) : api(a) {}
  ~Descs() {
    if (pref) api.matmulPreferenceDestroy(pref);
    if (lc) api.matrixLayoutDestroy(lc);
    if (lb) api.matrixLayoutDestroy(lb);
    if (la) api.matrixLayoutDestroy(la);
    if (desc) api.matmulDescDestroy(desc);
  }
};

}  // namespace

const Api* load(const std::string& explicit_path, std::vector<std::string>* tried, std::string* loaded_from) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_loaded) {
    *loaded_from = g_loaded_from;
    return &g_api;
  }
  std::vector<std::string> candidates = dl::candidates(explicit_path, "FLASHATTN_CUBLASLT_PATH",
                                                      {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"});
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* home = std::getenv(var); home && *home) candidates.push_back(std::string(home) + "/lib64/libcublasLt.so");
  candidates.push_back("/usr/local/cuda/lib64/libcublasLt.so");
  for (const std::string& c : candidates) {
    if (try_open(c, tried)) {
      g_loaded = true;
      g_loaded_from = c;
      *loaded_from = c;
      return &g_api;
    }
  }
  return nullptr;
}

int run_matmul(const Api& api, const Matmul& m, cudaStream_t stream, cudaError_t* cuda_err, std::string* what) {
  std::lock_guard<std::mutex> lock(g_mutex);
  DeviceState& dev = g_devices[m.device];
  if (!dev.handle) {
    *what = "cublasLtCreate";
    if (int s = api.create(&dev.handle); s != STATUS_SUCCESS) {
      dev.handle = nullptr;
      return s;
    }
  }
  if (!dev.workspace) {
    *what = "cudaMalloc(cuBLASLt workspace)";
    if (cudaError_t e = addon::counted_malloc(&dev.workspace, dev.workspace_bytes); e != cudaSuccess) {
      cudaGetLastError();
      dev.workspace = nullptr;
      *cuda_err = e;
      return -1;
    }
  }
  const bool bias = m.bias != nullptr;
  // Column-major view (see the top of the file): first operand = B's memory, second = A's memory.
  const int op_first = m.trans_b ? OP_T : OP_N;
  const int op_second = m.trans_a ? OP_T : OP_N;
  const uint64_t first_rows = m.trans_b ? m.K : m.N, first_cols = m.trans_b ? m.N : m.K;
  const uint64_t second_rows = m.trans_a ? m.M : m.K, second_cols = m.trans_a ? m.K : m.M;
  Descs d(api);
  int s;
  *what = "cublasLtMatmulDescCreate";
  if ((s = api.matmulDescCreate(&d.desc, COMPUTE_32F, CUDA_R_32F)) != STATUS_SUCCESS) return s;
  *what = "cublasLtMatmulDescSetAttribute";
  if ((s = api.matmulDescSetAttribute(d.desc, DESC_TRANSA, &op_first, sizeof(op_first))) != STATUS_SUCCESS) return s;
  if ((s = api.matmulDescSetAttribute(d.desc, DESC_TRANSB, &op_second, sizeof(op_second))) != STATUS_SUCCESS) return s;
  const uint32_t epilogue = m.gelu == 1   ? (bias ? EPILOGUE_GELU_AUX_BIAS : EPILOGUE_GELU_AUX)
                            : m.gelu == 2 ? EPILOGUE_DGELU
                            : bias        ? EPILOGUE_BIAS
                                          : EPILOGUE_DEFAULT;
  if ((s = api.matmulDescSetAttribute(d.desc, DESC_EPILOGUE, &epilogue, sizeof(epilogue))) != STATUS_SUCCESS) return s;
  if (bias && (s = api.matmulDescSetAttribute(d.desc, DESC_BIAS_POINTER, &m.bias, sizeof(m.bias))) != STATUS_SUCCESS)
    return s;
  if (m.gelu) {
    // aux has D's layout: column-major (N, M), leading dimension N (see the top of the file)
    const int64_t aux_ld = m.N;
    if ((s = api.matmulDescSetAttribute(d.desc, DESC_EPILOGUE_AUX_POINTER, &m.aux, sizeof(m.aux))) != STATUS_SUCCESS)
      return s;
    if ((s = api.matmulDescSetAttribute(d.desc, DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld))) != STATUS_SUCCESS)
      return s;
  }
  *what = "cublasLtMatrixLayoutCreate";
  const cudaDataType_t tab = data_type(m.ab_dtype), tout = data_type(m.out_dtype);
  if ((s = api.matrixLayoutCreate(&d.la, tab, first_rows, first_cols, (int64_t)first_rows)) != STATUS_SUCCESS) return s;
  if ((s = api.matrixLayoutCreate(&d.lb, tab, second_rows, second_cols, (int64_t)second_rows)) != STATUS_SUCCESS) return s;
  if ((s = api.matrixLayoutCreate(&d.lc, tout, m.N, m.M, m.N)) != STATUS_SUCCESS) return s;

  const uint32_t al_first = alignment(m.b), al_second = alignment(m.a), al_out = alignment(m.out);
  const uint32_t al_bias = bias ? alignment(m.bias) : 0;
  const DeviceState::Key key{m.ab_dtype, m.out_dtype, m.M, m.N, m.K, m.trans_a, m.trans_b, al_first, al_second, al_out,
                             bias ? al_bias : 0, m.gelu, m.gelu ? alignment(m.aux) : 0};
  auto it = dev.algos.find(key);
  if (it == dev.algos.end()) {
    *what = "cublasLtMatmulPreference";
    if ((s = api.matmulPreferenceCreate(&d.pref)) != STATUS_SUCCESS) return s;
    const uint64_t ws = dev.workspace_bytes;
    if ((s = api.matmulPreferenceSetAttribute(d.pref, PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws))) != STATUS_SUCCESS) return s;
    if ((s = api.matmulPreferenceSetAttribute(d.pref, PREF_MIN_ALIGNMENT_A_BYTES, &al_first, 4)) != STATUS_SUCCESS) return s;
    if ((s = api.matmulPreferenceSetAttribute(d.pref, PREF_MIN_ALIGNMENT_B_BYTES, &al_second, 4)) != STATUS_SUCCESS) return s;
    if ((s = api.matmulPreferenceSetAttribute(d.pref, PREF_MIN_ALIGNMENT_C_BYTES, &al_out, 4)) != STATUS_SUCCESS) return s;
    if ((s = api.matmulPreferenceSetAttribute(d.pref, PREF_MIN_ALIGNMENT_D_BYTES, &al_out, 4)) != STATUS_SUCCESS) return s;
    HeuristicResult r{};
    int found = 0;
    *what = "cublasLtMatmulAlgoGetHeuristic";
    s = api.matmulAlgoGetHeuristic(dev.handle, d.desc, d.la, d.lb, d.lc, d.lc, d.pref, 1, &r, &found);
    if (s != STATUS_SUCCESS) return s;
    if (found == 0) return STATUS_NOT_SUPPORTED;
    it = dev.algos.emplace(key, r).first;
  }
  const float alpha = 1.0f, beta = m.accumulate ? 1.0f : 0.0f;
  *what = "cublasLtMatmul";
  return api.matmul(dev.handle, d.desc, &alpha, m.b, d.la, m.a, d.lb, &beta, m.out, d.lc, m.out, d.lc, &it->second.algo,
                    dev.workspace, dev.workspace_bytes, stream);
}

void release(const Api& api, int device) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_devices.find(device);
  if (it == g_devices.end()) return;
  if (it->second.handle) api.destroy(it->second.handle);
  if (it->second.workspace) addon::counted_free(it->second.workspace);
  g_devices.erase(it);
}

}  // namespace lt

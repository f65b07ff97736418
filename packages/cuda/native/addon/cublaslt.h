// cuBLASLt, loaded at run time with dlopen: this package compiles where nvcc and cudart exist but cuBLAS headers
// do not (CI), so only the types, enum values and entry points the matmul uses are declared here.
//
// Numeric values are the documented ones of NVIDIA's public headers, checked against cublasLt.h and
// cublas_api.h of CUDA 12.6 (mirrored in the public repository zspace/system.cuda-12.6, include/cublasLt.h:
// cublasLtMatmulDescAttributes_t, cublasLtMatmulPreferenceAttributes_t, cublasLtEpilogue_t; include/cublas_api.h:
// cublasStatus_t, cublasOperation_t, cublasComputeType_t). They are ABI: unchanged in cuBLAS 13. cudaDataType_t
// (CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14) comes from cudart's library_types.h, which CI has.
#pragma once
#include <cuda_runtime.h>
#include <library_types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lt {

// cublas_api.h: cublasStatus_t
enum Status : int {
  STATUS_SUCCESS = 0,
  STATUS_NOT_INITIALIZED = 1,
  STATUS_ALLOC_FAILED = 3,
  STATUS_INVALID_VALUE = 7,
  STATUS_ARCH_MISMATCH = 8,
  STATUS_MAPPING_ERROR = 11,
  STATUS_EXECUTION_FAILED = 13,
  STATUS_INTERNAL_ERROR = 14,
  STATUS_NOT_SUPPORTED = 15,
};
// cublas_api.h: cublasOperation_t
enum Operation : int { OP_N = 0, OP_T = 1 };
// cublas_api.h: cublasComputeType_t. COMPUTE_32F is plain fp32 (not COMPUTE_32F_FAST_TF32 = 77).
enum ComputeType : int { COMPUTE_32F = 68 };
// cublasLt.h: cublasLtMatmulDescAttributes_t (the ones used)
enum MatmulDescAttribute : int {
  DESC_TRANSA = 3,
  DESC_TRANSB = 4,
  DESC_EPILOGUE = 7,
  DESC_BIAS_POINTER = 8,  // the bias's dtype defaults to D's (DESC_BIAS_DATA_TYPE = 26 is left unset)
  DESC_EPILOGUE_AUX_POINTER = 11,  // GELU_AUX*: the pre-activation written; DGELU: read (D's dtype)
  DESC_EPILOGUE_AUX_LD = 12,       // int64, in elements: the aux matrix's leading dimension (D's rows)
};
// cublasLt.h: cublasLtEpilogue_t (the ones used)
enum Epilogue : uint32_t {
  EPILOGUE_DEFAULT = 1,
  EPILOGUE_BIAS = 4,
  EPILOGUE_GELU_AUX = 32 | 128,                 // D = GELU(AB), aux = AB
  EPILOGUE_GELU_AUX_BIAS = 32 | 128 | 4,        // D = GELU(AB + bias), aux = AB + bias
  EPILOGUE_DGELU = 64 | 128,                    // D = AB * GELU'(aux)
};
// cublasLt.h: cublasLtMatmulPreferenceAttributes_t (the ones used)
enum PreferenceAttribute : int {
  PREF_MAX_WORKSPACE_BYTES = 1,
  PREF_MIN_ALIGNMENT_A_BYTES = 5,
  PREF_MIN_ALIGNMENT_B_BYTES = 6,
  PREF_MIN_ALIGNMENT_C_BYTES = 7,
  PREF_MIN_ALIGNMENT_D_BYTES = 8,
};

// Opaque handles (pointers to library-owned structures).
using Handle = struct LtContext*;
using MatmulDesc = struct LtMatmulDescOpaque*;
using MatrixLayout = struct LtMatrixLayoutOpaque*;
using MatmulPreference = struct LtMatmulPreferenceOpaque*;

// cublasLt.h: cublasLtMatmulAlgo_t and cublasLtMatmulHeuristicResult_t (by value, so their layout matters).
struct MatmulAlgo {
  uint64_t data[8];
};
struct HeuristicResult {
  MatmulAlgo algo;
  size_t workspaceSize;
  int state;  // cublasStatus_t
  float wavesCount;
  int reserved[4];
};

// The entry points, as function pointers filled by load().
struct Api {
  int (*create)(Handle*);
  int (*destroy)(Handle);
  int (*matmulDescCreate)(MatmulDesc*, int computeType, cudaDataType_t scaleType);
  int (*matmulDescDestroy)(MatmulDesc);
  int (*matmulDescSetAttribute)(MatmulDesc, int attr, const void* buf, size_t size);
  int (*matrixLayoutCreate)(MatrixLayout*, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld);
  int (*matrixLayoutDestroy)(MatrixLayout);
  int (*matmulPreferenceCreate)(MatmulPreference*);
  int (*matmulPreferenceDestroy)(MatmulPreference);
  int (*matmulPreferenceSetAttribute)(MatmulPreference, int attr, const void* buf, size_t size);
  int (*matmulAlgoGetHeuristic)(Handle, MatmulDesc, MatrixLayout a, MatrixLayout b, MatrixLayout c, MatrixLayout d,
                                MatmulPreference, int requested, HeuristicResult* results, int* returned);
  int (*matmul)(Handle, MatmulDesc, const void* alpha, const void* A, MatrixLayout, const void* B, MatrixLayout,
                const void* beta, const void* C, MatrixLayout, void* D, MatrixLayout, const MatmulAlgo* algo,
                void* workspace, size_t workspaceBytes, cudaStream_t stream);
  const char* (*getStatusString)(int);
  size_t (*getVersion)();
};

// Load libcublasLt once per process. `explicit_path` (an option) is tried first, then FLASHATTN_CUBLASLT_PATH,
// then the sonames libcublasLt.so.13, .so.12, libcublasLt.so (the loader's search path: LD_LIBRARY_PATH,
// ldconfig), then $CUDA_HOME/lib64 and /usr/local/cuda/lib64. Returns the API or nullptr; `tried` lists every
// attempt with dlerror()'s reason, `loaded_from` the path that worked. A later call with another explicit path
// while one is loaded returns the loaded one.
const Api* load(const std::string& explicit_path, std::vector<std::string>* tried, std::string* loaded_from);

// One row-major matmul on the device's stream: out (M, N) = alpha op(A) op(B) + beta out [+ bias (N)].
// dtypes are the addon's ids (0 = float32, 1 = float16, 2 = bfloat16); A and B share one, out and bias another.
struct Matmul {
  int device;
  const void* a;
  const void* b;
  void* out;
  const void* bias;  // nullptr: no bias epilogue
  int ab_dtype;
  int out_dtype;
  int64_t M, N, K;
  bool trans_a, trans_b;
  bool accumulate;  // beta = 1
  // GELU epilogues (Ops' geluPre / dgeluPre): 0 none, 1 GELU_AUX[_BIAS] (aux written), 2 DGELU (aux read). aux is
  // (M, N) row-major in out's dtype. Not with accumulate; DGELU not with bias.
  int gelu = 0;
  void* aux = nullptr;
};
// Returns 0 (STATUS_SUCCESS), a cublasStatus_t, or -1 with a cuda error in *cuda_err. *what names the step.
int run_matmul(const Api& api, const Matmul& m, cudaStream_t stream, cudaError_t* cuda_err, std::string* what);

// Destroy the device's handle, free its workspace and forget its cached algorithms (after a synchronize; the next
// run_matmul on the device starts afresh).
void release(const Api& api, int device);

}  // namespace lt

// NCCL, loaded at run time with dlopen (like cuBLASLt, cublaslt.h): the addon compiles where NCCL's headers are
// absent (CI), so only the types, enum values and entry points the collectives use are declared here.
//
// Values from NCCL's public header, src/nccl.h.in of github.com/NVIDIA/nccl (ncclResult_t, ncclDataType_t,
// ncclRedOp_t, NCCL_UNIQUE_ID_BYTES = 128, ncclUniqueId { char internal[128] }); they are ABI, unchanged since
// NCCL 2.10 (ncclAvg = 4 arrived in 2.10, ncclBfloat16 = 9 in 2.10, ncclRemoteError = 6 in 2.13).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <vector>

namespace nccl {

// nccl.h: ncclResult_t
enum Result : int {
  SUCCESS = 0,
  UNHANDLED_CUDA_ERROR = 1,
  SYSTEM_ERROR = 2,
  INTERNAL_ERROR = 3,
  INVALID_ARGUMENT = 4,
  INVALID_USAGE = 5,
  REMOTE_ERROR = 6,
  IN_PROGRESS = 7,
};
// nccl.h: ncclDataType_t (the ones core's buffers use)
enum DataType : int { INT32 = 2, FLOAT16 = 6, FLOAT32 = 7, FLOAT64 = 8, BFLOAT16 = 9 };
// nccl.h: ncclRedOp_t (the ones the Communicator contract has)
enum RedOp : int { SUM = 0, AVG = 4 };

constexpr int UNIQUE_ID_BYTES = 128;
struct UniqueId {
  char internal[UNIQUE_ID_BYTES];
};
using Comm = struct NcclCommOpaque*;

struct Api {
  const char* (*getErrorString)(int);
  int (*getVersion)(int*);
  int (*getUniqueId)(UniqueId*);
  int (*commInitRank)(Comm*, int, UniqueId, int);
  int (*allReduce)(const void*, void*, size_t, int, int, Comm, cudaStream_t);
  int (*reduceScatter)(const void*, void*, size_t, int, int, Comm, cudaStream_t);
  int (*allGather)(const void*, void*, size_t, int, Comm, cudaStream_t);
  int (*broadcast)(const void*, void*, size_t, int, int, Comm, cudaStream_t);
  int (*send)(const void*, size_t, int, int, Comm, cudaStream_t);
  int (*recv)(void*, size_t, int, int, Comm, cudaStream_t);
  int (*groupStart)();
  int (*groupEnd)();
  int (*commAbort)(Comm);
  int (*commGetAsyncError)(Comm, int*);
  int (*commDestroy)(Comm);
};

// Load libnccl once: FLASHATTN_NCCL_PATH, then `explicit_path`, then libnccl.so.2 / libnccl.so. Returns null and
// fills `tried` (each path with why it failed) when none loads.
const Api* load(const std::string& explicit_path, std::vector<std::string>* tried, std::string* loaded_from);

}  // namespace nccl

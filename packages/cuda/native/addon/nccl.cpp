// NCCL's collectives as addon entry points (see nccl.h): libnccl loaded with dlopen on first use, every
// collective enqueued on the device's stream (device_stream, as the kernels), so it runs in order with them.
// Errors: a JS Error with `ncclResult` (the code) and NCCL's own text; a missing library is an Error with
// `ncclUnavailable` = the paths tried (src/nccl.ts maps both to typed errors).
#include "nccl.h"

#include "dl_library.h"
#include <node_api.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"
#include "registry.h"

namespace nccl {
namespace {

Api g_api{};
bool g_loaded = false;
std::string g_loaded_from;

bool try_open(const std::string& path, std::vector<std::string>* tried) {
  void* lib = dl::open(path, tried);
  if (!lib) return false;
  Api a{};
  std::string missing;
  dl::sym(lib, "ncclGetErrorString", &a.getErrorString, &missing);
  dl::sym(lib, "ncclGetVersion", &a.getVersion, &missing);
  dl::sym(lib, "ncclGetUniqueId", &a.getUniqueId, &missing);
  dl::sym(lib, "ncclCommInitRank", &a.commInitRank, &missing);
  dl::sym(lib, "ncclAllReduce", &a.allReduce, &missing);
  dl::sym(lib, "ncclReduceScatter", &a.reduceScatter, &missing);
  dl::sym(lib, "ncclAllGather", &a.allGather, &missing);
  dl::sym(lib, "ncclBroadcast", &a.broadcast, &missing);
  dl::sym(lib, "ncclSend", &a.send, &missing);
  dl::sym(lib, "ncclRecv", &a.recv, &missing);
  dl::sym(lib, "ncclGroupStart", &a.groupStart, &missing);
  dl::sym(lib, "ncclGroupEnd", &a.groupEnd, &missing);
  dl::sym(lib, "ncclCommAbort", &a.commAbort, &missing);
  dl::sym(lib, "ncclCommGetAsyncError", &a.commGetAsyncError, &missing);
  dl::sym(lib, "ncclCommDestroy", &a.commDestroy, &missing);
  if (!dl::complete(lib, path, missing, tried)) return false;
  g_api = a;  // stays loaded for the life of the process
  return true;
}

}  // namespace

const Api* load(const std::string& explicit_path, std::vector<std::string>* tried, std::string* loaded_from) {
  if (g_loaded) {
    *loaded_from = g_loaded_from;
    return &g_api;
  }
  for (const std::string& c : dl::candidates(explicit_path, "FLASHATTN_NCCL_PATH", {"libnccl.so.2", "libnccl.so"})) {
    if (try_open(c, tried)) {
      g_loaded = true;
      g_loaded_from = c;
      *loaded_from = c;
      return &g_api;
    }
  }
  return nullptr;
}

}  // namespace nccl

namespace addon {
namespace {

using nccl::Api;

napi_value throw_nccl(napi_env env, const Api& api, int r, const std::string& where) {
  std::string msg = where + ": NCCL error " + std::to_string(r) + " (" + (api.getErrorString ? api.getErrorString(r) : "?") + ")";
  napi_value m, err, code;
  napi_create_string_utf8(env, msg.c_str(), msg.size(), &m);
  napi_create_error(env, nullptr, m, &err);
  napi_create_int32(env, r, &code);
  napi_set_named_property(env, err, "ncclResult", code);
  napi_throw(env, err);
  return nullptr;
}

// The loaded API, or a thrown Error (with `ncclUnavailable`) naming every path tried.
const Api* api_or_throw(napi_env env, const std::string& path = "") {
  std::vector<std::string> tried;
  std::string from;
  const Api* a = nccl::load(path, &tried, &from);
  if (a) return a;
  std::string list;
  for (const auto& t : tried) list += (list.empty() ? "" : "; ") + t;
  std::string msg = "NCCL could not be loaded: " + list;
  napi_value m, err, why;
  napi_create_string_utf8(env, msg.c_str(), msg.size(), &m);
  napi_create_error(env, nullptr, m, &err);
  napi_create_string_utf8(env, list.c_str(), list.size(), &why);
  napi_set_named_property(env, err, "ncclUnavailable", why);
  napi_throw(env, err);
  return nullptr;
}

napi_value bigint_ptr(napi_env env, const void* p) {
  napi_value v;
  napi_create_bigint_uint64(env, reinterpret_cast<uint64_t>(p), &v);
  return v;
}

// ncclLoad(path?: string): { loadedFrom, version }
napi_value Load(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  std::string path;
  napi_valuetype t = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &t);
  if (t == napi_string) {
    char buf[4096];
    size_t n = 0;
    CHECK_NAPI(napi_get_value_string_utf8(env, argv[0], buf, sizeof buf, &n));
    path.assign(buf, n);
  }
  const Api* a = api_or_throw(env, path);
  if (!a) return nullptr;
  std::vector<std::string> tried;
  std::string from;
  nccl::load(path, &tried, &from);
  int version = 0;
  a->getVersion(&version);
  napi_value out, f, ver;
  napi_create_object(env, &out);
  napi_create_string_utf8(env, from.c_str(), from.size(), &f);
  napi_create_int32(env, version, &ver);
  napi_set_named_property(env, out, "loadedFrom", f);
  napi_set_named_property(env, out, "version", ver);
  return out;
}

// ncclGetUniqueId(): Uint8Array(128), the rendezvous token rank 0 hands to the others.
napi_value GetUniqueId(napi_env env, napi_callback_info) {
  const Api* a = api_or_throw(env);
  if (!a) return nullptr;
  nccl::UniqueId id{};
  if (int r = a->getUniqueId(&id); r != nccl::SUCCESS) return throw_nccl(env, *a, r, "ncclGetUniqueId");
  void* data = nullptr;
  napi_value ab, arr;
  CHECK_NAPI(napi_create_arraybuffer(env, nccl::UNIQUE_ID_BYTES, &data, &ab));
  std::memcpy(data, id.internal, nccl::UNIQUE_ID_BYTES);
  CHECK_NAPI(napi_create_typedarray(env, napi_uint8_array, nccl::UNIQUE_ID_BYTES, ab, 0, &arr));
  return arr;
}

// ncclCommInitRank(device, nranks, id: Uint8Array(128), rank): bigint comm. Blocks until every rank joined.
napi_value CommInitRank(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int64_t dev, nranks, rank;
  if (!get_args(env, info, 4, argv) || !get_i64(env, argv[0], &dev, "device") || !get_i64(env, argv[1], &nranks, "nranks") ||
      !get_i64(env, argv[3], &rank, "rank"))
    return nullptr;
  napi_typedarray_type tt;
  size_t len = 0;
  void* data = nullptr;
  bool is_ta = false;
  napi_is_typedarray(env, argv[2], &is_ta);
  if (!is_ta) return throw_type(env, "id: expected a Uint8Array of 128 bytes (ncclGetUniqueId)");
  CHECK_NAPI(napi_get_typedarray_info(env, argv[2], &tt, &len, &data, nullptr, nullptr));
  if (tt != napi_uint8_array || len != nccl::UNIQUE_ID_BYTES) return throw_type(env, "id: expected a Uint8Array of 128 bytes");
  const Api* a = api_or_throw(env);
  if (!a) return nullptr;
  if (cudaError_t e = cudaSetDevice((int)dev); e != cudaSuccess) {
    napi_throw(env, make_error(env, e, "ncclCommInitRank: cudaSetDevice"));
    return nullptr;
  }
  nccl::UniqueId id{};
  std::memcpy(id.internal, data, nccl::UNIQUE_ID_BYTES);
  nccl::Comm comm = nullptr;
  if (int r = a->commInitRank(&comm, (int)nranks, id, (int)rank); r != nccl::SUCCESS)
    return throw_nccl(env, *a, r, "ncclCommInitRank");
  return bigint_ptr(env, comm);
}

// ncclCollective({ kind: 0 allReduce | 1 reduceScatter | 2 allGather | 3 broadcast, comm, device, send, recv,
//                  count, dtype, op, root }): enqueued on the device's stream. count: recv elements for
// reduceScatter, send elements for allGather (NCCL's conventions).
napi_value Collective(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return nullptr;
  int64_t kind, dev, count, dtype, op = 0, root = 0;
  void *comm, *send, *recv;
  if (!prop_i64(env, argv[0], "kind", &kind) || !prop_ptr(env, argv[0], "comm", &comm) || !prop_i64(env, argv[0], "device", &dev) ||
      !prop_ptr(env, argv[0], "send", &send) || !prop_ptr(env, argv[0], "recv", &recv) || !prop_i64(env, argv[0], "count", &count) ||
      !prop_i64(env, argv[0], "dtype", &dtype))
    return nullptr;
  if (has_prop(env, argv[0], "op") && !prop_i64(env, argv[0], "op", &op)) return nullptr;
  if (has_prop(env, argv[0], "root") && !prop_i64(env, argv[0], "root", &root)) return nullptr;
  const Api* a = api_or_throw(env);
  if (!a) return nullptr;
  cudaStream_t stream;
  if (cudaError_t e = device_stream((int)dev, &stream); e != cudaSuccess) {
    napi_throw(env, make_error(env, e, "nccl collective: stream"));
    return nullptr;
  }
  auto c = reinterpret_cast<nccl::Comm>(comm);
  int r = nccl::INVALID_ARGUMENT;
  switch (kind) {
    case 0: r = a->allReduce(send, recv, (size_t)count, (int)dtype, (int)op, c, stream); break;
    case 1: r = a->reduceScatter(send, recv, (size_t)count, (int)dtype, (int)op, c, stream); break;
    case 2: r = a->allGather(send, recv, (size_t)count, (int)dtype, c, stream); break;
    case 3: r = a->broadcast(send, recv, (size_t)count, (int)dtype, (int)root, c, stream); break;
    default: return throw_type(env, "kind: expected 0..3");
  }
  if (r != nccl::SUCCESS) return throw_nccl(env, *a, r, "nccl collective " + std::to_string(kind));
  return nullptr;
}

// ncclSendRecv({ comm, device, send, sendCount, dst, recv, recvCount, src, dtype }): one group (no deadlock
// whatever the ring's order), enqueued on the device's stream.
napi_value SendRecv(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return nullptr;
  int64_t dev, sc, rc, dst, src, dtype;
  void *comm, *send, *recv;
  if (!prop_ptr(env, argv[0], "comm", &comm) || !prop_i64(env, argv[0], "device", &dev) || !prop_ptr(env, argv[0], "send", &send) ||
      !prop_i64(env, argv[0], "sendCount", &sc) || !prop_i64(env, argv[0], "dst", &dst) || !prop_ptr(env, argv[0], "recv", &recv) ||
      !prop_i64(env, argv[0], "recvCount", &rc) || !prop_i64(env, argv[0], "src", &src) || !prop_i64(env, argv[0], "dtype", &dtype))
    return nullptr;
  const Api* a = api_or_throw(env);
  if (!a) return nullptr;
  cudaStream_t stream;
  if (cudaError_t e = device_stream((int)dev, &stream); e != cudaSuccess) {
    napi_throw(env, make_error(env, e, "ncclSendRecv: stream"));
    return nullptr;
  }
  auto c = reinterpret_cast<nccl::Comm>(comm);
  int r = a->groupStart();
  if (r == nccl::SUCCESS) {
    int rs = a->send(send, (size_t)sc, (int)dtype, (int)dst, c, stream);
    int rr = a->recv(recv, (size_t)rc, (int)dtype, (int)src, c, stream);
    r = a->groupEnd();
    if (rs != nccl::SUCCESS) r = rs;
    else if (rr != nccl::SUCCESS) r = rr;
  }
  if (r != nccl::SUCCESS) return throw_nccl(env, *a, r, "ncclSendRecv");
  return nullptr;
}

// ncclAsyncError(comm): the communicator's async error code (0 = none; ncclRemoteError = a peer failed).
napi_value AsyncError(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void* comm;
  if (!get_args(env, info, 1, argv) || !get_ptr(env, argv[0], &comm, "comm")) return nullptr;
  const Api* a = api_or_throw(env);
  if (!a) return nullptr;
  int async = 0;
  if (int r = a->commGetAsyncError(reinterpret_cast<nccl::Comm>(comm), &async); r != nccl::SUCCESS)
    return throw_nccl(env, *a, r, "ncclCommGetAsyncError");
  napi_value v;
  napi_create_int32(env, async, &v);
  return v;
}

// ncclAbort(comm) / ncclDestroy(comm): end the communicator (abort also cancels pending work).
napi_value End(napi_env env, napi_callback_info info, bool abort) {
  napi_value argv[1];
  void* comm;
  if (!get_args(env, info, 1, argv) || !get_ptr(env, argv[0], &comm, "comm")) return nullptr;
  const Api* a = api_or_throw(env);
  if (!a) return nullptr;
  auto c = reinterpret_cast<nccl::Comm>(comm);
  int r = abort ? a->commAbort(c) : a->commDestroy(c);
  if (r != nccl::SUCCESS) return throw_nccl(env, *a, r, abort ? "ncclCommAbort" : "ncclCommDestroy");
  return nullptr;
}
napi_value Abort(napi_env env, napi_callback_info info) { return End(env, info, true); }
napi_value Destroy(napi_env env, napi_callback_info info) { return End(env, info, false); }

}  // namespace

void add_nccl_functions(Exports& e) {
  add_function(e, "ncclLoad", Load);
  add_function(e, "ncclGetUniqueId", GetUniqueId);
  add_function(e, "ncclCommInitRank", CommInitRank);
  add_function(e, "ncclCollective", Collective);
  add_function(e, "ncclSendRecv", SendRecv);
  add_function(e, "ncclAsyncError", AsyncError);
  add_function(e, "ncclAbort", Abort);
  add_function(e, "ncclDestroy", Destroy);
}

}  // namespace addon

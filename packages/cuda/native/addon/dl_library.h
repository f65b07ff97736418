// Opening a library at run time (cuBLASLt, NCCL: this machine and CI have no headers for them, so the addon
// declares what it uses and finds the library with dlopen) and resolving its entry points by name, recording
// for the typed JS error why each candidate failed: "path (dlerror's text)" or "path (loaded, but lacks a, b)".
#pragma once

#include <dlfcn.h>

#include <cstdlib>
#include <initializer_list>
#include <string>
#include <vector>

namespace dl {

// The paths to try, in order: the caller's explicit path, then $env_var, then the standard names.
inline std::vector<std::string> candidates(const std::string& explicit_path, const char* env_var,
                                           std::initializer_list<const char*> names) {
  std::vector<std::string> out;
  if (!explicit_path.empty()) out.push_back(explicit_path);
  if (const char* env = std::getenv(env_var); env && *env) out.push_back(env);
  for (const char* n : names) out.push_back(n);
  return out;
}

// dlopen(path), or nullptr with the reason appended to *tried.
inline void* open(const std::string& path, std::vector<std::string>* tried) {
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* e = dlerror();
    tried->push_back(path + " (" + (e ? e : "dlopen failed") + ")");
  }
  return lib;
}

// *out = the symbol `name`, or nullptr with the name appended to *missing.
template <typename F>
void sym(void* lib, const char* name, F* out, std::string* missing) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  if (!*out) *missing += (missing->empty() ? "" : ", ") + std::string(name);
}

// True when nothing is missing (the library then stays loaded for the life of the process); otherwise the
// reason goes to *tried and the library is closed.
inline bool complete(void* lib, const std::string& path, const std::string& missing, std::vector<std::string>* tried) {
  if (missing.empty()) return true;
  tried->push_back(path + " (loaded, but lacks " + missing + ")");
  dlclose(lib);
  return false;
}

}  // namespace dl

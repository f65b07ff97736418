// A persistent pool of native threads for the addon's kernels (the forward and the gemm): started on
// first use, woken per call, one pool per Node environment (the addon's instance data, so a
// worker_thread that loads the addon gets its own) and shut down with it (joined in the destructor).
// Include only from addon.cc (built without AVX flags).
//
// run(threads, body) calls body(t) for t = 0 on the calling thread and t = 1 .. threads - 1 on pool
// threads. Kernels take their units from atomic counters, so a pool thread that wakes late has nothing
// to do: once body(0) returns the run is closed, threads that had not begun skip it, and run() waits
// only for the ones that began (round 4 measured a woken vCPU starting 0.14-2.2 ms late under load).
// One run at a time: a second caller that finds the pool busy runs body(0) alone (the units are the
// same, so the result is too).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace flashattn_cpu {

class ThreadPool {
 public:
  ThreadPool() = default;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  ~ThreadPool() {
    std::lock_guard<std::mutex> busy(run_mu_);  // a run in progress ends first
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& th : workers_) th.join();
  }

  void run(int threads, const std::function<void(int)>& body) {
    std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
    if (!busy.owns_lock() || threads <= 1) {
      body(0);
      return;
    }
    grow(threads - 1);
    {
      std::lock_guard<std::mutex> lock(mu_);
      body_ = &body;
      active_ = threads;
      started_ = 0;
      finished_ = 0;
      open_ = true;
      generation_++;
    }
    wake_.notify_all();
    body(0);
    std::unique_lock<std::mutex> lock(mu_);
    open_ = false;
    done_.wait(lock, [&] { return finished_ == started_; });
    body_ = nullptr;
  }

 private:
  // Start pool threads up to n (fewer if the system refuses: the run goes on with those there are).
  void grow(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      const int t = static_cast<int>(workers_.size()) + 1;
      try {
        workers_.emplace_back([this, t] { loop(t); });
      } catch (const std::system_error&) {
        return;
      }
    }
  }

  void loop(int t) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (!open_ || t >= active_) continue;
      started_++;
      const std::function<void(int)>* body = body_;
      lock.unlock();
      (*body)(t);
      lock.lock();
      finished_++;
      if (!open_ && finished_ == started_) done_.notify_one();
    }
  }

  std::mutex run_mu_;  // held for a whole run
  std::mutex mu_;      // guards the fields below
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* body_ = nullptr;
  uint64_t generation_ = 0;
  int active_ = 0, started_ = 0, finished_ = 0;
  bool open_ = false, stop_ = false;
};

}  // namespace flashattn_cpu

// A persistent pool of native threads for the addon's kernels (the forward and the gemm): started on
// first use, woken per call, one pool per Node environment (the addon's instance data, so a
// worker_thread that loads the addon gets its own), stopped and joined by the environment's cleanup
// hook (addon.cc) after any run in progress has ended. Include only from addon.cc (built without AVX).
//
// Kernels take their units from atomic counters, so a pool thread that starts late has nothing to do:
// a run closes once a participant returns from its body (every unit is then taken), threads that had
// not begun skip it, and the run ends when the ones that began are done. Two ways in:
//   run(threads, body)           body(0) on the calling thread, body(1 .. threads - 1) on pool threads;
//                                returns when all are done (the forward, from a libuv pool thread)
//   submit(threads, body, done)  body(0 .. threads - 1) on pool threads only, done() on the last one to
//                                finish; returns at once (the gemm, from the JS thread: no libuv hop)
// One run at a time: run() on a busy pool runs body(0) alone (the units are the same, so the result is
// too); submit() on a busy pool returns false and the caller takes another way.
//
// A pool thread polls for the next run for kSpin after its last one before it blocks on the condition
// variable: on this 2-vCPU VM a blocked thread was woken late (0.14-2.2 ms in round 4) or onto the
// caller's busy vCPU, and the caller had done every unit before it began (BENCHMARKS.md issue #11
// round 5, native/dev/gemm-sync-threshold.mjs). The poll yields the CPU on every turn, so any other
// runnable thread there goes first.
#pragma once
#include <atomic>
#include <chrono>
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
    while (busy_.exchange(true, std::memory_order_acquire)) std::this_thread::yield();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      stopFlag_.store(true, std::memory_order_relaxed);
    }
    wake_.notify_all();
    for (auto& th : workers_) th.join();
  }

  void run(int threads, const std::function<void(int)>& body) {
    if (threads <= 1 || busy_.exchange(true, std::memory_order_acquire)) {
      body(0);
      return;
    }
    grow(threads - 1);
    start(&body, 0, threads, false);
    body(0);
    std::unique_lock<std::mutex> lock(mu_);
    open_ = false;
    done_.wait(lock, [&] { return finished_ == started_; });
    body_ = nullptr;
    busy_.store(false, std::memory_order_release);
  }

  bool submit(int threads, std::function<void(int)> body, std::function<void()> done) {
    if (busy_.exchange(true, std::memory_order_acquire)) return false;
    grow(threads);
    if (workers_.empty()) {
      busy_.store(false, std::memory_order_release);
      return false;
    }
    owned_ = std::move(body);
    doneFn_ = std::move(done);
    start(&owned_, 1, threads + 1, true);
    return true;
  }

 private:
  static constexpr std::chrono::microseconds kSpin{1000};

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

  // Pool thread t (1-based) joins while t < limit and runs body(t - base).
  void start(const std::function<void(int)>* body, int base, int limit, bool async) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      body_ = body;
      base_ = base;
      limit_ = limit;
      async_ = async;
      started_ = 0;
      finished_ = 0;
      open_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
  }

  void loop(int t) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      lock.unlock();
      const auto until = std::chrono::steady_clock::now() + kSpin;
      while (generation_.load(std::memory_order_acquire) == seen &&
             !stopFlag_.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() < until)
        std::this_thread::yield();
      lock.lock();
      wake_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_relaxed) != seen; });
      if (stop_) return;
      seen = generation_.load(std::memory_order_relaxed);
      if (!open_ || t >= limit_) continue;
      started_++;
      const std::function<void(int)>* body = body_;
      const int index = t - base_;
      lock.unlock();
      (*body)(index);
      lock.lock();
      if (async_) open_ = false;  // a participant returned: every unit is taken
      finished_++;
      if (open_ || finished_ != started_) continue;
      if (!async_) {
        done_.notify_one();
        continue;
      }
      std::function<void()> done = std::move(doneFn_);
      doneFn_ = nullptr;
      owned_ = nullptr;
      body_ = nullptr;
      async_ = false;
      busy_.store(false, std::memory_order_release);
      lock.unlock();
      done();
      lock.lock();
    }
  }

  std::atomic<bool> busy_{false};  // a run in progress (taken by run / submit, released at its end)
  std::mutex mu_;                  // guards the fields below
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* body_ = nullptr;
  std::function<void(int)> owned_;  // submit's body
  std::function<void()> doneFn_;    // submit's completion
  int base_ = 0, limit_ = 0, started_ = 0, finished_ = 0;
  bool open_ = false, async_ = false, stop_ = false;
  std::atomic<uint64_t> generation_{0};  // written under mu_, polled without it
  std::atomic<bool> stopFlag_{false};    // stop_, for the poll
};

}  // namespace flashattn_cpu

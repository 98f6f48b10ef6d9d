// Scopes the thread-cache tests share (frontend_test.cc, checked_test.cc):
// the CPUs the bins' shares divide, threads parked for a scope, and the
// program's live threads as the shares count them.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "cache/thread_cache.h"
#include "frontend/allocator.h"

namespace slabby {
namespace test_scopes {
// Internal to each test file: the threads' bodies inline the allocator's
// restartable sequences, whose __rseq_cs entries must not point into a
// COMDAT copy the linker discards.
namespace {

// The CPUs the bins' shares divide (g_threads.cpus) for a scope, with
// SLABBY_PERCPU_THREADS out of reach, so threads started in it stay on
// their bins whatever the machine.
class SharedCpus {
 public:
  explicit SharedCpus(uint64_t cpus)
      : cpus_((thread_init(), g_threads.cpus)), at_(g_threads.percpu_threads) {
    g_threads.cpus = cpus;
    g_threads.percpu_threads = 1 << 20;
  }
  ~SharedCpus() {
    g_threads.cpus = cpus_;
    g_threads.percpu_threads = at_;
  }

 private:
  uint64_t cpus_, at_;
};

// Threads that start (each allocates once, so it is registered) and wait
// until the scope ends.
class ParkedThreads {
 public:
  explicit ParkedThreads(unsigned n) {
    for (unsigned i = 0; i < n; ++i)
      threads_.emplace_back([this] {
        free_fast(malloc_fast(32));
        std::unique_lock<std::mutex> l(mu_);
        ++started_;
        cv_.notify_all();
        cv_.wait(l, [this] { return done_; });
      });
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return started_ == n; });
  }
  ~ParkedThreads() {
    {
      std::lock_guard<std::mutex> g(mu_);
      done_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  unsigned started_ = 0;
  bool done_ = false;
  std::vector<std::thread> threads_;
};

// The program's live threads, as the shares count them.
uint64_t program_threads_now() {
  return __atomic_load_n(&g_threads.live, __ATOMIC_RELAXED) -
         __atomic_load_n(&g_threads.internal, __ATOMIC_RELAXED);
}

}  // namespace
}  // namespace test_scopes
}  // namespace slabby

// slabby: the one mutex the allocator uses.
//
// A three-state futex mutex (0 free, 1 locked, 2 locked with waiters). It never
// allocates, has no owner bookkeeping and can be re-initialised in a forked
// child, which is what pthread_atfork handlers need. Contention in slabby is
// short (a batch move under the lock), so it spins briefly before sleeping.
#pragma once

#include <atomic>
#include <cstdint>

namespace slabby {

class Mutex {
 public:
  constexpr Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() {
    uint32_t expected = 0;
    if (__builtin_expect(state_.compare_exchange_strong(expected, 1, std::memory_order_acquire), 1))
      return;
    lock_slow();
  }
  bool try_lock() {
    uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire);
  }
  void unlock() {
    if (__builtin_expect(state_.exchange(0, std::memory_order_release) == 2, 0)) wake();
  }
  // In a forked child only: the parent's holders do not exist there.
  void reset_after_fork() { state_.store(0, std::memory_order_relaxed); }

 private:
  void lock_slow();
  void wake();
  std::atomic<uint32_t> state_{0};
};

class LockGuard {
 public:
  explicit LockGuard(Mutex& m) : m_(m) { m_.lock(); }
  ~LockGuard() { m_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  Mutex& m_;
};

}  // namespace slabby

#include "common/lock.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace slabby {

namespace {
// A spin-wait hint: x86's pause (the sibling hyperthread runs meanwhile and
// leaving the loop costs no memory-order flush). Other targets spin on the
// relaxed load alone: their hints (aarch64's yield) are no-ops on most cores.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

void futex_call(std::atomic<uint32_t>* addr, int op, uint32_t val) {
  int saved = errno;  // the allocator never clobbers the caller's errno
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), op | FUTEX_PRIVATE_FLAG, val, nullptr,
          nullptr, 0);
  errno = saved;
}
}  // namespace

void Mutex::lock_slow() {
  for (int spin = 0; spin < 100; ++spin) {
    uint32_t expected = 0;
    if (state_.load(std::memory_order_relaxed) == 0 &&
        state_.compare_exchange_weak(expected, 1, std::memory_order_acquire))
      return;
    cpu_relax();
  }
  // Mark "locked with waiters" and sleep until the holder wakes us.
  while (state_.exchange(2, std::memory_order_acquire) != 0) futex_call(&state_, FUTEX_WAIT, 2);
}

void Mutex::wake() { futex_call(&state_, FUTEX_WAKE, 1); }

}  // namespace slabby

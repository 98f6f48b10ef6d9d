// slabby: the process-wide state, in one constant-initialised object.
//
// It must need no constructor: malloc can be called before any of slabby's
// own constructors run (from ld.so or another library's initialiser).
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "cache/thread_cache.h"
#include "central/central_pool.h"
#include "common/fork_locks.h"
#include "common/lock.h"
#include "common/size_class.h"
#include "config/config.h"
#include "heap/page_heap.h"

namespace slabby {

enum InitState : int { kInitNone = 0, kInitReady = 1, kInitFailed = 2 };

struct Runtime {
  PageHeap heap{g_fork_locks.heap};
  std::atomic<int> init_state{kInitNone};
  Mutex init_mu;
  ConfigResult config{};
  uint32_t cache_limit[kNumClasses] = {};  // blocks cached per class per thread or CPU (even for small classes)
  unsigned num_shards = 1;
  pthread_key_t thread_key = 0;
  // Where the at-exit report goes: a close-on-exec duplicate of stderr taken
  // at init when SLABBY_STATS is set, because some programs close fd 2 in
  // their own atexit handlers (coreutils' close_stdout) before slabby reports.
  int report_fd = 2;

  // The central pools (central/central_pool.h g_central_pools) and the thread
  // registry with its retired counters (cache/thread_cache.h g_threads) are
  // their layers' own.

  // callocs above the small classes, by how they were zeroed.
  std::atomic<uint64_t> calloc_fresh{0};         // pages known to be zero: nothing written
  std::atomic<uint64_t> calloc_memset{0};        // old data: resident pages written with zeros
  std::atomic<uint64_t> calloc_memset_bytes{0};  // ... the bytes written
  std::atomic<uint64_t> class_fallbacks[kNumClasses] = {};  // [0]: large requests
  std::atomic<uint64_t> heap_fallbacks{0};
  std::atomic<uint64_t> foreign_frees{0};
};

// Named plainly (slabby_g_rt) so free()'s lookup (frontend/allocator.h) can
// read the arena's bounds rip-relative; hidden, so nothing interposes it.
extern constinit Runtime g_rt __asm__("slabby_g_rt") __attribute__((visibility("hidden")));

bool init_slow();
// True when slabby serves allocations (false: everything goes to glibc).
SLABBY_INLINE bool ensure_init() {
  int s = g_rt.init_state.load(std::memory_order_acquire);
  if (SLABBY_LIKELY(s == kInitReady)) return true;
  if (s == kInitFailed) return false;
  return init_slow();
}

// Binds the calling thread's cache (registry, TSD destructor).
void thread_init() noexcept;

// The report SLABBY_STATS asks for, to SLABBY_STATS_FILE or stderr.
void write_configured_report();

}  // namespace slabby

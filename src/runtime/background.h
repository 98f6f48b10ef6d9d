// slabby: the background purger. One detached thread, started lazily the
// first time free pages pile up (never from init, never under a lock), so a
// short-lived process never gets one. Each tick (a quarter of
// SLABBY_DECAY_MS) it returns pages free for SLABBY_DECAY_MS, brings free
// pages older than one tick down under SLABBY_RETAIN_MAX (while it runs,
// frees leave the pages freed within the last tick to it: page_heap.h), and,
// with SLABBY_STATS_INTERVAL_MS, rewrites the stats file (then it starts on
// the first slow path). Each decay period it also drains the caches of CPUs
// that had no misses and reclaims the transfer stacks and spare slabs of
// classes that saw no traffic. SLABBY_BACKGROUND=0: never started (decay
// and SLABBY_RETAIN_MAX still hold, driven by frees). A forked child starts
// its own when it needs one.
#pragma once

#include <atomic>

#include "common/base.h"
#include "runtime/runtime.h"

namespace slabby {

enum BackgroundState : int { kBgNone = 0, kBgStarting, kBgRunning, kBgFailed };
extern std::atomic<int> g_background;

void start_background() noexcept;

// Called by allocations' slow paths after they released every lock; never
// by a free (glibc frees a thread's TLS under the lock pthread_create takes:
// cache/thread_cache.h CacheUpcalls).
SLABBY_INLINE void maybe_start_background() noexcept {
  if (SLABBY_UNLIKELY(g_rt.heap.wants_background() || g_rt.config.config.stats_interval_ms != 0 ||
                      g_rt.config.config.prof_interval_ms != 0) &&
      g_background.load(std::memory_order_relaxed) == kBgNone)
    start_background();
}

// Everything free right now back to the OS (slabby_purge): this thread's
// bins, every CPU's cache, transfer stacks, spare slabs, then every free
// page. To empty a CPU's cache the calling thread runs on that CPU for a
// moment (sched_setaffinity; its own affinity mask is restored after).
// Returns bytes purged.
size_t release_all_now() noexcept;
// The same for malloc_trim, at time now_ms (os::now_ms): every CPU's cache at
// most once per decay period; a call within the period of the last one that
// emptied them all empties only the calling CPU's.
size_t release_for_trim(uint64_t now_ms) noexcept;

}  // namespace slabby

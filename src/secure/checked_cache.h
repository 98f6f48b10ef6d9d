// slabby: the per-thread state of the checked paths.
//
// Invariants (owning thread only):
// - bins[c] holds limit - space free blocks of class c (0 <= space <= limit
//   between calls; limit 0 until the thread's first release into the bin,
//   and after its teardown), linked through their first word encoded with
//   encode_link (a corrupted link is detected, never followed); each carries
//   its free-state tag when g_checks.tags. The limit starts at the class's
//   base and follows demand as the default bins' do (checked_small.cc
//   bin_missed: cache/thread_cache.h bin_grow_by).
// - quarantine holds freed blocks oldest first (head) to newest (tail):
//   small ones linked through their first word (encoded), large ones through
//   their span's `freelist` field (their pages may be PROT_NONE); `bytes` is
//   the sum of their sizes.
// - A thread with on_cpu keeps its free blocks in the per-CPU caches instead
//   (cache/percpu_cache.h): their slots hold pointers only; such a block's
//   first word holds the encoded end-of-list link (checked when it leaves),
//   its tag and zeros are as in a bin. The bins then serve only while the
//   CPU cache cannot be used. A thread starts on its bins and moves, once
//   and for good, by the default caches' rule (cache/thread_cache.h
//   cache_threads_due: SLABBY_PERCPU_THREADS live threads) when its rseq
//   area works: from a slow path, its bins emptied into the central pools
//   first (checked_small.cc move_to_cpu_if_due). Its teardown clears it.
// - Used only while the thread's ThreadCache is kCacheActive; other threads
//   (before init, after teardown) go to the central pools block by block.
#pragma once

#include <cstdint>

#include "common/size_class.h"

namespace slabby {

// As the default bins (cache/thread_cache.h Bin), a free is "if (--space >=
// 0) push": one instruction and a branch on the hardened library's inline
// path (frontend/hardened_fast.h); a miss undoes the decrement.
struct CheckedBin {
  uintptr_t head;
  int32_t space;   // room left: limit - blocks held
  uint16_t limit;  // 0 until the thread's first release or refill, and after its teardown
  uint16_t fill;   // blocks the next refill takes: 4, 8, ... up to limit / 2 (0: 4)
};
static_assert(sizeof(CheckedBin) == 16, "the inline paths address bins by (2 * cls) * 8");

inline uint32_t checked_bin_count(const CheckedBin& b) {
  return b.limit - static_cast<uint32_t>(b.space);
}
// Changes a bin's limit, keeping its blocks (at most the new limit).
inline void checked_bin_set_limit(CheckedBin& b, uint32_t limit) {
  b.space += static_cast<int32_t>(limit) - static_cast<int32_t>(b.limit);
  b.limit = static_cast<uint16_t>(limit);
  if (b.fill > limit / 2) b.fill = static_cast<uint16_t>(limit / 2);
}

struct Quarantine {
  uintptr_t head;
  uintptr_t tail;
  uint64_t bytes;
  uint64_t blocks;
};

struct CheckedCache {
  CheckedBin bins[kNumClasses];
  Quarantine quarantine;
  uint32_t guard_countdown;  // small allocations until the next guarded one
  uint32_t leak_countdown;   // allocations until the next traced one
  uint32_t on_cpu;           // free blocks go to the CPU caches, not the bins
};

// Named plainly (slabby_tl_checked) so the hardened library's inline paths
// can load its TLS offset (frontend/hardened_fast.h), as tl_cache's.
extern __thread CheckedCache tl_checked __asm__("slabby_tl_checked")
    __attribute__((tls_model("initial-exec")));

// Shared by the checked paths (checked_small.cc, checked_large.cc).
// Small blocks: a freed block (tag and zeros verified) back to the thread's
// bin or the central pool.
void checked_release_small(uintptr_t p, unsigned cls) noexcept;
// A large block leaving the quarantine (or freed without one).
void checked_release_large(uintptr_t block) noexcept;
// Holds a freed block back (g_checks.quarantine > 0); evicts the oldest.
void quarantine_push(uintptr_t p, uint64_t bytes) noexcept;
void quarantine_drain() noexcept;

}  // namespace slabby

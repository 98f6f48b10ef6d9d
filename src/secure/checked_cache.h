// slabby: the per-thread state of the checked paths.
//
// Invariants (owning thread only):
// - bins[c] holds `count` (<= limit, or 0 while limit is 0) free blocks of class c, linked through their first
//   word encoded with encode_link (a corrupted link is detected, never
//   followed); each carries its free-state tag when g_checks.tags.
// - quarantine holds freed blocks oldest first (head) to newest (tail):
//   small ones linked through their first word (encoded), large ones through
//   their span's `freelist` field (their pages may be PROT_NONE); `bytes` is
//   the sum of their sizes.
// - A thread whose ThreadCache has rseq_ok keeps its free blocks in the
//   per-CPU caches instead (cache/percpu_cache.h): their slots hold
//   pointers only; such a block's first word holds the encoded end-of-list
//   link (checked when it leaves), its tag and zeros are as in a bin. The bins then serve only
//   while the CPU cache cannot be used.
// - Used only while the thread's ThreadCache is kCacheActive; other threads
//   (before init, after teardown) go to the central pools block by block.
#pragma once

#include <cstdint>

#include "common/size_class.h"

namespace slabby {

struct CheckedBin {
  uintptr_t head;
  uint32_t count;
  uint32_t limit;  // 0 until the thread's first release into the bin, and after its teardown
};

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
};

extern __thread CheckedCache tl_checked __attribute__((tls_model("initial-exec")));

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

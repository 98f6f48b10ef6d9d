// slabby: what the operating-system layer's files share, and nothing else
// includes.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace slabby::os {

// Saves errno for the lifetime of a scope: the allocator's own system calls
// must never leak an errno into the program (free preserves errno).
struct ErrnoKeeper {
  int saved = errno;
  ~ErrnoKeeper() { errno = saved; }
};

// Counts a madvise call made outside os.cc (madvise_calls()).
void note_madvise();

// Written-page tracking (os/written_pages.cc, asked in os/residency.cc).
// True in the process that started it, while it is on.
bool writes_tracked_here();
// The pages of [first, first + pages * unit) written since they were last
// protected, one byte each: 2 (written, present), 1 (written, swapped out)
// or 0 (not written, or written and since purged: reads as zero). false when
// the kernel cannot answer for the whole range (a part not registered).
bool written_states(uintptr_t first, size_t pages, size_t unit, uint8_t* out);
// Protects the written pages of [p, p + bytes) (whole pages): they read as
// not written until written again. false when the kernel refused.
bool protect_written(void* p, size_t bytes);

}  // namespace slabby::os

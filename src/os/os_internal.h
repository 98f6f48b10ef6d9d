// slabby: what the operating-system layer's files share, and nothing else
// includes.
#pragma once

#include <cerrno>

namespace slabby::os {

// Saves errno for the lifetime of a scope: the allocator's own system calls
// must never leak an errno into the program (free preserves errno).
struct ErrnoKeeper {
  int saved = errno;
  ~ErrnoKeeper() { errno = saved; }
};

// Counts a madvise call made outside os.cc (madvise_calls()).
void note_madvise();

}  // namespace slabby::os

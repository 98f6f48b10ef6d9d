// Guard-page fault reports: with Options::guard_pages, a SIGSEGV whose
// address falls in a pool's guard page prints one line naming the slab
//   slabby: guard page violation at 0x...: 1 bytes past the end of slab 3
// and then lets the fault take its course (the previous handler, or the
// default action: the process dies of SIGSEGV as it would have anyway).
//
// Registry invariants: a fixed table (no allocation, async-signal-safe to
// read); an entry is live iff its `begin` is non-zero; `begin` is published
// last (release) on registration and cleared first on removal, so the
// handler reads consistent layouts. A full table only loses the message.
#pragma once

#include <cstddef>
#include <cstdint>

namespace slabby::slab_pool {

struct GuardLayout {
  uintptr_t begin = 0;  // the mapping
  uintptr_t end = 0;
  size_t page = 0;    // a guard page, then [data][guard] per slot
  size_t stride = 0;  // data + page
  size_t data = 0;    // whole pages holding one slab at their end
  size_t slab = 0;
};

void register_guarded(const GuardLayout& layout);
void unregister_guarded(uintptr_t begin);

}  // namespace slabby::slab_pool

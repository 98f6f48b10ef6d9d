// slabby: what idle medium classes grew, given back as the heap grows.
//
// The medium classes grow with demand (percpu_sizing.cc, bin_sizing.cc)
// within one budget for the process (SLABBY_MEDIUM_GROW_BYTES), and a
// background pass (SLABBY_DECAY_MS, 1 s by default) halves what a quiet
// class grew. A program that moves from one medium size to the next faster
// than that (phases of a computation, a server whose request sizes shift)
// kept the earlier sizes' blocks in its caches, up to the whole budget,
// while the page heap took new pages for the new size: 5 phases of 100
// blocks of 48-768 KiB peaked at 1.62 x jemalloc's RSS, 1.09 with no growth
// (bench medium-phases, 2026-12-07).
//
// So every kMediumMissesPerLook medium misses a thread looks at the medium
// classes of its bins and of its CPU's cache: which did anyone use since
// its last look? When the page heap handed out clean pages in between (its
// RSS grew: PageHeap::clean_pages_taken), the classes nobody used since the
// look before the last either (two looks: with one, a program of random
// medium sizes, a few blocks of each live, gave back classes it was using
// and took them again, its blocks moving to other pages: 1-256 KiB, 64
// live, peaked at 12.0 MiB against 8.4), but the one missing now, go back
// to their base: their blocks go to the central pools, and their pages (a
// medium slab is one block) to the page heap, whose dirty pages the next
// slabs take first. While the heap does not
// grow, a look only notes: a program whose sizes wander within its
// footprint gives nothing back.
//
// "Used" is read without a counter on any fast path: a bin's class by the
// thread's allocs (counted on its fast path already), a CPU cache's class by
// its cursor word (cur and the inline free's pushes) and its misses, which a
// pop or a push changes but for a pop and a push by slow paths that leave
// cur where it was (another bin thread's on that CPU: such a class given
// back misses, and grows again if busy; the thread's own show in its
// allocs). Looks are per thread; the first two only note.
#include "cache/budget_bytes.h"
#include "cache/percpu_region.h"
#include "cache/thread_cache.h"
#include "central/central_pool.h"
#include "common/size_class.h"

namespace slabby {

static_assert(kNumMediumClasses <= 32, "a look's `idle` has a bit per medium class");

void medium_look(ThreadCache& tc, char* region, unsigned cls) {
  tc.medium_looked = tc.medium_misses;
  // Bit c - kNumSmallClasses: class c not allocated by this thread since its last look.
  uint32_t idle = 0;
  for (unsigned c = kNumSmallClasses; c < kNumClasses; ++c) {
    uint32_t& seen = tc.medium_allocs_seen[c - kNumSmallClasses];
    uint32_t now = static_cast<uint32_t>(tc.allocs[c]);
    if (now == seen) idle |= uint32_t{1} << (c - kNumSmallClasses);
    seen = now;
  }
  uint32_t twice = idle & tc.medium_idle;  // ... nor since the look before
  tc.medium_idle = idle;
  auto heap = static_cast<uint32_t>(g_central_pools[cls].heap_clean_pages_taken());
  bool grew = heap != tc.medium_heap_seen;
  tc.medium_heap_seen = heap;
  if (grew) bins_reclaim_idle_medium(tc, cls, twice);
  if (region == nullptr) region = percpu_region_here();
  if (region != nullptr) sizing_reclaim_idle_medium(region, cls, ~idle, grew);
}

}  // namespace slabby

// slabby: slabs on transparent huge pages (SLABBY_THP=dense, the default).
//
// A slab is filled from its first block on, so unlike a large block it
// never leaves most of a huge page untouched; what huge pages cost slabs is
// the grain (RSS grows 2 MiB at a time) and what they save is a fault and a
// TLB entry per 4 KiB. A program that has put kHugeSlabsAfter bytes into
// slabs is past the point where the grain matters: from then on, a slab
// request that no free span can serve takes a whole aligned huge page at the
// frontier (the pages before it, up to the boundary, become a free span),
// marks it MADV_HUGEPAGE, keeps its first pages and leaves the rest free and
// clean, for the next slabs (free spans are taken dirty first, then the
// smallest clean one that fits, so a chunk is used up before the frontier
// moves again). On a host where a page fault is dear (this project's VMs: a
// 4 KiB first write costs about 6 us of system time and 1.2 us of the
// program's own, bench/tools/page_costs.c) this is most of the difference to an allocator
// whose whole arena is marked (docs/benchmarks.md, "Slabs on huge pages").
//
// Adjacent chunks are one mapping to the kernel (same flags: it merges
// them); a chunk that does not start where the last one ended starts a new
// run, and kMaxHugeSlabRuns bounds them. What else may land in a chunk: a
// large span or a remap target taking its free pages gets them on huge pages
// too (a remapped span's release maps its range back with the arena's flags,
// and a large span's own marks come and go as in huge_marks.cc, splitting the
// run); a purge of free pages inside a chunk splits the huge page, as a
// purge must. The kernel's khugepaged may later collapse a chunk that was
// split, faulting its purged pages back in (docs/design.md: the risk);
// mimalloc's arenas, marked whole, share that.
#include "heap/page_heap.h"
#include "os/os.h"

namespace slabby {

void PageHeap::note_slab_bytes_locked(int64_t bytes) {
  slab_bytes_ += static_cast<uint64_t>(bytes);  // wraps back for a negative one
  if (slab_bytes_ >= kHugeSlabsAfter) huge_slabs_due_ = true;
}

Span* PageHeap::grow_slab_chunk_locked(size_t pages) {
  const size_t chunk_pages = huge_page_size_ >> kPageShift;
  if (pages > chunk_pages) return nullptr;
  if (stats_.huge_slab_runs >= kMaxHugeSlabRuns) return nullptr;
  // A span ending at the new frontier, its last chunk_pages pages the chunk
  // (a free span that ended at the old frontier is extended: grow_locked).
  Span* s = grow_locked(chunk_pages, chunk_pages, 0);
  if (s == nullptr) return nullptr;
  uintptr_t chunk = s->end() - huge_page_size_;
  // Taken, so the head split off below cannot merge back into it.
  s->state = SpanState::kLarge;
  if (s->start < chunk) {
    Span* rest = split_locked(s, (chunk - s->start) >> kPageShift);
    if (rest == nullptr) {
      merge_and_insert_locked(s);
      return nullptr;
    }
    merge_and_insert_locked(s);
    s = rest;
    s->state = SpanState::kLarge;
  }
  os::mark_huge(reinterpret_cast<void*>(chunk), huge_page_size_, true);
  if (chunk != huge_run_end_) stats_.huge_slab_runs++;
  huge_run_end_ = chunk + huge_page_size_;
  stats_.huge_slab_chunks++;
  return s;
}

}  // namespace slabby

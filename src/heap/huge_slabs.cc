// slabby: slabs on transparent huge pages (SLABBY_THP=dense, the default).
//
// A small blocks' slab is filled from its first block on, so unlike a large
// block it never leaves most of a huge page untouched (a medium block is a
// slab of its own, not filled by construction: a medium class's slabs take
// chunks only once one of them is seen filled, PageHeap::alloc_slab and
// medium_to_look_at_locked); what huge pages cost slabs is the grain (RSS
// grows 2 MiB at a time) and what they save is a fault and a TLB entry per
// 4 KiB. A program that has put kHugeSlabsAfter bytes into
// slabs is past the point where the grain matters: from then on, a slab
// request that no free dirty span can serve takes a whole aligned huge page
// (a chunk: of free clean pages if the free bins hold one, else at the
// frontier, the pages before it up to the boundary becoming a free span),
// marks it MADV_HUGEPAGE, keeps its first pages and leaves the rest free and
// clean for the next slabs, which take them before any other clean page
// (take_slab_span_locked). On a host where a page fault is dear (this
// project's VMs: a 4 KiB first write costs about 6 us of system time and
// 1.2 us of the program's own, bench/tools/page_costs.c) this is most of the
// difference to an allocator whose whole arena is marked (docs/benchmarks.md,
// "Slabs on huge pages").
//
// Adjacent chunks are one mapping to the kernel (same flags: it merges
// them); a chunk that does not start where the last one ended starts a new
// run, and kMaxHugeSlabRuns bounds them. What else may land in a chunk: a
// large span or a remap target taking its free pages gets them on huge pages
// too (a remapped span's release maps its range back with the arena's flags,
// and a large span's own marks come and go as in huge_marks.cc, splitting the
// run); a purge of free pages inside a chunk splits the huge page, as a
// purge must.
//
// A chunk a purge touches is marked back at once (MADV_NOHUGEPAGE):
// khugepaged collapses any marked huge page with a page still present
// (max_ptes_none, 511 by default), so it would fault the purged pages back
// in. Measured before this (bench/tools/thp_creep.c): 192 MiB of small
// blocks, half freed and trimmed, RSS 221 -> 125 MiB, and back to 213 MiB
// two minutes later. A chunk purged whole could keep its mark (nothing is
// left in it to collapse), but then chunks purged whole and in part
// alternate, each a mapping: 163 after a 1.1 GiB burst was freed
// (tests/lifecycle/burst_rss.cc), against a handful when every purged chunk
// goes back to the arena's mapping. A program that grows again makes chunks
// of those pages again when its slabs need them. chunk_bits_ records which
// huge pages are chunks, so nothing else's marks are touched.
#include "heap/page_heap.h"
#include "os/os.h"

namespace slabby {

void PageHeap::note_slab_bytes_locked(int64_t bytes) {
  slab_bytes_ += static_cast<uint64_t>(bytes);  // wraps back for a negative one
  if (slab_bytes_ >= kHugeSlabsAfter) huge_slabs_due_ = true;
}

bool PageHeap::chunk_allowed_locked() {
  if (stats_.huge_slab_runs >= kMaxHugeSlabRuns ||
      stats_.huge_slab_chunks - stats_.huge_slab_unmarked >= kMaxHugeSlabChunks)
    return false;
  if (chunk_bits_ == nullptr) {
    // One bit per huge page of the arena (one more: base_ may sit inside one).
    size_t bits = size_ / huge_page_size_ + 1;
    size_t bytes = round_up((bits + 63) / 64 * sizeof(uint64_t), kPageSize);
    chunk_bits_ = static_cast<uint64_t*>(os::map_rw(bytes));
    if (chunk_bits_ == nullptr) return false;
    chunk_bits_n_ = bits;
    stats_.metadata_bytes += bytes;
  }
  return true;
}

void PageHeap::mark_chunk_locked(uintptr_t chunk) {
  size_t i = (chunk - base_) / huge_page_size_;
  if (chunk_bit(i)) return;
  os::mark_huge(reinterpret_cast<void*>(chunk), huge_page_size_, true);
  set_chunk_bit_locked(i, true);
  stats_.huge_slab_chunks++;
}

// The chunks a purge marks back (below) served every later slab on 4 KiB
// pages, and so did the clean pages the best fit picked before a chunk: a
// program whose heap grows, goes back and grows again (python building and
// dropping a 300 MiB dict, phase after phase) faulted most of its later heaps
// in 4 KiB at a time, 60,000 faults a run where mimalloc 3 takes 3,000-5,000
// (docs/benchmarks.md, "Chunks again after a purge"). So a slab that no
// dirty span serves comes from the chunk the last one came from while it
// lasts (chunk_cursor_), then from a new chunk: a whole aligned huge page of
// clean free pages, marked (it has nothing khugepaged could collapse into
// free pages: what it holds is about to be slabs), else one at the frontier;
// from any other clean span only when no chunk may be made.
Span* PageHeap::take_slab_span_locked(size_t pages, size_t* align_pages) {
  const size_t chunk_pages = huge_page_size_ >> kPageShift;
  const uintptr_t bytes = uintptr_t{pages} << kPageShift;
  Span* s = take_from_bins(free_[1], pages);
  if (s == nullptr && (s = at_chunk_cursor_locked(bytes)) != nullptr) chunk_cursor_ += bytes;
  if (s == nullptr && pages <= chunk_pages && chunk_allowed_locked() &&
      fault_judge_.chunk_pays(bytes)) {
    // A span with an aligned huge page in it: free clean pages, else at the
    // frontier (a free span that ends there is extended: grow_locked).
    Span* whole = take_aligned_from_bins(free_[0], chunk_pages, chunk_pages);
    if (whole != nullptr)
      remove_free_locked(whole);
    else
      whole = grow_locked(chunk_pages, chunk_pages, 0);
    if (whole != nullptr) {
      uintptr_t chunk = round_up(whole->start, uintptr_t{huge_page_size_});
      // A large span's mark kept on these pages goes first, as for any
      // other use of them (huge_marks.cc).
      if (kept_marks_n_ != 0) settle_marks_locked(chunk, chunk_pages, false);
      mark_chunk_locked(chunk);
      *align_pages = chunk_pages;  // the caller splits the head off
      chunk_cursor_ = chunk + bytes;
      chunk_to_time_ = chunk;
      return whole;
    }
  }
  // Chunks not allowed (or no room for one): any clean span, 4 KiB faults.
  if (s == nullptr) s = take_from_bins(free_[0], pages);
  if (s != nullptr) remove_free_locked(s);
  return s;
}

PageHeap::FaultKind PageHeap::fault_to_time_locked(const Span* s) {
  if (chunk_to_time_ != 0 && s->start == chunk_to_time_) {
    chunk_to_time_ = 0;
    return fault_judge_.enabled() ? FaultKind::kHuge : FaultKind::kNone;
  }
  // A clean span outside the chunks faults in small pages (a cursor's slab
  // lies in a chunk faulted in already).
  if (s->dirty || !fault_judge_.wants_small_sample()) return FaultKind::kNone;
  if (in_chunk_locked(s->start)) return FaultKind::kNone;
  return FaultKind::kSmall;
}

void PageHeap::time_first_touch(uintptr_t p, FaultKind kind) {
  // Clean (zeros) and not handed out yet: a zero word written there changes
  // nothing but brings its fault forward. A huge page's fault is timed by
  // the thread's CPU time: a preemption inside it would read as a slow
  // fault and stop the chunks for a while.
  uint64_t ns = os::time_first_write(reinterpret_cast<void*>(p), kind == FaultKind::kHuge);
  LockGuard g(*mu_);
  if (kind == FaultKind::kHuge)
    fault_judge_.note_huge(ns);
  else
    fault_judge_.note_small(ns);
}

PageHeap::Range PageHeap::medium_to_look_at_locked(unsigned cls, const Span* s, bool clean,
                                                   Range* discard) {
  uintptr_t prev = medium_last_[cls];
  uint32_t after = medium_checks_[cls] + (prev != 0 ? 1 : 0);
  if (!clean && s->pages > 1 && after % kDensityCheckEvery == 0 &&
      after < kDensityCheckEvery * kDirtyLooksMost && !touches_chunk_locked(s)) {
    // Its pages but the first given back (made clean), so the next look
    // reads what its program wrote.
    *discard = {s->start + kPageSize, (size_t{s->pages} - 1) << kPageShift};
    clean = true;
  }
  if (clean) medium_last_[cls] = s->start;
  if (prev == 0 || medium_checks_[cls]++ % kDensityCheckEvery != 0) return {0, 0};
  // Still the class's slab (freed since, its pages may serve anything).
  const Span* p = page_map_[(prev - base_) >> kPageShift];
  if (p == nullptr || p->state != SpanState::kSlab || p->cls != cls || p->start != prev)
    return {0, 0};
  // Pages in a chunk are present as one huge page, whatever the block's
  // program wrote: such a slab (one that took a chunk's leftover free pages)
  // says nothing of its class. Taken for filled, it gave every later slab
  // of the class a chunk: blocks written at their first and last bytes,
  // fully resident.
  if (touches_chunk_locked(p)) return {0, 0};
  return {prev, size_t{p->pages} << kPageShift};
}

Span* PageHeap::at_chunk_cursor_locked(uintptr_t bytes) {
  uintptr_t at = chunk_cursor_;
  const uintptr_t huge = huge_page_size_;
  // Used up (at the next huge page), or the slab would leave its chunk.
  if (at == 0 || (at & (huge - 1)) == 0 || round_up(at, huge) - at < bytes || at >= frontier_end())
    return nullptr;
  // Marked back since (a purge touched it): not a chunk any more.
  if (!chunk_bit((at - base_) / huge)) return nullptr;
  // The free span there must start at the cursor (a large span may have
  // taken those pages, or a freed slab before them joined them: dirty).
  Span* c = page_map_[(at - base_) >> kPageShift];
  if (c == nullptr || c->state != SpanState::kFree || c->dirty || c->start != at ||
      (uintptr_t{c->pages} << kPageShift) < bytes)
    return nullptr;
  return c;
}

void PageHeap::set_chunk_bit_locked(size_t i, bool on) {
  bool left = i > 0 && chunk_bit(i - 1);
  bool right = i + 1 < chunk_bits_n_ && chunk_bit(i + 1);
  // Setting a bit joins the runs beside it (or starts one); clearing it
  // splits its run (or ends one).
  int64_t delta = 1 - int64_t{left} - int64_t{right};
  stats_.huge_slab_runs += static_cast<uint64_t>(on ? delta : -delta);
  if (on)
    chunk_bits_[i / 64] |= uint64_t{1} << (i % 64);
  else
    chunk_bits_[i / 64] &= ~(uint64_t{1} << (i % 64));
}

void PageHeap::unmark_chunk_locked(uintptr_t chunk) {
  if (chunk < base_) return;
  size_t i = (chunk - base_) / huge_page_size_;
  if (i >= chunk_bits_n_ || !chunk_bit(i)) return;
  set_chunk_bit_locked(i, false);
  os::mark_huge(reinterpret_cast<void*>(chunk), huge_page_size_, false);
  stats_.huge_slab_unmarked++;
}

void PageHeap::unmark_purged_chunks_locked(uintptr_t start, uintptr_t end) {
  if (chunk_bits_ == nullptr) return;  // no chunk yet
  uintptr_t first = start & ~(uintptr_t{huge_page_size_} - 1);
  for (uintptr_t c = first; c < end; c += huge_page_size_) unmark_chunk_locked(c);
}

}  // namespace slabby

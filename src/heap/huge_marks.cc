// slabby: the page heap's transparent huge page marks (SLABBY_THP=large).
//
// A live large span holding a whole aligned huge page is marked
// MADV_HUGEPAGE, which makes it a mapping of its own. A freed one that stays
// mapped keeps its mark in a small table (kept_marks_, under the heap lock),
// because the commonest next request is for the same pages: a program that
// allocates and frees one big buffer in a loop (posix_memalign(2 MiB, 2 MiB),
// malloc(4 MiB)) made two madvise calls an iteration, each splitting and
// merging the mapping, which cost more than the program's own use of the
// buffer. Whatever else takes those pages (a slab, a remap target, a span
// growing into them, a large span of other bounds) marks them back first, so
// small slabs never sit in a kept mark's mapping (they may sit in one of
// their own: huge_slabs.cc).
#include "heap/page_heap.h"
#include "os/os.h"

namespace slabby {

void PageHeap::note_huge_request(size_t pages) {
  // A huge span purged at its free, then a request it could have served:
  // this program reuses big blocks, keep them from now on (up to
  // retain_max, as every free span).
  if (pages > keep_huge_pages_.load(std::memory_order_relaxed) && pages <= last_huge_purged_pages_)
    keep_huge_pages_.store(retain_max_ >> kPageShift, std::memory_order_relaxed);
}

namespace {

unsigned size_bit(size_t pages) { return floor_log2(pages); }

}  // namespace

bool PageHeap::wants_huge(size_t pages) const {
  if (!huge_spans_) return false;
  if (!learn_density_) return true;
  return (dense_sizes_.load(std::memory_order_relaxed) >> size_bit(pages)) & 1;
}

void PageHeap::note_density(const Span* s) {
  // Inner marks leave the first whole huge page, the one looked at, on
  // small pages.
  if (!learn_density_ || (s->huge && !s->huge_inner)) return;
  if (!holds_huge_page(s)) return;  // never marked: nothing to learn
  uintptr_t first = round_up(s->start, huge_page_size_);
  unsigned b = size_bit(s->pages);
  if ((dense_sizes_.load(std::memory_order_relaxed) >> b) & 1) return;
  if (density_checks_[b].fetch_add(1, std::memory_order_relaxed) % kDensityCheckEvery != 0) return;
  if (looks_filled(first, huge_page_size_))
    dense_sizes_.fetch_or(uint64_t{1} << b, std::memory_order_relaxed);
}

bool PageHeap::looks_filled(uintptr_t start, size_t bytes) {
  // At least 7/8 resident: a program that writes all of its buffer; one
  // that writes its first few KiB leaves the rest untouched, and huge pages
  // would multiply what it holds.
  return os::resident_bytes(reinterpret_cast<void*>(start), bytes) >= bytes / 8 * 7;
}

void PageHeap::mark_huge(Span* s, bool inner_ok) {
  if (!huge_spans_ || s->huge || !holds_huge_page(s)) return;
  uintptr_t from = s->start, to = s->end();
  bool inner = !wants_huge(s->pages);
  if (inner) {
    // SLABBY_THP=dense, a size no freed block has shown filled yet: often
    // the program's first block of its size, such as the big array a load
    // phase fills (trace-replay: 33,000 faults of 4 KiB, 8.5 us each on
    // this project's VMs; docs/benchmarks.md). Only a clean span just handed
    // out: dirty pages already present in a marked range would let
    // khugepaged collapse it around them (the creep huge_slabs.cc avoids).
    // Its first and last whole huge pages stay small: a program that writes
    // a block's start, or its start and its end (large-gaps: 19% slower
    // with the end marked, each a 2 MiB fault), takes no huge page; one that
    // fills it takes them from the second on. At least kInnerHugePages, so
    // the two madvise calls (here and at the free) have that much to save.
    if (!inner_ok || !s->zeroed) return;
    from = round_up(s->start, huge_page_size_) + huge_page_size_;
    to = round_down(s->end(), huge_page_size_) - huge_page_size_;
    if (to < from + kInnerHugePages * huge_page_size_) return;
  }
  // Under SLABBY_THP=dense only while huge pages fault faster than small
  // ones here (fault_judge.h), as the slabs' chunks, whose faults it times,
  // show. A large span's own first fault would tell little: taken before the
  // program writes it, it gets the host's cheapest huge page (memory freed
  // moments ago, often the program's previous buffer) and the rest may not
  // (a 64 MiB block of a doubling vector: 80 us timed, 0.12 s to fill).
  if (learn_density_ && !fault_judge_.on()) return;
  if (huge_live_.fetch_add(1, std::memory_order_relaxed) >= kMaxHugeSpans) {
    huge_live_.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  // The three parts are three mappings from here on, and move_by_remap
  // joins them back into one for mremap. The kernel merges them only if
  // they share the arena mapping's anon_vma, which the first write to it
  // creates: a part first written after the split would get its own, and a
  // realloc of the block would copy it. So its first byte (zero already)
  // is written first, in case nothing in the arena was yet.
  if (inner) *reinterpret_cast<volatile char*>(s->start) = 0;
  os::mark_huge(reinterpret_cast<void*>(from), to - from, true);
  s->huge = true;
  s->huge_inner = inner;
}

void PageHeap::unmark_huge(Span* s, uintptr_t p, size_t bytes, bool whole) {
  if (!s->huge) return;
  os::mark_huge(reinterpret_cast<void*>(p), bytes, false);
  if (!whole) return;
  s->huge = s->huge_inner = false;
  huge_live_.fetch_sub(1, std::memory_order_relaxed);
}

void PageHeap::keep_mark_locked(uintptr_t start, size_t pages) {
  if (kept_marks_n_ == kKeptMarks) drop_mark_locked(0, true);
  kept_marks_[kept_marks_n_++] = {start, pages};
}

void PageHeap::drop_mark_locked(size_t i, bool unmark) {
  const KeptMark& m = kept_marks_[i];
  if (unmark) {
    os::mark_huge(reinterpret_cast<void*>(m.start), m.pages << kPageShift, false);
    huge_live_.fetch_sub(1, std::memory_order_relaxed);
  }
  for (size_t j = i + 1; j < kept_marks_n_; ++j) kept_marks_[j - 1] = kept_marks_[j];
  kept_marks_n_--;
}

PageHeap::Takeover PageHeap::settle_marks_locked(uintptr_t start, size_t pages, bool marking) {
  uintptr_t end = start + (uintptr_t{pages} << kPageShift);
  Takeover took = Takeover::kNone;
  for (size_t i = kept_marks_n_; i-- > 0;) {
    const KeptMark& m = kept_marks_[i];
    uintptr_t m_end = m.start + (uintptr_t{m.pages} << kPageShift);
    if (m_end <= start || m.start >= end) continue;
    // The first mark the span covers gives it its place in huge_live_;
    // any other it covers is one place too many.
    bool covered = marking && took == Takeover::kNone && m.start >= start && m_end <= end;
    if (covered) {
      took = m.start == start && m_end == end ? Takeover::kExact : Takeover::kCovered;
      stats_.huge_marks_reused++;
    }
    drop_mark_locked(i, !covered);
  }
  return took;
}

}  // namespace slabby

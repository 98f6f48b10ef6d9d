// slabby: large spans changing size in place or moving by mremap (the page
// heap's half of realloc; the policy is frontend/resize.cc's).
//
// The mapping invariant (page_heap.h) is kept here: a span grows only into
// linear pages and only when it is not remapped itself; a remapped span's
// tail is mapped afresh before it is freed, and so is its whole range when it
// is freed or moved away.
#include <cstring>

#include "heap/page_heap.h"
#include "os/os.h"

namespace slabby {

bool PageHeap::remap_fresh(uintptr_t p, size_t bytes) {
  if (!os::map_fresh(reinterpret_cast<void*>(p), bytes)) return false;
  // The fresh mapping must carry the arena's flags, or it would not merge
  // with its neighbours.
  if (thp_ != os::Thp::kMadvise) os::set_thp(reinterpret_cast<void*>(p), bytes, thp_);
  return true;
}

bool PageHeap::grow_in_place(Span* s, size_t pages, bool all_pages) {
  // A remapped span's mapping ends where the span does: growing past it
  // would leave the span across two mappings, which one mremap cannot move.
  if (s->remapped || pages <= s->pages || pages > (size_t{1} << 31)) return false;
  uintptr_t old_end = s->end();
  {
    LockGuard g(*mu_);
    if (!grow_locked(s, pages, all_pages)) return false;
  }
  // The grown part joins the span's marked mapping once it completes a huge
  // page (not at every step: a buffer growing by 4 KiB made one madvise per
  // realloc); until then it stays in the arena's mapping, where a huge page
  // could not fit anyway. So a marked span lies in its marked mapping plus
  // at most the part of one huge page after it (move_by_remap joins them
  // first). A span not marked yet is marked whole once it holds a huge page.
  if (s->huge) {
    uintptr_t from = round_down(old_end, huge_page_size_);
    if (from != round_down(s->end(), huge_page_size_)) {
      if (from < s->start) from = s->start;
      os::mark_huge(reinterpret_cast<void*>(from), s->end() - from, true);
    }
  } else {
    mark_huge(s);
  }
  return true;
}

bool PageHeap::grow_locked(Span* s, size_t pages, bool all_pages) {
  note_huge_request(pages);
  size_t extra = pages - s->pages;
  if (max_heap_ != 0 && stats_.in_use_bytes + (uint64_t{extra} << kPageShift) > max_heap_)
    return false;
  size_t end = (s->end() - base_) >> kPageShift;
  Span* r = end < frontier_pages_ ? page_map_[end] : nullptr;
  bool next_free = r != nullptr && r->state == SpanState::kFree && r->start == s->end();
  size_t from_free = next_free ? (r->pages < extra ? r->pages : extra) : 0;
  // What the free neighbour lacks may come from the frontier when the
  // neighbour (or the span itself) ends there.
  size_t reach_end = next_free ? end + r->pages : end;
  size_t from_frontier = extra - from_free;
  if (from_frontier > 0 &&
      (reach_end != frontier_pages_ || !extend_frontier_locked(from_frontier)))
    return false;
  if (next_free) {
    remove_free_locked(r);
    if (r->pages > from_free) {
      Span* tail = split_locked(r, from_free);
      if (tail == nullptr) {  // no descriptor for the rest: give up, as found
        insert_free_locked(r);
        if (from_frontier > 0) frontier_pages_ -= from_frontier;
        return false;
      }
      insert_free_locked(tail);  // its neighbours are as r's were: nothing to merge
    }
    delete_span_locked(r);
  }
  if (kept_marks_n_ != 0) settle_marks_locked(s->end(), extra, false);
  s->pages = static_cast<uint32_t>(pages);
  s->usable = uint64_t{pages} << kPageShift;
  set_page_map(s, all_pages);
  uint64_t bytes = uint64_t{extra} << kPageShift;
  stats_.in_use_bytes += bytes;
  stats_.large_live_bytes += bytes;
  stats_.grown_in_place++;
  return true;
}

void PageHeap::shrink_in_place(Span* s, size_t pages) {
  if (pages == 0 || pages >= s->pages) return;
  uintptr_t cut = s->start + (uintptr_t{pages} << kPageShift);
  size_t tail_bytes = s->end() - cut;
  // A remapped span's tail leaves its mapping: linear again before it is
  // free; a marked span's tail gets the arena's flags back.
  bool fresh = s->remapped && remap_fresh(cut, tail_bytes);
  bool lost = s->remapped && !fresh;
  if (!s->remapped) unmark_huge(s, cut, tail_bytes, false);
  LockGuard g(*mu_);
  Span* tail = split_locked(s, pages);
  if (tail == nullptr) return;  // no descriptor for the tail: the span keeps it
  s->usable = uint64_t{pages} << kPageShift;
  stats_.large_live_bytes -= tail_bytes;
  stats_.shrunk_in_place++;
  if (lost) {  // the range is unmapped: never hand it out again
    tail->state = SpanState::kUnused;
    stats_.in_use_bytes -= tail_bytes;
    stats_.lost_bytes += tail_bytes;
    return;
  }
  tail->state = SpanState::kLarge;  // taken, until free_pages_locked binned it
  free_pages_locked(tail, !fresh);
}

void PageHeap::release_remapped(Span* s) {
  size_t bytes = uint64_t{s->pages} << kPageShift;
  bool fresh = remap_fresh(s->start, bytes);  // with the arena's flags
  remapped_live_.fetch_sub(1, std::memory_order_relaxed);
  if (s->huge) {
    s->huge = s->huge_inner = false;
    huge_live_.fetch_sub(1, std::memory_order_relaxed);
  }
  LockGuard g(*mu_);
  s->remapped = false;
  stats_.large_frees++;
  stats_.large_live_bytes -= bytes;
  if (!fresh) {
    s->state = SpanState::kUnused;
    stats_.in_use_bytes -= bytes;
    stats_.lost_bytes += bytes;
    return;
  }
  free_pages_locked(s, false);
}

Span* PageHeap::move_by_remap(Span* s, size_t pages) {
  if (pages < s->pages) return nullptr;
  // Each remapped span costs the process up to two mappings: bounded. A span
  // that is remapped already stays one remapped span when it moves.
  if (!s->remapped &&
      remapped_live_.fetch_add(1, std::memory_order_relaxed) >= kMaxRemapped) {
    remapped_live_.fetch_sub(1, std::memory_order_relaxed);
    return nullptr;
  }
  size_t old_bytes = uint64_t{s->pages} << kPageShift;
  // One mremap moves one mapping: a marked span's unmarked tail (grow_in_place)
  // joins its mapping first, and an inner-marked span's first and last huge
  // pages do.
  if (s->huge && !s->remapped) {
    os::mark_huge(reinterpret_cast<void*>(s->start), old_bytes, true);
    s->huge_inner = false;
  }
  Span* d = take_remap_target(pages);
  if (d != nullptr && os::move_pages(reinterpret_cast<void*>(s->start), old_bytes,
                                     reinterpret_cast<void*>(d->start), d->usable)) {
    d->zeroed = false;
    // The moved mapping keeps s's flags: a marked span's mark moves with it.
    d->huge = s->huge;  // whole (above)
    s->huge = s->huge_inner = false;
    mark_huge(d);
    // The old range is unmapped now: linear again, then free (clean). The
    // remapped count is unchanged: d took over s's place in it, or the
    // reservation above.
    s->remapped = false;
    bool fresh = remap_fresh(s->start, old_bytes);
    LockGuard g(*mu_);
    stats_.remap_moves++;
    stats_.large_live_bytes -= old_bytes;
    if (fresh) {
      free_pages_locked(s, false);
    } else {
      s->state = SpanState::kUnused;
      stats_.in_use_bytes -= old_bytes;
      stats_.lost_bytes += old_bytes;
    }
    return d;
  }
  if (!s->remapped) remapped_live_.fetch_sub(1, std::memory_order_relaxed);
  if (d != nullptr) {
    // mremap may have unmapped the target before it failed: map it afresh.
    bool fresh = remap_fresh(d->start, d->usable);
    LockGuard g(*mu_);
    stats_.remap_failures++;
    stats_.large_live_bytes -= d->usable;
    d->remapped = false;
    if (fresh) {
      free_pages_locked(d, false);
    } else {
      d->state = SpanState::kUnused;
      stats_.in_use_bytes -= d->usable;
      stats_.lost_bytes += d->usable;
    }
  }
  return nullptr;
}

}  // namespace slabby

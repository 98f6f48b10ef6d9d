#include "heap/page_heap.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "common/size_class.h"
#include "os/os.h"

namespace slabby {

// -------------------------------------------------------------- PageHeap --

bool PageHeap::init(size_t arena_bytes, size_t retain_max) {
  set_retain_max(retain_max);
  huge_page_size_ = os::huge_page_size();
  fault_judge_.init(huge_page_size_ / os::system_page_size());
  size_t min_bytes = size_t{256} << 20;
  if (arena_bytes < min_bytes) arena_bytes = min_bytes;
  arena_bytes = round_up(arena_bytes, size_t{2} << 20);
  for (size_t sz = arena_bytes; sz >= min_bytes; sz /= 2) {
    // The arena commits in 4 MiB steps (few mprotect calls, one growing
    // mapping); its maps in 64 KiB steps (each covers 32 and 256 MiB).
    // The maps read as zeros past what is committed: a pointer into the
    // arena beyond the frontier (a wild free, a corrupted link) finds class
    // 0 and no span, and gets the invalid-pointer report, not a fault.
    if (!arena_.reserve(sz, size_t{2} << 20, size_t{4} << 20)) continue;
    size_t pages = sz >> kPageShift;
    if (page_map_region_.reserve(round_up(pages * sizeof(Span*), kPageSize), kPageSize, 64 << 10,
                                 true) &&
        class_map_region_.reserve(round_up(pages, kPageSize), kPageSize, 64 << 10, true)) {
      page_map_ = reinterpret_cast<Span**>(page_map_region_.base());
      class_map_ = reinterpret_cast<uint8_t*>(class_map_region_.base());
      base_ = reinterpret_cast<uintptr_t>(arena_.base());
      size_ = sz;
      return true;
    }
    if (page_map_region_.base()) os::release(page_map_region_.base(), page_map_region_.reserved());
    os::release(arena_.base(), sz);
    page_map_region_ = Region();
    arena_ = Region();
  }
  return false;
}

Span* PageHeap::new_span_locked() {
  Span* s = span_freelist_;
  if (s != nullptr) {
    span_freelist_ = s->next;
  } else {
    if (span_chunk_left_ < sizeof(Span)) {
      constexpr size_t kChunk = 256 * 1024;
      span_chunk_ = static_cast<char*>(os::map_rw(kChunk));
      if (span_chunk_ == nullptr) return nullptr;
      span_chunk_left_ = kChunk;
      stats_.metadata_bytes += kChunk;
    }
    s = reinterpret_cast<Span*>(span_chunk_);
    span_chunk_ += sizeof(Span);
    span_chunk_left_ -= sizeof(Span);
  }
  memset(s, 0, sizeof(Span));
  return s;
}

void PageHeap::delete_span_locked(Span* s) {
  s->state = SpanState::kUnused;
  s->next = span_freelist_;
  span_freelist_ = s;
}

void PageHeap::set_page_map(Span* s, bool all_pages) {
  size_t first = (s->start - base_) >> kPageShift;
  size_t last = first + s->pages - 1;
  if (all_pages) {
    for (size_t i = first; i <= last; ++i) page_map_[i] = s;
  } else {
    page_map_[first] = s;
    page_map_[last] = s;
  }
}

void PageHeap::insert_free_locked(Span* s) {
  s->state = SpanState::kFree;
  FreeBins& fb = free_[s->dirty];
  size_t b = bin_of(s->pages);
  s->prev = nullptr;
  s->next = fb.bins[b];
  if (s->next) s->next->prev = s;
  fb.bins[b] = s;
  fb.mask[b / 64] |= uint64_t{1} << (b % 64);
  uint64_t bytes = uint64_t{s->pages} << kPageShift;
  if (s->dirty) {
    s->lru_prev = nullptr;
    s->lru_next = lru_head_;
    if (lru_head_) lru_head_->lru_prev = s;
    lru_head_ = s;
    if (lru_tail_ == nullptr) lru_tail_ = s;
    stats_.free_dirty_bytes += bytes;
  } else {
    stats_.free_clean_bytes += bytes;
  }
}

void PageHeap::remove_free_locked(Span* s) {
  FreeBins& fb = free_[s->dirty];
  size_t b = bin_of(s->pages);
  if (s->prev)
    s->prev->next = s->next;
  else
    fb.bins[b] = s->next;
  if (s->next) s->next->prev = s->prev;
  if (fb.bins[b] == nullptr) fb.mask[b / 64] &= ~(uint64_t{1} << (b % 64));
  uint64_t bytes = uint64_t{s->pages} << kPageShift;
  if (s->dirty) {
    if (s->lru_prev)
      s->lru_prev->lru_next = s->lru_next;
    else
      lru_head_ = s->lru_next;
    if (s->lru_next)
      s->lru_next->lru_prev = s->lru_prev;
    else
      lru_tail_ = s->lru_prev;
    s->lru_next = s->lru_prev = nullptr;
    stats_.free_dirty_bytes -= bytes;
  } else {
    stats_.free_clean_bytes -= bytes;
  }
  s->next = s->prev = nullptr;
}

Span* PageHeap::take_from_bins(FreeBins& fb, size_t pages) {
  if (pages > UINT32_MAX) return nullptr;  // no span is that large (Span::pages)
  size_t b = bin_of(pages);
  if (b > kExactBins) {
    // A size class's spans may be smaller than the request: the best fit
    // among the first few.
    Span* best = nullptr;
    int seen = 0;
    for (Span* s = fb.bins[b]; s != nullptr && seen < kScanLarge; s = s->next, ++seen) {
      if (s->pages < pages || (best != nullptr && s->pages >= best->pages)) continue;
      best = s;
      if (s->pages == pages) break;
    }
    if (best != nullptr) return best;
    ++b;
  }
  // Every span of an exact bin from the request's on, or of a larger size
  // class, fits: the first of the smallest non-empty bin, found through the
  // bitmap.
  for (; b < kNumBins; b = (b / 64 + 1) * 64) {
    uint64_t word = fb.mask[b / 64] & (~uint64_t{0} << (b % 64));
    if (word != 0) return fb.bins[(b / 64) * 64 + static_cast<size_t>(__builtin_ctzll(word))];
  }
  return nullptr;
}

Span* PageHeap::take_aligned_from_bins(FreeBins& fb, size_t pages, size_t align_pages) {
  size_t need = pages + align_pages - 1;
  if (need > UINT32_MAX) return nullptr;
  uintptr_t align = uintptr_t{align_pages} << kPageShift;
  uintptr_t bytes = uintptr_t{pages} << kPageShift;
  // The bins of spans smaller than `need`, from the request's own size up:
  // the first span with an aligned run of `pages` in it, a bitmap search and
  // at most kScanAligned spans read.
  size_t last = bin_of(need);
  int seen = 0;
  for (size_t b = bin_of(pages); b <= last && seen < kScanAligned;) {
    uint64_t word = fb.mask[b / 64] & (~uint64_t{0} << (b % 64));
    if (word == 0) {
      b = (b / 64 + 1) * 64;
      continue;
    }
    b = (b / 64) * 64 + static_cast<size_t>(__builtin_ctzll(word));
    if (b > last) break;
    for (Span* s = fb.bins[b]; s != nullptr && seen < kScanAligned; s = s->next, ++seen)
      if (round_up(s->start, align) + bytes <= s->end()) return s;
    ++b;
  }
  // Every span of `need` pages or more has such a run.
  return take_from_bins(fb, need);
}

Span* PageHeap::take_free_locked(size_t pages, size_t align_pages, unsigned flags) {
  // Dirty spans first: their pages are already resident, so reusing them
  // costs no page faults and adds no RSS. mremap targets prefer clean spans:
  // the kernel discards the target's pages.
  bool clean_first = (flags & kLargePreferClean) != 0;
  auto take = [&](FreeBins& fb) {
    return align_pages > 1 ? take_aligned_from_bins(fb, pages, align_pages)
                           : take_from_bins(fb, pages);
  };
  Span* s = take(free_[clean_first ? 0 : 1]);
  if (s == nullptr) s = take(free_[clean_first ? 1 : 0]);
  if (s != nullptr) remove_free_locked(s);
  return s;
}

bool PageHeap::extend_frontier_locked(size_t pages) {
  size_t total_pages = size_ >> kPageShift;
  if (pages > total_pages - frontier_pages_) return false;
  size_t end_pages = frontier_pages_ + pages;
  if (!arena_.ensure(end_pages << kPageShift) ||
      !page_map_region_.ensure(end_pages * sizeof(Span*)) || !class_map_region_.ensure(end_pages))
    return false;
  frontier_pages_ = end_pages;
  // A heap this big will have pages to purge once the program frees, and
  // frees do not start the background thread (runtime/background.h): the
  // allocations that grow it do.
  if ((end_pages << kPageShift) >= kBackgroundAfterBytes)
    wants_background_.store(true, std::memory_order_relaxed);
  return true;
}

Span* PageHeap::grow_locked(size_t pages, size_t align_pages, unsigned flags) {
  // Pages a span starting at `start` needs for an aligned run of `pages`:
  // the frontier grows to the run's end, not by the worst case's
  // align_pages - 1 pages more.
  auto total = [&](uintptr_t start) {
    uintptr_t align = uintptr_t{align_pages} << kPageShift;
    return ((round_up(start, align) - start) >> kPageShift) + pages;
  };
  // A free span that ends at the frontier is extended rather than left
  // behind: a buffer a little bigger than the last one freed reuses its
  // pages and faults in only the difference (not for an mremap target,
  // which would discard them).
  Span* last = frontier_pages_ > 0 ? page_map_[frontier_pages_ - 1] : nullptr;
  if (last != nullptr && last->state == SpanState::kFree && last->end() == frontier_end() &&
      !(last->dirty && (flags & kLargePreferClean))) {
    size_t want = total(last->start);
    if (last->pages < want) {
      if (want > UINT32_MAX || !extend_frontier_locked(want - last->pages)) return nullptr;
      remove_free_locked(last);
      last->pages = static_cast<uint32_t>(want);
      set_page_map(last, false);
      return last;
    }
  }
  Span* s = new_span_locked();
  if (s == nullptr) return nullptr;
  uintptr_t start = frontier_end();
  size_t want = total(start);
  if (want > UINT32_MAX || !extend_frontier_locked(want)) {
    delete_span_locked(s);
    return nullptr;
  }
  s->start = start;
  s->pages = static_cast<uint32_t>(want);
  s->dirty = false;  // never touched: reads as zero
  set_page_map(s, false);
  return s;
}

Span* PageHeap::split_locked(Span* s, size_t pages) {
  Span* t = new_span_locked();
  if (t == nullptr) return nullptr;
  t->start = s->start + (pages << kPageShift);
  t->pages = static_cast<uint32_t>(s->pages - pages);
  t->dirty = s->dirty;
  t->freed_ms = s->freed_ms;
  s->pages = static_cast<uint32_t>(pages);
  set_page_map(s, false);
  set_page_map(t, false);
  return t;
}

Span* PageHeap::alloc_pages_locked(size_t pages, size_t align_pages, unsigned flags) {
  if (pages == 0 || pages > (size_t{1} << 31)) return nullptr;
  last_refusal_was_limit_ = false;
  // SLABBY_MAX_HEAP: slabby's spans in use (slabs and large blocks) stay under
  // the cap; the caller falls back to glibc or fails, as configured.
  if (max_heap_ != 0 && stats_.in_use_bytes + (uint64_t{pages} << kPageShift) > max_heap_) {
    stats_.limit_refusals++;
    last_refusal_was_limit_ = true;
    return nullptr;
  }
  // A chunk's span is split below as an aligned request: the pages before
  // the chunk go back.
  Span* s = (flags & kSlabRequest) && huge_slabs_due_ ? take_slab_span_locked(pages, &align_pages)
                                                      : take_free_locked(pages, align_pages, flags);
  if (s == nullptr) s = grow_locked(pages, align_pages, flags);
  if (s == nullptr) return nullptr;
  // Taken: no longer kFree, so the remainders split off below cannot merge
  // back into it. The caller sets the final state (kSlab or kLarge).
  s->state = SpanState::kLarge;
  if (align_pages > 1) {
    uintptr_t aligned = round_up(s->start, align_pages << kPageShift);
    size_t head = (aligned - s->start) >> kPageShift;
    if (head > 0) {
      Span* rest = split_locked(s, head);
      if (rest == nullptr) {
        merge_and_insert_locked(s);
        return nullptr;
      }
      merge_and_insert_locked(s);
      s = rest;
    }
  }
  if (s->pages > pages) {
    Span* tail = split_locked(s, pages);
    if (tail == nullptr) {
      merge_and_insert_locked(s);
      return nullptr;
    }
    merge_and_insert_locked(tail);
  }
  stats_.in_use_bytes += uint64_t{s->pages} << kPageShift;
  stats_.spans_allocated++;
  return s;
}

void PageHeap::free_pages_locked(Span* s, bool dirty) {
  stats_.in_use_bytes -= uint64_t{s->pages} << kPageShift;
  s->dirty = dirty;
  uint64_t now = os::now_ms();
  s->freed_ms = now;
  merge_and_insert_locked(s);
  // Two bounds on free pages kept mapped: bytes (past retain_max, purge the
  // oldest down to half of it: hysteresis, so not one madvise per free) and
  // time (pages free for decay_ms go back). The time check runs at most four
  // times per decay period here; the background thread covers idle processes.
  // While the background thread runs, spans freed within the grace period
  // are spared: a loop that frees a big buffer and allocates the next reuses
  // its pages instead of faulting them again, and the thread's next tick
  // enforces the bound once they have aged (enforce_retain).
  if (stats_.free_dirty_bytes > retain_max_) {
    uint64_t grace = retain_grace_ms_.load(std::memory_order_relaxed);
    purge_older_locked(retain_max_ / 2, grace == 0 ? UINT64_MAX : now - grace, "retain_max");
  }
  if (now - last_decay_ms_ >= decay_ms_ / 4) decay_locked(now);
  if (stats_.free_dirty_bytes > (size_t{1} << 20))
    wants_background_.store(true, std::memory_order_relaxed);
}

void PageHeap::merge_and_insert_locked(Span* s) {
  size_t first = (s->start - base_) >> kPageShift;
  if (first > 0) {
    Span* left = page_map_[first - 1];
    if (left && left->state == SpanState::kFree && left->end() == s->start &&
        left->dirty == s->dirty) {
      remove_free_locked(left);
      left->pages += s->pages;
      if (s->freed_ms > left->freed_ms)
        left->freed_ms = s->freed_ms;  // as young as its youngest part
      delete_span_locked(s);
      s = left;
    }
  }
  size_t end = (s->end() - base_) >> kPageShift;
  if (end < frontier_pages_) {
    Span* right = page_map_[end];
    if (right && right->state == SpanState::kFree && right->start == s->end() &&
        right->dirty == s->dirty) {
      remove_free_locked(right);
      s->pages += right->pages;
      if (right->freed_ms > s->freed_ms) s->freed_ms = right->freed_ms;
      delete_span_locked(right);
    }
  }
  set_page_map(s, false);
  insert_free_locked(s);
}

template <class Claim>
Span* PageHeap::take_span(size_t pages, size_t align_pages, unsigned flags, Claim claim) {
  uint32_t ticket = 0;
  if (hooks_.admit != nullptr && !hooks_.admit(&ticket)) return nullptr;
  Span* s;
  bool limit;
  {
    LockGuard g(*mu_);
    s = alloc_pages_locked(pages, align_pages, flags);
    limit = last_refusal_was_limit_;
    if (s != nullptr && !s->dirty)
      clean_pages_taken_.store(clean_pages_taken_.load(std::memory_order_relaxed) + s->pages,
                               std::memory_order_relaxed);
    if (s != nullptr) claim(s);
  }
  if (s == nullptr && hooks_.failed != nullptr)
    hooks_.failed(pages << kPageShift, limit, max_heap_);
  if (hooks_.outcome != nullptr) hooks_.outcome(ticket, s != nullptr);
  return s;
}

static_assert(kNumClasses <= 64, "dense_medium_ has a bit per class");

Span* PageHeap::alloc_slab(unsigned cls, size_t pages) {
  // A medium class's slabs (one block each) take no huge page chunk until
  // the class is seen filled (SLABBY_THP=dense: a mincore of the class's
  // previous slab, one in kDensityCheckEvery, as for large spans): a block
  // is not filled by construction, and on a huge page every page of it is
  // present. 400 live blocks of 40 KiB-1 MiB, their first 4 KiB written,
  // peaked at 296 MiB (34 without chunks) where snmalloc took 7.5 and
  // jemalloc 77 (bench medium-sparse, 2026-12-07); in the checked modes that
  // zero, each present page was also zeroed at every free and read at every
  // reuse (a loop of malloc(64 KiB-1 MiB) beside 32 MiB of small blocks: 5 x
  // the time under SLABBY_SECURE, 2026-12-06). A heap of medium blocks
  // filled whole, on the other hand, faults 4 KiB at a time without them.
  const bool medium = is_medium_class(cls);
  const bool dense = !medium || ((dense_medium_.load(std::memory_order_relaxed) >> cls) & 1);
  unsigned flags = dense ? unsigned{kSlabRequest} : 0u;
  FaultKind timed = FaultKind::kNone;
  Range look = {0, 0}, discard = {0, 0};
  Span* span = take_span(pages, 1, flags, [&](Span* s) {
    s->huge_counted = huge_slabs_ && dense;
    if (s->huge_counted) note_slab_bytes_locked(int64_t{s->pages} << kPageShift);
    if (huge_slabs_) {
      timed = fault_to_time_locked(s);
      if (!dense) look = medium_to_look_at_locked(cls, s, !s->dirty, &discard);
    }
    s->state = SpanState::kSlab;
    s->cls = static_cast<uint8_t>(cls);
    s->freelist = nullptr;
    s->used = 0;
    s->carved = 0;
    s->written = 0;
    s->in_partial = false;
    s->block_tag = 0;
    s->usable = 0;
    s->lone_canary = false;
    if (kept_marks_n_ != 0) settle_marks_locked(s->start, s->pages, false);
    set_page_map(s, true);
    memset(class_map_ + ((s->start - base_) >> kPageShift), static_cast<int>(cls), s->pages);
  });
  if (discard.bytes != 0) os::purge(reinterpret_cast<void*>(discard.start), discard.bytes);
  if (timed != FaultKind::kNone) time_first_touch(span->start, timed);
  if (look.bytes != 0 && looks_filled(look.start, look.bytes))
    dense_medium_.fetch_or(uint64_t{1} << cls, std::memory_order_relaxed);
  return span;
}

void PageHeap::free_slab(Span* s) {
  LockGuard g(*mu_);
  memset(class_map_ + ((s->start - base_) >> kPageShift), 0, s->pages);
  s->cls = 0;
  if (s->huge_counted) note_slab_bytes_locked(-(int64_t{s->pages} << kPageShift));
  s->huge_counted = false;
  free_pages_locked(s);
}

Span* PageHeap::alloc_large(size_t bytes, size_t align, unsigned flags) {
  if (bytes > size_) return nullptr;
  size_t pages = (bytes + kPageSize - 1) >> kPageShift;
  if (!(flags & kLargeExactPages)) pages = large_class_pages(pages);
  size_t align_pages = align > kPageSize ? align >> kPageShift : 1;
  Takeover mark = Takeover::kNone;
  bool cover_pays = true;
  Span* span = take_span(pages, align_pages, flags, [&](Span* s) {
    note_huge_request(pages);
    s->state = SpanState::kLarge;
    s->cls = 0;
    s->zeroed = !s->dirty;
    s->guarded = s->canary = s->quarantined = s->remapped = s->huge = s->sampled = false;
    s->huge_inner = false;
    if (kept_marks_n_ != 0) {
      mark = settle_marks_locked(s->start, s->pages,
                                 wants_huge(s->pages) && !(flags & kLargeSmallPages));
      s->huge = mark != Takeover::kNone;
      // A kept mark it covers would spread over its fresh pages: only while
      // huge pages pay (fault_judge.h).
      if (mark == Takeover::kCovered && learn_density_) cover_pays = fault_judge_.on();
    }
    s->block = s->start;
    s->usable = uint64_t{s->pages} << kPageShift;
    if (flags & kLargeAllPages) set_page_map(s, true);
    stats_.large_allocations++;
    stats_.large_live_bytes += uint64_t{s->pages} << kPageShift;
  });
  // Guarded spans keep small pages; the checked paths' others (canaries)
  // take huge pages as the default's do.
  if (mark == Takeover::kCovered && cover_pays)
    os::mark_huge(reinterpret_cast<void*>(span->start), span->end() - span->start, true);
  else if (mark == Takeover::kCovered)
    unmark_huge(span, span->start, span->end() - span->start, true);
  else if (span != nullptr && !(flags & kLargeSmallPages))
    mark_huge(span, /*inner_ok=*/!(flags & kLargeZeroTable));
  return span;
}

Span* PageHeap::take_remap_target(size_t pages) {
  return take_span(pages, 1, kLargePreferClean, [&](Span* t) {
    t->state = SpanState::kLarge;
    t->cls = 0;
    t->zeroed = false;
    t->guarded = t->canary = t->quarantined = t->huge = t->huge_inner = t->sampled = false;
    if (kept_marks_n_ != 0) settle_marks_locked(t->start, t->pages, false);
    t->remapped = true;
    t->block = t->start;
    t->usable = uint64_t{t->pages} << kPageShift;
    stats_.large_live_bytes += t->usable;
  });
}

void PageHeap::free_large(Span* s) {
  if (s->remapped) return release_remapped(s);
  note_density(s);
  uint64_t bytes = uint64_t{s->pages} << kPageShift;
  // A huge span goes back to the OS now, outside the lock (it is still ours),
  // its mark with it; one kept mapped keeps its mark too.
  bool purge = s->pages > keep_huge_pages_.load(std::memory_order_relaxed);
  // Inner marks are not kept either: the next span of these pages may be of
  // another size, and its pages are dirty now.
  if (purge || s->huge_inner) unmark_huge(s, s->start, bytes, true);
  if (purge) os::purge(reinterpret_cast<void*>(s->start), bytes);
  LockGuard g(*mu_);
  stats_.large_frees++;
  stats_.large_live_bytes -= bytes;
  if (purge) {
    stats_.huge_purged++;
    last_huge_purged_pages_ = s->pages;
    unmark_purged_chunks_locked(s->start, s->end());
  }
  if (s->huge) {
    keep_mark_locked(s->start, s->pages);
    s->huge = false;
  }
  free_pages_locked(s, !purge);
}

PageHeapStats PageHeap::stats() {
  LockGuard g(*mu_);
  PageHeapStats s = stats_;
  s.frontier_bytes = frontier_pages_ << kPageShift;
  s.remapped_live = remapped_live_.load(std::memory_order_relaxed);
  s.keep_huge_bytes = keep_huge_pages_.load(std::memory_order_relaxed) << kPageShift;
  s.huge_marks_kept = kept_marks_n_;
  s.huge_page_spans = huge_live_.load(std::memory_order_relaxed) - kept_marks_n_;
  s.metadata_bytes += page_map_region_.committed() + class_map_region_.committed();
  s.huge_fault_ns = fault_judge_.average_ns();
  s.small_fault_ns = fault_judge_.small_ns();
  s.huge_fault_timed = fault_judge_.chunks_timed();
  s.huge_slab_declined = fault_judge_.chunks_declined();
  return s;
}

uint64_t PageHeap::resident(uint64_t* per_class, size_t num_classes) {
  size_t pages;
  {
    LockGuard g(*mu_);
    pages = frontier_pages_;
  }
  // mincore counts system pages, which may be smaller than slabby's.
  int saved = errno;
  const size_t page = os::mincore_page_size();
  unsigned char vec[4096];
  uint64_t total = 0;
  const uintptr_t end = base_ + (pages << kPageShift);
  for (uintptr_t addr = base_; addr < end;) {
    size_t n = (end - addr) / page < sizeof(vec) ? (end - addr) / page : sizeof(vec);
    if (n == 0) break;
    if (mincore(reinterpret_cast<void*>(addr), n * page, vec) == 0) {
      for (size_t i = 0; i < n; ++i) {
        if (!(vec[i] & 1)) continue;
        total += page;
        uint8_t cls = class_map_[(addr + i * page - base_) >> kPageShift];
        if (per_class != nullptr && cls < num_classes) per_class[cls] += page;
      }
    }
    addr += n * page;
  }
  errno = saved;
  return total;
}

}  // namespace slabby

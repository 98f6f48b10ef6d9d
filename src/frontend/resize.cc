// slabby: realloc. Which path serves each call, cheapest first:
//
//   block of a class, new size in the same class ─► kept
//   medium block growing (a buffer growing again) ► a page span with
//                                                 headroom, copied
//   page span, new size needs half of it or more ► kept
//   page span, new size needs less than half ───► shrunk in place (tail freed)
//   page span, the pages after it free ─────────► grown in place
//   page span of at least 1 MiB ────────────────► moved by mremap (the pages,
//                                                 not the bytes)
//   anything else ──────────────────────────────► a new block, copied
//
// A span that has to move (by mremap or by copy) gets twice the pages it
// needs: the rest is headroom that later growth uses in place, so growing by
// any step costs O(1) amortised per byte, and a buffer grown to N bytes moves
// O(log N) times. The headroom is address space: pages nobody touches cost
// no memory. The stats count every path (docs/stats.md).
//
// A heap-profile sample (telemetry/heap_profile.h) is kept while it fits, else
// moves by copy.
//
// glibc's semantics: realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and
// returns NULL; on failure NULL with errno ENOMEM, and p is untouched.
#include <cerrno>
#include <cstring>

#include "frontend/allocator.h"
#include "frontend/glibc.h"
#include "runtime/background.h"
#include "secure/checks.h"

namespace slabby {

namespace {

// Below this a move copies. An mremap plus mapping the old range afresh
// cost 100-300 us here whatever the size; copying 1 MiB costs 60 us into
// resident pages and 3 ms into fresh ones, 2 MiB already more than the
// remap either way (docs/benchmarks.md, "realloc: remap or copy").
constexpr size_t kRemapMinBytes = size_t{1} << 20;
size_t pages_for(size_t n) { return (n + kPageSize - 1) >> kPageShift; }

// The block at p (old usable bytes, class cls or 0 for a span) moves to q
// by copy; p is freed.
SLABBY_INLINE void* finish_copy(void* p, size_t old, unsigned cls, void* q, size_t n) {
  size_t bytes = old < n ? old : n;
  // Every usable byte of the old block is the program's (malloc_usable_size
  // promised them), so copy all of them that fit.
  memcpy(q, p, bytes);
  ThreadCache& tc = tl_cache;
  tc.realloc_copies++;
  tc.realloc_copied_bytes += bytes;
  if (SLABBY_UNLIKELY(is_medium_class(cls)) && n > old) {
    // A growing block leaves its medium block behind: not to a cache, where
    // it would idle (one of each class a buffer grew through), but back to
    // the page heap, whose pages the next growth reuses.
    *static_cast<void**>(p) = nullptr;
    g_central_pools[cls].give_to_slabs(p);
    g_threads.uncached_frees[cls].fetch_add(1, std::memory_order_relaxed);
  } else {
    free_fast(p);
  }
  return q;
}

// A new block of n bytes for a copy: malloc's, or for a page span, one with
// headroom first (then exact, when the heap cap refuses the headroom).
void* new_block(size_t n, size_t headroom_pages) {
  if (headroom_pages != 0 && g_rt.init_state.load(std::memory_order_relaxed) == kInitReady) {
    Span* s = g_rt.heap.alloc_large(headroom_pages << kPageShift, kPageSize);
    if (s != nullptr) return reinterpret_cast<void*>(s->start);
  }
  return malloc_fast(n);  // errno ENOMEM when even glibc fails
}

void* realloc_span(void* p, Span* s, size_t n) {
  if (SLABBY_UNLIKELY(n > kMaxRequest)) {
    errno = ENOMEM;
    return nullptr;
  }
  size_t old = size_t{s->pages} << kPageShift;
  if (SLABBY_UNLIKELY(s->sampled)) {
    // A heap-profile sample stays a span of its own: kept while the new size
    // fits it and needs more than half of it (its profile record keeps the
    // size it was sampled at), else a new allocation (sampled or not) and the
    // old one freed (and forgotten).
    size_t usable = s->usable;  // its class's size (alloc_profiled)
    if (n <= usable && n > usable / 2) return p;
    void* q = malloc_fast(n);
    return q == nullptr ? nullptr : finish_copy(p, usable, 0, q, n);
  }
  // Into a small class: copying at most 32 KiB beats keeping a page span
  // (and its rounding) for a small block.
  if (n <= kMaxSmallSize) {
    void* q = malloc_fast(n);
    return q == nullptr ? nullptr : finish_copy(p, old, 0, q, n);
  }
  size_t pages = pages_for(n);
  if (pages <= s->pages) {
    // Kept whole while the new size needs half of it or more (so the
    // headroom of a move, half the span, is not given back by the next
    // step's growth); below that, the tail goes back.
    if ((s->pages - pages) * 2 > s->pages)
      g_rt.heap.shrink_in_place(s, PageHeap::large_class_pages(pages));
    return p;
  }
  if (g_rt.heap.grow_to_class(s, pages)) return p;
  size_t target = PageHeap::with_headroom(pages);
  if (old >= kRemapMinBytes) {
    Span* d = g_rt.heap.move_by_remap(s, target);
    if (d == nullptr) d = g_rt.heap.move_by_remap(s, pages);  // the cap may refuse the headroom
    if (d != nullptr) return reinterpret_cast<void*>(d->start);
  }
  void* q = new_block(n, target);
  return q == nullptr ? nullptr : finish_copy(p, old, 0, q, n);
}

}  // namespace

void* realloc_impl(void* p, size_t n) noexcept {
  if (p == nullptr) return malloc_fast(n);
  if (n == 0) {  // glibc frees and returns NULL
    free_fast(p);
    return nullptr;
  }
  if (!g_rt.heap.owns(p)) {
    g_rt.foreign_frees.fetch_add(1, std::memory_order_relaxed);
    return __libc_realloc(p, n);
  }
  if (SLABBY_UNLIKELY(g_checks.on)) return checked_realloc(p, n);
  unsigned cls = g_rt.heap.class_of(p);
  if (cls != 0) {
    size_t old = class_size(cls);
    // Kept while the new size is still of this class (a shrink into a
    // smaller class moves, so the block's memory follows its size).
    if (n <= old && class_of_size(n) == cls) return p;
    // A medium block growing is a buffer growing again (it was small, or
    // born medium): from class to class it would be copied at every step
    // (64 KiB to 1 MiB by 64 KiB: 15 copies of 0.5 MiB on average), so it
    // becomes a page span, which grows and shrinks in place.
    if (SLABBY_LIKELY(n <= kMaxClassSize) && !(is_medium_class(cls) && n > old)) {
      void* q = malloc_fast(n);
      return q == nullptr ? nullptr : finish_copy(p, old, cls, q, n);
    }
    // Growing out of the classes, or a medium block growing: a page span
    // with headroom.
    size_t headroom = n <= kMaxRequest ? PageHeap::with_headroom(pages_for(n)) : 0;
    void* q = new_block(n, headroom);
    return q == nullptr ? nullptr : finish_copy(p, old, cls, q, n);
  }
  Span* s = g_rt.heap.span_of(p);
  if (SLABBY_LIKELY(s != nullptr && s->state == SpanState::kLarge &&
                    s->start == reinterpret_cast<uintptr_t>(p)))
    return realloc_span(p, s, n);
  invalid_pointer("realloc", p);
}

}  // namespace slabby

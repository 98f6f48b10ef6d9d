// slabby: large blocks on the checked paths: guard pages, canaries, double
// free detection, and the guarded placement of sampled small blocks.
#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "frontend/allocator.h"
#include "os/os.h"
#include "runtime/background.h"
#include "runtime/runtime.h"
#include "secure/checked_cache.h"
#include "secure/checks.h"
#include "secure/guard_fault.h"
#include "secure/leak_check.h"
#include "secure/report.h"

namespace slabby {

// Live guarded blocks. Each splits the arena's mapping into up to three more
// areas, and Linux allows 65530 per process (vm.max_map_count): past this
// cap blocks are placed without guards rather than make mmap fail.
constexpr uint64_t kMaxLiveGuarded = 8192;
std::atomic<uint64_t> g_live_guarded{0};
std::atomic<uint64_t> g_guarded_total{0};

namespace {

// The last large blocks freed, so a second free of one is named a double
// free (its span may have merged into a free one and lost its identity).
constexpr uint32_t kFreedRing = 256;
std::atomic<uintptr_t> g_freed_ring[kFreedRing];
std::atomic<uint32_t> g_freed_next{0};

bool protect(uintptr_t p, size_t bytes, int prot) {
  return mprotect(reinterpret_cast<void*>(p), bytes, prot) == 0;
}

Span* live_large(uintptr_t p) {
  if (!g_rt.heap.owns(reinterpret_cast<void*>(p))) return nullptr;
  Span* s = g_rt.heap.span_of(reinterpret_cast<void*>(p));
  if (s != nullptr && s->state == SpanState::kLarge && s->block == p) return s;
  return nullptr;
}

[[noreturn]] SLABBY_COLD void not_live(uintptr_t p, const char* verb) {
  Report r;
  for (uint32_t i = 0; i < kFreedRing; ++i) {
    if (g_freed_ring[i].load(std::memory_order_relaxed) == p) {
      if (verb[0] == 'f')
        r.str("double free of ").ptr(p).where(0);
      else
        r.str(verb).str(" of freed pointer ").ptr(p).where(0);
      r.abort_now();
    }
  }
  r.str(verb).str(" of invalid pointer ").ptr(p);
  r.str(" (inside slabby's heap, not the start of a live block)");
  r.abort_now();
}

void check_canary(Span* s, const char* verb) {
  if (!s->canary) return;
  uint64_t word;
  memcpy(&word, reinterpret_cast<void*>(s->block + s->usable), sizeof word);
  if (word == live_canary(s->block)) return;
  Report r;
  r.str("heap overflow past the ").u64(s->usable).str(" usable bytes of ").ptr(s->block);
  r.where(0, s->usable)
      .str(": canary byte ")
      .u64(__builtin_ctzll(word ^ live_canary(s->block)) / 8);
  r.str(" changed (found by ").str(verb).str(")");
  r.abort_now();
}

// With SLABBY_ZERO=free every free page of the heap reads zero: freed large
// blocks are zeroed (canary included), and so are slabs going back to the
// page heap (central/central_pool.cc). A block handed out of pages that held
// data must therefore still be zero: a byte that is not was written after
// its block was freed.
void check_still_zero(Span* s) {
  // Only resident pages are read: the others are zero (os::find_nonzero).
  size_t at = os::find_nonzero(reinterpret_cast<const void*>(s->block), s->usable);
  if (at == SIZE_MAX) return;
  Report r;
  r.str("write after free of ").ptr(s->block).where(0, s->usable).str(": byte ");
  r.u64(at).str(" changed after it was freed (found by malloc)");
  r.abort_now();
}

// The canary at a block's release. A block of whole pages has its canary
// alone on the page after it, faulted in by the canary's write. A program
// that uses only the start of a big block never touches that page, and the
// next block placed there ends elsewhere: left resident, such pages piled up
// a block at a time (large-sparse: 5 x the default's peak RSS, and with
// SLABBY_ZERO=free each was read back by every block placed over it). So a
// big block whose last page is not resident (its end unused) gives the
// canary's page back, which zeroes it too; a block used to its end keeps it,
// for the next block of its size to write its canary on again. With
// SLABBY_ZERO=free a canary kept is cleared.
//
// A program that allocates the same big block again and again writes its
// canary on the same page each time: given back at every free, that page
// cost a madvise and a fault an iteration (a malloc(1 MiB) loop took 37 x
// the default's time). So the pages given back lately are remembered, and
// one a canary comes back to is kept from then on. Hint tables indexed by
// the page's address, relaxed: a race or a collision costs one page given
// back too many, or one kept resident (as every canary page was before).
constexpr size_t kLoneCanaryRelease = size_t{1} << 20;
constexpr uint32_t kCanaryHints = 64;
std::atomic<uintptr_t> g_canary_given[kCanaryHints];
std::atomic<uintptr_t> g_canary_hot[kCanaryHints];

uint32_t canary_hint(uintptr_t page) {
  return static_cast<uint32_t>((page >> 12) ^ (page >> 18)) % kCanaryHints;
}

// The canary of a block of `usable` bytes ending at `end` is alone on its
// page, which a big block may give back at its release.
bool lone_canary(size_t usable, uintptr_t end) {
  return usable >= kLoneCanaryRelease && end % os::system_page_size() == 0;
}

// A canary written at end, after `usable` bytes: alone on a page given back
// lately, that page is hot.
void note_canary(size_t usable, uintptr_t end) {
  if (!lone_canary(usable, end)) return;
  uint32_t h = canary_hint(end);
  if (g_canary_given[h].load(std::memory_order_relaxed) == end)
    g_canary_hot[h].store(end, std::memory_order_relaxed);
}

// The block at p ends after `usable` bytes from now on: its canary, if its
// span has one, written there.
void set_block_end(Span* s, uintptr_t p, size_t usable) {
  s->usable = usable;
  if (!s->canary) return;
  uint64_t word = live_canary(p);
  memcpy(reinterpret_cast<void*>(p + usable), &word, sizeof word);
  note_canary(usable, p + usable);
}

void clear_canary(Span* s, uintptr_t p) {
  const uintptr_t end = p + s->usable;
  const size_t page = os::system_page_size();
  const uint32_t h = canary_hint(end);
  if (lone_canary(s->usable, end) && end + page <= s->end() && !g_rt.heap.in_huge_marks(s, end) &&
      g_canary_hot[h].load(std::memory_order_relaxed) != end &&
      os::resident_bytes(reinterpret_cast<const void*>(end - page), page) == 0) {
    os::purge(reinterpret_cast<void*>(end), page);
    g_canary_given[h].store(end, std::memory_order_relaxed);
    return;
  }
  if (g_checks.zero_free) memset(reinterpret_cast<void*>(end), 0, kCanaryBytes);
}

}  // namespace

// A checked large block of n bytes whose span spans at least room bytes (the
// rest: room for realloc growth in place, address space until it is used);
// flags: kLargeZeroTable for a calloc (heap/page_heap.h).
void* checked_alloc_span(size_t n, size_t align, size_t room, unsigned flags) noexcept {
  if (SLABBY_UNLIKELY(!ensure_init())) return fallback_alloc(n, align);
  if (align < kMinAlign) align = kMinAlign;
  size_t usable = round_up(n == 0 ? 1 : n, kMinAlign);
  // Small blocks reach here only when sampled for a guard.
  bool guard = g_checks.guard_large || n <= kMaxSmallSize;
  Span* s = nullptr;
  if (guard && g_live_guarded.fetch_add(1, std::memory_order_relaxed) < kMaxLiveGuarded) {
    size_t data = round_up(usable + (align - kMinAlign), kPageSize);
    s = g_rt.heap.alloc_large(data + 2 * kPageSize, kPageSize,
                              kLargeAllPages | kLargeSmallPages | kLargeExactPages);
    if (s != nullptr) {
      uintptr_t hi = s->end() - kPageSize;
      if (protect(s->start, kPageSize, PROT_NONE) && protect(hi, kPageSize, PROT_NONE)) {
        s->guarded = true;
        s->block = (hi - usable) & ~(uintptr_t{align} - 1);
        s->usable = hi - s->block;
        g_guarded_total.fetch_add(1, std::memory_order_relaxed);
      } else {  // out of mappings: keep the block, without guards
        protect(s->start, kPageSize, PROT_READ | PROT_WRITE);
        s->block = s->start + kPageSize;
        s->usable = data;
        g_live_guarded.fetch_sub(1, std::memory_order_relaxed);
      }
    } else {
      g_live_guarded.fetch_sub(1, std::memory_order_relaxed);
    }
  } else if (guard) {
    g_live_guarded.fetch_sub(1, std::memory_order_relaxed);
  }
  if (s == nullptr) {
    size_t bytes = usable + (g_checks.bitguard ? kCanaryBytes : 0);
    if (bytes < room) bytes = room;
    // In its large class (the heap's default), as the default's blocks: a
    // block then starts where the last of its class did, on the pages that
    // one touched.
    s = g_rt.heap.alloc_large(bytes, align > kPageSize ? align : kPageSize,
                              kLargeAllPages | (flags & kLargeZeroTable));
    if (SLABBY_UNLIKELY(s == nullptr)) return fallback_alloc(n, align);
    s->canary = g_checks.bitguard;
    set_block_end(s, s->block, usable);
  }
  void* p = reinterpret_cast<void*>(s->block);
  // Also a span the heap calls zeroed (fresh, or its pages returned to the
  // OS): a write after free into a returned page faults it back in, with
  // the program's byte, and only resident pages are read.
  if (g_checks.zero_free) check_still_zero(s);
  // Resident pages only (os::zero_resident): a big block the program uses
  // the start of must not be faulted in whole by the allocator.
  if (g_checks.zero_alloc && !s->zeroed) os::zero_resident(p, s->usable);
  if (SLABBY_UNLIKELY(g_checks.leak_check)) leak_note_alloc(p, s->usable);
  return p;
}

void* checked_alloc_large(size_t n, size_t align, unsigned flags) noexcept {
  if (align <= kPageSize) {
    if (unsigned cls = checked_medium_class_of(n)) return checked_alloc_medium(cls, n);
  }
  void* p = checked_alloc_span(n, align, 0, flags);
  maybe_start_background();  // (its frees no longer may: runtime/background.h)
  return p;
}

void* checked_move_to_span(void* ptr, size_t old, size_t n) noexcept {
  size_t need = round_up(n, kMinAlign) + (g_checks.bitguard ? kCanaryBytes : 0);
  size_t pages = (need + kPageSize - 1) >> kPageShift;
  void* q = checked_alloc_span(n, 0, PageHeap::with_headroom(pages) << kPageShift, 0);
  if (q == nullptr) return nullptr;
  memcpy(q, ptr, old);
  ThreadCache& tc = tl_cache;
  tc.realloc_copies++;
  tc.realloc_copied_bytes += old;
  free_fast(ptr);
  return q;
}

// A buffer grown a step at a time must not be copied at every step (O(N^2):
// 16 MiB in 4 KiB steps took 116 s here, the default library 0.08 s), so
// growth goes as in the default mode (frontend/resize.cc): in place when the
// span, or the free pages after it, hold the new size and its canary, else
// to a span with as many pages again, so that a buffer grown to N bytes
// moves O(log N) times. The bytes the block takes over were free memory:
// with SLABBY_ZERO=free they must still read zero (else a write after free,
// as check_still_zero), with SLABBY_ZERO=alloc they are zeroed; the leak
// check sees a free and an allocation, as when a block moves. Guarded and
// sampled blocks keep the usual way (nullptr): a new block, copied.
void* checked_grow_large(void* ptr, size_t n) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  Span* s = live_large(p);
  if (s == nullptr || s->guarded || s->sampled || g_checks.guard_large || n > kMaxRequest ||
      s->block != s->start)
    return nullptr;
  const size_t canary = s->canary ? kCanaryBytes : 0;
  const size_t old = s->usable, usable = round_up(n, kMinAlign);
  if (usable <= old) return nullptr;
  const size_t need = usable + canary;
  const size_t pages = (need + kPageSize - 1) >> kPageShift;
  if (pages > s->pages && !g_rt.heap.grow_to_class(s, pages, /*all_pages=*/true))
    return checked_move_to_span(ptr, old, n);  // with room for the next steps
  if (g_checks.zero_free) {
    size_t at =
        os::find_nonzero(reinterpret_cast<const void*>(p + old + canary), need - (old + canary));
    if (at != SIZE_MAX) {
      Report r;
      r.str("write after free of ").ptr(p + old + canary).str(" (free memory after the ");
      r.u64(old).str("-byte block ").ptr(p).str("): byte ").u64(at);
      r.str(" changed after it was freed (found by realloc)");
      r.abort_now();
    }
  }
  if (g_checks.zero_alloc) os::zero_resident(reinterpret_cast<void*>(p + old), usable - old);
  // The old canary is the program's now: not to be read back (it is
  // derived from the process's key).
  if (canary != 0) memset(reinterpret_cast<void*>(p + old), 0, canary);
  set_block_end(s, p, usable);  // (grow_in_place set usable to the span's bytes)
  if (SLABBY_UNLIKELY(g_checks.leak_check)) leak_note_resized(ptr, usable);
  return ptr;
}

// A page span shrinking to half or less stays where it is, as the default's
// (frontend/resize.cc): its tail goes back to the page heap once it is more
// than half the span; copying it to a smaller block, then again to a span
// with room when it grew back, cost a buffer resized up and down
// (realloc-resize) two copies a cycle. The bytes the block gives up are free
// memory, zero with SLABBY_ZERO=free: their whole pages are given back to
// the OS (which zeroes them), not written and read again as a freed block's
// are. A buffer resized at random keeps, over time, every page of its
// largest size present, though the program writes few of them: zeroed at
// each shrink and read at each growth, they took 83% of realloc-resize's time
// under SLABBY_SECURE. Guarded and sampled blocks keep the usual way (nullptr).
void* checked_shrink_large(void* ptr, size_t n) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  Span* s = live_large(p);
  if (s == nullptr || s->guarded || s->sampled || s->block != s->start) return nullptr;
  const size_t canary = s->canary ? kCanaryBytes : 0;
  const size_t old = s->usable, usable = round_up(n == 0 ? 1 : n, kMinAlign);
  if (usable >= old) return ptr;
  if (g_checks.zero_free) {
    const size_t page = os::system_page_size();
    const uintptr_t from = p + usable, to = p + old + canary;
    const uintptr_t whole = round_up(from, page);
    memset(reinterpret_cast<void*>(from), 0, (whole < to ? whole : to) - from);
    // (Past `to` the span's pages are free memory, zero already.)
    if (whole < to) os::purge(reinterpret_cast<void*>(whole), round_up(to, page) - whole);
  } else if (canary != 0) {
    memset(reinterpret_cast<void*>(p + old), 0, canary);  // derived from the key
  }
  const size_t pages = (usable + canary + kPageSize - 1) >> kPageShift;
  if ((s->pages - pages) * 2 > s->pages)
    g_rt.heap.shrink_in_place(s, PageHeap::large_class_pages(pages));
  set_block_end(s, p, usable);  // (shrink_in_place set usable to the span's bytes)
  if (SLABBY_UNLIKELY(g_checks.leak_check)) leak_note_resized(ptr, usable);
  return ptr;
}

void checked_validate_large(uintptr_t p, const char* verb) noexcept {
  Span* s = live_large(p);
  if (s == nullptr) not_live(p, verb);
  if (s->quarantined) {
    Report r;
    if (verb[0] == 'f')
      r.str("double free of ").ptr(p).where(0, s->usable);
    else
      r.str(verb).str(" of freed pointer ").ptr(p).where(0, s->usable);
    r.abort_now();
  }
  check_canary(s, verb);
}

void checked_free_large(void* ptr) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  checked_validate_large(p, "free");
  if (SLABBY_UNLIKELY(g_checks.leak_check)) leak_note_free(ptr);
  Span* s = g_rt.heap.span_of(ptr);
  if (tl_cache.state == kCacheUninit) thread_init();  // a thread that only used large blocks
  // The pages the program never touched read zero already: writing them
  // would fault them in (a 1-8 MiB block of which 8 KiB was used took 125 x
  // the default's time and 38 x its peak RSS: docs/security.md).
  if (g_checks.zero_free) os::zero_resident(ptr, s->usable);
  if (g_checks.quarantine != 0 && tl_cache.state == kCacheActive) {
    s->quarantined = true;
    // Guarded: the whole block faults while it waits, so a use after free is
    // caught at the instruction (secure/guard_fault.cc names it).
    if (s->guarded) protect(s->start + kPageSize, s->end() - s->start - 2 * kPageSize, PROT_NONE);
    return quarantine_push(p, s->usable);
  }
  checked_release_large(p);
}

void checked_release_large(uintptr_t p) noexcept {
  Span* s = g_rt.heap.span_of(reinterpret_cast<void*>(p));
  if (s->quarantined) {
    if (s->guarded)
      protect(s->start + kPageSize, s->end() - s->start - 2 * kPageSize, PROT_READ | PROT_WRITE);
    if (g_checks.zero_free) {  // resident pages only, as check_still_zero
      size_t at = os::find_nonzero(reinterpret_cast<const void*>(p), s->usable);
      if (at != SIZE_MAX) {
        Report r;
        r.str("write after free of ").ptr(p).where(0, s->usable).str(": byte ");
        r.u64(at).str(" changed while it was in quarantine");
        r.abort_now();
      }
    }
    s->quarantined = false;
  }
  if (s->guarded) {
    protect(s->start, kPageSize, PROT_READ | PROT_WRITE);
    protect(s->end() - kPageSize, kPageSize, PROT_READ | PROT_WRITE);
    s->guarded = false;
    g_live_guarded.fetch_sub(1, std::memory_order_relaxed);
  }
  if (s->canary) clear_canary(s, p);
  s->canary = false;
  uint32_t slot = g_freed_next.fetch_add(1, std::memory_order_relaxed) % kFreedRing;
  g_freed_ring[slot].store(p, std::memory_order_relaxed);
  g_rt.heap.free_large(s);
  // (The background thread starts from allocations only: runtime/background.h.)
}

}  // namespace slabby

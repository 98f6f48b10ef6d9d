// slabby: the security and debugging modes (SLABBY_ZERO, SLABBY_BITGUARD,
// SLABBY_GUARD_PAGES, SLABBY_GUARD_SAMPLE, SLABBY_QUARANTINE,
// SLABBY_LEAK_CHECK, SLABBY_SECURE), decided once at init.
//
// How they stay off the fast path: when a small-block mode is on, init sets
// the cache layer's divert (cache/thread_cache.h SmallDivert) to the checked
// pair chosen for the modes (checked_small_divert) and leaves every thread
// bin at limit 0 and every thread's percpu_ok at 0. The inline malloc and
// free of frontend/allocator.h then always miss into their out-of-line slow
// paths, whose first test hands the call over. With every mode off nothing
// on the inline paths changes (scripts/fastpath-disasm and the callgrind
// counts in docs/security.md are the proof). The few out-of-line entry
// points that need more than a class index (aligned allocation, realloc,
// sized delete, malloc_usable_size, large blocks) test g_checks.on.
//
// The checked paths keep the caches: a thread with rseq keeps its free
// blocks in the per-CPU caches (the divert runs the critical sections
// itself), others in per-thread bins (checked_cache.h). The checks run as a
// block leaves a cache (tag, zeros, link) and as it enters one (validity,
// canary, zeroing, tag), so no mode serialises threads.
//
// Block format of a small block of class size S on the checked paths:
//   live:  [0, U) the program's, U = S - 8 with a canary in [S-8, S) when
//          bitguard is on, else U = S. A request of n bytes takes the first
//          class with S - 8 >= n: its own class when the slack holds the
//          canary, the next one up otherwise.
//   free:  word 0 the free-list link (encoded with a per-process key in
//          thread caches and quarantine, the encoded end of list in a CPU
//          cache, plain in the central pools), word at
//          S-8 a tag naming the state (freed by the program, or never handed
//          out), bytes between zero when zero-on-free is on.
// Medium blocks (above the small classes, up to 1 MiB with the canary, no
// more than page alignment, not with SLABBY_GUARD_PAGES) are blocks of the
// medium classes, cached as the small ones (secure/checked_medium.cc): the
// same format at the class's size S, but their tag is kept in their slab's
// span (one block per slab), beside the size the program asked for (rounded
// to 16: U), so the body runs to S; with the bit guard a canary in [U, U+8),
// so an overflow is found from its first byte as on a page span; reports
// call them large blocks of U bytes. Their bodies are zeroed and checked page
// by page where pages hold data (os::zero_resident, os::find_nonzero), and
// the page a canary held alone is given back when the block serves another
// size: a program using the start of one never has the rest faulted in.
// Tags and canaries mix the block's address with a key, so a value
// copied from another block, or a guess, does not match.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/base.h"
#include "common/size_class.h"

namespace slabby {

struct Config;

struct Checks {
  bool on;          // any mode below: the checked paths are in use
  bool small;       // small blocks take them too (every mode but guard pages alone)
  bool tags;        // free blocks carry a state tag (zero_free or bitguard)
  bool zero_free;   // SLABBY_ZERO=free|both
  bool zero_alloc;  // SLABBY_ZERO=alloc|both
  bool bitguard;    // canaries, encoded links, invalid-free detection
  bool guard_large;
  uint32_t guard_sample;  // 1 in N small allocations guarded (0: none)
  size_t quarantine;      // bytes held per thread
  bool leak_check;
  uint32_t leak_sample;
  // Per-call extras (zero on allocation, guard sampling, leak tracing,
  // quarantine): such modes take the general checked pair, the others the
  // lean one (checked_small_divert).
  bool extras;
  // The hardened library's inline paths may use a thread's checked bins
  // (frontend/hardened_fast.h): the bit guard alone, no zeroing and none of
  // the per-call extras above, whose bins only the checked pair may serve.
  bool inline_bins;
  // Per process, from getrandom (or the clock), all different.
  uint64_t key_live, key_freed, key_fresh, key_link;
  // The keys the hardened library's inline tests use (frontend/hardened_fast.h):
  // key_live and key_link when inline_bins, else (zeroing, or a per-call
  // extra) keys that differ from them in the top bit, so no block passes and
  // the checked pairs check (and zero) every one; the inline paths need no
  // test of the mode.
  uint64_t inline_key_live, inline_key_link;
};

// Hidden, so GCC reads its fields rip-relative, one instruction each (as
// a default-visibility declaration it took the address from the GOT first,
// which the linker turned into a lea: one instruction more per path).
extern constinit Checks g_checks __attribute__((visibility("hidden")));

// Fills g_checks from the configuration (init, once).
void checks_init(const Config& cfg);

inline constexpr size_t kCanaryBytes = 8;

// The class of a request of n bytes with the bit guard: the first small
// class whose size holds n and the canary after them (0: none, a large
// block). Its own class when the slack holds the canary, else the next one
// up. Requests up to kMaxDirectCanary take the direct table, as malloc's
// (the hardened library's inline paths use that part alone, branching
// straight to the large path above it: frontend/allocator.h).
inline constexpr size_t kMaxDirectCanary = kMaxDirectSize - kCanaryBytes;
SLABBY_INLINE uintptr_t direct_class_with_canary_of(size_t n) {
  return direct_class_of(n + kCanaryBytes);
}
SLABBY_INLINE uintptr_t class_with_canary_of(size_t n) {
  if (SLABBY_LIKELY(n <= kMaxDirectCanary)) return direct_class_with_canary_of(n);
  return n > kMaxSmallSize - kCanaryBytes ? 0 : size_class_of(n + kCanaryBytes);
}

// The bytes a medium block of a request of n bytes holds for the program
// (its canary follows them).
SLABBY_INLINE size_t medium_usable_of(size_t n) { return round_up(n, kMinAlign); }

// The medium class a request of n bytes takes on the checked paths (0: none,
// a page span): above the small classes, up to the largest medium class with
// the canary, unless every large block is guarded (SLABBY_GUARD_PAGES).
SLABBY_INLINE unsigned checked_medium_class_of(size_t n) {
  if (n > kMaxClassSize || g_checks.guard_large) return 0;
  size_t need = medium_usable_of(n) + (g_checks.bitguard ? kCanaryBytes : 0);
  if (need <= kMaxSmallSize || need > kMaxClassSize) return 0;
  return static_cast<unsigned>(medium_class_of(need));
}

// Tags, canaries and links are the address XOR a per-process key: one
// instruction each on the checked paths, and without the key (random, never
// stored in the heap) a value copied from another block or guessed does not
// match.
// What the canary word holds while the block is live. Its first byte, the
// one an off-by-one overwrites, is forced into 0x80..0xfe: never 0 (a string
// terminator), 0xff or ASCII text, so those one-byte overflows are always
// caught; any other byte value is missed with odds of 1 in 127.
SLABBY_INLINE uint64_t live_canary_with(uintptr_t p, uint64_t key) {
  uint64_t x = p ^ key;
  return (x & ~uint64_t{0xff}) | 0x80 | (x & 0x7e);
}
SLABBY_INLINE uint64_t live_canary(uintptr_t p) { return live_canary_with(p, g_checks.key_live); }
// What the tag word holds while the block is free after the program freed it.
SLABBY_INLINE uint64_t freed_tag(uintptr_t p) { return p ^ g_checks.key_freed; }
// ... and while free but never handed out yet.
SLABBY_INLINE uint64_t fresh_tag(uintptr_t p) { return p ^ g_checks.key_fresh; }
// Free-list link of the block at `slot` pointing to `next` (its own inverse).
SLABBY_INLINE uintptr_t encode_link_with(uintptr_t slot, uintptr_t next, uint64_t key) {
  return next ^ slot ^ key;
}
SLABBY_INLINE uintptr_t encode_link(uintptr_t slot, uintptr_t next) {
  return encode_link_with(slot, next, g_checks.key_link);
}

// The tag (free) or canary (live) word of a block of `size` bytes: its last
// eight (class sizes are multiples of 8, so no rounding on the inline paths).
SLABBY_INLINE uint64_t* tag_at(uintptr_t p, size_t size) {
  return reinterpret_cast<uint64_t*>(p + size - kCanaryBytes);
}

// Checked paths (secure/checked_small.cc, checked_large.cc, checked_api.cc).
// Small: `cls` is the class the fast path chose for a request of n bytes.
void* checked_alloc(unsigned cls, size_t n) noexcept;
// Exactly class cls, whose usable size already fits request and canary.
void* checked_alloc_class(unsigned cls) noexcept;
// Reports (and aborts) unless p is the start of a live block of class cls;
// verb names the call ("free", "realloc", "malloc_usable_size").
void checked_validate_small(uintptr_t p, unsigned cls, const char* verb) noexcept;
void checked_free(void* p, unsigned cls) noexcept;
// Checks a small block taken from a cache or the quarantine is still as it
// was freed (or never used); reports a write after free otherwise.
void checked_verify_free_small(uintptr_t p, unsigned cls, const char* found_by) noexcept;
// The hardened library's inline paths (frontend/hardened_fast.h): the rest of
// a free whose block they validated and tagged (its CPU cache was full or
// unusable) ...
void checked_free_validated(void* p, unsigned cls) noexcept;
// ... and a block popped from a CPU's cache that is not plainly as cached
// (never used yet, zeros to check, or changed: reported): hands it out.
void* checked_hand_out_cached(void* p, unsigned cls) noexcept;
// A checked block above the small classes: of a medium class when one
// holds it (checked_medium_class_of; align at most a page), else a page span.
// flags: kLargeZeroTable for a calloc (heap/page_heap.h LargeFlags).
void* checked_alloc_large(size_t n, size_t align, unsigned flags = 0) noexcept;
// A page span whatever the size (guard samples, heap-profile samples),
// spanning at least `room` bytes (the rest: room for realloc to grow into).
void* checked_alloc_span(size_t n, size_t align, size_t room = 0, unsigned flags = 0) noexcept;
// A block of medium class cls for a request of n bytes (secure/checked_medium.cc).
void* checked_alloc_medium(unsigned cls, size_t n) noexcept;
// The usable bytes of the live medium block p; reports (verb: the caller)
// an overwritten canary.
size_t checked_medium_usable(uintptr_t p, unsigned cls, const char* verb) noexcept;
// realloc growth of a medium block: in place within its class, or moved to a
// page span with room to grow; nullptr when it takes the usual way.
void* checked_grow_medium(void* p, unsigned cls, size_t n) noexcept;
// realloc growth of the block p (old usable bytes) to n bytes by a move to a
// page span with room for the next steps (as the default's moves): copied,
// p freed; nullptr when no memory.
void* checked_move_to_span(void* p, size_t old, size_t n) noexcept;
void checked_free_large(void* p) noexcept;
void* checked_aligned(size_t align, size_t n) noexcept;
void* checked_realloc(void* p, size_t n) noexcept;
// realloc growth of a large block: in place, or moved with room to grow
// again; nullptr when it takes the usual way (secure/checked_large.cc).
void* checked_grow_large(void* p, size_t n) noexcept;
// realloc of a large block to half its size or less (above the small
// classes): in place, its tail given back; nullptr when it takes the usual way.
void* checked_shrink_large(void* p, size_t n) noexcept;
size_t checked_usable_size(const void* p) noexcept;
// A free that names the block's size (sized delete, C23 free_sized; call:
// which, for the report): reports a size the block was not allocated with.
void checked_sized_free(void* p, size_t size, const char* call) noexcept;
void checked_calloc_overflow(size_t count, size_t size) noexcept;
void checked_huge_request(size_t n) noexcept;
// Thread exit: the thread's checked cache and quarantine go back.
void checked_thread_teardown() noexcept;
// The calling thread's checked bins back to the central pools, their limits
// back to the bases (SmallDivert::flush); returns the blocks moved.
uint64_t checked_thread_flush() noexcept;
// The thread's first small allocation (SmallDivert::alloc_first): on its
// bins, a block on a line of its own among their top blocks or a few of the
// pool's (cache/thread_cache.h cache_alloc_first); otherwise as
// checked_alloc.
void* checked_alloc_first(unsigned cls, size_t n) noexcept;
// The small-block entry points for the modes g_checks holds (after
// checks_init): the lean pair when only zeroing and the bit guard are on,
// the general one otherwise (secure/checked_small.cc).
struct SmallDivert;
SmallDivert checked_small_divert() noexcept;

}  // namespace slabby

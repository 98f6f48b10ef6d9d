// slabby: the lean checked pair (SLABBY_SECURE, SLABBY_BITGUARD and
// SLABBY_ZERO=free without per-call extras) and the hardened library's
// out-of-line paths (frontend/hardened_fast.h). The block format is
// secure/checks.h's, its helpers secure/checked_block.h's.
#include "cache/percpu_cache.h"
#include "cache/thread_cache.h"
#include "secure/checked_block.h"
#include "secure/checked_cache.h"
#include "secure/checks.h"
#include "secure/leak_check.h"

namespace slabby {

using namespace checked;

namespace {

// The lean pair: the modes most programs would run in production
// (SLABBY_SECURE: zeroing and the bit guard, or either alone), with none of
// the per-call extras (zero on alloc, guard sampling, leak tracing,
// quarantine). The modes are template arguments, so each variant is
// straight-line code with no flag loads; one critical section on the CPU's
// cache (or the thread's bin, for a thread without rseq) is the whole hit
// path, and anything else (an empty or full bin, a thread not active, a
// request too big for a small class with its canary) goes to the general
// pair (checked_small.cc).

// The lean pair's sections. Under a divert the CPU regions count nothing
// (cache/percpu_cache.h percpu_fast_counts), so the plain sections do; the
// hardened library's inline paths hit the same caches and are counted by
// the regions, so its slow paths count what their sections move, as the
// default's do.
SLABBY_INLINE void* lean_pop(unsigned cls) {
  if constexpr (kHardenedBuild) return percpu_pop(cls);
  return percpu_pop_section(cls);
}
SLABBY_INLINE bool lean_push(unsigned cls, void* p) {
  if constexpr (kHardenedBuild) return percpu_push(cls, p);
  return percpu_push_section(cls, p);
}

// A block taken from a cache becomes the program's: as verify_free and
// hand_out, for these modes.
template <bool kBitguard, bool kZero>
SLABBY_INLINE void* lean_hand_out(uintptr_t p, unsigned cls, size_t size) noexcept {
  uint64_t tag = tag_word(p, size);
  if (SLABBY_LIKELY(tag == freed_tag(p))) {
    if (kZero) {
      ssize_t bad = first_nonzero(p, 8, size - 8);
      if (SLABBY_UNLIKELY(bad >= 0)) write_after_free(p, cls, bad, "malloc");
    }
  } else if (SLABBY_UNLIKELY(tag != fresh_tag(p))) {
    verify_free(p, cls, "malloc");  // reports the overwritten tag
  }
  tl_cache.allocs[cls]++;
  words(p)[0] = 0;
  tag_word(p, size) = kBitguard ? live_canary(p) : 0;
  return reinterpret_cast<void*>(p);
}

// A thread on its bins (secure/checked_cache.h: every thread until the
// process has SLABBY_PERCPU_THREADS of them, and threads without rseq).
template <bool kBitguard, bool kZero>
SLABBY_NOINLINE void* lean_alloc_from_bin(unsigned cls, size_t n, size_t size) noexcept {
  CheckedBin& b = tl_checked.bins[cls];
  uintptr_t p = b.head;
  if (SLABBY_UNLIKELY(p == 0)) return checked_alloc(cls, n);
  uintptr_t next = encode_link(p, words(p)[0]);
  check_link(p, next, cls);
  b.head = next;
  b.space++;
  return lean_hand_out<kBitguard, kZero>(p, cls, size);
}

template <bool kBitguard, bool kZero>
void* lean_alloc(unsigned cls, size_t n) noexcept {
  // A medium class only as a thread's first call before init (checked_alloc).
  if (SLABBY_UNLIKELY(is_medium_class(cls))) return checked_alloc(cls, n);
  size_t size = class_size(cls);
  if (kBitguard && size - n < kCanaryBytes) {  // the canary needs the next class
    uintptr_t up = class_with_canary_of(n);
    if (SLABBY_UNLIKELY(up == 0)) return checked_alloc(cls, n);
    cls = static_cast<unsigned>(up);
    size = class_size(cls);
  }
  if (SLABBY_UNLIKELY(!tl_checked.on_cpu))
    return lean_alloc_from_bin<kBitguard, kZero>(cls, n, size);
  uintptr_t p = reinterpret_cast<uintptr_t>(lean_pop(cls));  // counted below
  if (SLABBY_UNLIKELY(p == 0)) return checked_alloc(cls, n);
  verify_first_word(p, cls);
  return lean_hand_out<kBitguard, kZero>(p, cls, size);
}

// A freed block (validated, tagged) of a thread on its bins.
SLABBY_NOINLINE void lean_free_to_bin(uintptr_t p, unsigned cls) noexcept {
  CheckedBin& b = tl_checked.bins[cls];
  if (SLABBY_UNLIKELY(b.space <= 0)) return free_tagged(p, cls);
  tl_cache.frees[cls]++;
  push(b, p);
}

template <bool kBitguard, bool kZero>
void lean_free(void* ptr, unsigned cls) noexcept {
  // Medium blocks have their own canary (checked_medium.cc).
  if (SLABBY_UNLIKELY(is_medium_class(cls))) return checked_free(ptr, cls);
  uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  size_t size = class_size(cls);
  validate_small(p, cls, "free", kBitguard);
  if (kZero) zero_body(p, size);
  tag_word(p, size) = freed_tag(p);
  if (SLABBY_UNLIKELY(!tl_checked.on_cpu)) return lean_free_to_bin(p, cls);
  mark_cached(p);
  if (SLABBY_UNLIKELY(!lean_push(cls, ptr))) return free_tagged(p, cls);  // counted below
  tl_cache.frees[cls]++;
}

// In the hardened library the inline paths check the lean modes' blocks
// themselves (frontend/hardened_fast.h) and so may use the CPU caches.
template <bool kBitguard, bool kZero>
constexpr SmallDivert kLean = {lean_alloc<kBitguard, kZero>, lean_free<kBitguard, kZero>,
                               checked_thread_teardown, checked_thread_flush,
                               checked_alloc_first, kHardenedBuild && kBitguard};

}  // namespace

SmallDivert checked_small_divert() noexcept {
  const Checks& k = g_checks;
  if (!k.extras && k.bitguard && k.zero_free) return kLean<true, true>;
  if (!k.extras && k.bitguard) return kLean<true, false>;
  if (!k.extras && k.zero_free) return kLean<false, true>;
  return {checked_alloc, checked_free, checked_thread_teardown, checked_thread_flush,
          checked_alloc_first, false};
}

void checked_free_validated(void* ptr, unsigned cls) noexcept {
  if (SLABBY_UNLIKELY(g_checks.leak_check)) leak_note_free(ptr);
  free_tagged(reinterpret_cast<uintptr_t>(ptr), cls);
}

void* checked_hand_out_cached(void* block, unsigned cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
  verify_first_word(p, cls);
  verify_free(p, cls, "malloc");
  return hand_out(p, cls);
}

}  // namespace slabby

// slabby: medium blocks (above 32 KiB, up to 1 MiB) on the checked paths.
// They are blocks of the medium classes, taken from and given back to the
// caches as the small ones are (checked_small.cc), in the small blocks'
// format at their class's size (secure/checks.h), plus the size the program
// asked for: a medium class's slab is one block, so its span keeps the
// block's usable bytes (Span::usable), and with the bit guard a canary
// follows them, so an overflow is found from its first byte, as on a page
// span. (Page spans for every such block, as before, cost a span, a lock and
// a canary page each: two threads allocating 64 KiB-1 MiB blocks took 36 x
// the default's time under the hardened library, 889 x under SLABBY_SECURE.)
#include <cstring>

#include "frontend/allocator.h"
#include "heap/page_heap.h"
#include "runtime/runtime.h"
#include "secure/checked_block.h"
#include "secure/checks.h"
#include "secure/leak_check.h"
#include "secure/report.h"

namespace slabby {

using namespace checked;

namespace {

Span* slab_of(uintptr_t p) { return g_rt.heap.span_of(reinterpret_cast<void*>(p)); }

uint64_t* canary_at(uintptr_t p, size_t usable) { return reinterpret_cast<uint64_t*>(p + usable); }

// The block's usable bytes from now on, and their canary after them. (Never
// on the tag word: usable is a multiple of 16, and so is the class's size,
// so usable + 8 < size.)
void set_usable(uintptr_t p, size_t usable) {
  slab_of(p)->usable = usable;
  if (g_checks.bitguard) *canary_at(p, usable) = live_canary(p);
}

[[noreturn]] SLABBY_COLD void report_overflow(uintptr_t p, size_t usable, uint64_t word,
                                              const char* verb) {
  Report r;
  r.str("heap overflow past the ").u64(usable).str(" usable bytes of ").ptr(p).where(0, usable);
  r.str(": canary byte ").u64(__builtin_ctzll(word ^ live_canary(p)) / 8);
  r.str(" changed (found by ").str(verb).str(")");
  r.abort_now();
}

}  // namespace

void* checked_alloc_medium(unsigned cls, size_t n) noexcept {
  // A thread that only uses medium blocks gets its caches too.
  if (SLABBY_UNLIKELY(tl_cache.state == kCacheUninit)) thread_init();
  void* block = alloc_in_class(cls);
  if (block == nullptr || !g_rt.heap.owns(block)) return block;  // (glibc's, past a full heap)
  size_t usable = medium_usable_of(n);
  set_usable(reinterpret_cast<uintptr_t>(block), usable);
  if (SLABBY_UNLIKELY(g_checks.leak_check)) leak_note_alloc(block, usable);
  return block;
}

size_t checked_medium_usable(uintptr_t p, unsigned cls, const char* verb) noexcept {
  validate_small(p, cls, verb, g_checks.bitguard);
  size_t usable = slab_of(p)->usable;
  if (g_checks.bitguard) {
    uint64_t word = *canary_at(p, usable);
    if (SLABBY_UNLIKELY(word != live_canary(p))) report_overflow(p, usable, word, verb);
  }
  return usable;
}

void checked::checked_medium_release(uintptr_t p, unsigned cls) noexcept {
  size_t usable = checked_medium_usable(p, cls, "free");
  // Derived from the process's key: not left in freed memory.
  if (g_checks.bitguard) *canary_at(p, usable) = 0;
}

// A medium block growing within its class keeps its place: only its usable
// bytes and its canary move. Past its class it is a buffer growing again,
// which goes to a page span with room to grow in place (as the default's
// medium blocks do: frontend/resize.cc), not from class to class, copied at
// every step.
void* checked_grow_medium(void* ptr, unsigned cls, size_t n) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  size_t old = slab_of(p)->usable;
  if (checked_medium_class_of(n) != cls) {
    if (n > kMaxRequest) return nullptr;
    return checked_move_to_span(ptr, old, n);
  }
  size_t usable = medium_usable_of(n);
  if (usable <= old) return ptr;
  // The old canary becomes the program's: not to be read back.
  if (g_checks.bitguard) *canary_at(p, old) = 0;
  if (g_checks.zero_alloc) zero_bytes(p + old, usable - old);
  set_usable(p, usable);
  if (SLABBY_UNLIKELY(g_checks.leak_check)) leak_note_resized(ptr, usable);
  return ptr;
}

}  // namespace slabby

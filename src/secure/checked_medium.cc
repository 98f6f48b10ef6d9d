// slabby: medium blocks (above 32 KiB, up to 1 MiB) on the checked paths.
// They are blocks of the medium classes, taken from and given back to the
// caches as the small ones are (checked_small.cc), in the small blocks'
// format at their class's size (secure/checks.h), plus the size the program
// asked for: a medium class's slab is one block, so its span keeps the
// block's usable bytes (Span::usable) and its state tag (checked_block.h
// state_word), and with the bit guard a canary follows them, so an overflow
// is found from its first byte, as on a page span. (Page spans for every
// such block, as before, cost a span, a lock and a canary page each: two
// threads allocating 64 KiB-1 MiB blocks took 36 x the default's time under
// the hardened library, 889 x under SLABBY_SECURE.)
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

// The block's usable bytes from now on, and their canary after them (inside
// the block: usable is a multiple of 16, and so is the class's size, so
// usable + 8 < size).
void set_usable(Span* s, uintptr_t p, size_t usable) {
  s->usable = usable;
  if (g_checks.bitguard) *canary_at(p, usable) = live_canary(p);
}

// A block handed out for a request of another size writes its canary
// elsewhere: the page its last canary was on, cleared at its free, may then
// hold nothing else. Left resident, such pages piled up a request at a time
// (medium-sparse, blocks of 40 KiB-1 MiB used at their start: under
// SLABBY_BITGUARD=1 101-168 MiB of peak RSS against the default's 8, under
// SLABBY_SECURE=1 42). So that page is given back when the program wrote
// nothing on it: looked at as the block is freed, before any zeroing
// (Span::lone_canary); given back only when the block is handed out again
// for a size whose canary falls on another page, so a program asking for
// the same size again writes its canary on the same page, which no call
// then gives back. (Given back whenever the canary moved, with zeroing on,
// where every free page reads zero: two threads' blocks of 1-256 KiB, their
// last byte written, took 5 x the time, a madvise's TLB flush reaching the
// other thread's CPU at every other block.) Never the block's first page (its
// link), one shared with what follows the block, nor one in a class whose
// slabs take huge pages (which the call would split: their blocks are
// filled, so such a page is rarely alone).
bool canary_page_alone(uintptr_t p, unsigned cls, size_t usable) {
  const size_t page = os::system_page_size();
  uintptr_t at = round_down(p + usable, page);
  if (at == round_down(p, page) || at + page > p + class_size(cls) ||
      ((g_rt.heap.dense_medium() >> cls) & 1))
    return false;
  // The program's last two words first, when on that page: a block used to
  // its end stops there, without reading the page from its start.
  uintptr_t end = p + usable;
  if (end - at >= 16 && (words(end)[-1] | words(end)[-2]) != 0) return false;
  return first_nonzero(at, 0, page) < 0;
}

void give_back_last_canary_page(Span* s, uintptr_t p, size_t usable) {
  if (!s->lone_canary) return;
  s->lone_canary = false;
  const size_t page = os::system_page_size();
  uintptr_t last = round_down(p + s->usable, page);
  if (last != round_down(p + usable, page)) os::purge(reinterpret_cast<void*>(last), page);
}

[[noreturn]] SLABBY_COLD void report_overflow(uintptr_t p, size_t usable, uint64_t word,
                                              const char* verb) {
  Report r;
  r.str("heap overflow past the ").u64(usable).str(" usable bytes of ").ptr(p).where(0, usable);
  r.str(": canary byte ").u64(__builtin_ctzll(word ^ live_canary(p)) / 8);
  r.str(" changed (found by ").str(verb).str(")");
  r.abort_now();
}

// p (of class cls, as its page says) is a live medium block: its slab's
// start, marked live, its canary intact. Returns its slab; the cold reports
// name anything else (verb: the caller).
Span* live_medium(uintptr_t p, unsigned cls, const char* verb) {
  Span* s = slab_of(p);
  bool ok = p == s->start && __atomic_load_n(&s->carved, __ATOMIC_RELAXED) != 0;
  if (g_checks.tags) ok = ok && s->block_tag == (g_checks.bitguard ? live_canary(p) : 0);
  if (SLABBY_UNLIKELY(!ok)) report_invalid_small(p, cls, verb);
  if (g_checks.bitguard) {
    uint64_t word = *canary_at(p, s->usable);
    if (SLABBY_UNLIKELY(word != live_canary(p))) report_overflow(p, s->usable, word, verb);
  }
  return s;
}

}  // namespace

void* checked_alloc_medium(unsigned cls, size_t n) noexcept {
  // A thread that only uses medium blocks gets its caches too.
  if (SLABBY_UNLIKELY(tl_cache.state == kCacheUninit)) thread_init();
  void* block = alloc_in_class(cls);
  if (block == nullptr || !g_rt.heap.owns(block)) return block;  // (glibc's, past a full heap)
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
  Span* s = slab_of(p);
  size_t usable = medium_usable_of(n);
  give_back_last_canary_page(s, p, usable);
  set_usable(s, p, usable);
  if (SLABBY_UNLIKELY(g_checks.leak_check)) leak_note_alloc(block, usable);
  return block;
}

size_t checked_medium_usable(uintptr_t p, unsigned cls, const char* verb) noexcept {
  return live_medium(p, cls, verb)->usable;
}

void checked::checked_medium_release(uintptr_t p, unsigned cls) noexcept {
  Span* s = live_medium(p, cls, "free");
  if (!g_checks.bitguard) return;
  // Derived from the process's key: not left in freed memory.
  *canary_at(p, s->usable) = 0;
  s->lone_canary = canary_page_alone(p, cls, s->usable);
}

// A medium block growing within its class keeps its place: only its usable
// bytes and its canary move. Past its class it is a buffer growing again,
// which goes to a page span with room to grow in place (as the default's
// medium blocks do: frontend/resize.cc), not from class to class, copied at
// every step.
void* checked_grow_medium(void* ptr, unsigned cls, size_t n) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  Span* s = slab_of(p);
  size_t old = s->usable;
  if (checked_medium_class_of(n) != cls) {
    if (n > kMaxRequest) return nullptr;
    return checked_move_to_span(ptr, old, n);
  }
  size_t usable = medium_usable_of(n);
  if (usable <= old) return ptr;
  // The old canary becomes the program's: not to be read back.
  if (g_checks.bitguard) *canary_at(p, old) = 0;
  if (g_checks.zero_alloc) zero_bytes(p + old, usable - old);
  set_usable(s, p, usable);
  if (SLABBY_UNLIKELY(g_checks.leak_check)) leak_note_resized(ptr, usable);
  return ptr;
}

}  // namespace slabby

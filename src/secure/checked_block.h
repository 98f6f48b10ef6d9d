// slabby: the block format's helpers, shared by the checked paths
// (secure/checks.h has the format): checked_small.cc (the general pair, the
// thread bins, blocks from and to the central pools) and checked_lean.cc (the
// lean pair and the hardened library's out-of-line paths). Internal to
// secure/.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstring>

#include "common/base.h"
#include "common/size_class.h"
#include "os/os.h"
#include "runtime/runtime.h"
#include "secure/checked_cache.h"
#include "secure/checks.h"
#include "secure/report.h"

namespace slabby::checked {

SLABBY_INLINE uint64_t* words(uintptr_t p) { return reinterpret_cast<uint64_t*>(p); }
SLABBY_INLINE uint64_t& tag_word(uintptr_t p, size_t size) { return *tag_at(p, size); }
// A medium block's state tag is its slab's (Span::block_tag: one block a
// slab), not its last word: a cached block then keeps only its first page
// resident, as the default's do, not its last one too (medium-sparse under
// SLABBY_SECURE=1: 42 MiB of peak RSS against 8). The program cannot reach
// it, so only a small block's tag can be overwritten.
SLABBY_INLINE uint64_t& state_word(uintptr_t p, unsigned cls) {
  if (SLABBY_UNLIKELY(is_medium_class(cls)))
    return g_rt.heap.span_of(reinterpret_cast<void*>(p))->block_tag;
  return tag_word(p, class_size(cls));
}
// Where a free block's body, zeroed and checked, ends: at the tag word of a
// small block, at the end of a medium one.
SLABBY_INLINE size_t body_end(unsigned cls) {
  return is_medium_class(cls) ? class_size(cls) : class_size(cls) - kCanaryBytes;
}
SLABBY_INLINE size_t usable_of(unsigned cls) {
  return class_size(cls) - (g_checks.bitguard ? kCanaryBytes : 0);
}

// Bodies above the small classes' (medium blocks, up to 1 MiB) are read and
// zeroed only where their pages hold data (os::find_nonzero,
// os::zero_resident): a program that uses the start of one must not have the
// rest faulted in by the allocator, nor pay for reading pages nobody wrote.
inline constexpr size_t kPagewiseBody = kMaxSmallSize;

SLABBY_NOINLINE inline ssize_t first_nonzero_pagewise(uintptr_t p, size_t from, size_t to) {
  size_t at = os::find_nonzero(reinterpret_cast<const void*>(p + from), to - from);
  return at == SIZE_MAX ? -1 : static_cast<ssize_t>(from + at);
}

// n bytes at p zeroed, page by page where they are above kPagewiseBody.
SLABBY_INLINE void zero_bytes(uintptr_t p, size_t n) {
  if (SLABBY_UNLIKELY(n > kPagewiseBody))
    os::zero_resident(reinterpret_cast<void*>(p), n);
  else
    memset(reinterpret_cast<void*>(p), 0, n);
}

// A never-used medium block's body ([8, size), size > kPagewiseBody)
// made zero by giving its whole pages back to the OS, the partial pages at
// its ends written. Page heap memory reads zero under SLABBY_ZERO=free
// already, but its pages may be present: freed dirty, or a huge page's (a
// medium slab in the free pages a huge-page chunk left), every page of which
// the zeroing at each free and the zero check at each reuse would write and
// read for as long as the block lives.
// (page: the system's; a test passes 64 KiB on a 4 KiB system.)
SLABBY_COLD inline void zero_fresh_body(uintptr_t p, size_t size,
                                        size_t page = os::system_page_size()) {
  os::zero_by_discarding(reinterpret_cast<void*>(p + 8), size - 8, page);
}

// Offset of the first non-zero byte in [from, to) of the block, or -1.
SLABBY_COLD inline ssize_t locate_nonzero(uintptr_t p, size_t from, size_t to) {
  for (size_t i = from; i < to; i += 8) {
    uint64_t w = words(p)[i / 8];
    if (w != 0) return static_cast<ssize_t>(i + __builtin_ctzll(w) / 8);
  }
  return -1;
}

// Two words at a time (SSE2 / NEON through GCC's vector extension). Block
// bodies are [8, size - 8) of a class size that is a multiple of 16 from 32
// on: whole 16-byte pairs, 8-byte aligned.
typedef uint64_t Pair __attribute__((vector_size(16), aligned(8)));
// Keeps GCC from turning the short loops below into memset or `rep stos`,
// whose start-up costs more than the few stores of a small block.
#define SLABBY_NOT_A_MEMSET(q) asm("" : "+r"(q))

SLABBY_INLINE ssize_t first_nonzero(uintptr_t p, size_t from, size_t to) {
  if (to - from < 64) {
    uint64_t any = 0;
    for (size_t i = from / 8; i < to / 8; ++i) any |= words(p)[i];
    if (SLABBY_LIKELY(any == 0)) return -1;
  } else {
    // (from > to, an empty range, for a 16-byte block.)
    if (SLABBY_UNLIKELY(to > from + kPagewiseBody)) return first_nonzero_pagewise(p, from, to);
    // Large bodies: 64 bytes a step into four accumulators (independent
    // loads), then whole pairs, then a tail word if odd.
    Pair any = {0, 0}, any1 = {0, 0}, any2 = {0, 0}, any3 = {0, 0};
    uintptr_t q = p + from;
    for (; q + 64 <= p + to; q += 64) {
      const Pair* v = reinterpret_cast<const Pair*>(q);
      any |= v[0];
      any1 |= v[1];
      any2 |= v[2];
      any3 |= v[3];
      SLABBY_NOT_A_MEMSET(q);
    }
    any |= any1 | any2 | any3;
    for (; q + 16 <= p + to; q += 16) {
      any |= *reinterpret_cast<const Pair*>(q);
      SLABBY_NOT_A_MEMSET(q);
    }
    uint64_t tail = q < p + to ? *reinterpret_cast<const uint64_t*>(q) : 0;
    if (SLABBY_LIKELY((any[0] | any[1] | tail) == 0)) return -1;
  }
  return locate_nonzero(p, from, to);
}

// Zeroes bytes [8, size - 8) of a freed small block: the link word and the
// tag word are written apart. Up to 128 bytes by 16-byte stores, memset
// above.
SLABBY_INLINE void zero_body(uintptr_t p, size_t size) {
  if (size <= 16) return;
  if (size <= 128 && size % 16 == 0) {
    for (uintptr_t q = p + 8; q < p + size - 8; q += 16) {
      *reinterpret_cast<Pair*>(q) = Pair{0, 0};
      SLABBY_NOT_A_MEMSET(q);
    }
    return;
  }
  zero_bytes(p + 8, size - 16);
}
// ... and of a block of class cls, to body_end (a medium block's page by page).
SLABBY_INLINE void zero_body_of(uintptr_t p, unsigned cls) {
  if (SLABBY_UNLIKELY(is_medium_class(cls)))
    zero_bytes(p + 8, body_end(cls) - 8);
  else
    zero_body(p, class_size(cls));
}

// The usable bytes a report names for a block of class cls at p: a medium
// block's own (reported as a large block of that size), else 0 (its class).
SLABBY_COLD inline uint64_t reported_usable(uintptr_t p, unsigned cls) {
  if (!is_medium_class(cls)) return 0;
  return g_rt.heap.span_of(reinterpret_cast<void*>(p))->usable;
}

[[noreturn]] SLABBY_COLD inline void write_after_free(uintptr_t p, unsigned cls, ssize_t byte,
                                                      const char* found_by) {
  Report r;
  r.str("write after free of ").ptr(p).where(cls, reported_usable(p, cls)).str(": byte ");
  r.u64(static_cast<uint64_t>(byte));
  // A medium block in the quarantine is named as a page span is there.
  if (is_medium_class(cls) && strcmp(found_by, "quarantine") == 0)
    r.str(" changed while it was in quarantine");
  else
    r.str(" changed after it was freed (found by ").str(found_by).str(")");
  r.abort_now();
}

// A free-list link must be null or point into a slab of the same class:
// anything else means the free block holding it was overwritten. A link
// overwritten without the key decodes to a random address, which this
// rejects with near certainty; a block that passes is checked again by its
// tag when it is popped (checked_verify_free_small).
[[noreturn]] SLABBY_COLD inline void corrupted_link(uintptr_t block, uintptr_t next, unsigned cls) {
  Report r;
  r.str("corrupted free list")
      .where(cls, reported_usable(block, cls))
      .str(": the free block ")
      .ptr(block)
      .str(" links to ");
  r.ptr(next).str(", not a block of its class (a write after free)");
  r.abort_now();
}

SLABBY_INLINE void check_link(uintptr_t block, uintptr_t next, unsigned cls) {
  if (next == 0) return;
  if (SLABBY_LIKELY(g_rt.heap.may_be_block_of(next, cls))) return;
  corrupted_link(block, next, cls);
}

SLABBY_INLINE void push(CheckedBin& b, uintptr_t p) {
  words(p)[0] = encode_link(p, b.head);
  b.head = p;
  b.space--;
}

SLABBY_INLINE uintptr_t pop(CheckedBin& b, unsigned cls) {
  uintptr_t p = b.head;
  uintptr_t next = encode_link(p, words(p)[0]);
  check_link(p, next, cls);
  b.head = next;
  b.space++;
  return p;
}

// A medium block in a cache whose slab's tag says neither freed nor never
// used: no write of the program's can do that, only a block cached without
// its free (the allocator's bug, or memory corrupted outside the heap).
[[noreturn]] SLABBY_COLD inline void lost_state(uintptr_t p, unsigned cls, const char* found_by) {
  Report r;
  r.str("the free block ").ptr(p).where(cls, reported_usable(p, cls));
  r.str(" is not marked free (found by ").str(found_by).str(")");
  r.abort_now();
}

// Checks a block taken from a bin or the quarantine is still as freed.
SLABBY_INLINE void verify_free(uintptr_t p, unsigned cls, const char* found_by) {
  if (!g_checks.tags) return;
  uint64_t tag = state_word(p, cls);
  if (tag == freed_tag(p)) {
    if (g_checks.zero_free) {
      ssize_t bad = first_nonzero(p, 8, body_end(cls));
      if (bad >= 0) write_after_free(p, cls, bad, found_by);
    }
    return;
  }
  if (tag == fresh_tag(p)) return;
  if (is_medium_class(cls)) lost_state(p, cls, found_by);
  // The tag itself was overwritten: name the first byte that differs.
  uint64_t diff = tag ^ freed_tag(p);
  write_after_free(p, cls, static_cast<ssize_t>(body_end(cls) + __builtin_ctzll(diff) / 8),
                   found_by);
}

// In a CPU cache a free block's first word holds the encoded end-of-list
// link: no list runs through the slots, but a write after free over that
// word is then found, and named, like one over a bin's link.
SLABBY_INLINE void mark_cached(uintptr_t p) { words(p)[0] = encode_link(p, 0); }

// A block from a CPU cache: its first word must still be the end-of-list
// link (the rest is verify_free's).
SLABBY_INLINE void verify_first_word(uintptr_t p, unsigned cls) {
  uint64_t w = words(p)[0];
  if (SLABBY_UNLIKELY(w != encode_link(p, 0))) corrupted_link(p, encode_link(p, w), cls);
}

// A free block becomes the program's.
SLABBY_INLINE void* hand_out(uintptr_t p, unsigned cls) {
  words(p)[0] = 0;
  if (g_checks.tags) state_word(p, cls) = g_checks.bitguard ? live_canary(p) : 0;
  if (g_checks.zero_alloc) zero_bytes(p, usable_of(cls));
  return reinterpret_cast<void*>(p);
}

// The report for a block that failed checked_validate_small's quick tests:
// works out which bug it is, names it, aborts.
[[noreturn]] SLABBY_COLD inline void report_invalid_small(uintptr_t p, unsigned cls,
                                                        const char* verb) {
  size_t size = class_size(cls);
  Span* s = g_rt.heap.span_of(reinterpret_cast<void*>(p));
  uintptr_t off = p - s->start;
  uintptr_t into = off % size;
  uint32_t index = static_cast<uint32_t>(off / size);
  uint32_t carved = __atomic_load_n(&s->carved, __ATOMIC_RELAXED);
  Report r;
  if (into != 0) {
    r.str(verb).str(p % kMinAlign != 0 ? " of unaligned pointer " : " of interior pointer ");
    r.ptr(p).str(": ").u64(into).str(" bytes into the block at ").ptr(p - into);
    r.where(cls, reported_usable(p - into, cls));
    r.abort_now();
  }
  // A block's start: a small one's tag word is inside its slab.
  uint64_t tag = state_word(p, cls);
  uint64_t usable = reported_usable(p, cls);
  if (g_checks.tags && tag == freed_tag(p)) {
    if (verb[0] == 'f')
      r.str("double free of ").ptr(p).where(cls, usable);
    else
      r.str(verb).str(" of freed pointer ").ptr(p).where(cls, usable);
  } else if (index >= blocks_per_slab(cls) || index >= carved ||
             (g_checks.tags && tag == fresh_tag(p))) {
    r.str(verb).str(" of ").ptr(p).str(", a block never handed out").where(cls, usable);
  } else if (is_medium_class(cls)) {
    // (Its slab's tag, which no write of the program's reaches.)
    r.str(verb).str(" of ").ptr(p).str(", a block not marked live").where(cls, usable);
  } else {
    uint64_t diff = tag ^ live_canary(p);
    r.str("heap overflow past the ").u64(size - kCanaryBytes);
    r.str(" usable bytes of ").ptr(p).where(cls, usable).str(": canary byte ");
    r.u64(__builtin_ctzll(diff) / 8).str(" changed (found by ").str(verb).str(")");
  }
  r.abort_now();
}

// bitguard: g_checks.bitguard, or the constant the caller was built for.
SLABBY_INLINE void validate_small(uintptr_t p, unsigned cls, const char* verb, bool bitguard) {
  size_t size = class_size(cls);
  if (bitguard) {
    // A live block is one whose canary word holds its own address under the
    // key. For an interior or unaligned pointer the word read is some other
    // data, which matches with negligible odds; freed and never-used blocks
    // hold tags. So one compare decides, and the cold report works out which
    // bug it was.
    // (An interior pointer in a slab's last block would read past the slab:
    // the class map says whether that word is in a slab of the class.)
    if (SLABBY_UNLIKELY(g_rt.heap.class_of(reinterpret_cast<void*>(p + size - 8)) != cls ||
                        tag_word(p, size) != live_canary(p)))
      report_invalid_small(p, cls, verb);
    return;
  }
  Span* s = g_rt.heap.span_of(reinterpret_cast<void*>(p));
  uintptr_t off = p - s->start;
  // One division: the block's index and the remainder. Slabs hold whole
  // blocks, so an index past the last block also fails the carved test.
  uintptr_t index = off / size;
  bool ok = off == index * size && index < __atomic_load_n(&s->carved, __ATOMIC_RELAXED);
  if (g_checks.tags) {
    uint64_t tag = tag_word(p, size);
    ok = ok && tag != freed_tag(p) && tag != fresh_tag(p);
  }
  if (SLABBY_UNLIKELY(!ok)) report_invalid_small(p, cls, verb);
}

// The rest of a free once the block is validated and tagged (zeroed):
// counted, then to the quarantine or a cache (checked_small.cc).
SLABBY_NOINLINE void free_tagged(uintptr_t p, unsigned cls) noexcept;

// A block of exactly class cls from the thread's caches (or the central
// pool), handed out; not traced by the leak check (checked_small.cc).
void* alloc_in_class(unsigned cls) noexcept;

// A medium block's free: validated, its canary checked and cleared
// (checked_medium.cc).
void checked_medium_release(uintptr_t p, unsigned cls) noexcept;

}  // namespace slabby::checked

// slabby: the front end. Fast paths are inline and short: a size-class
// table lookup and a pop from (or push to) the thread's bin, with one
// unlikely branch each that tail-calls an out-of-line slow path.
//
// free() decides ownership with one range check against the arena: foreign
// pointers (glibc's, from before the preload, libc internals, DEEPBIND
// libraries, heap fallbacks) go to glibc's free.
#pragma once

#include <cstddef>

#include "cache/percpu_cache.h"
#include "cache/thread_cache.h"
#include "common/base.h"
#include "common/size_class.h"
#include "frontend/hardened_fast.h"
#include "frontend/thread_fast.h"
#include "runtime/runtime.h"

namespace slabby {

// The hardened library's inline paths when the thread's cache (its CPU's or
// its checked bin) missed (frontend/hardened_bins.cc): the slow paths.
// free's block is validated and marked freed. (n first: malloc's argument
// stays where it is.)
void* hardened_alloc_missed(size_t n, uintptr_t cls) noexcept;
void hardened_free_missed(void* p, uintptr_t cls) noexcept;

// Requests above PTRDIFF_MAX can never succeed (glibc refuses them too).
inline constexpr size_t kMaxRequest = static_cast<size_t>(PTRDIFF_MAX);

// Out-of-line paths (frontend/allocator.cc).
// n > kMaxSmallSize or align > page: a medium class's block (through the
// caches) up to kMaxClassSize, a page span above.
void* alloc_large(size_t n, size_t align) noexcept;
// A page span of at least n bytes (flags: heap/page_heap.h LargeFlags).
void* alloc_span(size_t n, size_t align, unsigned flags) noexcept;
void* calloc_large(size_t total) noexcept;  // total > kMaxSmallSize
// Aborts with "slabby: <what> of invalid pointer ..." (p is in the arena
// but not the start of a live block).
[[noreturn]] SLABBY_COLD void invalid_pointer(const char* what, const void* p);
void free_not_small(void* p) noexcept;               // large span or invalid pointer in the arena
void free_foreign(void* p) noexcept;                 // NULL or not in the arena
void* aligned_alloc_impl(size_t align, size_t n) noexcept;  // align: power of two
void* calloc_impl(size_t count, size_t size) noexcept;
void* realloc_impl(void* p, size_t n) noexcept;  // frontend/resize.cc
size_t usable_size_impl(const void* p) noexcept;
// Serves a request from glibc when slabby cannot (arena exhausted, init
// failed); counted as a heap fallback. nullptr + ENOMEM if glibc fails too.
void* fallback_alloc(size_t n, size_t align) noexcept;
// The allocation SLABBY_LATENCY_SAMPLE picked (n: the bytes asked for, at
// most class_size(cls), as for cache_refill_and_alloc): timed with the cycle counter
// into the latency histogram (telemetry/latency.h); resets the countdown.
void* alloc_sampled(uintptr_t cls, size_t n) noexcept;
// Makes the calling thread's next allocation decide on sampling afresh (a
// sampler was just turned on; other threads see it within 65536 of their
// allocations).
void sampling_restart_this_thread() noexcept;

// Where malloc_fast goes when its fast path cannot serve the call, each a
// tail call: the block, or nullptr with errno set. operator new passes its
// own set (preload/malloc_symbols.cc), whose exits turn nullptr into the
// new_handler loop and std::bad_alloc: the size reaches them as an argument,
// so no inline path keeps it live across a call (which made operator new
// save and restore a register on its fast path, three instructions).
struct MallocExits {
  static constexpr bool kNoexcept = true;  // these never throw; operator new's may
  static SLABBY_INLINE void* large(size_t n) noexcept { return alloc_large(n, 0); }
  static SLABBY_INLINE void* sampled(uintptr_t cls, size_t n) noexcept {
    return alloc_sampled(cls, n);
  }
  // The size first, as in hardened_missed: operator new's per-CPU miss is
  // then a jump with the size still in its first argument register, where
  // (cls, n) made GCC copy the size at entry (one instruction on every
  // call's path).
  static SLABBY_INLINE void* percpu_refill(size_t, uintptr_t cls) noexcept {
    return percpu_refill_and_alloc(cls);
  }
  static SLABBY_INLINE void* refill(uintptr_t cls, size_t n) noexcept {
    return cache_refill_and_alloc(static_cast<unsigned>(cls), n);
  }
  static SLABBY_INLINE void* hardened_missed(size_t n, uintptr_t cls) noexcept {
    return hardened_alloc_missed(n, cls);
  }
  static SLABBY_INLINE void* hand_out_cached(void* p, uintptr_t cls, size_t) noexcept {
    return checked_hand_out_cached(p, static_cast<unsigned>(cls));
  }
};

// The hardened library's allocation from class cls, which holds n bytes and
// the canary (frontend/hardened_fast.h). The thread's mode first, as in the
// default library (alloc_in_class_untimed): a thread on the CPU caches pops
// its CPU's, any other its checked bin.
template <class Exits = MallocExits>
SLABBY_INLINE void* hardened_alloc_fitted(
    uintptr_t tco, uintptr_t cls, size_t n,
    const FastRegionTable* fast = &g_fast_regions) noexcept(Exits::kNoexcept) {
  uintptr_t tck = tl_checked_offset();
  if constexpr (kHaveRseqSections) {
    if (SLABBY_UNLIKELY(hardened_on_cpu(tck))) {
      void* p = percpu_pop_fast(cls, fast);
      if (SLABBY_UNLIKELY(p == nullptr)) return Exits::hardened_missed(n, cls);
      if (SLABBY_UNLIKELY(!hardened_cached_intact(p, cls)))
        return Exits::hand_out_cached(p, cls, n);
      return hardened_hand_out(p, cls);
    }
  }
  (void)fast;
  void* p = hardened_bin_alloc(tco, tck, cls);
  if (SLABBY_UNLIKELY(p == nullptr)) return Exits::hardened_missed(n, cls);
  return p;
}

// malloc and free test the thread's mode first (one compare with the flag
// in its ThreadCache, whose offset the path already holds): a thread on the
// per-CPU caches runs the CPU's section, any other takes its bin. Until
// 2026-12-04 both tried the CPU's section first, whatever the thread's mode
// (a per-thread thread's section found the fast table's sentinel and missed,
// so the per-CPU path had no mode test), which made the per-thread path pay
// a missed section (9 instructions per call) before its bin. Threads start
// on their bins now (SLABBY_PERCPU_THREADS=0, the default), so that is the
// path most programs run: the test costs the per-CPU pair 5 instructions
// (47) and saves the per-thread pair 19 (38; docs/benchmarks.md, "The mode
// tested first"). A thread in a checked mode, not yet initialised, or past its
// teardown is not on the CPU caches and finds its bins empty and full
// (limit 0): the slow path initialises, hands over to the divert, or goes
// to the central pools. Builds without rseq critical sections
// (common/base.h: kHaveRseqSections) have no per-CPU branch. The class index
// is a full-width integer on the fast paths: mixing 32- and 64-bit uses made
// GCC copy it between registers three times per call.
// n is the size asked for (at most class_size(cls)): only the slow paths
// use it, where the checked modes fit their canary in the class's slack.
template <class Exits = MallocExits>
SLABBY_INLINE void* alloc_in_class_untimed(
    uintptr_t tco, uintptr_t cls, size_t n,
    const FastRegionTable* fast = &g_fast_regions) noexcept(Exits::kNoexcept) {
  if constexpr (kHardenedBuild) {
    // A CPU cache's block, checked (frontend/hardened_fast.h); anything else,
    // including a class whose slack cannot hold the canary, to the checked
    // pair through the slow path.
    if (SLABBY_UNLIKELY(cls >= kNumSmallClasses || class_size(cls) - n < kCanaryBytes))
      return Exits::refill(cls, n);
    return hardened_alloc_fitted<Exits>(tco, cls, n, fast);
  }
  if constexpr (kHaveRseqSections) {
    // Unlikely only for the layout: the bin's path, the default's, falls through.
    if (SLABBY_UNLIKELY(on_percpu_caches(tco))) {
      // A hit is counted by the CPU's region (percpu_cache.h: kCursorAt).
      void* p = percpu_pop_fast(cls, fast);
      if (SLABBY_LIKELY(p != nullptr)) return p;
      return Exits::percpu_refill(n, cls);
    }
  }
  void* p = bin_pop(tco, cls);
  if (SLABBY_LIKELY(p != nullptr)) {
    count_alloc(tco, cls);
    return p;
  }
  return Exits::refill(cls, n);
}
SLABBY_INLINE void* alloc_in_class_untimed(uintptr_t cls, size_t n) noexcept {
  return alloc_in_class_untimed(tl_cache_offset(), cls, n);
}

// Every small allocation: one in SLABBY_LATENCY_SAMPLE is timed (the
// countdown is the only cost of sampling on the fast path).
template <class Exits = MallocExits>
SLABBY_INLINE void* alloc_in_class(
    uintptr_t cls, size_t n,
    const FastRegionTable* fast = &g_fast_regions) noexcept(Exits::kNoexcept) {
  uintptr_t tco = tl_cache_offset();
  if (SLABBY_UNLIKELY(sample_due(tco))) return Exits::sampled(cls, n);
  return alloc_in_class_untimed<Exits>(tco, cls, n, fast);
}

// The fast table's address (cache/percpu_cache.h FastRegionTable), formed
// once per malloc: GCC, given &g_fast_regions twice, formed it twice (one
// instruction more), so it goes through an asm GCC cannot see into.
SLABBY_INLINE const FastRegionTable* fast_table() noexcept {
#if SLABBY_ASM_X86_64
  const FastRegionTable* t;
  asm("leaq slabby_g_fast_regions(%%rip), %0" : "=r"(t));
  return t;
#else
  return &g_fast_regions;
#endif
}

template <class Exits = MallocExits>
SLABBY_INLINE void* malloc_fast(size_t n) noexcept(Exits::kNoexcept) {
  uintptr_t cls;
  const FastRegionTable* fast = fast_table();  // the class's table and the pop's
  if constexpr (kHardenedBuild) {
    // The first class with room for the canary after n bytes
    // (secure/checks.h class_with_canary_of, its large case a branch here).
    if (SLABBY_LIKELY(n <= kMaxDirectCanary)) {
      cls = fast->class_of(n + kCanaryBytes);  // direct_class_with_canary_of
    } else {
      if (SLABBY_UNLIKELY(n > kMaxSmallSize - kCanaryBytes)) return Exits::large(n);
      cls = class_with_canary_of(n);
    }
    uintptr_t tco = tl_cache_offset();
    if (SLABBY_UNLIKELY(sample_due(tco))) return Exits::sampled(cls, n);
    return hardened_alloc_fitted<Exits>(tco, cls, n, fast);
  }
  if (SLABBY_LIKELY(n <= kMaxDirectSize)) {
    cls = fast->class_of(n);  // direct_class_of
  } else {
    if (SLABBY_UNLIKELY(n > kMaxSmallSize)) return Exits::large(n);
    cls = size_class_of(n);
  }
  return alloc_in_class<Exits>(cls, n, fast);
}

// free()'s first step: false when p is not in the arena, else the class of
// p's page (0: not a small block). On x86-64 the three fields are read
// rip-relative, one instruction each (GCC formed g_rt's address first and
// added offsets, one instruction more), and the class lands in the register
// the slow paths take it in (the second argument), where GCC copied it there.
SLABBY_INLINE bool page_class_of(const void* p, uintptr_t* cls) noexcept {
#if SLABBY_ASM_X86_64
  constexpr size_t kHeapAt = offsetof(Runtime, heap);
  uintptr_t c;
  asm goto(
      "movq %[p], %[c]\n\t"
      "subq slabby_g_rt+%c[base](%%rip), %[c]\n\t"
      "cmpq slabby_g_rt+%c[size](%%rip), %[c]\n\t"
      "jae %l[foreign]\n\t"
      "shrq %[shift], %[c]\n\t"
      "addq slabby_g_rt+%c[map](%%rip), %[c]\n\t"
      "movzbl (%[c]), %k[c]\n\t"
      : [c] "=&S"(c)
      : [p] "r"(p), [base] "i"(kHeapAt + PageHeapLayout::kBaseAt),
        [size] "i"(kHeapAt + PageHeapLayout::kSizeAt),
        [map] "i"(kHeapAt + PageHeapLayout::kClassMapAt), [shift] "i"(kPageShift)
      : "memory", "cc"
      : foreign);
  *cls = c;
  return true;
foreign:
  return false;
#else
  const PageHeap& h = g_rt.heap;
  uintptr_t off = reinterpret_cast<uintptr_t>(p) - h.base();
  if (SLABBY_UNLIKELY(off >= h.size())) return false;
  *cls = h.class_map()[off >> kPageShift];
  return true;
#endif
}

// The hardened library's free of a block in a page of small class cls.
SLABBY_INLINE void hardened_free_small(void* p, uintptr_t cls) noexcept {
  // Anything else goes to the divert's free: the lean pair (which zeroes for
  // SLABBY_SECURE) or the general one, both validating in full and reporting.
  if (SLABBY_UNLIKELY(!hardened_plainly_live(p, cls)))
    return cache_flush_and_free(p, static_cast<unsigned>(cls));
  // Then the thread's mode, as in malloc.
  uintptr_t tck = tl_checked_offset();
  if constexpr (kHaveRseqSections) {
    if (SLABBY_UNLIKELY(hardened_on_cpu(tck))) {
      hardened_mark_freed(p, cls);
      if (SLABBY_LIKELY(percpu_push_fast(cls, p))) return;  // counted by the region
      return hardened_free_missed(p, cls);
    }
  }
  if (SLABBY_LIKELY(hardened_bin_free(tl_cache_offset(), tck, cls, p))) return;
  hardened_mark_freed(p, cls);
  return hardened_free_missed(p, cls);
}

// The hardened library's sized delete: a block of the class the size asks
// for (with its canary) is freed inline; any other, and every large size,
// goes to checked_sized_free, which reports a size the block was not
// allocated with (call: which free named the size, for the report).
SLABBY_INLINE void hardened_sized_free(void* p, size_t n, const char* call) noexcept {
  uintptr_t cls;
  if (SLABBY_LIKELY(n <= kMaxDirectCanary && page_class_of(p, &cls) &&
                    cls == direct_class_with_canary_of(n)))
    return hardened_free_small(p, cls);
  return checked_sized_free(p, n, call);
}

SLABBY_INLINE void free_fast(void* p) noexcept {
  uintptr_t cls;
  if constexpr (kHardenedBuild) {
    if (SLABBY_UNLIKELY(!page_class_of(p, &cls))) return free_foreign(p);
    // One test for class 0 (a large block or a stray pointer) and the medium
    // blocks (only ever a thread's first allocation here, the checked pair's
    // own cases: its slow path, unchecked until there).
    if (SLABBY_UNLIKELY(cls - 1 >= kNumSmallClasses - 1)) {
      if (cls == 0) return free_not_small(p);
      return cache_flush_and_free(p, static_cast<unsigned>(cls));
    }
    return hardened_free_small(p, cls);
  }
  if (SLABBY_LIKELY(page_class_of(p, &cls))) {
    // The freed block's line starts coming in first, in either mode. On the
    // CPU's cache the block is on top now, so the next malloc of its class
    // returns it and the program writes it; the free itself never reads it.
    // A bin's push writes its link into it. A block freed long after it was
    // last touched (a replay of python's trace, fragmentation's survivors)
    // otherwise misses at that store (docs/benchmarks.md, "Prefetching the
    // freed block"; for the bins, "The mode tested first").
    __builtin_prefetch(p, 1, 3);
    // Then the thread's mode, as in malloc. Class 0 (large or stray pointer)
    // has an empty-and-full range in every region, and no bin: the push
    // misses and the slow path sorts it out.
    uintptr_t tco = tl_cache_offset();
    if constexpr (kHaveRseqSections) {
      // Unlikely only for the layout, as in malloc.
      if (SLABBY_UNLIKELY(on_percpu_caches(tco))) {
        if (SLABBY_LIKELY(percpu_push_fast(cls, p))) return;  // counted by the region
        return percpu_flush_and_free(p, cls);
      }
    }
    if (SLABBY_LIKELY(bin_push(tco, cls, p))) {
      count_free(tco, cls);
      return;
    }
    if (cls != 0) return cache_flush_and_free(p, cls);
    return free_not_small(p);
  }
  return free_foreign(p);
}

}  // namespace slabby

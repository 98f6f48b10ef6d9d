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
#include "frontend/size_class.h"
#include "runtime/runtime.h"

namespace slabby {

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
// The allocation SLABBY_LATENCY_SAMPLE picked: timed with the cycle counter
// into the latency histogram (telemetry/latency.h); resets the countdown.
void* alloc_sampled(uintptr_t cls) noexcept;
// Makes the calling thread's next allocation decide on sampling afresh (a
// sampler was just turned on; other threads see it within 65536 of their
// allocations).
void sampling_restart_this_thread() noexcept;

// Takes one slot of room in the bin: "subl $1, space; js full" on x86-64.
// Plain C makes GCC keep the old value for the undo (five instructions), and
// GCC 12 drops the label path of an equivalent asm goto once inlined, so this
// reads the sign flag as an asm flag output instead. On a miss the decrement
// is undone before returning: the slow paths see the bin as it was.
// Elsewhere (common/base.h: SLABBY_ASM_X86_64) it is the same test in plain
// C++: the bin belongs to this thread, so no atomics are needed; space is
// never negative between calls (thread_cache.h), so space - 1 cannot wrap.
SLABBY_INLINE bool bin_take_space(Bin& b) noexcept {
#if SLABBY_ASM_X86_64
  bool negative;
  asm("subl $1, %0" : "+m"(b.space), "=@ccs"(negative));
  if (SLABBY_LIKELY(!negative)) return true;
  b.space++;
  return false;
#else
  int32_t space = b.space - 1;
  if (SLABBY_LIKELY(space >= 0)) {
    b.space = space;
    return true;
  }
  return false;
#endif
}

// One step of the latency sampling countdown: "subl $1, countdown; js", two
// instructions on x86-64 (the same flag-output form as bin_take_space). The
// portable form wraps as the asm does (unsigned arithmetic, no overflow): a
// thread whose allocations all go to glibc (init failed) counts down forever.
SLABBY_INLINE bool sample_due(ThreadCache& tc) noexcept {
#if SLABBY_ASM_X86_64
  bool negative;
  asm("subl $1, %0" : "+m"(tc.sample_countdown), "=@ccs"(negative));
  return negative;
#else
  int32_t left = static_cast<int32_t>(static_cast<uint32_t>(tc.sample_countdown) - 1u);
  tc.sample_countdown = left;
  return left < 0;
#endif
}

// The thread's bin first: in per-thread mode that is the whole fast path. A
// thread on the per-CPU caches keeps its bins empty with limit 0, so the bin
// check misses and the per-CPU critical section follows inline. Per-thread
// mode reaches the percpu_ok test only on a miss, so it pays nothing for
// per-CPU mode; per-CPU mode pays one predictable miss. Builds without rseq
// critical sections (common/base.h: kHaveRseqSections) have no per-CPU branch.
// The class index is a full-width integer on the fast paths: mixing 32- and
// 64-bit uses made GCC copy it between registers three times per call.
SLABBY_INLINE void* alloc_in_class_untimed(uintptr_t cls) noexcept {
  ThreadCache& tc = tl_cache;
  Bin& b = tc.bins[cls];
  void* p = b.head;
  if (SLABBY_LIKELY(p != nullptr)) {
    b.head = *static_cast<void**>(p);
    b.space++;
    b.allocs++;
    return p;
  }
  if constexpr (kHaveRseqSections) {
    if (SLABBY_LIKELY(tc.percpu_ok)) {
      p = percpu_pop(cls);
      if (SLABBY_LIKELY(p != nullptr)) {
        b.allocs++;
        return p;
      }
      return percpu_refill_and_alloc(cls);
    }
  }
  return cache_refill_and_alloc(cls);
}

// Every small allocation: one in SLABBY_LATENCY_SAMPLE is timed (the
// countdown is the only cost of sampling on the fast path).
SLABBY_INLINE void* alloc_in_class(uintptr_t cls) noexcept {
  if (SLABBY_UNLIKELY(sample_due(tl_cache))) return alloc_sampled(cls);
  return alloc_in_class_untimed(cls);
}

SLABBY_INLINE void* malloc_fast(size_t n) noexcept {
  if (SLABBY_LIKELY(n <= kMaxSmallSize)) return alloc_in_class(size_class_of(n));
  return alloc_large(n, 0);
}

SLABBY_INLINE void free_fast(void* p) noexcept {
  const PageHeap& h = g_rt.heap;
  uintptr_t off = reinterpret_cast<uintptr_t>(p) - h.base();
  if (SLABBY_LIKELY(off < h.size())) {
    uintptr_t cls = h.class_map()[off >> kPageShift];
    ThreadCache& tc = tl_cache;
    Bin& b = tc.bins[cls];
    if (SLABBY_LIKELY(bin_take_space(b))) {
      *static_cast<void**>(p) = b.head;
      b.head = p;
      b.frees++;
      return;
    }
    if constexpr (kHaveRseqSections) {
      if (SLABBY_LIKELY(tc.percpu_ok)) {
        // Class 0 (large or stray pointer) has an empty-and-full triple: the
        // push misses and the slow path sorts it out.
        if (SLABBY_LIKELY(percpu_push(cls, p))) {
          b.frees++;
          return;
        }
        return percpu_flush_and_free(p, cls);
      }
    }
    if (cls != 0) return cache_flush_and_free(p, cls);
    return free_not_small(p);
  }
  return free_foreign(p);
}

}  // namespace slabby

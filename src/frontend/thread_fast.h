// slabby: the fast paths' accesses to the calling thread's ThreadCache
// (cache/thread_cache.h), %fs-relative on x86-64: its TLS offset, the
// sampling countdown, the per-class counters, the mode flag, and the bins'
// pop and push. Shared by the default paths (frontend/allocator.h) and the
// hardened library's (frontend/hardened_fast.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cache/thread_cache.h"
#include "common/base.h"

namespace slabby {

// The calling thread's ThreadCache is addressed from %fs (the thread
// pointer) by tl_cache's TLS offset on x86-64, loaded once per call: each
// field is then one instruction away (a countdown step, a counter, the mode
// flag), where forming a field's address first took up to three more.
// Elsewhere these are plain accesses to tl_cache.
SLABBY_INLINE uintptr_t tl_cache_offset() noexcept {
#if SLABBY_ASM_X86_64
  // What initial-exec TLS loads from the GOT. Written out because GCC,
  // given &tl_cache - thread pointer, sometimes forms both and subtracts.
  uintptr_t off;
  asm("movq slabby_tl_cache@gottpoff(%%rip), %0" : "=r"(off));
  return off;
#else
  return 0;
#endif
}

// One step of the sampling countdown: "subl $1, countdown; js", two
// instructions on x86-64 (the same flag-output form as bin_push). The
// portable form wraps as the asm does (unsigned arithmetic, no overflow): a
// thread whose allocations all go to glibc (init failed) counts down forever.
SLABBY_INLINE bool sample_due(uintptr_t tco) noexcept {
#if SLABBY_ASM_X86_64
  bool negative;
  asm("subl $1, %%fs:%c[field](%[tc])"
      : "=@ccs"(negative)
      : [tc] "r"(tco), [field] "i"(offsetof(ThreadCache, sample_countdown))
      : "memory");
  return negative;
#else
  (void)tco;
  ThreadCache& tc = tl_cache;
  int32_t left = static_cast<int32_t>(static_cast<uint32_t>(tc.sample_countdown) - 1u);
  tc.sample_countdown = left;
  return left < 0;
#endif
}

// Where the thread's fields sit in its ThreadCache, for the %fs-addressed
// assembly below.
inline constexpr size_t kAllocsAt = offsetof(ThreadCache, allocs);
inline constexpr size_t kFreesAt = offsetof(ThreadCache, frees);
inline constexpr size_t kBinHeadAt = offsetof(ThreadCache, bins) + offsetof(Bin, head);
inline constexpr size_t kBinSpaceAt = offsetof(ThreadCache, bins) + offsetof(Bin, space);

// Adds one to entry cls of the per-class counter array at kCounterAt
// (kAllocsAt: a block handed out; kFreesAt: one taken back).
template <size_t kCounterAt>
SLABBY_INLINE void count_block(uintptr_t tco, uintptr_t cls) noexcept {
#if SLABBY_ASM_X86_64
  asm("addq $1, %%fs:%c[field](%[tc], %[cls], 8)"
      :
      : [tc] "r"(tco), [cls] "r"(cls), [field] "i"(kCounterAt)
      : "memory", "cc");
#else
  (void)tco;
  reinterpret_cast<uint64_t*>(reinterpret_cast<char*>(&tl_cache) + kCounterAt)[cls]++;
#endif
}
SLABBY_INLINE void count_alloc(uintptr_t tco, uintptr_t cls) noexcept {
  count_block<kAllocsAt>(tco, cls);
}
SLABBY_INLINE void count_free(uintptr_t tco, uintptr_t cls) noexcept {
  count_block<kFreesAt>(tco, cls);
}
// Whether the calling thread runs on the per-CPU caches: one compare with
// the flag in memory.
SLABBY_INLINE bool on_percpu_caches(uintptr_t tco) noexcept {
#if SLABBY_ASM_X86_64
  bool on;
  asm("cmpl $0, %%fs:%c[field](%[tc])"
      : "=@ccne"(on)
      : [tc] "r"(tco), [field] "i"(offsetof(ThreadCache, percpu_ok))
      : "memory");
  return on;
#else
  (void)tco;
  return tl_cache.percpu_ok != 0;
#endif
}

// A thread's bins: an array of 16-byte {head, int32 space} entries in a TLS
// variable (tl_cache's bins here; the hardened library's checked bins,
// frontend/hardened_fast.h), addressed from %fs on x86-64 as above, from the
// variable's TLS offset `tls` and at = 2 * cls scaled by 8 (one lea, where
// cls << 4 took a copy and a shift). kHeadAt / kSpaceAt: the first entry's
// fields' offsets in the variable.
//
// The head's loads, and the push's store of it, go through the head's own
// address (fs_bin_head_at, one lea) by a base register alone; the pop's
// commit store, the room counter and the statistics keep base + index. Each
// choice measured on the Intel Xeon host (2026-12-06, scripts/bench-placements
// over 16 thread-local placements; docs/benchmarks.md, "The bins'
// addressing"): every bin access indexed, the malloc+free loop took 1.25-1.4 x
// this form's time, and mixed sizes 0.94-0.97 x; base-only on free's side
// alone or on malloc's load alone changed nothing on the loop; the pop's
// commit or the room counter base-only as well took mixed sizes another
// 1.1 x (against this form in the same runs). One instruction more on each
// path.
#if SLABBY_ASM_X86_64
template <size_t kHeadAt>
SLABBY_INLINE uintptr_t fs_bin_head_at(uintptr_t tls, uintptr_t at) noexcept {
  uintptr_t head_at;
  asm("leaq %c[head](%[tc], %[at], 8), %[h]"
      : [h] "=r"(head_at)
      : [tc] "r"(tls), [at] "r"(at), [head] "i"(kHeadAt));
  return head_at;
}
SLABBY_INLINE uintptr_t fs_bin_head(uintptr_t head_at) noexcept {
  uintptr_t p;
  asm("movq %%fs:(%[h]), %[p]" : [p] "=r"(p) : [h] "r"(head_at) : "memory");
  return p;
}
SLABBY_INLINE void fs_bin_set_head(uintptr_t head_at, uintptr_t p) noexcept {
  asm("movq %[p], %%fs:(%[h])" : : [p] "r"(p), [h] "r"(head_at) : "memory");
}
// A pop's commit: the new head, and one slot of room more (indexed, above).
template <size_t kHeadAt, size_t kSpaceAt>
SLABBY_INLINE void fs_bin_unlink(uintptr_t tls, uintptr_t at, uintptr_t next) noexcept {
  asm("movq %[next], %%fs:%c[head](%[tc], %[at], 8)\n\t"
      "addl $1, %%fs:%c[space](%[tc], %[at], 8)"
      :
      : [next] "r"(next), [tc] "r"(tls), [at] "r"(at), [head] "i"(kHeadAt), [space] "i"(kSpaceAt)
      : "memory", "cc");
}
// A push takes one slot of room first: "subl $1, space; js full". Plain C
// makes GCC keep the old value for the undo (five instructions), and GCC 12
// drops the label path of an equivalent asm goto once inlined, so this reads
// the sign flag as an asm flag output instead. On a miss (false) the
// decrement is undone: the slow paths see the bin as it was. A miss means
// space was 0 (never negative between calls), so the undo stores 0 rather
// than adding 1 back: a plain store does not wait for the decrement's
// result, where an add reads it back through the store buffer (perf put
// half of free's samples on the add in the checked modes, whose bins always
// missed then; timed, the loops came out level within noise).
template <size_t kSpaceAt>
SLABBY_INLINE bool fs_bin_take_room(uintptr_t tls, uintptr_t at) noexcept {
  bool full;
  asm("subl $1, %%fs:%c[space](%[tc], %[at], 8)"
      : "=@ccs"(full)
      : [tc] "r"(tls), [at] "r"(at), [space] "i"(kSpaceAt)
      : "memory");
  if (SLABBY_UNLIKELY(full)) {
    asm("movl $0, %%fs:%c[space](%[tc], %[at], 8)"
        :
        : [tc] "r"(tls), [at] "r"(at), [space] "i"(kSpaceAt)
        : "memory");
    return false;
  }
  return true;
}
#endif

// The thread's bin of class cls: a pop (nullptr when the bin is empty) and a
// push (false when it is full, the bin left as it was).
static_assert(sizeof(Bin) == 16, "bin_pop/bin_push address bins by (2 * cls) * 8");
SLABBY_INLINE void* bin_pop(uintptr_t tco, uintptr_t cls) noexcept {
#if SLABBY_ASM_X86_64
  uintptr_t at = cls * 2, head_at = fs_bin_head_at<kBinHeadAt>(tco, at);
  void* p = reinterpret_cast<void*>(fs_bin_head(head_at));
  if (SLABBY_UNLIKELY(p == nullptr)) return nullptr;
  void* next = *static_cast<void**>(p);
  fs_bin_unlink<kBinHeadAt, kBinSpaceAt>(tco, at, reinterpret_cast<uintptr_t>(next));
  // The next pop reads the new head's link: bring its line in now (a null
  // head is harmless; prefetches never fault). The per-CPU pop prefetches
  // its next block too ("Prefetching the next block" in docs/benchmarks.md):
  // here it took fastpath_loops mixed from 0.181 s to 0.170 (bench-ab 9,
  // 2026-12-04), one instruction more.
  __builtin_prefetch(next, 1, 3);
  return p;
#else
  (void)tco;
  Bin& b = tl_cache.bins[cls];
  void* p = b.head;
  if (SLABBY_UNLIKELY(p == nullptr)) return nullptr;
  b.head = *static_cast<void**>(p);
  b.space++;
  return p;
#endif
}
// The portable push needs no atomics (the bin belongs to this thread), and
// space - 1 cannot wrap.
SLABBY_INLINE bool bin_push(uintptr_t tco, uintptr_t cls, void* p) noexcept {
#if SLABBY_ASM_X86_64
  uintptr_t at = cls * 2;
  if (SLABBY_UNLIKELY(!fs_bin_take_room<kBinSpaceAt>(tco, at))) return false;
  uintptr_t head_at = fs_bin_head_at<kBinHeadAt>(tco, at);
  *static_cast<uintptr_t*>(p) = fs_bin_head(head_at);
  fs_bin_set_head(head_at, reinterpret_cast<uintptr_t>(p));
  return true;
#else
  (void)tco;
  Bin& b = tl_cache.bins[cls];
  int32_t space = b.space - 1;
  if (SLABBY_UNLIKELY(space < 0)) return false;
  b.space = space;
  *static_cast<void**>(p) = b.head;
  b.head = p;
  return true;
#endif
}

}  // namespace slabby

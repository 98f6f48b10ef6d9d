// slabby: the bit guard's checks on the inline fast paths, for the hardened
// library (common/base.h kHardenedBuild; libslabby_malloc_hardened.so).
//
// libslabby_malloc.so keeps every checked mode off its inline paths: they
// miss into the slow paths, which hand each call to the checked pair
// (secure/checks.h). The hardened library checks where the default one
// hands out and takes back a block, on the same CPU caches:
//   malloc  a block popped from the CPU's cache must still be as it was
//           cached (first word: the encoded end of list; last word: the
//           freed or never-used tag); it leaves with its canary written;
//   free    the block must be live (its canary intact, and the canary's
//           word in a slab of the block's class), then is tagged freed
//           and pushed.
// So a hit costs a few loads and stores more than the default's, and no
// call. As in the default library, the thread's mode is tested first: a
// thread on its checked bins has them served the same way (below).
// Everything else (an empty or full cache, a never-used block,
// SLABBY_SECURE's zeroing and its check, any failed test, the modes with
// per-call extras: quarantine, leak check, zero on allocation, guard
// sampling) takes the slow paths, into the same checked pair as
// libslabby_malloc.so. The block format and the reports are
// secure/checks.h's; only the places the checks run differ.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cache/thread_cache.h"
#include "common/base.h"
#include "common/size_class.h"
#include "frontend/thread_fast.h"
#include "runtime/runtime.h"
#include "secure/checked_cache.h"
#include "secure/checks.h"

namespace slabby {

// Whether a block just popped from a CPU's cache may go to the program
// as is: still as it was cached (a freed block's tag) and no zeros to check
// (with zeroing on, the inline link key matches no block: secure/checks.h).
// Otherwise checked_hand_out_cached (secure/checks.h) checks it in full.
SLABBY_INLINE bool hardened_cached_intact(void* block, uintptr_t cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
  const uint64_t* w = static_cast<const uint64_t*>(block);
  return w[0] == encode_link_with(p, 0, g_checks.inline_key_link) &&
         *tag_at(p, class_size(cls)) == freed_tag(p);
}

// The block becomes the program's: its canary written.
SLABBY_INLINE void* hardened_hand_out(void* block, uintptr_t cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
  *static_cast<uint64_t*>(block) = 0;
  *tag_at(p, class_size(cls)) = live_canary(p);
  return block;
}

// Whether a block the program frees is plainly live: its canary intact, in
// a page of the block's class (an interior pointer near a slab's end would
// put the word read past the slab). Otherwise the divert's free checks it in
// full (secure/checks.h), and zeroes it for SLABBY_SECURE (whose inline
// canary key matches no block).
// (Loading the class of the canary's page every time costs less than a test
// of whether it is p's page: blocks above a few hundred bytes often cross a
// page, so that branch mispredicted, and fastpath-mixed took 1.6 x the
// default's time.)
SLABBY_INLINE bool hardened_plainly_live(void* block, uintptr_t cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
  const uint64_t* canary = tag_at(p, class_size(cls));
  return g_rt.heap.class_of(canary) == cls &&
         *canary == live_canary_with(p, g_checks.inline_key_live);
}

// ... then it is formatted as a cached free block: tagged freed, its first
// word the encoded end of list.
SLABBY_INLINE void hardened_mark_freed(void* block, uintptr_t cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
  *tag_at(p, class_size(cls)) = freed_tag(p);
  *static_cast<uint64_t*>(block) = encode_link(p, 0);
}

// A thread on its checked bins (secure/checked_cache.h: one not on_cpu,
// which is every thread until the process has SLABBY_PERCPU_THREADS of them,
// and every thread without rseq) has them served here, inline, as the lean
// pair would (secure/checked_lean.cc), and counted by the thread. The links
// are decoded with the inline key, which with zeroing or any per-call extra
// (g_checks.inline_bins false) differs from the real one in the top bit: no
// link then passes, the bins' blocks are only ever taken by the checked
// pair, and the free's inline test (hardened_plainly_live) fails first.
//   alloc  the bin's head, when its link decodes to null or to a block of
//          the class and its tag says freed; anything else (an empty bin, a
//          never-used block, a changed one) leaves the bin as it was for the
//          slow path, which pops the same head and checks it in full;
//   free   a plainly live block is tagged freed and linked in while the bin
//          has room (its limit is 0 until the slow path's first release
//          into it, and after the thread's teardown).
// tl_checked's TLS offset, loaded once per call as tl_cache's is
// (frontend/thread_fast.h tl_cache_offset): each field is one %fs-relative
// instruction away.
SLABBY_INLINE uintptr_t tl_checked_offset() noexcept {
#if SLABBY_ASM_X86_64
  uintptr_t off;
  asm("movq slabby_tl_checked@gottpoff(%%rip), %0" : "=r"(off));
  return off;
#else
  return 0;
#endif
}

inline constexpr size_t kOnCpuAt = offsetof(CheckedCache, on_cpu);
inline constexpr size_t kCheckedHeadAt = offsetof(CheckedCache, bins) + offsetof(CheckedBin, head);
inline constexpr size_t kCheckedSpaceAt =
    offsetof(CheckedCache, bins) + offsetof(CheckedBin, space);

// Whether the thread's checked blocks are on the CPU caches: one compare
// with the flag in memory.
SLABBY_INLINE bool hardened_on_cpu(uintptr_t tck) noexcept {
#if SLABBY_ASM_X86_64
  bool on;
  asm("cmpl $0, %%fs:%c[field](%[tc])"
      : "=@ccne"(on)
      : [tc] "r"(tck), [field] "i"(kOnCpuAt)
      : "memory");
  return on;
#else
  (void)tck;
  return tl_checked.on_cpu != 0;
#endif
}

// The bin's head, and its replacement by next (one block fewer): the
// %fs-relative bin accesses of frontend/thread_fast.h on tl_checked's bins.
SLABBY_INLINE uintptr_t checked_bin_head(uintptr_t tck, uintptr_t cls) noexcept {
#if SLABBY_ASM_X86_64
  return fs_bin_head(fs_bin_head_at<kCheckedHeadAt>(tck, cls * 2));
#else
  (void)tck;
  return tl_checked.bins[cls].head;
#endif
}
SLABBY_INLINE void checked_bin_unlink(uintptr_t tck, uintptr_t cls, uintptr_t next) noexcept {
#if SLABBY_ASM_X86_64
  fs_bin_unlink<kCheckedHeadAt, kCheckedSpaceAt>(tck, cls * 2, next);
#else
  (void)tck;
  CheckedBin& b = tl_checked.bins[cls];
  b.head = next;
  b.space++;
#endif
}

SLABBY_INLINE void* hardened_bin_alloc(uintptr_t tco, uintptr_t tck, uintptr_t cls) noexcept {
  uintptr_t p = checked_bin_head(tck, cls);
  if (p == 0) return nullptr;
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  uintptr_t next = encode_link_with(p, w[0], g_checks.inline_key_link);
  bool link_ok = next == 0 || g_rt.heap.may_be_block_of(next, static_cast<unsigned>(cls));
  if (SLABBY_UNLIKELY(!link_ok || *tag_at(p, class_size(cls)) != freed_tag(p))) return nullptr;
  checked_bin_unlink(tck, cls, next);
  // The next allocation of the class reads next's link: start its line
  // coming in, as the default bins' pop does (a null next is harmless,
  // prefetches never fault). Its tag's line too came out slower on the
  // loops (bench-ab 7, 2026-12-04: pair16 1.41 x the default against 1.28).
  __builtin_prefetch(reinterpret_cast<void*>(next), 1, 3);
  count_alloc(tco, cls);
  return hardened_hand_out(reinterpret_cast<void*>(p), cls);
}

// block passed hardened_plainly_live. The room is taken first, as the
// default bins' push does (frontend/thread_fast.h bin_push); a full bin is
// left as it was.
SLABBY_INLINE bool hardened_bin_free(uintptr_t tco, uintptr_t tck, uintptr_t cls,
                                     void* block) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
#if SLABBY_ASM_X86_64
  uintptr_t at = cls * 2;
  if (SLABBY_UNLIKELY(!fs_bin_take_room<kCheckedSpaceAt>(tck, at))) return false;
  uintptr_t head_at = fs_bin_head_at<kCheckedHeadAt>(tck, at);
  uintptr_t head = fs_bin_head(head_at);
  *tag_at(p, class_size(cls)) = freed_tag(p);
  *static_cast<uint64_t*>(block) = encode_link(p, head);
  fs_bin_set_head(head_at, p);
#else
  (void)tck;
  CheckedBin& b = tl_checked.bins[cls];
  if (SLABBY_UNLIKELY(b.space <= 0)) return false;
  b.space--;
  *tag_at(p, class_size(cls)) = freed_tag(p);
  *static_cast<uint64_t*>(block) = encode_link(p, b.head);
  b.head = p;
#endif
  count_free(tco, cls);
  return true;
}

}  // namespace slabby

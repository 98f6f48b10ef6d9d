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
// call. A thread without rseq has its checked bins served the same way, a
// jump away (below). Everything else (an empty or full cache, a never-used
// block, SLABBY_SECURE's zeroing and its check, any failed test, the modes
// with per-call extras: quarantine, leak check, zero on allocation, guard
// sampling) takes the slow paths, into the same checked pair as
// libslabby_malloc.so. The block format and the reports are
// secure/checks.h's; only the places the checks run differ.
#pragma once

#include <cstdint>

#include "cache/thread_cache.h"
#include "common/base.h"
#include "common/size_class.h"
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

// A thread without rseq (SLABBY_PERCPU=0, a kernel or libc without it, a
// build without critical sections) keeps its free blocks in its checked bins
// (secure/checked_cache.h), linked through their first words, encoded. With
// the bit guard alone (g_checks.inline_bins) the paths a jump away from the
// inline ones (frontend/hardened_bins.cc) serve them as the lean pair would
// (secure/checked_lean.cc), counted by the thread:
//   alloc  the bin's head, when its link decodes to null or to a block of
//          the class and its tag says freed; anything else (an empty bin, a
//          never-used block, a changed one) leaves the bin as it was for the
//          slow path, which pops the same head and checks it in full;
//   free   a block marked freed, while the bin has room (its limit is 0
//          until the slow path's first release into it, and after the
//          thread's teardown).
SLABBY_INLINE bool hardened_on_bins() noexcept {
  return !tl_cache.rseq_ok && g_checks.inline_bins;
}

SLABBY_INLINE void* hardened_bin_alloc(uintptr_t cls) noexcept {
  CheckedBin& b = tl_checked.bins[cls];
  uintptr_t p = b.head;
  if (p == 0) return nullptr;
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  uintptr_t next = encode_link(p, w[0]);
  bool link_ok = next == 0 || g_rt.heap.may_be_block_of(next, static_cast<unsigned>(cls));
  if (SLABBY_UNLIKELY(!link_ok || *tag_at(p, class_size(cls)) != freed_tag(p))) return nullptr;
  b.head = next;
  b.count--;
  tl_cache.allocs[cls]++;
  return hardened_hand_out(reinterpret_cast<void*>(p), cls);
}

SLABBY_INLINE bool hardened_bin_free(uintptr_t cls, void* block) noexcept {
  CheckedBin& b = tl_checked.bins[cls];
  if (SLABBY_UNLIKELY(b.count >= b.limit)) return false;
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
  *static_cast<uint64_t*>(block) = encode_link(p, b.head);
  b.head = p;
  b.count++;
  tl_cache.frees[cls]++;
  return true;
}

}  // namespace slabby

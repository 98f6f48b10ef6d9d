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
// call. Everything else (an empty or full cache, a thread without rseq,
// a never-used block, SLABBY_SECURE's zeroing and its check, any failed test,
// the modes with per-call extras: quarantine, leak check, zero on
// allocation, guard sampling) takes the slow paths, into the same checked
// pair as libslabby_malloc.so. The block format and the reports are
// secure/checks.h's; only the places the checks run differ.
#pragma once

#include <cstdint>

#include "common/base.h"
#include "frontend/size_class.h"
#include "runtime/runtime.h"
#include "secure/checks.h"

namespace slabby {

// Whether a block just popped from a CPU's cache may go to the program
// as is: still as it was cached (a freed block's tag) and no zeros to check.
// Otherwise checked_hand_out_cached (secure/checks.h) checks it in full.
SLABBY_INLINE bool hardened_cached_intact(void* block, uintptr_t cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
  const uint64_t* w = static_cast<const uint64_t*>(block);
  return w[0] == encode_link(p, 0) && w[class_size(cls) / 8 - 1] == freed_tag(p) &&
         !g_checks.zero_free;
}

// The block becomes the program's: its canary written.
SLABBY_INLINE void* hardened_hand_out(void* block, uintptr_t cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
  uint64_t* w = static_cast<uint64_t*>(block);
  w[0] = 0;
  w[class_size(cls) / 8 - 1] = live_canary(p);
  return block;
}

// Whether a block the program frees is plainly live: its canary intact, in
// a page of the block's class (an interior pointer near a slab's end would
// put the word read past the slab). Otherwise the divert's free checks it in
// full (secure/checks.h), and zeroes it for SLABBY_SECURE.
// (Loading the class of the canary's page every time costs less than a test
// of whether it is p's page: blocks above a few hundred bytes often cross a
// page, so that branch mispredicted, and fastpath-mixed took 1.6 x the
// default's time.)
SLABBY_INLINE bool hardened_plainly_live(void* block, uintptr_t cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
  uintptr_t canary_at = p + class_size(cls) - 8;
  return g_rt.heap.class_of(reinterpret_cast<void*>(canary_at)) == cls &&
         *reinterpret_cast<const uint64_t*>(canary_at) == live_canary(p) && !g_checks.zero_free;
}

// ... then it is formatted as a cached free block: tagged freed, its first
// word the encoded end of list.
SLABBY_INLINE void hardened_mark_freed(void* block, uintptr_t cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
  uint64_t* w = static_cast<uint64_t*>(block);
  w[class_size(cls) / 8 - 1] = freed_tag(p);
  w[0] = encode_link(p, 0);
}

}  // namespace slabby

// slabby: what a cached block counts for against the caches' growth budget
// (SLABBY_PERCPU_GROW_BYTES: cache/bin_sizing.cc for the bins,
// cache/percpu_sizing.cc for the CPU caches).
//
// The budget is in the program's bytes: a block counts for its class's
// size, except when the canary (the bit guard) follows every small block.
// Then a request that fills its class (a 256-byte string, a power-of-two
// array) moves up one class for the canary's 8 bytes, and its block counts
// for the class below's size: what the same request takes without the
// canary. So the checked caches hold as many of a program's blocks as the
// default caches would, and grow at the same misses; the canary's share of
// the memory is the mode's cost, not a smaller cache. A request that left
// its class room for the canary is undercounted by one class step: the
// bytes held can reach 2 x the budget in the 32-byte class, 1.5 x in the
// 48-byte one, at most 1.33 x from 64 bytes up (the classes' ratios).
//
// Written once by init (runtime/init.cc), before the caches are set up
// (percpu_init, bins_init); read-only after.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "common/size_class.h"

namespace slabby {

inline constinit std::array<uint32_t, kNumClasses> g_budget_block_bytes = kClassSize;

// A medium class grows (its misses alternating) only once it has missed this
// many times since the last background pass (SLABBY_DECAY_MS, 1 s by
// default), on that CPU or in that thread's bins. A medium miss costs about
// a microsecond (the central pool and the page heap); a grown medium class
// holds whole blocks of 40 KiB-1 MiB. A program that asks for a class a
// few dozen times a second (a threaded C++ program's 300 KiB-1 MiB buffers)
// loses nothing on those misses, and its grown classes held 17 MiB more at
// the peak (docs/benchmarks.md, "Medium classes grow within a budget of
// their own"); a server's buffers in flight miss thousands of times a second.
inline constexpr uint32_t kMediumMissesToGrow = 64;

inline size_t budget_block_bytes(unsigned cls) { return g_budget_block_bytes[cls]; }

// A medium class whose blocks the program fills (seen filled by the page
// heap: PageHeap::dense_medium) grows only while the medium classes
// together have grown less than this share of the budget. A cached medium
// block is resident as far as its last user wrote it: one used at its
// start costs a page or two, and kept in its class it saves touching other
// pages (medium-sparse, the reason the budget is 96 MiB); a filled one
// costs its whole size, and a miss that goes to the page heap gets another
// block's dirty pages, no faults, about a microsecond. 20 live blocks of
// 32 KiB-1 MiB of random sizes, each written whole, peaked at 57-59 MiB
// with the whole budget, about 40 with an eighth (once the page heap's look
// reads slabs of dirty pages too: PageHeap::kDirtyLooksMost), 32-34 with
// none (bench medium-mixed-filled, 2026-12-07); none cost loops of filled
// 32-64 KiB blocks 6-18% of their time, an eighth nothing
// (docs/benchmarks.md, "Medium slabs and huge pages, and the caches of
// filled medium classes").
inline constexpr size_t kFilledMediumShare = 8;
// The budget class cls grows within: `budget` (the medium classes'), or its
// share for a class seen filled (cache/bin_sizing.cc).
size_t medium_class_budget(unsigned cls, size_t budget);

// canary: every small block carries one after the program's bytes, moving
// requests that fill their class up one. Medium requests are not moved up
// by it, so a medium block counts for its own class's size.
inline void budget_block_bytes_init(bool canary) {
  for (unsigned c = 0; c < kNumClasses; ++c)
    g_budget_block_bytes[c] = canary && c >= 2 && !is_medium_class(c) ? kClassSize[c - 1]
                                                                       : kClassSize[c];
}

}  // namespace slabby

// slabby: the layout of a CPU's cache region, shared by the per-CPU caches
// (percpu_cache.cc: the regions and the slow paths around the critical
// sections) and their sizing (percpu_sizing.cc: how many slots each class
// may use on each CPU). Internal to cache/.
//
// A region, mapped on a CPU's first use:
//   [SlotRange per class][cursor word per class][ClassDemand per class]
//   [GrowthHint][pad, slots of class 1][pad, slots of class 2] ...
// The ranges and cursors are the header (kRegionHeaderBytes, percpu_cache.h:
// a cursor word holds cur and the inline free's pushes). Each part starts on
// a 64-byte boundary; slot indices count 8-byte words from the region's
// start. Class c owns slots [base[c].begin, max_end[c]);
// its capacity on a CPU is end - begin, between base[c].end - begin (the
// base capacity, SLABBY_THREAD_CACHE_BYTES) and max_end[c] - begin. The pad
// slot at begin - 1 holds the region's address from the class's first miss
// on the CPU (0 before): a pop prefetches the block under the one it hands
// out, which is the pad when the pop empties the class.
//
// Invariants, on top of percpu_cache.h's:
// - 0 < begin <= cur <= end <= max_end for every class of every region; begin
//   never changes; end changes only in a critical section on that CPU
//   (percpu_grow_end / percpu_shrink_end), so the push and pop sections,
//   which read it, always see one value.
// - A real region's begin is above 0 (the header comes first), so the
//   sentinel (all zeros) is told apart inside a section: nothing is ever
//   written to it.
// - Every class c >= 1 has its pad at begin - 1 == max_end[c - 1], 0 or the
//   region's address (percpu_cache.cc arm_pad, on the slow paths); a push
//   writes below its class's end <= max_end, so no section ever writes it.
// - ClassDemand and GrowthHint are heuristics: written by the slow paths of
//   threads on that CPU and by the background pass, with relaxed atomics and
//   no lock; a lost update only delays a grow or a shrink.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cache/percpu_cache.h"

namespace slabby {

enum MissKind : uint32_t { kMissNone = 0, kMissEmpty = 1, kMissFull = 2 };

struct ClassDemand {
  uint32_t misses;  // refills and flushes of the class on this CPU, ever
  uint32_t seen;    // misses when the background pass last looked (a medium class grows
                    // only after kMediumMissesToGrow more, cache/budget_bytes.h)
  uint32_t last;    // MissKind of the latest miss
  uint32_t activity;  // a medium class: its cursor word and misses, mixed, at the last look
                      // for idle medium classes, bit 0 whether it was idle then
                      // (cache/medium_reclaim.cc)
};

// Bytes of the region's growth budget believed used: the exact sum (over
// every small class's capacity above its base) when the sizing last computed it,
// plus what it granted since; the background pass sets it exact again. A
// miss skips that sum (a walk over every class) while the hint says the
// budget has no room for its class: with medium classes growing, the budget
// is often full, and the walk took a tenth of a medium-block loop's time.
// A grow that lands on another CPU (the thread moved) leaves this region's
// hint high until the next pass, and that CPU's low; a low hint costs only
// the sum it would have skipped, since a grow is granted only after the
// exact sum.
struct GrowthHint {
  uint64_t used;
};

struct RegionLayout {
  SlotRange base[kNumClasses];    // a new region's ranges: begin, base end (and cur = begin)
  uint16_t max_end[kNumClasses];  // the most end may grow to
  uint32_t demand_at;             // byte offset of the ClassDemand array
  size_t bytes;                   // the region's size (whole pages)
  size_t grow_bytes;              // per-CPU budget of the small classes (SLABBY_PERCPU_GROW_BYTES)
  size_t medium_grow_bytes;       // every CPU's medium classes together (SLABBY_MEDIUM_GROW_BYTES)
};
extern RegionLayout g_region_layout;

inline SlotRange* region_ranges(char* region) { return reinterpret_cast<SlotRange*>(region); }
inline uint64_t* region_slots(char* region) { return reinterpret_cast<uint64_t*>(region); }
inline uint64_t* region_cursors(char* region) {
  return reinterpret_cast<uint64_t*>(region + kCursorAt);
}
// Class cls's cur in the region now (racy read, for the slow paths and stats).
inline uint32_t region_cur(char* region, unsigned cls) {
  return static_cast<uint16_t>(__atomic_load_n(&region_cursors(region)[cls], __ATOMIC_RELAXED));
}
inline ClassDemand* region_demand(char* region) {
  return reinterpret_cast<ClassDemand*>(region + g_region_layout.demand_at);
}
inline GrowthHint* region_growth_hint(char* region) {
  return reinterpret_cast<GrowthHint*>(region + g_region_layout.demand_at +
                                       sizeof(ClassDemand) * kNumClasses);
}

// Pops up to `max` blocks of class cls from the current CPU's cache and
// gives them to the class's central pool, a batch at a time. Returns the
// number moved (percpu_cache.cc).
uint32_t percpu_pop_to_pool(unsigned cls, uint32_t max);

// The region of the CPU the calling thread runs on, if it has one and the
// thread may run the critical sections; else nullptr. Creates none.
char* percpu_region_here();

// Sizing (percpu_sizing.cc).
// Plans the layout: each class's base capacity (base_cap[c] slots) and the
// most it may grow to (within 16-bit slot indices): a small class by
// grow_bytes, a medium one by medium_grow_bytes. false when even the base
// capacities do not fit.
bool sizing_plan(const uint32_t* base_cap, size_t grow_bytes, size_t medium_grow_bytes,
                 RegionLayout* out);
// A slow path of a thread on this CPU found class cls's cache empty or full.
// When the class's misses alternate (empty, then full, or full, then empty),
// its blocks do not fit the cache: it grows, doubling, within max_end and
// the CPU's budget. Returns true when it grew.
bool sizing_note_miss(char* region, unsigned cls, MissKind kind);
// The background pass, on the CPU whose region this is: classes grown
// beyond their base that missed no refill or flush since the last pass give
// back half of what they grew (blocks above the new end go to the pools);
// with `reset`, every class goes back to its base capacity and forgets its
// last miss. Returns blocks moved to the pools.
uint64_t sizing_decay(char* region, bool reset);
// Whether any class of the region is above its base capacity.
bool sizing_grown(char* region);
// The background pass, for a region it does not decay (busy, nothing
// grown): starts a new period of each class's misses (ClassDemand::seen),
// as sizing_decay does. A read and a store per class, from any CPU.
void sizing_period_seen(char* region);
// Bytes of capacity the region's medium classes hold above their bases.
size_t sizing_medium_grown(char* region);
// The medium classes' growth over every CPU, believed (the exact sum when
// the background pass last took it, plus what was granted since), and its
// setter for that pass (percpu_drain_idle).
uint64_t sizing_medium_hint();
// The medium budget's bytes in use, believed: that hint plus every thread's
// medium bins above their bases (exact, g_threads.bins_medium_grown). The
// one sum both kinds of cache grow against (percpu_sizing.cc take_room,
// bin_sizing.cc bin_grow_by).
uint64_t sizing_medium_used();
void sizing_medium_hint_exact(uint64_t bytes);
// Sets the region's GrowthHint to the exact sum (sizing_decay does it too).
void sizing_hint_exact(char* region);
// The look's part on the region (cache/medium_reclaim.cc): notes each
// medium class's activity (its cursor word and misses) for the next look;
// with `reclaim`, the classes but `except` grown above their base that
// nothing used since the look before the last (activity the same at both,
// and no bit in used_here: the calling thread's own use since its last
// look, bit cls - kNumSmallClasses) go back to their base, their blocks
// above it to the pools; what they grew is taken off the medium hint.
void sizing_reclaim_idle_medium(char* region, unsigned except, uint32_t used_here, bool reclaim);
// Capacity of class cls in the region (end - begin).
uint32_t sizing_capacity(char* region, unsigned cls);

}  // namespace slabby

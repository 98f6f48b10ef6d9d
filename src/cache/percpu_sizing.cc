// slabby: per-CPU cache capacities that follow demand.
//
// Each class starts on each CPU at its base capacity (SLABBY_THREAD_CACHE_BYTES
// worth, 4 to 256 blocks). A class whose cache runs empty and then full (or
// full, then empty) holds more blocks than fit: a burst the program
// allocates and then frees, each round sending most of it to the central
// pools and back. Such a class doubles its capacity on the CPU, up to its
// maximum and within the CPU's budget for growth (SLABBY_PERCPU_GROW_BYTES,
// counted in bytes of capacity above the base). Medium classes (above 32
// KiB) too, from their base of one block: a server's buffers in flight (a
// few of each size live, how many wandering) otherwise sent every other
// block of a size to the page heap and back (bench medium-live-*;
// 2026-12-07). They grow within a budget of their own, for every CPU
// together (SLABBY_MEDIUM_GROW_BYTES): in the small classes' 1 MiB a CPU
// held a few of them, and the rest went through the page heap, about a
// microsecond a block, where a cached block is a pop; and a medium block the
// cache holds is one the page heap would hold as free pages anyway (peak RSS
// level or lower at 16 times the budget; docs/benchmarks.md, "Medium
// classes grow within a budget of their own"). One budget for the process,
// not per CPU, so a many-CPU machine does not multiply it; what is granted
// is added to a process-wide hint, taken exact again by each background
// pass (percpu_drain_idle). A class that only runs
// empty (the consumer of a producer/consumer pair) or only full (the
// producer's remote frees) never grows: more room would hold blocks its CPU
// does not reuse. The background pass halves what a class grew when the
// class missed nothing for a whole pass, and an idle CPU's classes go back
// to their base, so memory follows demand down as well as up; and what an
// idle medium class grew goes back as soon as the heap grows
// (medium_reclaim.cc), without waiting for a pass.
#include <atomic>

#include "cache/budget_bytes.h"
#include "cache/percpu_region.h"
#include "cache/thread_cache.h"
#include "common/size_class.h"

namespace slabby {

namespace {

// A class's slots are bounded by its share of the 16-bit slot indices: 2048
// blocks at most (halved until every class's maximum fits a region).
constexpr uint32_t kMaxGrownSlots = 2048;

std::atomic<uint64_t> g_grows{0};
std::atomic<uint64_t> g_shrinks{0};
// Medium growth over every CPU's region, believed: exact at each background
// pass, plus every grant since (a shrink lowers it only at the next pass).
std::atomic<uint64_t> g_medium_hint{0};

uint16_t load16(const uint16_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

// Bytes of capacity above the base, over the region's classes [from, to).
size_t grown_bytes(char* region, unsigned from, unsigned to) {
  const SlotRange* r = region_ranges(region);
  size_t total = 0;
  for (unsigned c = from; c < to; ++c) {
    uint32_t base = g_region_layout.base[c].end;
    uint32_t end = load16(&r[c].end);
    if (end > base) total += size_t{end - base} * budget_block_bytes(c);
  }
  return total;
}
size_t small_grown_bytes(char* region) { return grown_bytes(region, 1, kNumSmallClasses); }

// The room class cls has to grow by, in blocks, at most `add` (lowered to
// it); false when none. Taken from its budget's hint: the region's (a small
// class: its CPU's budget) or the process's (a medium class: every CPU's,
// and every thread's medium bins, cache/bin_sizing.cc).
bool take_room(char* region, unsigned cls, uint32_t* add) {
  size_t size = budget_block_bytes(cls);
  if (is_medium_class(cls)) {
    size_t budget = medium_class_budget(cls, g_region_layout.medium_grow_bytes);
    uint64_t used = sizing_medium_used();
    if (used + size > budget) return false;
    uint64_t room = (budget - used) / size;
    if (*add > room) *add = static_cast<uint32_t>(room);
    g_medium_hint.fetch_add(size_t{*add} * size, std::memory_order_relaxed);
    return *add != 0;
  }
  size_t budget = g_region_layout.grow_bytes;
  uint64_t* hint = &region_growth_hint(region)->used;
  if (__atomic_load_n(hint, __ATOMIC_RELAXED) + size > budget) return false;
  size_t used = small_grown_bytes(region);
  size_t room = used < budget ? (budget - used) / size : 0;
  if (*add > room) *add = static_cast<uint32_t>(room);
  __atomic_store_n(hint, used + size_t{*add} * size, __ATOMIC_RELAXED);
  return *add != 0;
}

// Class c's capacity on the current CPU lowered to `target`, the blocks
// above it going to the pool first (added to *moved). A thread on this CPU
// may push more meanwhile: a few tries, then false (left for next time).
bool shrink_class(char* region, unsigned c, uint32_t target, uint64_t* moved) {
  for (int tries = 0; tries < 4; ++tries) {
    uint32_t cur = region_cur(region, c);
    if (cur > target) *moved += percpu_pop_to_pool(c, cur - target);
    if (percpu_shrink_end(c, target)) {
      g_shrinks.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

// The medium hint lowered by `bytes`, not below 0 (the hint is a belief: a
// pass may have set it exact since the bytes were granted).
void medium_hint_sub(uint64_t bytes) {
  uint64_t h = g_medium_hint.load(std::memory_order_relaxed);
  while (!g_medium_hint.compare_exchange_weak(h, h > bytes ? h - bytes : 0,
                                              std::memory_order_relaxed)) {
  }
}

}  // namespace

namespace {

// The layout with each small class's maximum capped at `limit` slots (and
// every class at its base with grow_bytes 0); false when it does not fit
// 16-bit slot indices.
bool try_plan(const uint32_t* base_cap, size_t grow_bytes, size_t medium_grow_bytes, uint32_t limit,
              RegionLayout* out) {
  uint32_t header = static_cast<uint32_t>(kRegionHeaderBytes);
  uint32_t demand =
      static_cast<uint32_t>(round_up(sizeof(ClassDemand) * kNumClasses + sizeof(GrowthHint), 64));
  uint32_t idx = (header + demand) / 8;
  for (unsigned c = 0; c < kNumClasses; ++c) {
    uint32_t base = c == 0 ? 0 : base_cap[c];
    uint32_t max = base;
    size_t grow = is_medium_class(c) ? medium_grow_bytes : grow_bytes;
    if (c != 0 && grow != 0) {
      size_t want = base + grow / budget_block_bytes(c);
      uint32_t cap = limit > base ? limit : base;
      max = want < cap ? static_cast<uint32_t>(want) : cap;
    }
    if (c != 0) idx += 1;  // its pad slot, below begin (percpu_region.h)
    if (idx + max > 65535) return false;
    out->base[c] = SlotRange{static_cast<uint16_t>(idx), static_cast<uint16_t>(idx + base), 0};
    out->max_end[c] = static_cast<uint16_t>(idx + max);
    idx += max;
  }
  out->demand_at = header;
  out->bytes = round_up(size_t{idx} * 8, kPageSize);
  out->grow_bytes = grow_bytes;
  out->medium_grow_bytes = medium_grow_bytes;
  return true;
}

}  // namespace

bool sizing_plan(const uint32_t* base_cap, size_t grow_bytes, size_t medium_grow_bytes,
                 RegionLayout* out) {
  if (grow_bytes != 0 || medium_grow_bytes != 0) {
    for (uint32_t limit = kMaxGrownSlots; limit >= 8; limit /= 2)
      if (try_plan(base_cap, grow_bytes, medium_grow_bytes, limit, out)) return true;
  }
  return try_plan(base_cap, 0, 0, 0, out);
}

bool sizing_note_miss(char* region, unsigned cls, MissKind kind) {
  ClassDemand& d = region_demand(region)[cls];
  uint32_t misses = __atomic_add_fetch(&d.misses, 1, __ATOMIC_RELAXED);
  if (is_medium_class(cls)) medium_note_miss(tl_cache, region, cls);
  uint32_t last = __atomic_exchange_n(&d.last, kind, __ATOMIC_RELAXED);
  if (last == kMissNone || last == kind) return false;
  if (is_medium_class(cls) &&
      misses - __atomic_load_n(&d.seen, __ATOMIC_RELAXED) < kMediumMissesToGrow)
    return false;  // (budget_bytes.h)
  const SlotRange& r = region_ranges(region)[cls];
  uint32_t begin = r.begin, end = load16(&r.end), max = g_region_layout.max_end[cls];
  if (end >= max) return false;
  uint32_t add = end - begin;  // doubling
  if (add > max - end) add = max - end;
  if (!take_room(region, cls, &add)) return false;
  // On whatever CPU the thread runs now: if it moved, that CPU's class grows
  // instead (or nothing, if that CPU has no region yet), as it would on its
  // own next alternation.
  percpu_grow_end(cls, add, max);
  g_grows.fetch_add(1, std::memory_order_relaxed);
  return true;
}

uint64_t sizing_decay(char* region, bool reset) {
  SlotRange* r = region_ranges(region);
  ClassDemand* demand = region_demand(region);
  uint64_t moved = 0;
  for (unsigned c = 1; c < kNumClasses; ++c) {
    uint32_t misses = __atomic_load_n(&demand[c].misses, __ATOMIC_RELAXED);
    bool quiet = misses == __atomic_load_n(&demand[c].seen, __ATOMIC_RELAXED);
    __atomic_store_n(&demand[c].seen, misses, __ATOMIC_RELAXED);
    // A reset forgets the last miss too: the next one starts a new history.
    if (reset) __atomic_store_n(&demand[c].last, kMissNone, __ATOMIC_RELAXED);
    uint32_t base = g_region_layout.base[c].end, end = load16(&r[c].end);
    if (end <= base || (!quiet && !reset)) continue;
    shrink_class(region, c, reset ? base : base + (end - base) / 2, &moved);
  }
  sizing_hint_exact(region);
  return moved;
}

void sizing_reclaim_idle_medium(char* region, unsigned except, uint32_t used_here, bool reclaim) {
  SlotRange* r = region_ranges(region);
  ClassDemand* demand = region_demand(region);
  const uint64_t* cursors = region_cursors(region);
  uint64_t bytes = 0, moved = 0;
  for (unsigned c = kNumSmallClasses; c < kNumClasses; ++c) {
    // Any push, pop or miss changes it (a pop and a push by slow paths that
    // leave cur as it was do not: the thread's own are in used_here).
    // Bit 0 of the note: the class was idle at the look before too.
    uint32_t misses = __atomic_load_n(&demand[c].misses, __ATOMIC_RELAXED);
    uint32_t cursor = static_cast<uint32_t>(__atomic_load_n(&cursors[c], __ATOMIC_RELAXED));
    uint32_t now = (cursor ^ (misses * 0x9E3779B1u)) & ~1u;
    uint32_t was = __atomic_load_n(&demand[c].activity, __ATOMIC_RELAXED);
    bool idle = (was & ~1u) == now && ((used_here >> (c - kNumSmallClasses)) & 1) == 0;
    __atomic_store_n(&demand[c].activity, now | (idle ? 1u : 0u), __ATOMIC_RELAXED);
    uint32_t base = g_region_layout.base[c].end, end = load16(&r[c].end);
    if (!reclaim || c == except || !idle || (was & 1) == 0 || end <= base) continue;
    if (shrink_class(region, c, base, &moved))
      bytes += uint64_t{end - base} * budget_block_bytes(c);
  }
  if (bytes != 0) medium_hint_sub(bytes);
}

void sizing_period_seen(char* region) {
  ClassDemand* demand = region_demand(region);
  for (unsigned c = 1; c < kNumClasses; ++c)
    __atomic_store_n(&demand[c].seen, __atomic_load_n(&demand[c].misses, __ATOMIC_RELAXED),
                     __ATOMIC_RELAXED);
}

bool sizing_grown(char* region) {
  const SlotRange* r = region_ranges(region);
  for (unsigned c = 1; c < kNumClasses; ++c)
    if (load16(&r[c].end) > g_region_layout.base[c].end) return true;
  return false;
}

void sizing_hint_exact(char* region) {
  __atomic_store_n(&region_growth_hint(region)->used, small_grown_bytes(region), __ATOMIC_RELAXED);
}

size_t sizing_medium_grown(char* region) {
  return grown_bytes(region, kNumSmallClasses, kNumClasses);
}

uint64_t sizing_medium_hint() { return g_medium_hint.load(std::memory_order_relaxed); }

uint64_t sizing_medium_used() {
  return sizing_medium_hint() + g_threads.bins_medium_grown.load(std::memory_order_relaxed);
}

void sizing_medium_hint_exact(uint64_t bytes) {
  g_medium_hint.store(bytes, std::memory_order_relaxed);
}

uint32_t sizing_capacity(char* region, unsigned cls) {
  const SlotRange& r = region_ranges(region)[cls];
  return static_cast<uint32_t>(load16(&r.end) - r.begin);
}

uint64_t percpu_grows() { return g_grows.load(std::memory_order_relaxed); }
uint64_t percpu_shrinks() { return g_shrinks.load(std::memory_order_relaxed); }

}  // namespace slabby

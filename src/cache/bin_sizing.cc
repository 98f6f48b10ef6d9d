// slabby: per-thread bin capacities that follow demand.
//
// The per-thread twin of cache/percpu_sizing.cc (rules in thread_cache.h,
// bins_init and below). Everything here runs on the owning thread, from its
// slow paths, so a bin's limit changes with no synchronisation: only the
// owner reads or writes its bins. The grown bytes are counted exactly:
// tc.grown_bytes is the sum over small classes of (limit - base) * the bytes
// a block counts for (cache/budget_bytes.h) for the classes above their
// base, tc.medium_grown the same over the medium classes.
#include <algorithm>

#include "cache/budget_bytes.h"
#include "cache/percpu_region.h"
#include "cache/thread_cache.h"
#include "central/central_pool.h"

namespace slabby {

namespace {

// A bin's most: 8192 blocks (the growth budget bounds it first for classes
// above 128 bytes). The per-CPU regions reserve 2048 slots a class; a bin is
// a list, and at 2048 a burst within a transfer batch of it (1921-2048
// blocks) could settle a batch short of full and refill and flush every
// round for good, its misses alternating but the bin unable to grow (the
// checked bins' 80- and 160-byte classes did, under the burst benchmark:
// docs/benchmarks.md, "Refills of one batch, bins of up to 8192 blocks").
constexpr uint32_t kMaxGrownLimit = 8192;

// Gives the bin's blocks above `keep` to the pool, whole transfer batches
// where it can.
void give_above(Bin& b, unsigned cls, uint32_t keep) {
  uint32_t batch = std::clamp<uint32_t>(g_central_pools[cls].batch_size(), 1, kMaxBatch);
  while (bin_count(b) > keep) bin_give_top(b, cls, std::min(bin_count(b) - keep, batch));
}

// Lowers class cls's limit to `target` (at least its base), its blocks
// above that going to the pool first.
void shrink_to(ThreadCache& tc, unsigned cls, uint32_t target) {
  Bin& b = tc.bins[cls];
  uint32_t base = bin_base(tc, cls);
  if (target < base) target = base;
  if (b.limit <= target) return;
  give_above(b, cls, target);
  bin_shrunk(tc, cls, b.limit, target);
  bin_set_limit(b, target);
  if (b.fill > target / 2) b.fill = static_cast<uint16_t>(target / 2);
}

}  // namespace

void bins_init(const uint32_t* base_limit, size_t grow_bytes, size_t medium_grow_bytes,
               uint64_t cpus) {
  for (unsigned c = 0; c < kNumClasses; ++c)
    g_threads.bin_base[c] = static_cast<uint16_t>(base_limit[c] < 65535 ? base_limit[c] : 65535);
  // grown_bytes is 32-bit: budgets past 1 GiB are clamped there.
  g_threads.bin_grow_bytes = grow_bytes < (size_t{1} << 30) ? grow_bytes : size_t{1} << 30;
  g_threads.medium_grow_bytes =
      medium_grow_bytes < (size_t{1} << 30) ? medium_grow_bytes : size_t{1} << 30;
  g_threads.cpus = cpus != 0 ? cpus : 1;
}

void bins_start(ThreadCache& tc, bool cached) {
  // The thread itself is not counted yet (thread_init registers it after).
  // The checked bins (uncached here) take their bases by the same rule.
  tc.base_shift = cache_program_threads() + 1 > 4 * g_threads.cpus ? 1 : 0;
  for (unsigned c = 1; c < kNumClasses; ++c)
    bin_set_limit(tc.bins[c], !cached || cache_medium_on_cpu(tc, c) ? 0 : bin_base(tc, c));
}

uint32_t bin_base(const ThreadCache& tc, unsigned cls) {
  if (cache_medium_on_cpu(tc, cls)) return 0;  // in the CPU's cache until it grows a bin
  uint32_t base = g_threads.bin_base[cls];
  // Medium classes keep theirs (one block); a small class's half stays even
  // (a flush of half the bin is whole batches) and at least 4, as the bases.
  if (tc.base_shift == 0 || is_medium_class(cls) || base <= 4) return base;
  return std::max<uint32_t>((base >> tc.base_shift) & ~uint32_t{1}, 4);
}

size_t bins_grow_budget(const ThreadCache& tc) {
  uint64_t threads = cache_program_threads(), cpus = g_threads.cpus;
  int64_t one = static_cast<int64_t>(g_threads.bin_grow_bytes);
  if (threads <= cpus) return static_cast<size_t>(one);
  int64_t share = one * static_cast<int64_t>(cpus) / static_cast<int64_t>(threads);
  // What no thread has grown into (negative: the threads together are past
  // the CPUs' budget), on top of what this one holds.
  int64_t all = static_cast<int64_t>(g_threads.bins_grown.load(std::memory_order_relaxed));
  int64_t unused = one * static_cast<int64_t>(cpus) - all;
  int64_t budget = std::max(share, static_cast<int64_t>(tc.grown_bytes) + unused);
  return static_cast<size_t>(std::clamp<int64_t>(budget, 0, one));
}

size_t medium_class_budget(unsigned cls, size_t budget) {
  bool filled = (g_central_pools[cls].heap_dense_medium() >> cls) & 1;
  return filled ? budget / kFilledMediumShare : budget;
}

uint32_t bin_grow_by(ThreadCache& tc, unsigned cls, BinMiss kind, uint32_t limit) {
  BinDemand& d = tc.demand[cls];
  uint8_t last = d.last;
  d.last = kind;
  if (d.missed < 255) d.missed++;
  if (is_medium_class(cls)) medium_note_miss(tc, nullptr, cls);
  if (last == kBinMissNone || last == kind) return 0;
  if (is_medium_class(cls) && d.missed < kMediumMissesToGrow) return 0;  // (budget_bytes.h)
  // A bin with limit 0 caches nothing by choice (SLABBY_THREAD_CACHE_BYTES=0,
  // a check mode, a closed bin), but for a medium class of a thread that
  // keeps its medium blocks in its CPU's cache (cache_medium_on_cpu): such a
  // class grows a bin of its own, from 0 to 1 block and doubling, once it
  // misses often (kMediumMissesToGrow). Then its blocks take the same inline
  // paths as the small ones: a program mixing small and medium sizes at
  // random otherwise mispredicted the free's branch to the slow path on every
  // other block (a 1-64 KiB loop: 0.023 s against 0.015 with its medium
  // blocks on bins, the touches left out). Medium classes grow by whole
  // blocks within the process's medium budget, which the CPU caches' medium
  // classes share (as per CPU: percpu_sizing.cc).
  bool medium = is_medium_class(cls);
  if ((limit == 0 && !cache_medium_on_cpu(tc, cls)) || limit >= kMaxGrownLimit) return 0;
  uint32_t add = std::min<uint32_t>(std::max<uint32_t>(limit, 1), kMaxGrownLimit - limit);
  size_t size = budget_block_bytes(cls);
  size_t used = medium ? sizing_medium_used() : tc.grown_bytes;
  size_t budget =
      medium ? medium_class_budget(cls, g_threads.medium_grow_bytes) : bins_grow_budget(tc);
  size_t room = used < budget ? (budget - used) / size : 0;
  if (add > room) add = static_cast<uint32_t>(room);
  // Even, as the bases: a flush of half is whole batches (a medium class's
  // batch is one block).
  if (!medium) add &= ~uint32_t{1};
  if (add == 0) return 0;
  if (medium) {
    tc.medium_grown += static_cast<uint32_t>(add * size);
    g_threads.bins_medium_grown.fetch_add(add * size, std::memory_order_relaxed);
  } else {
    tc.grown_bytes += static_cast<uint32_t>(add * size);
    g_threads.bins_grown.fetch_add(add * size, std::memory_order_relaxed);
  }
  g_threads.bin_grows.fetch_add(1, std::memory_order_relaxed);
  return add;
}

bool bin_note_miss(ThreadCache& tc, unsigned cls, BinMiss kind) {
  Bin& b = tc.bins[cls];
  uint32_t add = bin_grow_by(tc, cls, kind, b.limit);
  if (add == 0) return false;
  bin_set_limit(b, b.limit + add);
  return true;
}

uint32_t bin_decay_target(const ThreadCache& tc, unsigned cls, uint32_t limit) {
  uint32_t base = bin_base(tc, cls);
  if (limit <= base) return limit;
  // (The medium budget has no shares: a medium class that missed keeps it.)
  if (tc.demand[cls].missed != 0 &&
      (is_medium_class(cls) || tc.grown_bytes <= bins_grow_budget(tc)))
    return limit;
  // Even for a small class, as the bases; a medium class by whole blocks.
  uint32_t target = base + (limit - base) / 2;
  return is_medium_class(cls) ? target : target & ~uint32_t{1};
}

void bin_shrunk(ThreadCache& tc, unsigned cls, uint32_t from, uint32_t to) {
  uint32_t less = static_cast<uint32_t>((from - to) * budget_block_bytes(cls));
  bool medium = is_medium_class(cls);
  uint32_t& grown = medium ? tc.medium_grown : tc.grown_bytes;
  if (less > grown) less = grown;
  grown -= less;
  (medium ? g_threads.bins_medium_grown : g_threads.bins_grown)
      .fetch_sub(less, std::memory_order_relaxed);
  g_threads.bin_shrinks.fetch_add(1, std::memory_order_relaxed);
}

void bins_decay_done(ThreadCache& tc) {
  tc.decay_seen = __atomic_load_n(&g_threads.decay_epoch, __ATOMIC_RELAXED);
  for (unsigned c = 1; c < kNumClasses; ++c) tc.demand[c].missed = 0;
}

void bins_decay(ThreadCache& tc) {
  for (unsigned c = 1; c < kNumClasses && (tc.grown_bytes | tc.medium_grown) != 0; ++c) {
    uint32_t limit = tc.bins[c].limit, target = bin_decay_target(tc, c, limit);
    if (target < limit) shrink_to(tc, c, target);
  }
  bins_decay_done(tc);
}

void bins_reclaim_idle_medium(ThreadCache& tc, unsigned except, uint32_t idle) {
  for (unsigned c = kNumSmallClasses; c < kNumClasses && tc.medium_grown != 0; ++c) {
    uint32_t limit = tc.bins[c].limit, base = bin_base(tc, c);
    if (c == except || limit <= base || ((idle >> (c - kNumSmallClasses)) & 1) == 0) continue;
    shrink_to(tc, c, base);
  }
}

void bins_reset(ThreadCache& tc) {
  for (unsigned c = 1; c < kNumClasses && (tc.grown_bytes | tc.medium_grown) != 0; ++c)
    shrink_to(tc, c, bin_base(tc, c));
  for (unsigned c = 1; c < kNumClasses; ++c) tc.demand[c] = BinDemand{};
}

}  // namespace slabby

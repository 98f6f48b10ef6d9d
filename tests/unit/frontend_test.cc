// The whole core through its front end (the functions the exported symbols
// wrap), on the process-wide runtime, in a test process whose own malloc is
// glibc's (or the sanitizer's).
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "cache/budget_bytes.h"
#include "cache/percpu_region.h"
#include "frontend/allocator.h"
#include "frontend/glibc.h"
#include "os/os.h"
#include "runtime/background.h"
#include "telemetry/stats.h"
#include "thread_scopes.h"

namespace slabby {
namespace {

using test_scopes::ParkedThreads;
using test_scopes::program_threads_now;
using test_scopes::SharedCpus;

slabby_stats stats() {
  static slabby_stats s;
  collect_stats(&s);
  return s;
}

TEST(Frontend, SmallBlocksComeFromTheArenaWithTheirClassSize) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{16}, size_t{17}, size_t{1000}, kMaxSmallSize}) {
    void* p = malloc_fast(n);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(g_rt.heap.owns(p));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
    EXPECT_EQ(usable_size_impl(p), class_size(size_class_of(n)));
    memset(p, 0xab, n);
    free_fast(p);
  }
}

TEST(Frontend, MediumBlocksArePageAlignedBlocksOfTheirClass) {
  for (size_t n : {kMaxSmallSize + 1, size_t{65536}, size_t{100000}, kMaxClassSize}) {
    void* p = malloc_fast(n);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kPageSize, 0u) << n;
    unsigned cls = g_rt.heap.class_of(p);
    EXPECT_TRUE(is_medium_class(cls)) << n;
    EXPECT_EQ(cls, medium_class_of(n)) << n;
    EXPECT_EQ(usable_size_impl(p), class_size(cls)) << n;
    memset(p, 0xab, n);
    free_fast(p);
  }
}

// Above the largest medium class, blocks are page spans in four size
// classes per power of two (the page heap's large classes).
TEST(Frontend, LargeBlocksArePageSpansOfFourClassesPerDoubling) {
  constexpr size_t kMiB = size_t{1} << 20, kKiB = 1024;
  const struct {
    size_t n, usable;
  } cases[] = {
      {kMaxClassSize + 1, kMiB + 256 * kKiB},
      {kMiB + 256 * kKiB, kMiB + 256 * kKiB},
      {kMiB + 256 * kKiB + 1, kMiB + 512 * kKiB},
      {2 * kMiB - 1, 2 * kMiB},
      {2 * kMiB, 2 * kMiB},
      {3 * kMiB + 1, 3 * kMiB + 512 * kKiB},
      {7 * kMiB + 1, 8 * kMiB},
      {100 * kMiB + 1, 112 * kMiB},
  };
  for (const auto& c : cases) {
    void* p = malloc_fast(c.n);
    ASSERT_NE(p, nullptr) << c.n;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kPageSize, 0u);
    EXPECT_EQ(g_rt.heap.class_of(p), 0u);
    EXPECT_EQ(usable_size_impl(p), c.usable) << c.n;
    free_fast(p);
  }
}

TEST(Frontend, StatsCountThisThreadsOperations) {
  slabby_stats before = stats();
  std::vector<void*> v;
  for (int i = 0; i < 1000; ++i) v.push_back(malloc_fast(24));
  slabby_stats mid = stats();
  EXPECT_EQ(mid.total_allocations - before.total_allocations, 1000u);
  EXPECT_EQ(mid.classes[size_class_of(24) - 1].live_blocks -
                before.classes[size_class_of(24) - 1].live_blocks,
            1000u);
  for (void* p : v) free_fast(p);
  slabby_stats after = stats();
  EXPECT_EQ(after.total_deallocations - before.total_deallocations, 1000u);
  EXPECT_EQ(after.current_allocations, before.current_allocations);
}

TEST(Frontend, CallocZeroesReusedBlocksAndChecksOverflow) {
  for (size_t n : {size_t{40}, size_t{5000}, size_t{100000}, size_t{3} << 20}) {
    char* dirty = static_cast<char*>(malloc_fast(n));
    memset(dirty, 0xee, n);
    free_fast(dirty);
    char* p = static_cast<char*>(calloc_impl(1, n));
    ASSERT_NE(p, nullptr);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(p[i], 0) << n << " at " << i;
    free_fast(p);
  }
  errno = 0;
  EXPECT_EQ(calloc_impl(SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(Frontend, ImpossibleSizesFailWithEnomem) {
  errno = 0;
  EXPECT_EQ(malloc_fast(SIZE_MAX - 4096), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(aligned_alloc_impl(64, SIZE_MAX - 100), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(Frontend, ReallocKeepsEveryUsableByte) {
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    size_t a = rng() % 70000, b = rng() % 70000;
    unsigned char* p = static_cast<unsigned char*>(malloc_fast(a));
    size_t ua = usable_size_impl(p);
    for (size_t j = 0; j < ua; ++j) p[j] = static_cast<unsigned char>(j * 31 + 7);
    unsigned char* q = static_cast<unsigned char*>(realloc_impl(p, b == 0 ? 1 : b));
    ASSERT_NE(q, nullptr);
    size_t keep = ua < b ? ua : b;
    for (size_t j = 0; j < keep; ++j)
      ASSERT_EQ(q[j], static_cast<unsigned char>(j * 31 + 7)) << a << "->" << b << " at " << j;
    free_fast(q);
  }
  EXPECT_EQ(realloc_impl(malloc_fast(10), 0), nullptr);  // glibc: frees, returns NULL
}

TEST(Frontend, AlignedAllocationsForEveryPowerOfTwo) {
  for (size_t align = 8; align <= (size_t{2} << 20); align *= 2) {
    for (size_t n : {size_t{1}, align - 1, align, align + 1, 3 * align}) {
      void* p = aligned_alloc_impl(align, n);
      ASSERT_NE(p, nullptr) << align << " " << n;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << align << " " << n;
      EXPECT_GE(usable_size_impl(p), n);
      memset(p, 1, n);
      free_fast(p);
    }
  }
}

TEST(Frontend, ForeignPointersGoToGlibc) {
  void* g = __libc_malloc(100);
  ASSERT_FALSE(g_rt.heap.owns(g));
  EXPECT_GE(usable_size_impl(g), 100u);
  memset(g, 3, 100);
  void* g2 = realloc_impl(g, 200);
  ASSERT_NE(g2, nullptr);
  EXPECT_EQ(static_cast<char*>(g2)[99], 3);
  uint64_t before = stats().foreign_frees;
  errno = 4321;
  free_fast(g2);
  EXPECT_EQ(errno, 4321);
  free_fast(nullptr);
  EXPECT_GT(stats().foreign_frees, before);
}

TEST(Frontend, FreePreservesErrno) {
  std::vector<void*> v;
  for (int i = 0; i < 5000; ++i) v.push_back(malloc_fast(static_cast<size_t>(i) * 97 % 300000));
  errno = 777;
  for (void* p : v) free_fast(p);
  EXPECT_EQ(errno, 777);
}

// Threads allocate, hand blocks to each other, free them remotely and exit;
// every block is checked against its owner's stamp; the exiting threads'
// caches go back, and the counts add up.
TEST(Frontend, CrossThreadFreesAndThreadExit) {
  slabby_stats before = stats();
  constexpr int kThreads = 6;
  std::mutex mu;
  std::vector<std::pair<uint64_t*, size_t>> shared;
  std::atomic<bool> bad{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 20000; ++i) {
        size_t n = (rng() % 8 == 0) ? 16 + rng() % 70000 : 16 + rng() % 512;
        auto* p = static_cast<uint64_t*>(malloc_fast(n));
        size_t words = n / 8;
        for (size_t w = 0; w < words; ++w) p[w] = reinterpret_cast<uintptr_t>(p) ^ w;
        std::pair<uint64_t*, size_t> other{nullptr, 0};
        {
          std::lock_guard<std::mutex> g(mu);
          shared.emplace_back(p, words);
          if (shared.size() > 64) {
            size_t k = rng() % shared.size();
            other = shared[k];
            shared[k] = shared.back();
            shared.pop_back();
          }
        }
        if (other.first) {
          for (size_t w = 0; w < other.second; ++w)
            if (other.first[w] != (reinterpret_cast<uintptr_t>(other.first) ^ w)) bad = true;
          free_fast(other.first);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (auto& [p, words] : shared) {
    for (size_t w = 0; w < words; ++w)
      if (p[w] != (reinterpret_cast<uintptr_t>(p) ^ w)) bad = true;
    free_fast(p);
  }
  EXPECT_FALSE(bad.load()) << "a block was corrupted or handed out twice";
  slabby_stats after = stats();
  EXPECT_EQ(after.threads_exited - before.threads_exited, static_cast<uint64_t>(kThreads));
  EXPECT_EQ(after.current_allocations, before.current_allocations);
  EXPECT_EQ(after.total_allocations - before.total_allocations, kThreads * 20000u);
}

TEST(Frontend, MallocTrimReturnsFreeLargeSpans) {
  void* p = malloc_fast(size_t{8} << 20);
  memset(p, 1, size_t{8} << 20);
  free_fast(p);
  g_rt.heap.purge_all();
  EXPECT_EQ(g_rt.heap.stats().free_dirty_bytes, 0u);
}

using FrontendDeathTest = ::testing::Test;

// Large blocks (page spans) are validated on every free; small and medium
// ones only with SLABBY_BITGUARD (tests/security).
TEST(FrontendDeathTest, FreeOfAnInteriorPointerOfALargeBlockAborts) {
  char* p = static_cast<char*>(malloc_fast(kMaxClassSize + 100000));
  EXPECT_EXIT(free_fast(p + 4096), ::testing::KilledBySignal(SIGABRT),
              "slabby: free of invalid pointer 0x[0-9a-f]+ \\(inside slabby's heap, not the start "
              "of a live block\\)");
  free_fast(p);
}

// A pointer into the arena past what it has committed (the arena reserves
// 64 GiB by default; its last page is never reached here) gets the same
// report from each call that takes one, not a fault: the page and class
// maps read as zeros there (before 2026-12-07 their reservations were
// PROT_NONE, and each of these died of SIGSEGV).
TEST(FrontendDeathTest, APointerIntoTheArenaPastItsCommittedPartGetsTheInvalidPointerReport) {
  thread_init();
  char* far = reinterpret_cast<char*>(g_rt.heap.base() + g_rt.heap.size() - kPageSize);
  ASSERT_GT(g_rt.heap.size(), size_t{1} << 30) << "an arena this small may be committed to its end";
  const char* report =
      " of invalid pointer 0x[0-9a-f]+ \\(inside slabby's heap, not the start of a "
      "live block\\)";
  EXPECT_EXIT(free_fast(far), ::testing::KilledBySignal(SIGABRT),
              std::string("slabby: free") + report);
  EXPECT_EXIT(free_fast(far + 3), ::testing::KilledBySignal(SIGABRT),
              std::string("slabby: free") + report);
  EXPECT_EXIT(realloc_impl(far, 100), ::testing::KilledBySignal(SIGABRT),
              std::string("slabby: realloc") + report);
  EXPECT_EXIT(usable_size_impl(far), ::testing::KilledBySignal(SIGABRT),
              std::string("slabby: malloc_usable_size") + report);
}

}  // namespace
}  // namespace slabby

namespace slabby {
namespace {

// Puts the calling thread on its per-thread cache (as a thread without a
// working rseq area is), whatever mode the process runs in.
void use_thread_cache() {
  thread_init();
  tl_cache.rseq_ok = 0;  // else its next slow path may move it to the CPU caches
  tl_cache.percpu_ok = 0;
  tl_cache.base_shift = 0;  // the whole bases, whatever the threads at its start
  for (unsigned c = 1; c < kNumClasses; ++c) {
    bin_set_limit(tl_cache.bins[c], g_rt.cache_limit[c]);
    tl_cache.demand[c] = BinDemand{};
  }
  tl_cache.grown_bytes = 0;
  g_threads.bins_medium_grown.fetch_sub(tl_cache.medium_grown);
  tl_cache.medium_grown = 0;
}

// Sets one thread's growth budget (g_threads.bin_grow_bytes) for a scope.
class BinBudget {
 public:
  explicit BinBudget(size_t bytes) : saved_((thread_init(), g_threads.bin_grow_bytes)) {
    g_threads.bin_grow_bytes = bytes;  // after init, which sets it
  }
  ~BinBudget() { g_threads.bin_grow_bytes = saved_; }

 private:
  size_t saved_;
};

// The thread cache in isolation, observed through its bins on a fresh thread.
TEST(ThreadCache, FirstCallsTakeTheSlowPathAndBindTheCache) {
  std::thread([] {
    EXPECT_EQ(tl_cache.state, kCacheUninit);
    void* p = malloc_fast(40);
    EXPECT_EQ(tl_cache.state, kCacheActive);
    unsigned cls = size_class_of(40);
    // A per-CPU thread's bins only count: limit 0 sends every call on to
    // the CPU's cache.
    EXPECT_EQ(tl_cache.bins[cls].limit, tl_cache.percpu_ok ? 0u : g_rt.cache_limit[cls]);
    // Slow start: the first refill takes a few blocks, not half the bin: four
    // lines' worth at most (the thread's first block has a line of its own,
    // and its bin keeps that line's other blocks: cache_alloc_first).
    EXPECT_LE(bin_count(tl_cache.bins[cls]), std::max<size_t>(4, 4 * kCacheLine / class_size(cls)));
    EXPECT_LT(bin_count(tl_cache.bins[cls]), g_rt.cache_limit[cls] / 2);
    free_fast(p);
  }).join();
}

// A thread's first block (cache_alloc_first): from the blocks it looks at, one
// whose cache lines hold only blocks among them, then that line's other blocks.
// Addresses only: arrange_first_block never touches the blocks.
TEST(ThreadCache, FirstBlockIsOneWhoseLinesHoldOnlyBlocksAmongThoseLookedAt) {
  const uintptr_t base = uintptr_t{1} << 40;  // on a line (and a page)
  auto at = [base](uintptr_t off) { return reinterpret_cast<void*>(base + off); };
  auto off = [base](void* p) { return reinterpret_cast<uintptr_t>(p) - base; };
  bool own = false;

  // 16-byte blocks: the line at 0 is whole (0, 16, 32, 48); 0x80 has no mates here.
  void* a[] = {at(0x40), at(0x10), at(0x80), at(0x00), at(0x30), at(0x20)};
  uint32_t mates = arrange_first_block(a, 6, 16, &own);
  EXPECT_TRUE(own);
  EXPECT_EQ(off(a[0]), 0x00u);
  ASSERT_EQ(mates, 3u);
  std::set<uintptr_t> m = {off(a[1]), off(a[2]), off(a[3])};
  EXPECT_EQ(m, (std::set<uintptr_t>{0x10, 0x20, 0x30}));

  // No whole line (0x20 and everything past 0x50 missing): any block, and its
  // mates still first, so the cache keeps them.
  void* b[] = {at(0x50), at(0x30), at(0x00), at(0x10)};
  mates = arrange_first_block(b, 4, 16, &own);
  EXPECT_FALSE(own);
  EXPECT_EQ(off(b[0]), 0x00u);
  ASSERT_EQ(mates, 2u);
  EXPECT_EQ((std::set<uintptr_t>{off(b[1]), off(b[2])}), (std::set<uintptr_t>{0x10, 0x30}));
  EXPECT_EQ(off(b[3]), 0x50u);

  // 48-byte blocks straddle lines: block 0's line holds 0 and 48 only; block
  // 96's lines (64..191) need 48 and 144, absent here.
  void* c[] = {at(96), at(48), at(0)};
  mates = arrange_first_block(c, 3, 48, &own);
  EXPECT_TRUE(own);
  EXPECT_EQ(off(c[0]), 0u);
  ASSERT_EQ(mates, 1u);
  EXPECT_EQ(off(c[1]), 48u);
  void* d[] = {at(96), at(240)};  // 96 needs 48 and 144; 240 needs 192
  arrange_first_block(d, 2, 48, &own);
  EXPECT_FALSE(own);

  // Blocks of a line or more: every block has its lines to itself.
  void* e[] = {at(0x80), at(0x40)};
  mates = arrange_first_block(e, 2, 64, &own);
  EXPECT_TRUE(own);
  EXPECT_EQ(mates, 0u);

  // How many blocks a thread's first allocation looks at: four lines' worth and one.
  EXPECT_EQ(first_block_batch(size_class_of(16)), 4 * kCacheLine / class_size(size_class_of(16)) + 1);
}

TEST(ThreadCache, FreesNeverHoldMoreThanTheLimitAndFlushHalf) {
  BinBudget fixed(0);  // limits that follow demand: below
  std::thread([] {
    use_thread_cache();
    unsigned cls = size_class_of(64);
    std::vector<void*> v;
    for (int i = 0; i < 2000; ++i) v.push_back(malloc_fast(64));
    uint32_t limit = tl_cache.bins[cls].limit;
    ASSERT_GT(limit, 0u);
    uint64_t flushes_before = g_central_pools[cls].stats().flushes;
    for (void* p : v) {
      free_fast(p);
      ASSERT_LE(bin_count(tl_cache.bins[cls]), limit);
    }
    uint64_t flushes = g_central_pools[cls].stats().flushes - flushes_before;
    // Each flush leaves the bin half full, so it takes limit/2 frees to refill it.
    EXPECT_GE(flushes, 2000 / limit);
    EXPECT_LE(flushes, 2000 / (limit / 2) + 1);
  }).join();
}

// Blocks of class cls straight from its pool, past every cache, into *out
// until it holds at least n (a take may bring a whole transfer batch).
void take_from_pool(unsigned cls, size_t n, std::vector<void*>* out) {
  while (out->size() < n) {
    void* b[kMaxBatch];
    uint32_t got = g_central_pools[cls].take_blocks(b, 1, 0);
    ASSERT_GE(got, 1u);
    out->insert(out->end(), b, b + got);
  }
}

// The pool's refills and flushes of a class (its misses, seen from the pool).
uint64_t pool_moves(unsigned cls) {
  CentralPoolStats st = g_central_pools[cls].stats();
  return st.flushes + st.refills;
}

// Sum over classes [from, to) of (limit - base) * size: over the small
// classes, what tc.grown_bytes must say; over the medium ones, tc.medium_grown.
size_t grown_by_limits(unsigned from = 1, unsigned to = kNumSmallClasses) {
  size_t total = 0;
  for (unsigned c = from; c < to; ++c) {
    uint32_t limit = tl_cache.bins[c].limit, base = bin_base(tl_cache, c);
    if (limit > base) total += size_t{limit - base} * class_size(c);
  }
  return total;
}
size_t medium_grown_by_limits() { return grown_by_limits(kNumSmallClasses, kNumClasses); }

// A burst larger than the bin: allocating runs it empty, freeing runs it
// full, each round through the pool. The class doubles its limit until the
// burst fits, and then a round needs the pool no more.
TEST(ThreadCache, AClassWhoseBurstsDoNotFitGrowsUntilTheyDo) {
  BinBudget budget(1 << 20);
  std::thread([] {
    use_thread_cache();
    unsigned cls = size_class_of(64);
    uint32_t base = g_threads.bin_base[cls];
    ASSERT_EQ(base, g_rt.cache_limit[cls]);
    const uint32_t burst = 3 * base;  // fits after two doublings
    std::vector<void*> v(burst);
    uint64_t grows = stats().thread_cache_grows;
    uint64_t moves_last = 0;
    for (int round = 0; round < 8; ++round) {
      uint64_t before = pool_moves(cls);
      for (uint32_t i = 0; i < burst; ++i) {
        v[i] = malloc_fast(64);
        memset(v[i], round, 64);
      }
      for (uint32_t i = 0; i < burst; ++i) free_fast(v[i]);
      moves_last = pool_moves(cls) - before;
    }
    uint32_t limit = tl_cache.bins[cls].limit;
    EXPECT_GE(limit, burst);
    EXPECT_LE(limit, 4 * base) << "doubling stops once the burst fits";
    EXPECT_GE(bin_count(tl_cache.bins[cls]), burst);
    EXPECT_GT(stats().thread_cache_grows, grows);
    EXPECT_EQ(moves_last, 0u) << "the last burst came from and went back to the thread's bin";
    EXPECT_EQ(tl_cache.grown_bytes, grown_by_limits());
  }).join();
}

// Bursts of n blocks of `size` bytes, allocated then freed, `rounds` times:
// each round runs the cache empty, then full, until it has grown to hold them.
// With `beside`, a block of that size is allocated and freed beside each:
// its class in use, so an idle medium class's giving back (medium_look)
// leaves it alone.
void bursts(size_t size, uint32_t n, int rounds, size_t beside = 0) {
  std::vector<void*> v(n);
  for (int round = 0; round < rounds; ++round) {
    for (void*& p : v) {
      p = malloc_fast(size);
      if (beside != 0) free_fast(malloc_fast(beside));
    }
    for (void* p : v) free_fast(p);
  }
}

// Blocks of `size` (a medium class's) written whole and kept, slab after
// slab, until a look of the page heap (one slab in 16 looks at the class's
// previous one) finds one filled; then freed. Whether it did (within 64).
bool fill_until_seen_filled(size_t size) {
  unsigned cls = static_cast<unsigned>(class_of_size(size));
  std::vector<void*> live;
  while (!((g_rt.heap.dense_medium() >> cls) & 1) && live.size() < 64) {
    live.push_back(malloc_fast(size));
    memset(live.back(), 1, class_size(cls));
  }
  for (void* p : live) free_fast(p);
  return (g_rt.heap.dense_medium() >> cls) & 1;
}

// Eight rounds of `burst` 64 KiB blocks allocated (their start written),
// then freed; returns what `moves` counted for class cls in the last round
// (central pool moves for a thread's bins, refills and flushes per CPU).
uint64_t class_misses(unsigned cls);
uint64_t medium_bursts_last_round(unsigned cls, uint32_t burst, uint64_t (*moves)(unsigned),
                                  int rounds = 16) {
  std::vector<void*> v(burst);
  uint64_t last = 0;
  for (int round = 0; round < rounds; ++round) {
    uint64_t before = moves(cls);
    for (void*& p : v) {
      p = malloc_fast(64 << 10);
      memset(p, round, 64);
    }
    for (void* p : v) free_fast(p);
    last = moves(cls) - before;
  }
  return last;
}

// A medium class too (64 KiB blocks, base one block): a few buffers of a
// size live at once, how many wandering, sent every other one to the pools
// and the page heap while the class kept its base (bench medium-live-*).
TEST(ThreadCache, AMediumClassWhoseBurstsDoNotFitGrowsUntilTheyDo) {
  BinBudget budget(1 << 20);
  std::thread([] {
    use_thread_cache();
    unsigned cls = static_cast<unsigned>(class_of_size(64 << 10));
    ASSERT_TRUE(is_medium_class(cls));
    ASSERT_EQ(tl_cache.bins[cls].limit, 1u) << "a thread on its bins keeps its medium blocks there";
    const uint32_t burst = 6;
    // Rare misses (fewer than kMediumMissesToGrow in a decay epoch) leave it
    // at its base; a new epoch (its first slow path decays) starts the count.
    medium_bursts_last_round(cls, burst, pool_moves, 4);
    EXPECT_EQ(tl_cache.bins[cls].limit, 1u) << "a few misses a second cost less than the blocks";
    cache_decay_tick();
    medium_bursts_last_round(cls, burst, pool_moves, 4);
    EXPECT_EQ(tl_cache.bins[cls].limit, 1u) << "the count starts again at each epoch";
    uint64_t moves_last = medium_bursts_last_round(cls, burst, pool_moves);
    EXPECT_GE(tl_cache.bins[cls].limit, burst);
    EXPECT_LE(tl_cache.bins[cls].limit, 8u) << "doubling stops once the burst fits";
    EXPECT_EQ(moves_last, 0u) << "the last burst came from and went back to the thread's bin";
    EXPECT_EQ(tl_cache.grown_bytes, 0u) << "not from the small classes' budget";
    EXPECT_EQ(tl_cache.medium_grown, medium_grown_by_limits());
  }).join();
}

// A medium class whose blocks the program fills (seen filled by the page
// heap) grows within an eighth of the medium budget (kFilledMediumShare): a
// cached filled block is resident whole, one used at its start is not. With
// room for two such blocks in the eighth and sixteen in the whole budget,
// the filled class grows by two at most, a class not seen filled further.
TEST(ThreadCache, AMediumClassSeenFilledGrowsWithinAnEighthOfTheBudget) {
  BinBudget budget(16 << 10);
  std::thread([] {
    use_thread_cache();
    // Classes no other test here fills (the page heap's finding lasts).
    const size_t size = 384 << 10, other = 768 << 10;
    unsigned filled = static_cast<unsigned>(class_of_size(size));
    unsigned sparse = static_cast<unsigned>(class_of_size(other));
    ASSERT_TRUE(fill_until_seen_filled(size)) << "the class was not seen filled";
    ASSERT_FALSE((g_rt.heap.dense_medium() >> sparse) & 1);
    cache_flush_all();

    size_t saved = g_threads.medium_grow_bytes;
    g_threads.medium_grow_bytes =
        kFilledMediumShare * (sizing_medium_used() + 2 * class_size(filled));
    bursts(size, 12, 6, 64 << 10);
    bursts(other, 12, 6, 64 << 10);
    g_threads.medium_grow_bytes = saved;
    EXPECT_GT(tl_cache.bins[filled].limit, 1u) << "it grew while its share had room";
    EXPECT_LE(tl_cache.bins[filled].limit, 3u) << "by two blocks at most";
    EXPECT_GE(tl_cache.bins[sparse].limit, 4u) << "a class not seen filled grows within the whole";
    EXPECT_EQ(tl_cache.medium_grown, medium_grown_by_limits());
    cache_flush_all();
  }).join();
}

// The medium classes' budget is the process's (SLABBY_MEDIUM_GROW_BYTES,
// shared with the CPU caches' medium classes), not the thread's: a thread
// whose small budget is tiny still grows a medium class whose bursts do not
// fit, and the medium budget stops it; its growth is counted for every
// thread (g_threads.bins_medium_grown) until its bins go back to their bases.
TEST(ThreadCache, MediumClassesGrowWithinTheProcesssMediumBudget) {
  BinBudget budget(16 << 10);  // less than one medium block
  std::thread([] {
    use_thread_cache();
    uint64_t others = g_threads.bins_medium_grown.load();
    unsigned cls = static_cast<unsigned>(class_of_size(64 << 10));
    const uint32_t burst = 6;
    EXPECT_EQ(medium_bursts_last_round(cls, burst, pool_moves), 0u);
    EXPECT_GE(tl_cache.bins[cls].limit, burst);
    EXPECT_EQ(tl_cache.medium_grown, medium_grown_by_limits());
    EXPECT_EQ(g_threads.bins_medium_grown.load(), others + tl_cache.medium_grown);
    // Two blocks of room left in the medium budget: another class grows by
    // two at most, however far its bursts pass its limit.
    size_t saved = g_threads.medium_grow_bytes;
    unsigned big = static_cast<unsigned>(class_of_size(128 << 10));
    g_threads.medium_grow_bytes = sizing_medium_used() + 2 * class_size(big);
    bursts(128 << 10, 12, 6, 64 << 10);
    g_threads.medium_grow_bytes = saved;
    EXPECT_GT(tl_cache.bins[big].limit, 1u) << "it grew while there was room";
    EXPECT_LE(tl_cache.bins[big].limit, 3u) << "by two blocks at most";
    EXPECT_EQ(tl_cache.medium_grown, medium_grown_by_limits());
    EXPECT_EQ(tl_cache.grown_bytes, 0u);
    // A flush (malloc_trim's) puts every class back to its base, and the
    // budget's bytes back.
    cache_flush_all();
    EXPECT_EQ(tl_cache.medium_grown, 0u);
    EXPECT_EQ(g_threads.bins_medium_grown.load(), others);
  }).join();
}

// A program that moves on from a medium size (phases of 48, 96 ... 768 KiB
// blocks) kept what the earlier sizes grew until a background pass, while
// the page heap took new pages for the next size (bench medium-phases: 1.62
// x jemalloc's peak RSS). Now, as the heap grows, each look (every
// kMediumMissesPerLook medium misses of the thread) gives back what the
// classes nobody used at two looks in a row grew; a class in use keeps its.
// `heap_grew`: the page heap's clean pages taken across the test's misses.
void idle_medium_class_gives_back(unsigned idle, unsigned busy, uint32_t (*capacity)(unsigned),
                                  bool* heap_grew) {
  // Every cache at its base and the page heap's free pages purged, so the
  // bursts below take clean pages whatever the tests before left.
  release_all_now();
  const uint32_t burst = 6;
  // Both grow together (each used at every look).
  std::vector<void*> v(2 * burst);
  for (int round = 0; round < 16; ++round) {
    for (uint32_t i = 0; i < burst; ++i) {
      v[2 * i] = malloc_fast(class_size(idle));
      v[2 * i + 1] = malloc_fast(class_size(busy));
    }
    for (void* p : v) free_fast(p);
  }
  ASSERT_GE(capacity(idle), burst);
  ASSERT_GE(capacity(busy), burst);
  // 48 blocks of 1 MiB, twice, each beside a block of the busy class: the
  // 1 MiB class misses about a hundred times, on new slabs.
  uint64_t heap = g_central_pools[busy].heap_clean_pages_taken();
  bursts(1 << 20, 48, 2, class_size(busy));
  *heap_grew = g_central_pools[busy].heap_clean_pages_taken() > heap;
}

TEST(ThreadCache, AnIdleMediumClassGivesBackWhatItGrewWhenTheHeapGrows) {
  std::thread([] {
    use_thread_cache();
    uint64_t others = g_threads.bins_medium_grown.load();
    unsigned idle = static_cast<unsigned>(class_of_size(64 << 10));
    unsigned busy = static_cast<unsigned>(class_of_size(128 << 10));
    auto limit = [](unsigned c) -> uint32_t { return tl_cache.bins[c].limit; };
    bool grew = false;
    ASSERT_NO_FATAL_FAILURE(idle_medium_class_gives_back(idle, busy, limit, &grew));
    ASSERT_TRUE(grew) << "48 MiB of new slabs: the page heap took clean pages";
    EXPECT_EQ(limit(idle), 1u) << "nothing used it while the heap grew: back to its base";
    EXPECT_LE(bin_count(tl_cache.bins[idle]), 1u);
    EXPECT_GE(limit(busy), 6u) << "used at every look: it keeps what it grew";
    EXPECT_EQ(tl_cache.medium_grown, medium_grown_by_limits());
    EXPECT_EQ(g_threads.bins_medium_grown.load(), others + tl_cache.medium_grown);
    cache_flush_all();
  }).join();
}

// Only a class idle at two looks in a row, and only as the heap grows: a
// look while the heap took no clean pages since the last one notes what each
// class did and gives nothing back (a program of random medium sizes, a few
// blocks of each live, otherwise gave back classes it was using and took
// them again on other pages: more RSS, not less).
void given_back_only_idle_at_two_looks(uint32_t (*capacity)(unsigned)) {
  unsigned idle = static_cast<unsigned>(class_of_size(64 << 10));
  unsigned asking = static_cast<unsigned>(class_of_size(512 << 10));
  bursts(64 << 10, 6, 16);
  ASSERT_GE(capacity(idle), 6u);
  auto look = [&](bool heap_grew) {
    auto heap = static_cast<uint32_t>(g_central_pools[idle].heap_clean_pages_taken());
    tl_cache.medium_heap_seen = heap_grew ? heap - 1 : heap;
    medium_look(tl_cache, nullptr, asking);
  };
  look(true);  // notes the class's use
  look(true);  // idle at one look
  EXPECT_GE(capacity(idle), 6u) << "idle at one look only: kept";
  look(false);
  EXPECT_GE(capacity(idle), 6u) << "idle at two, but the heap did not grow: kept";
  look(true);
  EXPECT_EQ(capacity(idle), 1u) << "idle at two looks, the heap grew: given back";
}

TEST(ThreadCache, AMediumClassIsGivenBackOnlyIdleAtTwoLooksAsTheHeapGrows) {
  std::thread([] {
    use_thread_cache();
    ASSERT_NO_FATAL_FAILURE(given_back_only_idle_at_two_looks(
        [](unsigned c) -> uint32_t { return tl_cache.bins[c].limit; }));
    EXPECT_EQ(tl_cache.medium_grown, medium_grown_by_limits());
    cache_flush_all();
  }).join();
}

// Bursts of any size the budget holds stop missing once the class has grown,
// those within a transfer batch of a doubling's limit too (at 2048 blocks,
// the most a bin could hold before, 1921-2048 could settle a batch short
// of full and miss every round for good).
// Allocates `burst` blocks of 64 bytes and frees them, `rounds` times;
// returns class cls's pool moves (refills and flushes) in the last 8 rounds.
uint64_t burst_moves_in_last_8(unsigned cls, uint32_t burst, int rounds) {
  std::vector<void*> v(burst);
  uint64_t moves_last = 0;
  for (int round = 0; round < rounds; ++round) {
    uint64_t before = pool_moves(cls);
    for (uint32_t i = 0; i < burst; ++i) v[i] = malloc_fast(64);
    for (uint32_t i = 0; i < burst; ++i) free_fast(v[i]);
    if (round >= rounds - 8) moves_last += pool_moves(cls) - before;
  }
  return moves_last;
}

TEST(ThreadCache, BurstsTheBudgetHoldsStopMissingWhateverTheirSize) {
  BinBudget budget(1 << 20);
  std::thread([] {
    use_thread_cache();
    unsigned cls = size_class_of(64);
    for (uint32_t burst : {1000u, 1950u, 2000u, 2040u, 2100u, 4000u}) {
      uint64_t moves_last = burst_moves_in_last_8(cls, burst, 20);
      EXPECT_GE(tl_cache.bins[cls].limit, burst);
      EXPECT_EQ(moves_last, 0u) << "refills and flushes in the last 8 rounds of a burst of "
                                << burst << ", limit " << tl_cache.bins[cls].limit;
    }
  }).join();
}

// A burst a little larger than the budget lets the class hold moves about
// its excess through the pool each round: one or two transfer batches each
// way (where the bin's count lands after a flush decides which). Refills of
// up to half the bin (1024 blocks) took in a refill's worth more than the
// burst needed and sent it back batch by batch: 16 moves a round.
TEST(ThreadCache, ABurstJustPastWhatTheBudgetHoldsMovesItsExcessNotHalfTheBin) {
  BinBudget budget(112 * 1024);  // about 2048 blocks of 64 bytes above the base
  std::thread([] {
    use_thread_cache();
    unsigned cls = size_class_of(64);
    burst_moves_in_last_8(cls, 4000, 8);  // grows the class as far as the budget lets it
    uint32_t most = tl_cache.bins[cls].limit;
    ASSERT_LT(most, 3000u) << "the budget did not stop the class";
    EXPECT_LE(burst_moves_in_last_8(cls, most + 52, 20), 8u * 4)
        << "refills and flushes in the last 8 rounds of a burst of " << most + 52 << ", limit "
        << tl_cache.bins[cls].limit;
  }).join();
}

// A class that only runs full (every block it frees was allocated by
// another thread: a consumer) or only empty (a producer) keeps its base.
TEST(ThreadCache, AClassThatOnlyRunsFullOrOnlyEmptyDoesNotGrow) {
  BinBudget budget(1 << 20);
  std::thread([] {
    use_thread_cache();
    unsigned cls = size_class_of(200);
    uint32_t base = g_threads.bin_base[cls];
    std::vector<void*> blocks;
    for (int round = 0; round < 6; ++round) {
      ASSERT_NO_FATAL_FAILURE(take_from_pool(cls, 2 * base, &blocks));
      for (void* p : blocks) free_fast(p);
      blocks.clear();
    }
    EXPECT_EQ(tl_cache.bins[cls].limit, base);
    unsigned cls2 = size_class_of(3000);
    uint32_t base2 = g_threads.bin_base[cls2];
    for (int round = 0; round < 6; ++round)
      for (uint32_t i = 0; i < 2 * base2; ++i) blocks.push_back(malloc_fast(3000));
    EXPECT_EQ(tl_cache.bins[cls2].limit, base2);
    EXPECT_EQ(tl_cache.grown_bytes, 0u);
    for (void* p : blocks) free_fast(p);
  }).join();
}

// Together, one thread's classes grow by at most the budget, counted
// exactly, and every class stays within its most (8192 blocks).
TEST(ThreadCache, GrowthStopsAtTheThreadsBudget) {
  const size_t kBudget = 96 * 1024;
  BinBudget budget(kBudget);
  std::thread([&] {
    use_thread_cache();
    const size_t sizes[] = {16, 48, 128, 512, 1024};
    for (size_t size : sizes) {
      unsigned cls = size_class_of(size);
      std::vector<void*> v(8 * g_threads.bin_base[cls]);
      for (int round = 0; round < 6; ++round) {
        for (void*& p : v) p = malloc_fast(size);
        for (void* p : v) free_fast(p);
      }
      EXPECT_LE(tl_cache.bins[cls].limit, 8192u);
      EXPECT_LE(bin_count(tl_cache.bins[cls]), tl_cache.bins[cls].limit);
    }
    EXPECT_GT(tl_cache.grown_bytes, 0u);
    EXPECT_LE(tl_cache.grown_bytes, kBudget);
    EXPECT_EQ(tl_cache.grown_bytes, grown_by_limits());
  }).join();
}

// Each background pass advances the decay epoch; the thread's next slow path
// halves what a quiet class grew (its blocks above the new limit go to the
// pool), leaves a class that missed alone, and a flush of the cache
// (malloc_trim's) puts every class back to its base.
TEST(ThreadCache, QuietClassesShrinkAfterADecayTickAndAFlushResetsThem) {
  BinBudget budget(1 << 20);
  std::thread([] {
    use_thread_cache();
    unsigned quiet = size_class_of(64), busy = size_class_of(512), other = size_class_of(3000);
    uint32_t base = g_threads.bin_base[quiet];
    // A slow path of a third class (its bin runs empty): where the decay runs.
    std::vector<void*> held;
    auto slow_path = [&] {
      for (uint32_t i = 0; i < 2 * g_threads.bin_base[other] + 2; ++i)
        held.push_back(malloc_fast(3000));
    };
    bursts(64, 6 * base, 6);
    bursts(512, 2 * g_threads.bin_base[busy], 6);
    uint32_t grown = tl_cache.bins[quiet].limit;
    ASSERT_GE(grown, 6 * base);
    uint64_t shrinks = stats().thread_cache_shrinks;
    cache_decay_tick();  // a pass ends: both classes missed in it
    slow_path();
    EXPECT_EQ(tl_cache.bins[quiet].limit, grown);
    uint32_t busy_limit = tl_cache.bins[busy].limit;
    bursts(512, busy_limit + 8, 1);  // only `busy` misses in the next pass
    busy_limit = tl_cache.bins[busy].limit;
    cache_decay_tick();
    slow_path();
    uint32_t after = tl_cache.bins[quiet].limit;
    EXPECT_EQ(after, base + (grown - base) / 2);
    EXPECT_LE(bin_count(tl_cache.bins[quiet]), after);
    EXPECT_EQ(tl_cache.bins[busy].limit, busy_limit) << "a class that missed keeps its limit";
    EXPECT_GT(stats().thread_cache_shrinks, shrinks);
    EXPECT_EQ(tl_cache.grown_bytes, grown_by_limits());
    for (void* p : held) free_fast(p);
    cache_flush_all();
    EXPECT_EQ(tl_cache.bins[quiet].limit, base);
    EXPECT_EQ(tl_cache.bins[busy].limit, g_threads.bin_base[busy]);
    EXPECT_EQ(tl_cache.grown_bytes, 0u);
  }).join();
}

// Bursts of 128-byte blocks, 8 x the class's base live at once: each round
// runs the bin empty and full until it has grown to hold them.
void bursts_of_128(int rounds) { bursts(128, 8 * g_threads.bin_base[size_class_of(128)], rounds); }

uint64_t all_grown() { return g_threads.bins_grown.load(std::memory_order_relaxed); }

// Once the threads on bins outnumber the CPUs, each is sure of a share of
// the CPUs' growth budget (budget x cpus / threads) and may grow past it
// into what the others have not grown: threads that sit idle (here six
// parked ones, a main thread waiting in join) leave theirs to the busy one.
// Under the rule before, an even share for every live thread, this thread
// stopped at a seventh of the budget.
TEST(ThreadCache, IdleThreadsLeaveTheirShareOfTheGrowthBudgetToABusyOne) {
  const size_t kBudget = 256 * 1024;
  BinBudget budget(kBudget);
  SharedCpus cpus(1);
  std::thread([&] {
    use_thread_cache();
    ParkedThreads idle(6);
    uint64_t threads = program_threads_now();
    ASSERT_GE(threads, 8u);
    size_t share = kBudget / threads;
    ASSERT_EQ(all_grown(), tl_cache.grown_bytes) << "no other thread has grown";
    EXPECT_EQ(bins_grow_budget(tl_cache), kBudget);
    bursts_of_128(8);
    EXPECT_GT(tl_cache.grown_bytes, 4 * share) << "grew past its share of " << share;
    EXPECT_LE(tl_cache.grown_bytes, kBudget);
    EXPECT_EQ(tl_cache.grown_bytes, grown_by_limits());
    EXPECT_EQ(all_grown(), tl_cache.grown_bytes);
    cache_flush_all();
    EXPECT_EQ(all_grown(), 0u) << "a flush takes the bins back to their bases";
  }).join();
}

// Threads that grow together stay within the CPUs' budget: one that grew
// past its share into room nobody used gives back what a thread growing
// into its own share takes, at its next decays (classes that keep missing
// included), and may grow again once that thread has exited. The sum the
// budget reads (g_threads.bins_grown) follows every growth, shrink and exit.
TEST(ThreadCache, ThreadsGrowingTogetherStayWithinTheCpusBudget) {
  const size_t kBudget = 256 * 1024;
  BinBudget budget(kBudget);
  SharedCpus cpus(1);
  std::thread([&] {
    use_thread_cache();
    bursts_of_128(8);  // alone with the main thread: up to the whole budget
    size_t alone = tl_cache.grown_bytes;
    EXPECT_GT(alone, kBudget / 2);
    EXPECT_LE(alone, kBudget);
    std::mutex mu;
    std::condition_variable cv;
    bool grown = false, done = false;
    size_t other_grown = 0;
    std::thread other([&] {
      use_thread_cache();
      bursts_of_128(8);  // into its own share, past the CPUs' budget
      std::unique_lock<std::mutex> l(mu);
      other_grown = tl_cache.grown_bytes;
      grown = true;
      cv.notify_all();
      cv.wait(l, [&] { return done; });
    });
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return grown; });
    }
    uint64_t threads = program_threads_now();
    ASSERT_GE(threads, 3u);
    size_t share = kBudget / threads;
    EXPECT_GT(other_grown, share / 2) << "the other thread grew into its share";
    EXPECT_LE(other_grown, share);
    EXPECT_EQ(all_grown(), alone + other_grown);
    ASSERT_GT(all_grown(), kBudget) << "together past the CPUs' budget";
    EXPECT_LT(bins_grow_budget(tl_cache), alone);
    // A decay runs at the thread's first slow path after a tick: here the
    // first allocation of a class its bins have not held (its bursts fit).
    const size_t kFreshSizes[] = {1500, 2500, 3500, 5000, 6500, 9000, 11000, 13000};
    for (size_t fresh : kFreshSizes) {
      if (all_grown() <= kBudget) break;
      cache_decay_tick();
      free_fast(malloc_fast(fresh));
      bursts_of_128(1);
    }
    EXPECT_LE(all_grown(), kBudget);
    EXPECT_GE(tl_cache.grown_bytes, share) << "it keeps its share";
    EXPECT_EQ(tl_cache.grown_bytes, grown_by_limits());
    {
      std::lock_guard<std::mutex> g(mu);
      done = true;
    }
    cv.notify_all();
    other.join();
    // The other thread's bins closed with it: the room is back.
    EXPECT_EQ(all_grown(), tl_cache.grown_bytes);
    EXPECT_EQ(bins_grow_budget(tl_cache), kBudget);
    size_t before = tl_cache.grown_bytes;
    bursts_of_128(8);
    EXPECT_GT(tl_cache.grown_bytes, before);
    cache_flush_all();
  }).join();
}

// A thread starting while the program's threads are more than four per CPU
// gets half of each small class's base (even, at least 4 blocks), which its
// decays and resets go down to; medium classes keep theirs (none, for a
// thread that keeps them in its CPU's cache), and a thread starting before
// that point keeps the whole bases.
TEST(ThreadCache, AThreadStartingBeyondFourThreadsPerCpuGetsHalfTheBases) {
  BinBudget budget(1 << 20);
  SharedCpus cpus(1);
  unsigned small = size_class_of(64);
  ASSERT_GE(g_threads.bin_base[small], 16u);
  ASSERT_GE(program_threads_now(), 1u);
  ASSERT_LE(program_threads_now(), 3u) << "other threads are alive in this process";
  std::thread([&] {
    free_fast(malloc_fast(64));
    EXPECT_EQ(tl_cache.base_shift, 0u);
    EXPECT_EQ(tl_cache.bins[small].limit, g_threads.bin_base[small]);
  }).join();
  ParkedThreads more(4 - program_threads_now() + 1);  // five live: more than 4 x 1 CPU
  ASSERT_GE(program_threads_now(), 5u);
  std::thread([&] {
    free_fast(malloc_fast(64));
    ASSERT_FALSE(tl_cache.percpu_ok);
    EXPECT_EQ(tl_cache.base_shift, 1u);
    for (unsigned c = 1; c < kNumClasses; ++c) {
      uint32_t base = g_threads.bin_base[c];
      uint32_t want = cache_medium_on_cpu(tl_cache, c)  ? 0
                      : is_medium_class(c) || base <= 4 ? base
                                                        : std::max<uint32_t>((base / 2) & ~1u, 4);
      EXPECT_EQ(bin_base(tl_cache, c), want) << "class " << c;
      EXPECT_EQ(tl_cache.bins[c].limit, want) << "class " << c;
    }
    // Grown and reset: back to its half, not to the whole base.
    std::vector<void*> v(4 * g_threads.bin_base[small]);
    for (int round = 0; round < 6; ++round) {
      for (void*& p : v) p = malloc_fast(64);
      for (void* p : v) free_fast(p);
    }
    EXPECT_GT(tl_cache.bins[small].limit, bin_base(tl_cache, small));
    EXPECT_EQ(tl_cache.grown_bytes, grown_by_limits());
    cache_flush_all();
    EXPECT_EQ(tl_cache.bins[small].limit, bin_base(tl_cache, small));
    EXPECT_EQ(tl_cache.grown_bytes, 0u);
  }).join();
}

// slabby's background thread sleeps: it does not count towards
// SLABBY_PERCPU_THREADS.
TEST(ThreadCache, SlabbysOwnThreadsDoNotCountTowardsPerCpuThreads) {
  std::thread([] {
    thread_init();
    uint64_t saved = g_threads.percpu_threads;
    uint64_t live = __atomic_load_n(&g_threads.live, __ATOMIC_RELAXED);
    uint64_t internal = __atomic_load_n(&g_threads.internal, __ATOMIC_RELAXED);
    ThreadCache probe = {};
    probe.rseq_ok = 1;
    g_threads.percpu_threads = live - internal;  // exactly the program's threads
    bool due_now = cache_percpu_due(probe);
    g_threads.percpu_threads = live - internal + 1;
    bool due_one_more = cache_percpu_due(probe);
    g_threads.percpu_threads = saved;
    EXPECT_TRUE(due_now);
    EXPECT_FALSE(due_one_more) << "live " << live << ", internal " << internal;
  }).join();
}

// (The teardown also takes a per-CPU thread off the CPU caches: the fast
// paths test the thread's mode first, so its later calls find its bins
// closed and go to the slow path, uncached.)
TEST(ThreadCache, ThreadExitReturnsCachedBlocksAndLaterCallsNeverReopenItsBins) {
  unsigned cls = size_class_of(200);
  slabby_stats before = stats();
  void* survivor = nullptr;
  std::thread([&] {
    use_thread_cache();
    std::vector<void*> v;
    for (int i = 0; i < 300; ++i) v.push_back(malloc_fast(200));
    survivor = v.back();
    v.pop_back();
    for (void* p : v) free_fast(p);
    EXPECT_GT(bin_count(tl_cache.bins[cls]), 0u);
    // Runs after slabby's TSD destructor in the same round or a later one:
    // must not resurrect the cache.
    static pthread_key_t key;
    pthread_key_create(&key, [](void*) {
      void* q = malloc_fast(200);
      free_fast(q);
      EXPECT_EQ(bin_count(tl_cache.bins[size_class_of(200)]), 0u);
      EXPECT_EQ(tl_cache.bins[size_class_of(200)].limit, 0u);
      EXPECT_EQ(tl_cache.state, kCacheDead);
    });
    pthread_setspecific(key, &key);
  }).join();
  slabby_stats after = stats();
  // One block more handed out than taken back. Counted from the deltas, not
  // live_blocks, which is clamped at 0: tests in the same process that free
  // blocks taken straight from a pool (take_from_pool) count frees without
  // allocations in this class.
  const slabby_class_stats& b = before.classes[cls - 1];
  const slabby_class_stats& a = after.classes[cls - 1];
  EXPECT_EQ(a.allocations - b.allocations, a.frees - b.frees + 1);
  free_fast(survivor);
}

TEST(ThreadCache, DisabledCachesServeEveryCallFromThePools) {
  std::thread([] {
    use_thread_cache();
    for (unsigned c = 1; c < kNumClasses; ++c) bin_set_limit(tl_cache.bins[c], 0);  // as SLABBY_THREAD_CACHE_BYTES=0
    std::vector<void*> v;
    for (int i = 0; i < 100; ++i) v.push_back(malloc_fast(100));
    for (void* p : v) free_fast(p);
    EXPECT_EQ(bin_count(tl_cache.bins[size_class_of(100)]), 0u);
  }).join();
}

}  // namespace
}  // namespace slabby

namespace slabby {
namespace {

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof(set), &set);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

bool pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof(set), &set) == 0;
}

// Gives blocks taken from class cls's pool back to it, a batch at a time.
void give_back(unsigned cls, const std::vector<void*>& blocks) {
  for (size_t i = 0; i < blocks.size(); i += kMaxBatch) {
    uint32_t n = static_cast<uint32_t>(std::min<size_t>(kMaxBatch, blocks.size() - i));
    g_central_pools[cls].give_blocks(blocks.data() + i, n);
  }
}

// Puts the calling thread on the per-CPU caches, whatever the number of
// threads (with SLABBY_PERCPU_THREADS=0 a thread moves there only once the
// process has more than four threads per CPU and its main thread).
void use_percpu_caches() {
  thread_init();
  ASSERT_TRUE(cache_move_to_percpu());
  ASSERT_TRUE(tl_cache.percpu_ok);
}

class PerCpu : public ::testing::Test {
 protected:
  void SetUp() override {
    thread_init();
    if (!g_percpu_mode) GTEST_SKIP() << "rseq unavailable here (or a TSan build): per-thread caches";
  }
};

TEST_F(PerCpu, FreedBlocksWaitInTheCpusCacheAndComeBackFromIt) {
  std::thread([] {
    use_percpu_caches();
    int cpu = allowed_cpus()[0];
    ASSERT_TRUE(pin_to(cpu));
    ASSERT_EQ(percpu_current_cpu(), cpu);
    unsigned cls = size_class_of(300);
    std::vector<void*> v;
    for (int i = 0; i < 20; ++i) v.push_back(malloc_fast(300));
    uint64_t before[kNumClasses] = {};
    percpu_cached_blocks(before);
    for (void* p : v) free_fast(p);
    uint64_t after[kNumClasses] = {};
    percpu_cached_blocks(after);
    EXPECT_EQ(after[cls], before[cls] + 20);
    // LIFO: the last block freed on this CPU is the next one handed out.
    EXPECT_EQ(malloc_fast(300), v.back());
    free_fast(v.back());
    EXPECT_EQ(stats().cache_mode, static_cast<uint32_t>(SLABBY_CACHE_PER_CPU));
  }).join();
}

TEST_F(PerCpu, ACpusCacheNeverHoldsMoreThanItsCapacity) {
  std::thread([] {
    use_percpu_caches();
    ASSERT_TRUE(pin_to(allowed_cpus()[0]));
    unsigned cls = size_class_of(1000);
    // The capacity may grow (the allocations run the cache empty, then the
    // frees run it full), never past the class's maximum.
    uint32_t cap = percpu_max_capacity(cls);
    ASSERT_GE(cap, g_rt.cache_limit[cls]);
    std::vector<void*> v;
    for (uint32_t i = 0; i < 5 * cap; ++i) v.push_back(malloc_fast(1000));
    for (void* p : v) {
      free_fast(p);
      uint64_t cached[kNumClasses] = {};
      percpu_cached_blocks(cached);
      // Other CPUs may hold some too; this one holds at most cap.
      ASSERT_LE(cached[cls], cap * allowed_cpus().size());
    }
  }).join();
}

// The inline paths' hits are counted by the CPU regions (the inline free's
// pushes in the cursor words, the inline malloc's pops derived from them):
// the class's figures must come out exact, whichever path served each call.
TEST_F(PerCpu, EveryHitOnTheCpusCacheIsCountedExactly) {
  std::thread([] {
    use_percpu_caches();
    ASSERT_TRUE(pin_to(allowed_cpus()[0]));
    unsigned cls = size_class_of(48);
    slabby_stats before = stats();
    // Past the cache's capacity both ways (refills and flushes), then hits.
    std::vector<void*> v;
    uint32_t many = 3 * percpu_max_capacity(cls) + 7;
    for (uint32_t i = 0; i < many; ++i) v.push_back(malloc_fast(48));
    slabby_stats mid = stats();
    for (void* p : v) free_fast(p);
    for (int i = 0; i < 10000; ++i) free_fast(malloc_fast(48));
    slabby_stats after = stats();
    const slabby_class_stats& b = before.classes[cls - 1];
    EXPECT_EQ(mid.classes[cls - 1].allocations - b.allocations, many);
    EXPECT_EQ(mid.classes[cls - 1].live_blocks - b.live_blocks, many);
    EXPECT_EQ(after.classes[cls - 1].allocations - b.allocations, many + 10000);
    EXPECT_EQ(after.classes[cls - 1].frees - b.frees, many + 10000);
    EXPECT_EQ(after.classes[cls - 1].live_blocks, b.live_blocks);
  }).join();
}

// The inline sections run on every thread, so one whose rseq area is not
// registered must find the sentinel (its cpu_id is -1), never a CPU's region
// it could corrupt unprotected: it stays on its own bins. The thread drops
// its area's registration before its first call.
TEST_F(PerCpu, AThreadWithoutARegisteredAreaNeverTouchesTheCpuCaches) {
  std::thread([] {
    auto* area = reinterpret_cast<struct rseq*>(static_cast<char*>(__builtin_thread_pointer()) +
                                                g_percpu.rseq_offset);
    // The length must be the one registered: glibc's area size, or the ABI's 32.
    long r = syscall(SYS_rseq, area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
    if (r != 0) r = syscall(SYS_rseq, area, sizeof(struct rseq), RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
    if (r != 0) GTEST_SKIP() << "cannot unregister this thread's rseq area: " << strerror(errno);
    ASSERT_LT(static_cast<int32_t>(area->cpu_id), 0);
    unsigned cls = size_class_of(400);
    uint64_t before[kNumClasses] = {};
    percpu_cached_blocks(before);
    std::vector<void*> v;
    for (int i = 0; i < 50; ++i) v.push_back(malloc_fast(400));
    for (void* p : v) free_fast(p);
    uint64_t after[kNumClasses] = {};
    percpu_cached_blocks(after);
    EXPECT_EQ(after[cls], before[cls]) << "a CPU's cache changed";
    EXPECT_FALSE(tl_cache.rseq_ok);
    EXPECT_FALSE(tl_cache.percpu_ok);
    EXPECT_GT(bin_count(tl_cache.bins[cls]), 0u) << "the frees went to the thread's bin";
    // Its medium blocks too: it has no CPU cache to keep them in.
    unsigned medium = medium_class_of(200 * 1024);
    ASSERT_TRUE(is_medium_class(medium));
    void* m = malloc_fast(200 * 1024);
    free_fast(m);
    EXPECT_EQ(bin_count(tl_cache.bins[medium]), 1u);
    EXPECT_EQ(malloc_fast(200 * 1024), m);
    free_fast(m);
  }).join();
}

// A thread on its bins (rseq registered, the per-thread default below the
// thread count) takes and gives blocks through its bins only, even when a
// CPU's cache holds blocks of the class: its fast paths test its mode before
// any section. When they ran the CPU's section first, bin threads drained
// and refilled the CPU caches at random beside their bins, the caches grew,
// and thread-churn carved 40% more slabs (docs/benchmarks.md, "The mode
// tested first").
TEST_F(PerCpu, AThreadOnItsBinsNeverTouchesTheCpuCachesFromItsFastPaths) {
  int cpu = allowed_cpus()[0];
  unsigned cls = size_class_of(300);
  std::thread([cpu] {
    use_percpu_caches();
    ASSERT_TRUE(pin_to(cpu));
    std::vector<void*> v;
    for (int i = 0; i < 20; ++i) v.push_back(malloc_fast(300));
    for (void* p : v) free_fast(p);  // into the CPU's cache
  }).join();
  uint64_t saved = g_threads.percpu_threads;
  g_threads.percpu_threads = __atomic_load_n(&g_threads.live, __ATOMIC_RELAXED) + 8;
  std::thread([cpu, cls] {
    thread_init();
    ASSERT_TRUE(tl_cache.rseq_ok);
    ASSERT_FALSE(tl_cache.percpu_ok) << "the thread started on the CPU caches";
    ASSERT_TRUE(pin_to(cpu));
    uint64_t before[kNumClasses] = {};
    percpu_cached_blocks(before);
    ASSERT_GT(before[cls], 0u) << "the CPU's cache holds none of the class";
    std::vector<void*> v;
    for (int i = 0; i < 50; ++i) v.push_back(malloc_fast(300));
    for (void* p : v) free_fast(p);
    for (int i = 0; i < 1000; ++i) free_fast(malloc_fast(300));
    uint64_t after[kNumClasses] = {};
    percpu_cached_blocks(after);
    EXPECT_EQ(after[cls], before[cls]) << "a CPU's cache changed";
    EXPECT_FALSE(tl_cache.percpu_ok);
    EXPECT_GT(bin_count(tl_cache.bins[cls]), 0u) << "the frees went to the thread's bin";
  }).join();
  g_threads.percpu_threads = saved;
}

// A thread on its bins keeps no medium block in them: its medium calls go
// through its CPU's cache (limit 0, so both fast paths miss into the slow
// paths that do), so the medium blocks the process holds cached are bounded
// by the CPUs, not the threads. One block of each of the 20 medium classes
// is 6.3 MiB: with 8 threads on their bins, threaded_workload held 180 MiB
// at its peak against 135 on the CPU caches, 145 after this
// (docs/benchmarks.md, "Threads on their bins beyond the CPUs"). Every
// call is counted once.
TEST_F(PerCpu, ABinThreadsMediumBlocksWaitInItsCpusCacheNotInItsBins) {
  uint64_t saved = g_threads.percpu_threads;
  g_threads.percpu_threads = __atomic_load_n(&g_threads.live, __ATOMIC_RELAXED) + 8;
  std::thread([] {
    thread_init();
    ASSERT_TRUE(tl_cache.rseq_ok);
    ASSERT_FALSE(tl_cache.percpu_ok) << "the thread started on the CPU caches";
    ASSERT_TRUE(pin_to(allowed_cpus()[0]));
    unsigned cls = medium_class_of(200 * 1024);
    ASSERT_TRUE(is_medium_class(cls));
    EXPECT_EQ(tl_cache.bins[cls].limit, 0u);
    EXPECT_GT(tl_cache.bins[size_class_of(300)].limit, 0u) << "small classes keep their bins";
    slabby_stats before_stats = stats();
    void* p = malloc_fast(200 * 1024);
    ASSERT_NE(p, nullptr);
    uint64_t before[kNumClasses] = {};
    percpu_cached_blocks(before);  // the cache has room for p now (it may have handed out p)
    free_fast(p);
    uint64_t after[kNumClasses] = {};
    percpu_cached_blocks(after);
    EXPECT_EQ(after[cls], before[cls] + 1) << "the block is not in the CPU's cache";
    EXPECT_EQ(bin_count(tl_cache.bins[cls]), 0u);
    EXPECT_EQ(malloc_fast(200 * 1024), p) << "the CPU's cache did not hand it back";
    free_fast(p);
    slabby_stats after_stats = stats();
    const slabby_class_stats& b = before_stats.classes[cls - 1];
    const slabby_class_stats& a = after_stats.classes[cls - 1];
    EXPECT_EQ(a.allocations - b.allocations, 2u);
    EXPECT_EQ(a.frees - b.frees, 2u);
    EXPECT_EQ(a.live_blocks, b.live_blocks);
    EXPECT_FALSE(tl_cache.percpu_ok);
  }).join();
  g_threads.percpu_threads = saved;
}

// ... until the class misses often (kMediumMissesToGrow in a decay epoch):
// then it grows a bin of its own, from 0 blocks, doubling, and its blocks
// take the inline paths the small ones take (a program mixing small and
// medium sizes otherwise sent every other free down the slow path's branch).
// A flush gives the bin back (limit 0: the CPU's cache again).
TEST_F(PerCpu, ABinThreadsBusyMediumClassGrowsABinOfItsOwn) {
  uint64_t saved = g_threads.percpu_threads;
  g_threads.percpu_threads = __atomic_load_n(&g_threads.live, __ATOMIC_RELAXED) + 8;
  std::thread([] {
    thread_init();
    ASSERT_TRUE(tl_cache.rseq_ok);
    ASSERT_FALSE(tl_cache.percpu_ok) << "the thread started on the CPU caches";
    ASSERT_TRUE(pin_to(allowed_cpus()[0]));
    unsigned cls = static_cast<unsigned>(class_of_size(64 << 10));
    const Bin& b = tl_cache.bins[cls];
    ASSERT_EQ(b.limit, 0u);
    ASSERT_EQ(bin_base(tl_cache, cls), 0u);
    uint64_t others = g_threads.bins_medium_grown.load();
    const uint32_t burst = 6;
    cache_decay_tick();  // a new epoch: its count starts at this thread's next slow path
    medium_bursts_last_round(cls, burst, pool_moves, 4);  // about 44 misses
    EXPECT_EQ(b.limit, 0u) << "a few misses a second: its blocks stay in the CPU's cache";
    medium_bursts_last_round(cls, burst, pool_moves);
    EXPECT_GE(b.limit, burst) << "grown from 0, doubling";
    EXPECT_LE(b.limit, 8u);
    EXPECT_EQ(tl_cache.medium_grown, size_t{b.limit} * class_size(cls));
    EXPECT_EQ(g_threads.bins_medium_grown.load(), others + tl_cache.medium_grown);
    // A round now goes through the bin alone: the CPU's cache and the pool
    // see none of it.
    uint64_t before[kNumClasses] = {};
    percpu_cached_blocks(before);
    uint64_t moves = pool_moves(cls);
    std::vector<void*> v(burst);
    for (void*& p : v) p = malloc_fast(64 << 10);
    EXPECT_EQ(bin_count(b), 0u);
    for (void* p : v) free_fast(p);
    EXPECT_EQ(bin_count(b), burst);
    uint64_t after[kNumClasses] = {};
    percpu_cached_blocks(after);
    EXPECT_EQ(after[cls], before[cls]);
    EXPECT_EQ(pool_moves(cls), moves);
    cache_flush_all();
    EXPECT_EQ(b.limit, 0u);
    EXPECT_EQ(bin_count(b), 0u);
    EXPECT_EQ(tl_cache.medium_grown, 0u);
    EXPECT_EQ(g_threads.bins_medium_grown.load(), others);
  }).join();
  g_threads.percpu_threads = saved;
}

// The refill and flush sections: push_n pushes what fits (the rest is the
// caller's), pop_n pops the top ones, in order, and both miss cleanly.
TEST_F(PerCpu, BulkSectionsMoveWhatFitsInOrder) {
  std::thread([] {
    use_percpu_caches();
    ASSERT_TRUE(pin_to(allowed_cpus()[0]));
    unsigned cls = size_class_of(700);
    // This CPU's cache of the class: created (a block through it), then emptied.
    free_fast(malloc_fast(700));
    uint32_t cap = percpu_capacity(allowed_cpus()[0], cls);
    ASSERT_GE(cap, g_rt.cache_limit[cls]);
    void* drained[kMaxBatch];
    std::vector<void*> held;
    for (uint32_t n; (n = percpu_pop_n(cls, drained, kMaxBatch)) > 0;)
      held.insert(held.end(), drained, drained + n);
    void* none[1];
    EXPECT_EQ(percpu_pop_n(cls, none, 1), 0u) << "an empty cache misses";
    // cap + 3 distinct blocks of the class, from the pool.
    std::vector<void*> v;
    ASSERT_NO_FATAL_FAILURE(take_from_pool(cls, cap + 3, &v));
    v.resize(cap + 3);
    uint32_t first = percpu_push_n(cls, v.data(), 2);
    EXPECT_EQ(first, 2u);
    uint32_t rest = percpu_push_n(cls, v.data() + 2, cap + 1);
    EXPECT_EQ(rest, cap - 2) << "only what fits";
    EXPECT_EQ(percpu_push_n(cls, v.data() + cap, 1), 0u) << "a full cache misses";
    // The top three are the last three pushed, handed back in push order.
    void* top[3];
    ASSERT_EQ(percpu_pop_n(cls, top, 3), 3u);
    EXPECT_EQ(top[0], v[cap - 3]);
    EXPECT_EQ(top[1], v[cap - 2]);
    EXPECT_EQ(top[2], v[cap - 1]);
    // A single pop sees the cache as the bulk pop left it.
    EXPECT_EQ(percpu_pop(cls), v[cap - 4]);
    std::vector<void*> out(cap);
    EXPECT_EQ(percpu_pop_n(cls, out.data(), cap), cap - 4);
    for (uint32_t i = 0; i < cap - 4; ++i) EXPECT_EQ(out[i], v[i]) << i;
    g_central_pools[cls].give_blocks(v.data(), static_cast<uint32_t>(v.size()));
    give_back(cls, held);
  }).join();
}

// A pop prefetches the slot under the block it hands out (percpu_cache.h):
// when it empties its class, that is the class's pad, which must hold an
// address in the region from the class's first miss on, whatever the
// sections did meanwhile. A stale or zero word there cost the mixed-size
// loop 1.14-1.26 x its time (a page walk per prefetch; docs/benchmarks.md,
// "Prefetching the next block").
TEST_F(PerCpu, EveryClassHasAPadBelowItsSlotsThatNoSectionWrites) {
  std::thread([] {
    use_percpu_caches();
    int cpu = allowed_cpus()[0];
    ASSERT_TRUE(pin_to(cpu));
    unsigned cls = size_class_of(48);
    free_fast(malloc_fast(48));  // this CPU's region exists
    char* region = g_percpu.regions[cpu];
    const SlotRange* ranges = region_ranges(region);
    const uint64_t armed = reinterpret_cast<uint64_t>(region);
    auto pad = [&](unsigned c) { return region_slots(region)[ranges[c].begin - 1]; };
    // Every pad sits right above the class below's largest range, and holds
    // 0 (no miss of its class here yet) or the region's address.
    auto pads_sound = [&] {
      for (unsigned c = 1; c < kNumClasses; ++c)
        if (ranges[c].begin == 0 || g_region_layout.max_end[c - 1] != ranges[c].begin - 1 ||
            (pad(c) != 0 && pad(c) != armed))
          return false;
      return true;
    };
    EXPECT_TRUE(pads_sound());
    // Empty the class here; the next malloc misses and arms its pad.
    void* drained[kMaxBatch];
    std::vector<void*> held;
    for (uint32_t n; (n = percpu_pop_n(cls, drained, kMaxBatch)) > 0;)
      held.insert(held.end(), drained, drained + n);
    free_fast(malloc_fast(48));
    EXPECT_EQ(pad(cls), armed);
    for (uint32_t n; (n = percpu_pop_n(cls, drained, kMaxBatch)) > 0;)
      held.insert(held.end(), drained, drained + n);
    // Fill the class to its largest capacity (pushing grows it where the
    // budget allows), up to the next class's pad, then empty it pop by pop.
    uint32_t max = percpu_max_capacity(cls);
    const uint64_t next_pad = pad(cls + 1);
    std::vector<void*> v;
    while (v.size() < max + 8) {
      void* b[kMaxBatch];
      uint32_t got = g_central_pools[cls].take_blocks(b, kMaxBatch, 0);
      ASSERT_GT(got, 0u);
      v.insert(v.end(), b, b + got);
    }
    uint32_t pushed = 0;
    for (uint32_t i = 0; i < v.size(); ++i) {
      if (percpu_push(cls, v[i])) {
        ++pushed;
      } else if (sizing_note_miss(region, cls, kMissFull) || sizing_note_miss(region, cls, kMissEmpty)) {
        --i;  // grown: the same block again
      }
    }
    EXPECT_EQ(pushed, percpu_capacity(cpu, cls));
    EXPECT_TRUE(pads_sound());
    std::vector<void*> back;
    while (void* p = percpu_pop(cls)) back.push_back(p);  // the last one reads the pad
    EXPECT_EQ(back.size(), pushed);
    EXPECT_EQ(pad(cls), armed);
    EXPECT_EQ(pad(cls + 1), next_pad) << "a class filled to its largest range leaves the next pad alone";
    EXPECT_TRUE(pads_sound());
    g_central_pools[cls].give_blocks(v.data(), static_cast<uint32_t>(v.size()));
    give_back(cls, held);
  }).join();
}

TEST_F(PerCpu, DrainingIdleCpusEmptiesTheirCachesIntoThePools) {
  std::thread([] {
    use_percpu_caches();
    ASSERT_TRUE(pin_to(allowed_cpus()[0]));
    std::vector<void*> v;
    for (int i = 0; i < 50; ++i) v.push_back(malloc_fast(700));
    for (void* p : v) free_fast(p);
    uint64_t cached[kNumClasses] = {};
    percpu_cached_blocks(cached);
    ASSERT_GT(cached[size_class_of(700)], 0u);
    slabby_stats before = stats();
    EXPECT_GT(percpu_drain_idle(/*all=*/true), 0u);
    uint64_t after[kNumClasses] = {};
    percpu_cached_blocks(after);
    for (unsigned c = 1; c < kNumClasses; ++c) EXPECT_EQ(after[c], 0u) << "class " << c;
    // Drained blocks are free blocks in the pools now, not lost.
    EXPECT_EQ(stats().current_allocations, before.current_allocations);
    // A second pass finds the CPUs idle (no misses since) and nothing to do.
    EXPECT_EQ(percpu_drain_idle(false), 0u);
  }).join();
}

// Capacities that follow demand (cache/percpu_sizing.cc).
uint64_t class_misses(unsigned cls) {
  slabby_stats s = stats();
  return s.classes[cls - 1].refills + s.classes[cls - 1].flushes;
}

// Bursts of more live blocks than the cache holds: each round runs it empty
// (allocating), then full (freeing), so the class grows, doubling, until a
// whole burst fits and a round needs the pool no more.
TEST_F(PerCpu, AClassWhoseBurstsDoNotFitGrowsUntilTheyDo) {
  std::thread([] {
    use_percpu_caches();
    int cpu = allowed_cpus()[0];
    ASSERT_TRUE(pin_to(cpu));
    percpu_drain_idle(/*all=*/true);  // from the base capacities, whatever ran before
    unsigned cls = size_class_of(64);
    uint32_t base = g_rt.cache_limit[cls];
    uint32_t max = percpu_max_capacity(cls);
    ASSERT_GE(max, 4 * base) << "64-byte blocks may grow (SLABBY_PERCPU_GROW_BYTES=1M)";
    const uint32_t burst = 3 * base;  // fits only after two doublings
    std::vector<void*> v(burst);
    uint64_t grows = stats().cpu_cache_grows;
    uint64_t misses_last = 0;
    for (int round = 0; round < 8; ++round) {
      uint64_t before = class_misses(cls);
      for (uint32_t i = 0; i < burst; ++i) {
        v[i] = malloc_fast(64);
        memset(v[i], round, 64);
      }
      for (uint32_t i = 0; i < burst; ++i) free_fast(v[i]);
      misses_last = class_misses(cls) - before;
    }
    uint32_t cap = percpu_capacity(cpu, cls);
    EXPECT_GE(cap, burst);
    EXPECT_LE(cap, max);
    EXPECT_GT(stats().cpu_cache_grows, grows);
    EXPECT_EQ(misses_last, 0u) << "the last burst came from and went back to the CPU's cache";
    EXPECT_GE(stats().cpu_cache_capacity_bytes, uint64_t{cap} * class_size(cls));
  }).join();
}

// A medium class too, from its base of one block (64 KiB blocks, within the
// medium classes' own budget, SLABBY_MEDIUM_GROW_BYTES).
TEST_F(PerCpu, AMediumClassWhoseBurstsDoNotFitGrowsUntilTheyDo) {
  std::thread([] {
    use_percpu_caches();
    int cpu = allowed_cpus()[0];
    ASSERT_TRUE(pin_to(cpu));
    percpu_drain_idle(/*all=*/true);  // from the base capacities, whatever ran before
    unsigned cls = static_cast<unsigned>(class_of_size(64 << 10));
    ASSERT_TRUE(is_medium_class(cls));
    ASSERT_EQ(g_rt.cache_limit[cls], 1u);
    ASSERT_GE(percpu_max_capacity(cls), 8u)
        << "medium classes may grow (SLABBY_MEDIUM_GROW_BYTES, 96M by default)";
    const uint32_t burst = 6;
    // A class that misses rarely keeps its one block: four rounds are about
    // 44 misses, fewer than kMediumMissesToGrow since the last pass.
    medium_bursts_last_round(cls, burst, class_misses, 4);
    EXPECT_EQ(percpu_capacity(cpu, cls), 1u) << "a few misses a second cost less than the blocks";
    percpu_drain_idle(false);  // a pass starts a new count
    medium_bursts_last_round(cls, burst, class_misses, 4);
    EXPECT_EQ(percpu_capacity(cpu, cls), 1u) << "the count starts again at each pass";
    uint64_t misses_last = medium_bursts_last_round(cls, burst, class_misses);
    uint32_t cap = percpu_capacity(cpu, cls);
    EXPECT_GE(cap, burst);
    EXPECT_LE(cap, 8u) << "doubling stops once the burst fits";
    EXPECT_EQ(misses_last, 0u) << "the last burst came from and went back to the CPU's cache";
  }).join();
}

// A class that only ever runs full (every free remote: the producer's CPU of
// a producer/consumer pair) or only empty keeps its base capacity: more room
// would hold blocks its CPU never reuses.
TEST_F(PerCpu, AClassThatOnlyRunsFullOrOnlyEmptyDoesNotGrow) {
  std::thread([] {
    use_percpu_caches();
    int cpu = allowed_cpus()[0];
    ASSERT_TRUE(pin_to(cpu));
    percpu_drain_idle(/*all=*/true);  // from the base capacities, whatever ran before
    unsigned cls = size_class_of(200);
    uint32_t base = g_rt.cache_limit[cls];
    // Blocks allocated elsewhere (straight from the pool), freed here:
    // this CPU's cache only ever runs full.
    std::vector<void*> blocks;
    for (int round = 0; round < 6; ++round) {
      ASSERT_NO_FATAL_FAILURE(take_from_pool(cls, 2 * base, &blocks));
      for (void* p : blocks) free_fast(p);
      blocks.clear();
    }
    EXPECT_EQ(percpu_capacity(cpu, cls), base);
    // Allocated here and never freed here: it only runs empty.
    unsigned cls2 = size_class_of(3000);
    uint32_t base2 = g_rt.cache_limit[cls2];
    for (int round = 0; round < 6; ++round) {
      for (uint32_t i = 0; i < 2 * base2; ++i) blocks.push_back(malloc_fast(3000));
    }
    EXPECT_EQ(percpu_capacity(cpu, cls2), base2);
    give_back(cls2, blocks);
  }).join();
}

// Bursts of eight small classes on this CPU, far more than its growth
// budget holds if all grew: *grown, the bytes of capacity they grew by.
// 2 KiB blocks: 32 base, may grow by 512 (1 MiB) up to the 2048-slot cap,
// but every class together may not pass the budget. Eight classes from
// 1 KiB to 4 KiB, bursts of 600 each: far more than 1 MiB if all grew.
void spend_the_cpus_budget(int cpu, size_t* grown) {
  const size_t sizes[] = {1024, 1280, 1536, 1792, 2048, 2560, 3072, 4096};
  std::vector<void*> v;
  for (int round = 0; round < 6; ++round) {
    for (size_t n : sizes)
      for (int i = 0; i < 600; ++i) v.push_back(malloc_fast(n));
    for (void* p : v) free_fast(p);
    v.clear();
  }
  *grown = 0;
  for (size_t n : sizes) {
    unsigned c = size_class_of(n);
    uint32_t cap = percpu_capacity(cpu, c);
    ASSERT_GE(cap, g_rt.cache_limit[c]);
    *grown += size_t{cap - g_rt.cache_limit[c]} * class_size(c);
  }
}

// The budget: together, a CPU's classes grow by at most
// SLABBY_PERCPU_GROW_BYTES (1 MiB by default) of capacity.
TEST_F(PerCpu, GrowthStopsAtTheCpusBudget) {
  std::thread([] {
    use_percpu_caches();
    int cpu = allowed_cpus()[0];
    ASSERT_TRUE(pin_to(cpu));
    percpu_drain_idle(/*all=*/true);  // the whole budget free, whatever ran before
    size_t grown = 0;
    ASSERT_NO_FATAL_FAILURE(spend_the_cpus_budget(cpu, &grown));
    EXPECT_GT(grown, 0u);
    EXPECT_LE(grown, g_rt.config.config.percpu_grow_bytes);
  }).join();
}

// Medium classes grow within a budget of their own, for every CPU together
// (SLABBY_MEDIUM_GROW_BYTES): a CPU whose small classes spent theirs still
// grows a medium class whose bursts do not fit, and the medium budget stops
// medium classes, whatever is left of the small one. Each background pass
// takes the budget's use exact again.
TEST_F(PerCpu, MediumClassesGrowWithinABudgetOfTheirOwnForEveryCpu) {
  std::thread([] {
    use_percpu_caches();
    int cpu = allowed_cpus()[0];
    ASSERT_TRUE(pin_to(cpu));
    percpu_drain_idle(/*all=*/true);  // every class of every CPU at its base
    EXPECT_EQ(sizing_medium_hint(), 0u) << "no medium class above its base";
    // The one budget, from SLABBY_MEDIUM_GROW_BYTES, for the CPUs and the bins.
    EXPECT_EQ(g_region_layout.medium_grow_bytes, g_rt.config.config.medium_grow_bytes);
    EXPECT_EQ(g_threads.medium_grow_bytes, g_rt.config.config.medium_grow_bytes);
    // The small classes spend this CPU's budget (as GrowthStopsAtTheCpusBudget).
    size_t small = 0;
    ASSERT_NO_FATAL_FAILURE(spend_the_cpus_budget(cpu, &small));
    const size_t budget = g_rt.config.config.percpu_grow_bytes;
    ASSERT_GT(small + class_size(size_class_of(4096)), budget) << "the small budget is spent";
    // A medium class grows all the same, from its own budget.
    unsigned cls = static_cast<unsigned>(class_of_size(64 << 10));
    const uint32_t burst = 24;  // 1.5 MiB of 64 KiB blocks: more than the whole small budget
    EXPECT_EQ(medium_bursts_last_round(cls, burst, class_misses), 0u)
        << "the last burst came from and went back to the CPU's cache";
    uint32_t cap = percpu_capacity(cpu, cls);
    EXPECT_GE(cap, burst);
    EXPECT_GE(sizing_medium_hint(), size_t{cap - 1} * class_size(cls)) << "the grants are counted";
    // With the medium budget two blocks from spent, another medium class
    // grows by two blocks at most, however far its bursts pass its capacity.
    size_t saved = g_region_layout.medium_grow_bytes;
    unsigned big = static_cast<unsigned>(class_of_size(128 << 10));
    g_region_layout.medium_grow_bytes = sizing_medium_hint() + 2 * class_size(big);
    bursts(128 << 10, 12, 6, 64 << 10);
    EXPECT_GT(percpu_capacity(cpu, big), 1u) << "it grew while there was room";
    EXPECT_LE(percpu_capacity(cpu, big), 3u) << "by two blocks at most";
    g_region_layout.medium_grow_bytes = saved;
    // A pass takes the use exact: here every class back to its base.
    percpu_drain_idle(/*all=*/true);
    EXPECT_EQ(percpu_capacity(cpu, cls), 1u);
    EXPECT_EQ(sizing_medium_hint(), 0u);
  }).join();
}

// A medium class seen filled grows within an eighth of the medium budget on
// the CPU caches too (ThreadCache.AMediumClassSeenFilledGrowsWithinAnEighth-
// OfTheBudget), a class not seen filled within the whole.
TEST_F(PerCpu, AMediumClassSeenFilledGrowsWithinAnEighthOfTheBudget) {
  std::thread([] {
    use_percpu_caches();
    int cpu = allowed_cpus()[0];
    ASSERT_TRUE(pin_to(cpu));
    const size_t size = 384 << 10, other = 768 << 10;
    unsigned filled = static_cast<unsigned>(class_of_size(size));
    unsigned sparse = static_cast<unsigned>(class_of_size(other));
    ASSERT_TRUE(fill_until_seen_filled(size)) << "the class was not seen filled";
    ASSERT_FALSE((g_rt.heap.dense_medium() >> sparse) & 1);
    percpu_drain_idle(/*all=*/true);  // every class of every CPU at its base
    size_t saved = g_region_layout.medium_grow_bytes;
    g_region_layout.medium_grow_bytes =
        kFilledMediumShare * (sizing_medium_used() + 2 * class_size(filled));
    bursts(size, 12, 6, 64 << 10);
    bursts(other, 12, 6, 64 << 10);
    g_region_layout.medium_grow_bytes = saved;
    EXPECT_GT(percpu_capacity(cpu, filled), 1u) << "it grew while its share had room";
    EXPECT_LE(percpu_capacity(cpu, filled), 3u) << "by two blocks at most";
    EXPECT_GE(percpu_capacity(cpu, sparse), 4u) << "a class not seen filled grows within the whole";
    percpu_drain_idle(/*all=*/true);
  }).join();
}

// The same on a CPU's cache (idle_medium_class_gives_back above).
TEST_F(PerCpu, AnIdleMediumClassGivesBackWhatItGrewWhenTheHeapGrows) {
  std::thread([] {
    use_percpu_caches();
    static int cpu = allowed_cpus()[0];
    ASSERT_TRUE(pin_to(cpu));
    unsigned idle = static_cast<unsigned>(class_of_size(64 << 10));
    unsigned busy = static_cast<unsigned>(class_of_size(128 << 10));
    auto capacity = [](unsigned c) { return percpu_capacity(cpu, c); };
    bool grew = false;
    ASSERT_NO_FATAL_FAILURE(idle_medium_class_gives_back(idle, busy, capacity, &grew));
    ASSERT_TRUE(grew) << "48 MiB of new slabs: the page heap took clean pages";
    EXPECT_EQ(capacity(idle), 1u) << "nothing used it while the heap grew: back to its base";
    EXPECT_GE(capacity(busy), 6u) << "used at every look: it keeps what it grew";
    // Every class of every CPU started at its base (release_all_now): the
    // hint holds what the busy and the 1 MiB classes grew, what the idle one
    // grew taken off again.
    unsigned big = static_cast<unsigned>(class_of_size(1 << 20));
    EXPECT_EQ(sizing_medium_hint(), size_t{capacity(busy) - 1} * class_size(busy) +
                                        size_t{capacity(big) - 1} * class_size(big))
        << "what was given back came off the hint";
    percpu_drain_idle(/*all=*/true);
  }).join();
}

TEST_F(PerCpu, AMediumClassIsGivenBackOnlyIdleAtTwoLooksAsTheHeapGrows) {
  std::thread([] {
    use_percpu_caches();
    static int cpu = allowed_cpus()[0];
    ASSERT_TRUE(pin_to(cpu));
    percpu_drain_idle(/*all=*/true);  // every class of every CPU at its base
    ASSERT_NO_FATAL_FAILURE(
        given_back_only_idle_at_two_looks([](unsigned c) { return percpu_capacity(cpu, c); }));
    percpu_drain_idle(/*all=*/true);
  }).join();
}

// Memory follows demand down: a pass of the background drainer halves what
// a quiet class grew (its blocks above the new capacity go to the pools),
// and an idle CPU's classes go back to their base.
TEST_F(PerCpu, QuietClassesShrinkBackAndIdleCpusReturnToTheirBase) {
  std::thread([] {
    use_percpu_caches();
    int cpu = allowed_cpus()[0];
    ASSERT_TRUE(pin_to(cpu));
    // Every class back to its base first: a test before this one in the
    // same process may have spent this CPU's growth budget.
    percpu_drain_idle(/*all=*/true);
    unsigned cls = size_class_of(96);
    uint32_t base = g_rt.cache_limit[cls];
    std::vector<void*> v(6 * base);
    for (int round = 0; round < 6; ++round) {
      for (void*& p : v) p = malloc_fast(96);
      for (void* p : v) free_fast(p);
    }
    uint32_t grown = percpu_capacity(cpu, cls);
    ASSERT_GE(grown, 4 * base);
    uint64_t cached[kNumClasses] = {};
    percpu_cached_blocks(cached);
    // More than the halved capacity below holds, so the pass has blocks to
    // move (the burst itself, not what the refills happened to leave over).
    ASSERT_GT(cached[cls], base + (grown - base) / 2) << "the last burst waits in the cache";
    uint64_t shrinks = stats().cpu_cache_shrinks;
    slabby_stats before = stats();
    // The first pass sets the baseline (the class missed since the last
    // one, so it keeps its capacity). Then refills of another class keep the
    // CPU busy while this class stays quiet until the next pass.
    percpu_drain_idle(false);
    ASSERT_EQ(percpu_capacity(cpu, cls), grown);
    std::vector<void*> other;
    for (int i = 0; i < 12; ++i) other.push_back(malloc_fast(20000));
    for (void* p : other) free_fast(p);
    uint64_t moved = percpu_drain_idle(false);
    uint32_t halved = percpu_capacity(cpu, cls);
    EXPECT_EQ(halved, base + (grown - base) / 2);
    uint64_t after[kNumClasses] = {};
    percpu_cached_blocks(after);
    EXPECT_LE(after[cls], halved);
    EXPECT_GT(moved, 0u);
    EXPECT_GT(stats().cpu_cache_shrinks, shrinks);
    EXPECT_EQ(stats().current_allocations, before.current_allocations) << "no block lost";
    // Draining every CPU (malloc_trim) puts every class back to its base.
    percpu_drain_idle(/*all=*/true);
    EXPECT_EQ(percpu_capacity(cpu, cls), base);
    std::fill(std::begin(after), std::end(after), 0);
    percpu_cached_blocks(after);
    EXPECT_EQ(after[cls], 0u);
  }).join();
}

// malloc_trim empties the other CPUs' caches (by running on each) at most
// once per decay period; in between only the calling CPU's. slabby_purge
// (release_all_now) always empties them all.
TEST_F(PerCpu, MallocTrimVisitsTheOtherCpusAtMostOncePerDecayPeriod) {
  std::vector<int> cpus = allowed_cpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs";
  std::thread([&] {
    use_percpu_caches();
    unsigned cls = size_class_of(300);
    auto fill_cache_of = [&](int cpu) {  // then back on the first CPU
      ASSERT_TRUE(pin_to(cpu));
      std::vector<void*> v;
      for (int i = 0; i < 20; ++i) v.push_back(malloc_fast(300));
      for (void* p : v) free_fast(p);
      ASSERT_TRUE(pin_to(cpus[0]));
    };
    auto cached = [&] {
      uint64_t c[kNumClasses] = {};
      percpu_cached_blocks(c);
      return c[cls];
    };
    uint64_t period = std::max<uint64_t>(100, g_rt.config.config.decay_ms);
    uint64_t t = os::now_ms() + 1000 * period;  // past any earlier trim's period
    fill_cache_of(cpus[1]);
    release_for_trim(t);
    EXPECT_EQ(cached(), 0u);
    fill_cache_of(cpus[1]);
    release_for_trim(t + period - 1);
    EXPECT_GE(cached(), 20u) << "the other CPU's cache is left until the period is over";
    release_for_trim(t + period);
    EXPECT_EQ(cached(), 0u);
    fill_cache_of(cpus[1]);
    release_all_now();
    EXPECT_EQ(cached(), 0u);
  }).join();
}

// Threads are moved between CPUs in the middle of their allocate/free loops;
// contents stay intact and every block is accounted for at the end.
TEST_F(PerCpu, MigrationBetweenCpusLosesAndCorruptsNothing) {
  std::vector<int> cpus = allowed_cpus();
  slabby_stats before = stats();
  constexpr int kThreads = 4;
  std::atomic<bool> bad{false};
  std::mutex mu;
  std::vector<uint64_t*> handoff;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      use_percpu_caches();
      std::mt19937 rng(100 + t);
      std::vector<std::pair<uint64_t*, size_t>> mine;
      for (int i = 0; i < 30000; ++i) {
        if (i % 500 == 0) pin_to(cpus[rng() % cpus.size()]);
        if (mine.size() < 200 && rng() % 3 != 0) {
          size_t words = 2 + rng() % 60;
          auto* p = static_cast<uint64_t*>(malloc_fast(words * 8));
          for (size_t w = 0; w < words; ++w) p[w] = reinterpret_cast<uintptr_t>(p) + w;
          mine.emplace_back(p, words);
        } else if (!mine.empty()) {
          size_t k = rng() % mine.size();
          auto [p, words] = mine[k];
          mine[k] = mine.back();
          mine.pop_back();
          for (size_t w = 0; w < words; ++w)
            if (p[w] != reinterpret_cast<uintptr_t>(p) + w) bad = true;
          if (rng() % 4 == 0) {  // freed by another thread later
            std::lock_guard<std::mutex> g(mu);
            handoff.push_back(p);
          } else {
            free_fast(p);
          }
        }
        if (i % 1000 == 999) {
          std::vector<uint64_t*> take;
          {
            std::lock_guard<std::mutex> g(mu);
            take.swap(handoff);
          }
          for (uint64_t* p : take) free_fast(p);
        }
      }
      for (auto& [p, words] : mine) free_fast(p);
    });
  }
  for (auto& th : threads) th.join();
  for (uint64_t* p : handoff) free_fast(p);
  EXPECT_FALSE(bad.load()) << "a block was corrupted or handed out twice";
  slabby_stats after = stats();
  EXPECT_EQ(after.current_allocations, before.current_allocations);
  EXPECT_EQ(after.total_allocations - before.total_allocations,
            after.total_deallocations - before.total_deallocations);
}

// The policy (SLABBY_PERCPU_THREADS): a thread keeps its own bins while the process has
// fewer live threads than g_threads.percpu_threads, starts on the per-CPU caches
// once it has that many, and a thread on its bins moves at its next slow
// path, its cached blocks going back to the pools.
TEST_F(PerCpu, ThreadsMoveToTheCpuCachesOnceThereAreEnoughOfThem) {
  uint64_t saved = g_threads.percpu_threads;
  uint64_t live = __atomic_load_n(&g_threads.live, __ATOMIC_RELAXED) -
                  __atomic_load_n(&g_threads.internal, __ATOMIC_RELAXED);
  // This process's threads, plus two. slabby's own (the background thread,
  // which an earlier test in the same process may have started) do not count.
  g_threads.percpu_threads = live + 2;
  std::mutex mu;
  std::condition_variable cv;
  int stage = 0;
  bool first_on_bins = false, second_on_cpus = false, first_moved = false, intact = true;
  uint32_t left_in_bins = 1;
  std::thread first([&] {
    thread_init();
    first_on_bins = !tl_cache.percpu_ok;
    unsigned cls = size_class_of(48);
    std::vector<uint64_t*> v;
    for (int i = 0; i < 8; ++i) v.push_back(static_cast<uint64_t*>(malloc_fast(48)));
    for (auto* p : v) p[0] = reinterpret_cast<uintptr_t>(p);
    {
      std::unique_lock<std::mutex> g(mu);
      stage = 1;
      cv.notify_all();
      cv.wait(g, [&] { return stage == 2; });
    }
    // More frees than the bin holds: the flush is a slow path, where it moves.
    for (int i = 0; i < 4 * static_cast<int>(g_rt.cache_limit[cls]) + 8; ++i) {
      void* p = malloc_fast(48);
      v.push_back(static_cast<uint64_t*>(p));
      static_cast<uint64_t*>(p)[0] = reinterpret_cast<uintptr_t>(p);
    }
    for (auto* p : v) {
      if (p[0] != reinterpret_cast<uintptr_t>(p)) intact = false;
      free_fast(p);
    }
    first_moved = tl_cache.percpu_ok;
    left_in_bins = bin_count(tl_cache.bins[cls]) + tl_cache.bins[cls].limit;
    std::unique_lock<std::mutex> g(mu);
    stage = 3;
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> g(mu);
    cv.wait(g, [&] { return stage == 1; });
  }
  std::thread second([&] {
    thread_init();
    second_on_cpus = tl_cache.percpu_ok;
    std::unique_lock<std::mutex> g(mu);
    stage = 2;
    cv.notify_all();
    cv.wait(g, [&] { return stage == 3; });
  });
  first.join();
  second.join();
  g_threads.percpu_threads = saved;
  EXPECT_TRUE(first_on_bins) << "the first thread started below the threshold";
  EXPECT_TRUE(second_on_cpus) << "the second thread reached it at its init";
  EXPECT_TRUE(first_moved) << "the first thread moved at a slow path";
  EXPECT_EQ(left_in_bins, 0u) << "a moved thread keeps nothing in its bins";
  EXPECT_TRUE(intact);
}

}  // namespace
}  // namespace slabby

#include "central/central_pool.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "common/size_class.h"
#include "secure/checks.h"

namespace slabby {
namespace {

std::vector<void*> to_vector(BlockChain c) {
  std::vector<void*> v;
  void* p = c.head;
  for (uint32_t i = 0; i < c.count; ++i, p = *static_cast<void**>(p)) v.push_back(p);
  EXPECT_EQ(p, nullptr) << "chain not null-terminated after count blocks";
  return v;
}

// A null-terminated chain of the given blocks.
void* link(const std::vector<void*>& v) {
  for (size_t i = 0; i < v.size(); ++i)
    *static_cast<void**>(v[i]) = i + 1 < v.size() ? v[i + 1] : nullptr;
  return v.empty() ? nullptr : v[0];
}

struct PoolFixture : ::testing::Test {
  void SetUp() override {
    heap = std::make_unique<PageHeap>();
    ASSERT_TRUE(heap->init(size_t{256} << 20, size_t{64} << 20));
  }
  // A pool with `shards` shards, 128 bytes apart, their locks 3 apart.
  std::unique_ptr<CentralPool> make_pool(unsigned cls, unsigned shards, uint32_t batch,
                                         uint32_t max_batches = 8) {
    shard_mem.emplace_back(new char[128 * shards]);
    shard_mem.emplace_back(new char[BatchStack::bytes_for(batch, max_batches) + 1]);
    lock_mem.emplace_back(new Mutex[3 * shards]);
    auto pool = std::make_unique<CentralPool>();
    pool->init(cls, heap.get(), shard_mem[shard_mem.size() - 2].get(), shards, 128,
               lock_mem.back().get(), 3, batch, max_batches, shard_mem.back().get());
    return pool;
  }
  std::unique_ptr<PageHeap> heap;
  std::vector<std::unique_ptr<char[]>> shard_mem;
  std::vector<std::unique_ptr<Mutex[]>> lock_mem;
};

TEST_F(PoolFixture, TakeReturnsDistinctBlocksOfTheClass) {
  for (unsigned cls : {1u, 9u, 20u, kNumSmallClasses - 1, kNumSmallClasses, kNumClasses - 1}) {
    // Batches of 5: n is never one, so the blocks go back to their slabs.
    auto pool = make_pool(cls, 1, 5);
    uint32_t n = 3 * blocks_per_slab(cls) + 1;
    BlockChain c = pool->take(n, 0);
    ASSERT_EQ(c.count, n);
    std::vector<void*> v = to_vector(c);
    std::set<void*> unique(v.begin(), v.end());
    EXPECT_EQ(unique.size(), n) << "a block handed out twice";
    for (void* p : v) {
      EXPECT_EQ(heap->class_of(p), cls);
      Span* s = heap->span_of(p);
      EXPECT_EQ((reinterpret_cast<uintptr_t>(p) - s->start) % class_size(cls), 0u);
    }
    EXPECT_EQ(pool->stats().slabs, 4u);
    pool->give(link(v), n);
    // All slabs empty: one spare kept, the rest back in the page heap (a
    // medium class, one block per slab, keeps no spare).
    EXPECT_EQ(pool->stats().slabs, is_medium_class(cls) ? 0u : 1u) << cls;
  }
}

TEST_F(PoolFixture, WholeBatchesGoThroughTheTransferStack) {
  auto pool = make_pool(4, 1, 8, /*max_batches=*/2);
  BlockChain c = pool->take(8, 0);
  std::vector<void*> v = to_vector(c);
  pool->give(link(v), 8);
  EXPECT_EQ(pool->stats().lock_free_pushes, 1u);
  EXPECT_EQ(pool->stats().stack_batches, 1u);
  // The next refill is that batch, whatever it asked for.
  BlockChain again = pool->take(3, 0);
  EXPECT_EQ(again.count, 8u);
  std::vector<void*> w = to_vector(again);
  EXPECT_EQ(std::set<void*>(v.begin(), v.end()), std::set<void*>(w.begin(), w.end()));
  EXPECT_EQ(pool->stats().lock_free_hits, 1u);
  // A partial batch goes to the shards; past max_batches, whole ones do too.
  pool->give(link({w[0], w[1], w[2]}), 3);
  EXPECT_EQ(pool->stats().stack_batches, 0u);
  std::vector<void*> rest(w.begin() + 3, w.end());
  BlockChain more = pool->take(8 * 3 - 5, 0);
  std::vector<void*> m = to_vector(more);
  rest.insert(rest.end(), m.begin(), m.end());
  ASSERT_EQ(rest.size(), 24u);
  for (int b = 0; b < 3; ++b)
    pool->give(link(std::vector<void*>(rest.begin() + b * 8, rest.begin() + b * 8 + 8)), 8);
  EXPECT_EQ(pool->stats().stack_batches, 2u);
}

// A whole batch moves as pointers: with every page of its blocks
// inaccessible, it still goes onto the transfer stack and comes back whole
// (the per-CPU caches rely on this to refill without a cache miss per block).
TEST_F(PoolFixture, BatchesMoveAsPointersWithoutTouchingTheBlocks) {
  unsigned cls = 4;
  auto pool = make_pool(cls, 1, 8, /*max_batches=*/2);
  void* v[kMaxBatch];
  ASSERT_EQ(pool->take_blocks(v, 8, 0), 8u);
  std::set<uintptr_t> pages;
  for (int i = 0; i < 8; ++i) {
    uintptr_t b = reinterpret_cast<uintptr_t>(v[i]);
    for (uintptr_t p = b & ~(kPageSize - 1); p < b + class_size(cls); p += kPageSize) pages.insert(p);
  }
  for (uintptr_t p : pages) ASSERT_EQ(mprotect(reinterpret_cast<void*>(p), kPageSize, PROT_NONE), 0);
  pool->give_blocks(v, 8);
  EXPECT_EQ(pool->stats().stack_batches, 1u);
  void* w[kMaxBatch];
  ASSERT_EQ(pool->take_blocks(w, 3, 0), 8u) << "a stacked batch comes whole";
  EXPECT_EQ(std::set<void*>(v, v + 8), std::set<void*>(w, w + 8));
  EXPECT_EQ(pool->stats().lock_free_hits, 1u);
  for (uintptr_t p : pages)
    ASSERT_EQ(mprotect(reinterpret_cast<void*>(p), kPageSize, PROT_READ | PROT_WRITE), 0);
  // The chain interface over the same stack: a chain of a whole batch is
  // read into pointers, and a stacked batch comes back linked.
  pool->give(link(std::vector<void*>(w, w + 8)), 8);
  EXPECT_EQ(pool->stats().stack_batches, 1u);
  BlockChain c = pool->take(8, 0);
  ASSERT_EQ(c.count, 8u);
  std::vector<void*> x = to_vector(c);
  EXPECT_EQ(std::set<void*>(x.begin(), x.end()), std::set<void*>(v, v + 8));
  EXPECT_EQ(c.tail, x.back());
  pool->give_blocks(x.data(), 8);
}

// A take with max_fresh carves at most that many never-used blocks and stops
// there: blocks freed back to the slabs come first and do not count, and a
// take always yields at least one block.
TEST_F(PoolFixture, MaxFreshBoundsTheBlocksCarvedByOneTake) {
  unsigned cls = 9;
  auto pool = make_pool(cls, 2, 32, /*max_batches=*/0);
  void* v[kMaxBatch];
  ASSERT_EQ(pool->take_blocks(v, 32, 0, 3), 3u);
  ASSERT_EQ(pool->take_blocks(v + 3, 32, 0, 1), 1u);
  EXPECT_EQ(pool->stats().slabs, 1u) << "one slab carved from, no other grown";
  // Two blocks back to their slab: a take finds them, then carves two more.
  pool->give_blocks(v + 2, 2);
  void* w[kMaxBatch];
  ASSERT_EQ(pool->take_blocks(w, 32, 0, 2), 4u);
  EXPECT_EQ(std::set<void*>(w, w + 4).count(v[2]) + std::set<void*>(w, w + 4).count(v[3]), 2u);
  std::set<void*> all(v, v + 2);
  all.insert(w, w + 4);
  EXPECT_EQ(all.size(), 6u) << "a block handed out twice";
  // The chain interface bounds the same way; without max_fresh, whole batches.
  BlockChain c = pool->take(32, 0, 5);
  EXPECT_EQ(c.count, 5u);
  std::vector<void*> x = to_vector(c);
  EXPECT_EQ(pool->take_blocks(v + 2, 20, 0), 20u);
  pool->give_blocks(v, 22);
  pool->give_blocks(w, 4);
  pool->give(link(x), 5);
  EXPECT_EQ(pool->stats().slabs, 1u) << "every block came back: the spare slab only";
}

// In the checked modes an empty slab going back to the page heap has its
// blocks' tags cleared (or, zeroing, its blocks zeroed): only the blocks ever
// carved from it. The pages past them were never used and stay so: here they
// are PROT_NONE while the slab goes back, so touching one faults.
TEST_F(PoolFixture, ReleasingASlabTouchesOnlyTheBlocksCarvedFromIt) {
  // The first class whose slab has whole pages past its first two blocks,
  // and fits one take.
  unsigned cls = 1;
  auto fits = [](unsigned c) {
    size_t two = (2 * size_t{class_size(c)} + kPageSize - 1) & ~(kPageSize - 1);
    return blocks_per_slab(c) <= kMaxBatch && two < size_t{kSlabPages[c]} * kPageSize;
  };
  while (cls < kNumSmallClasses && !fits(cls)) ++cls;
  if (cls == kNumSmallClasses) GTEST_SKIP() << "no slab spans more pages than two of its blocks";
  uint32_t per_slab = blocks_per_slab(cls);
  Checks saved = g_checks;
  for (bool zero : {false, true}) {
    g_checks.tags = true;
    g_checks.zero_free = zero;
    auto pool = make_pool(cls, 1, 1, /*max_batches=*/0);
    // A whole slab, then two blocks of a second one; the first, emptied,
    // becomes the shard's spare, so the second, emptied, goes back.
    void* a[kMaxBatch];
    ASSERT_EQ(pool->take_blocks(a, per_slab, 0), per_slab);
    void* b[2];
    ASSERT_EQ(pool->take_blocks(b, 2, 0, 2), 2u);
    Span* s = heap->span_of(b[0]);
    ASSERT_NE(s, heap->span_of(a[0]));
    uintptr_t used_end = s->start + 2 * uintptr_t{class_size(cls)};
    uintptr_t from = (used_end + kPageSize - 1) & ~(kPageSize - 1);
    size_t bytes = s->end() - from;
    ASSERT_GT(bytes, 0u);
    pool->give_blocks(a, per_slab);
    ASSERT_EQ(mprotect(reinterpret_cast<void*>(from), bytes, PROT_NONE), 0);
    pool->give_blocks(b, 2);  // faults here if the release touches the rest
    ASSERT_EQ(mprotect(reinterpret_cast<void*>(from), bytes, PROT_READ | PROT_WRITE), 0);
    EXPECT_EQ(pool->stats().slabs, 1u) << "the second slab went back to the page heap";
    pool->reclaim();
  }
  g_checks = saved;
}

// SLABBY_ZERO=free's medium slabs: their block's body is zeroed by the
// checked paths and its tag is its slab's, so a release zeroes only its link
// words and never touches the pages past its first (its last word included).
TEST_F(PoolFixture, AZeroEdgesReleaseClearsTheLinkWordsOnly) {
  // The first medium class (one block a slab) spanning two pages or more.
  unsigned cls = kNumSmallClasses;
  while (cls + 1 < kNumClasses && class_size(cls) < 2 * kPageSize) ++cls;
  const size_t size = class_size(cls);
  ASSERT_GE(size, 2 * kPageSize);
  shard_mem.emplace_back(new char[128]);
  lock_mem.emplace_back(new Mutex[3]);
  CentralPool pool;
  pool.init(cls, heap.get(), shard_mem.back().get(), 1, 128, lock_mem.back().get(), 3, 1, 0,
            nullptr, SlabScrub::kZeroEdges);
  void* b[1];
  ASSERT_EQ(pool.take_blocks(b, 1, 0), 1u);
  auto* w = static_cast<uint64_t*>(b[0]);
  w[0] = w[1] = w[2] = ~uint64_t{0};
  uintptr_t from = reinterpret_cast<uintptr_t>(b[0]) + kPageSize;
  size_t rest = round_down(size, kPageSize) - kPageSize;
  ASSERT_EQ(mprotect(reinterpret_cast<void*>(from), rest, PROT_NONE), 0);
  pool.give_blocks(b, 1);  // faults here if the release touches the rest
  ASSERT_EQ(mprotect(reinterpret_cast<void*>(from), rest, PROT_READ | PROT_WRITE), 0);
  EXPECT_EQ(pool.stats().slabs, 0u) << "the slab went back to the page heap";
  EXPECT_EQ(w[0], 0u);
  EXPECT_EQ(w[1], 0u);
  EXPECT_EQ(w[2], ~uint64_t{0}) << "the body is the checked paths' to zero";
}

// A refill from slabs whose free blocks are scattered walks several slabs'
// free lists side by side (their cache misses overlap): a batch draws on
// four slabs, each slab's blocks together, every free block comes back
// once, and the slabs' counts stay right (all empty again at the end).
TEST_F(PoolFixture, ARefillWalksSeveralSlabsFreeListsSideBySide) {
  unsigned cls = 4;
  uint32_t per = blocks_per_slab(cls);
  auto pool = make_pool(cls, 1, 5);
  BlockChain c = pool->take(4 * per, 0);
  ASSERT_EQ(c.count, 4 * per);
  std::vector<void*> all = to_vector(c);
  ASSERT_EQ(pool->stats().slabs, 4u);
  // Every other block of each slab back: four partial slabs, fully carved.
  std::vector<void*> freed, kept;
  for (size_t i = 0; i < all.size(); ++i) (i % 2 ? freed : kept).push_back(all[i]);
  pool->give(link(freed), static_cast<uint32_t>(freed.size()));
  std::vector<void*> got;
  void* b[kMaxBatch];
  uint32_t n = pool->take_blocks(b, kMaxBatch, 0);
  ASSERT_EQ(n, kMaxBatch);
  // Four slabs, a quarter of the batch each, and each slab's blocks
  // together in it (blocks handed out one after another share a slab).
  std::vector<Span*> runs;
  for (uint32_t i = 0; i < n; ++i)
    if (runs.empty() || runs.back() != heap->span_of(b[i])) runs.push_back(heap->span_of(b[i]));
  EXPECT_EQ(runs.size(), 4u) << "one run of blocks per slab";
  EXPECT_EQ(std::set<Span*>(runs.begin(), runs.end()).size(), 4u) << "from four slabs";
  got.insert(got.end(), b, b + n);
  while (got.size() < freed.size()) {
    n = pool->take_blocks(b, kMaxBatch, 0);
    ASSERT_GT(n, 0u);
    got.insert(got.end(), b, b + n);
  }
  EXPECT_EQ(got.size(), freed.size());
  EXPECT_EQ(std::set<void*>(got.begin(), got.end()), std::set<void*>(freed.begin(), freed.end()))
      << "each free block once, and no other";
  EXPECT_EQ(pool->stats().slabs, 4u) << "no slab carved while the four had free blocks";
  pool->give(link(got), static_cast<uint32_t>(got.size()));
  pool->give(link(kept), static_cast<uint32_t>(kept.size()));
  EXPECT_EQ(pool->stats().slabs, 1u) << "every slab empty again: one spare kept";
}

TEST_F(PoolFixture, SlabsBelongToTheHomeShardAndFreesFindThem) {
  auto pool = make_pool(6, 4, 4);
  std::vector<void*> all;
  for (unsigned home = 0; home < 4; ++home) {
    // A whole slab each time, so no shard has free blocks to lend.
    BlockChain c = pool->take(blocks_per_slab(6), home);
    for (void* p : to_vector(c)) {
      EXPECT_EQ(heap->span_of(p)->shard, home);
      all.push_back(p);
    }
  }
  EXPECT_EQ(pool->stats().new_slabs, 4u);
  // Blocks of all four shards in one flush.
  pool->give(link(all), static_cast<uint32_t>(all.size()));
  // Each shard keeps its emptied slab as its spare.
  EXPECT_EQ(pool->stats().slabs, 4u);
}

TEST_F(PoolFixture, AnEmptyHomeShardTakesFromTheOthersBeforeGrowing) {
  auto pool = make_pool(6, 2, 4);
  BlockChain c = pool->take(10, 0);
  std::vector<void*> v = to_vector(c);
  pool->give(link({v[0], v[1], v[2]}), 3);  // shard 0 now has free blocks
  BlockChain d = pool->take(3, 1);          // home shard 1 has no slab
  EXPECT_EQ(d.count, 3u);
  EXPECT_EQ(pool->stats().new_slabs, 1u);
  EXPECT_EQ(pool->stats().shard_hits, 1u);
}

// Only shards with free blocks are tried, from the one after home onwards,
// wrapping round; a shard whose slabs are all handed out is not tried.
TEST_F(PoolFixture, AnEmptyHomeShardTriesTheNextShardsWithBlocksInTurn) {
  auto pool = make_pool(6, 8, 4);
  std::vector<void*> kept;
  for (unsigned home : {2u, 6u}) {
    // A whole slab each (so none lends uncarved blocks), two of its blocks
    // given back: only shards 2 and 6 lend.
    std::vector<void*> v = to_vector(pool->take(blocks_per_slab(6), home));
    pool->give(link({v[0], v[1]}), 2);
    kept.insert(kept.end(), v.begin() + 2, v.end());
  }
  auto shard_of = [&](BlockChain c) {
    EXPECT_EQ(c.count, 1u);
    return heap->span_of(c.head)->shard;
  };
  EXPECT_EQ(shard_of(pool->take(1, 5)), 6u);  // after 5: 6
  EXPECT_EQ(shard_of(pool->take(1, 7)), 2u);  // after 7: wraps to 0, 1, 2
  EXPECT_EQ(shard_of(pool->take(1, 3)), 6u);  // shard 6's last lent block
  EXPECT_EQ(shard_of(pool->take(1, 3)), 2u);  // 6 has none left: on to 2
  EXPECT_EQ(pool->stats().new_slabs, 2u);
  // Nothing left to lend anywhere: home 4 carves its own slab.
  BlockChain c = pool->take(1, 4);
  EXPECT_EQ(heap->span_of(c.head)->shard, 4u);
  EXPECT_EQ(pool->stats().new_slabs, 3u);
}

// Threads take and give batches and odd counts concurrently, with different
// home shards; every block is owned by one thread at a time (checked in a
// side table, since the pool itself uses the blocks' first two words) and
// all come back.
TEST_F(PoolFixture, ConcurrentTakeAndGiveLoseNothing) {
  auto pool = make_pool(3, 3, 8, 4);
  constexpr int kThreads = 4;
  constexpr size_t kGranules = size_t{1} << 20;  // 16 MiB of arena, far more than used
  std::vector<std::atomic<int>> owner(kGranules);
  for (auto& o : owner) o = -1;
  auto slot = [&](void* p) -> std::atomic<int>& {
    size_t idx = (reinterpret_cast<uintptr_t>(p) - heap->base()) / 16;
    EXPECT_LT(idx, kGranules);
    return owner[idx % kGranules];
  };
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<void*> held;
      for (int round = 0; round < 3000; ++round) {
        BlockChain c = pool->take(1 + (round * 7 + t) % 12, (round + t) % 3);
        for (void* p : to_vector(c)) {
          int expected = -1;
          if (!slot(p).compare_exchange_strong(expected, t)) failed = true;
          held.push_back(p);
        }
        while (held.size() > 40) {
          uint32_t n = (round % 3 == 0) ? 8 : 1 + round % 5;
          std::vector<void*> out(held.end() - n, held.end());
          held.resize(held.size() - n);
          for (void* p : out) {
            int expected = t;
            if (!slot(p).compare_exchange_strong(expected, -1)) failed = true;
          }
          pool->give(link(out), n);
        }
      }
      for (void* p : held) {
        slot(p) = -1;
        *static_cast<void**>(p) = nullptr;
        pool->give(p, 1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(failed.load()) << "a block was owned by two threads at once";
  // Drain the transfer stack back into the shards: then every slab is empty.
  while (pool->stats().stack_batches > 0) {
    BlockChain c = pool->take(8, 0);
    std::vector<void*> v = to_vector(c);
    for (void* p : v) {
      *static_cast<void**>(p) = nullptr;
      pool->give(p, 1);
    }
  }
  EXPECT_LE(pool->stats().slabs, 3u) << "blocks lost: slabs still in use beyond the spares";
}

}  // namespace
}  // namespace slabby

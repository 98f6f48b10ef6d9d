#include "pool/central_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "frontend/size_class.h"

namespace slabby {
namespace {

struct PoolFixture : ::testing::Test {
  void SetUp() override {
    heap = std::make_unique<PageHeap>();
    ASSERT_TRUE(heap->init(size_t{256} << 20, size_t{64} << 20));
  }
  std::unique_ptr<PageHeap> heap;
};

std::vector<void*> to_vector(BlockChain c) {
  std::vector<void*> v;
  for (void* p = c.head; p != nullptr; p = *static_cast<void**>(p)) v.push_back(p);
  return v;
}

TEST_F(PoolFixture, TakeReturnsDistinctBlocksOfTheClass) {
  for (unsigned cls : {1u, 9u, 20u, kNumClasses - 1}) {
    CentralPool pool;
    pool.init(cls, heap.get());
    uint32_t n = 3 * blocks_per_slab(cls) + 1;
    BlockChain c = pool.take(n);
    ASSERT_EQ(c.count, n);
    std::vector<void*> v = to_vector(c);
    ASSERT_EQ(v.size(), n);
    EXPECT_EQ(v.back(), c.tail);
    std::set<void*> unique(v.begin(), v.end());
    EXPECT_EQ(unique.size(), n) << "a block handed out twice";
    for (void* p : v) {
      EXPECT_EQ(heap->class_of(p), cls);
      Span* s = heap->span_of(p);
      EXPECT_EQ((reinterpret_cast<uintptr_t>(p) - s->start) % class_size(cls), 0u);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kMinAlign, 0u);
    }
    EXPECT_EQ(pool.stats().slabs, 4u);
    pool.give(c.head, c.count);
    // All slabs empty: one spare kept, the rest back in the page heap.
    EXPECT_EQ(pool.stats().slabs, 1u);
  }
}

TEST_F(PoolFixture, GivenBlocksAreReused) {
  CentralPool pool;
  pool.init(4, heap.get());
  BlockChain a = pool.take(10);
  std::set<void*> first;
  for (void* p : to_vector(a)) first.insert(p);
  pool.give(a.head, a.count);
  BlockChain b = pool.take(10);
  for (void* p : to_vector(b)) EXPECT_TRUE(first.count(p)) << "fresh slab instead of reuse";
  pool.give(b.head, b.count);
}

// Threads take and give batches of one class concurrently; every block is
// owned by one thread at a time (checked with a stamp) and all come back.
TEST_F(PoolFixture, ConcurrentTakeAndGiveLoseNothing) {
  CentralPool pool;
  unsigned cls = 3;  // 48 bytes
  pool.init(cls, heap.get());
  constexpr int kThreads = 4;
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<void*> held;
      for (int round = 0; round < 2000; ++round) {
        BlockChain c = pool.take(1 + (round * 7 + t) % 40);
        for (void* p : to_vector(c)) {
          auto* w = static_cast<uint64_t*>(p);
          w[1] = 0xC0FFEE00u + t;
          held.push_back(p);
        }
        while (held.size() > 64) {
          void* p = held.back();
          held.pop_back();
          if (static_cast<uint64_t*>(p)[1] != 0xC0FFEE00u + t) failed = true;
          pool.give(p, 1);
        }
      }
      for (void* p : held) pool.give(p, 1);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(failed.load()) << "a block was owned by two threads at once";
  EXPECT_LE(pool.stats().slabs, 1u) << "blocks lost: slabs still in use";
}

}  // namespace
}  // namespace slabby

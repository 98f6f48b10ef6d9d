// slabby::Pool under threads x operations: two live references never share a
// slab, every slot allocates again after all are released, stats are exact.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "slabby/pool.hpp"

namespace slabby {
namespace {

// Each slot's owner count, checked on every allocate and release: a slab
// handed to two live owners makes the count 2.
struct Ownership {
  explicit Ownership(size_t n) : owners(new std::atomic<int>[n]) {
    for (size_t i = 0; i < n; ++i) owners[i] = 0;
  }
  std::unique_ptr<std::atomic<int>[]> owners;
};

struct Params {
  int threads;
  size_t capacity;
  uint32_t shards;
  bool per_cpu;
};

class PoolStress : public ::testing::TestWithParam<Params> {};

TEST_P(PoolStress, NoSharedSlabNoLostSlotExactStats) {
  const Params prm = GetParam();
  Options o;
  o.shards = prm.shards;
  o.per_cpu_cache = prm.per_cpu;
  auto created = Pool::Create(64, prm.capacity, o);
  ASSERT_TRUE(created.ok());
  Pool& pool = **created;
  Ownership own(prm.capacity);
  const int kOps = 20000;
  std::atomic<uint64_t> allocs{0}, frees{0}, misses{0}, violations{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < prm.threads; ++t)
    ts.emplace_back([&, t] {
      std::mt19937 rng(t * 7919 + 1);
      std::vector<SlabRef> refs;
      std::vector<uint64_t> fast_ids;
      for (int i = 0; i < kOps; ++i) {
        unsigned op = rng() % 8;
        if (op < 3) {
          auto r = pool.Allocate();
          if (!r.ok()) {
            misses++;
            continue;
          }
          uint32_t idx = static_cast<uint32_t>(r->id());
          if (own.owners[idx].fetch_add(1) != 0) violations++;
          // The slab carries its owner's mark until released.
          std::memset(r->bytes().data(), t + 1, 64);
          refs.push_back(*std::move(r));
          allocs++;
        } else if (op < 5) {
          auto f = pool.AllocateFast();
          if (!f.ok()) {
            misses++;
            continue;
          }
          if (own.owners[static_cast<uint32_t>(f->id)].fetch_add(1) != 0) violations++;
          std::memset(f->bytes.data(), t + 1, 64);
          fast_ids.push_back(f->id);
          allocs++;
        } else if (op < 7 && !refs.empty()) {
          size_t k = rng() % refs.size();
          std::swap(refs[k], refs.back());
          auto b = refs.back().bytes();
          for (std::byte x : b)
            if (x != std::byte(t + 1)) violations++;  // someone else wrote our slab
          own.owners[static_cast<uint32_t>(refs.back().id())].fetch_sub(1);
          if (!refs.back().Release().ok()) violations++;
          refs.pop_back();
          frees++;
        } else if (!fast_ids.empty()) {
          uint64_t id = fast_ids.back();
          fast_ids.pop_back();
          own.owners[static_cast<uint32_t>(id)].fetch_sub(1);
          if (!pool.DeallocateFast(id).ok()) violations++;
          // A second release of the same id must be refused (stale or double).
          if (pool.DeallocateFast(id).ok()) violations++;
          frees++;
        }
      }
      for (auto& r : refs) {
        own.owners[static_cast<uint32_t>(r.id())].fetch_sub(1);
        frees++;
      }
      refs.clear();
      for (uint64_t id : fast_ids) {
        own.owners[static_cast<uint32_t>(id)].fetch_sub(1);
        if (!pool.DeallocateFast(id).ok()) violations++;
        frees++;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(violations.load(), 0u);
  PoolStats st = pool.Stats();
  EXPECT_EQ(st.used_slabs, 0u);
  EXPECT_EQ(st.total_allocations, allocs.load());
  EXPECT_EQ(st.total_deallocations, frees.load());
  EXPECT_EQ(st.allocation_errors, misses.load());
  EXPECT_EQ(st.pcpu_cache_hits + st.lock_free_hits, allocs.load());
  // Every slot allocates again, each exactly once.
  BatchAllocation all = pool.BatchAllocate(prm.capacity);
  ASSERT_TRUE(all.status.ok()) << all.status;
  std::vector<int> seen(prm.capacity, 0);
  for (auto& r : all.refs) seen[static_cast<uint32_t>(r.id())]++;
  for (size_t i = 0; i < prm.capacity; ++i) EXPECT_EQ(seen[i], 1) << i;
  EXPECT_FALSE(pool.Allocate().ok());
}

INSTANTIATE_TEST_SUITE_P(Threads, PoolStress,
                         ::testing::Values(Params{2, 64, 0, true}, Params{4, 16, 0, true},
                                           Params{8, 256, 4, true}, Params{8, 32, 3, false},
                                           Params{16, 8, 8, true}),
                         [](const auto& info) {
                           const Params& p = info.param;
                           return "t" + std::to_string(p.threads) + "_cap" +
                                  std::to_string(p.capacity) + "_shards" +
                                  std::to_string(p.shards) + (p.per_cpu ? "_cpu" : "_thread");
                         });

// Releases and timed waits interleaved: every waiter either gets a slab or
// times out, nothing hangs, and the slots all come back.
TEST(PoolStressTimeout, WaitersAndReleasersUnderContention) {
  auto created = Pool::Create(64, 4);
  ASSERT_TRUE(created.ok());
  Pool& pool = **created;
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 300; ++i) {
        auto r = pool.AllocateWithTimeout(absl::Seconds(10));
        if (r.ok()) ok++;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 8 * 300);
  EXPECT_EQ(pool.Stats().used_slabs, 0u);
  EXPECT_EQ(pool.Stats().timeouts, 0u);
}

}  // namespace
}  // namespace slabby

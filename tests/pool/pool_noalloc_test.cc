// The no-allocation claim: after Create, Allocate / Release / AllocateFast /
// DeallocateFast (and Deallocate, moves, bytes()) make no heap allocation.
// This binary replaces the global operator new/delete and malloc-family
// counters are not needed: absl::Status and StatusOr allocate through new.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "slabby/pool.hpp"

namespace {
std::atomic<uint64_t> g_news{0};
}

void* operator new(size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, std::align_val_t a) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  size_t al = static_cast<size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }

namespace slabby {
namespace {

void RunLoops(Pool& pool) {
  for (int i = 0; i < 10000; ++i) {
    absl::StatusOr<SlabRef> r = pool.Allocate();
    if (!r.ok()) std::abort();
    r->bytes()[0] = std::byte{1};
    if (!r->Release().ok()) std::abort();
    absl::StatusOr<FastSlab> f = pool.AllocateFast();
    if (!f.ok()) std::abort();
    if (!pool.DeallocateFast(f->id).ok()) std::abort();
    SlabRef a = pool.MustAllocate();
    SlabRef b = std::move(a);
    if (!pool.Deallocate(std::move(b)).ok()) std::abort();
    { SlabRef raii = pool.MustAllocate(); }  // released by its destructor
  }
}

TEST(PoolNoAlloc, CounterSeesAllocations) {
  uint64_t before = g_news.load();
  ::operator delete(::operator new(16));  // a call, which the compiler may not elide
  EXPECT_EQ(g_news.load(), before + 1);
}

TEST(PoolNoAlloc, HotPathsMakeNoHeapAllocationAfterCreate) {
  auto created = Pool::Create(512, 64);
  ASSERT_TRUE(created.ok());
  uint64_t before = g_news.load();
  RunLoops(**created);
  EXPECT_EQ(g_news.load(), before);
}

TEST(PoolNoAlloc, AlsoWithSecurityAndHealthOptions) {
  Options o;
  o.secure = true;
  o.bit_guard = true;
  o.health_checks = true;
  o.breaker_threshold = 5;
  o.max_alloc_latency = absl::Seconds(1);
  o.logger = [](LogLevel, std::string_view) {};
  o.shards = 4;
  auto created = Pool::Create(512, 64, o);
  ASSERT_TRUE(created.ok());
  uint64_t before = g_news.load();
  RunLoops(**created);
  EXPECT_EQ(g_news.load(), before);
}

TEST(PoolNoAlloc, AlsoAcrossThreads) {
  auto created = Pool::Create(512, 64);
  ASSERT_TRUE(created.ok());
  Pool& pool = **created;
  uint64_t before = g_news.load();
  // std::thread allocates its state: start them outside the counted window.
  std::atomic<int> go{0};
  std::atomic<uint64_t> during{0};
  auto body = [&] {
    while (go.load() == 0) {
    }
    uint64_t b = g_news.load();
    RunLoops(pool);
    during.fetch_add(g_news.load() - b);
  };
  std::thread t1(body), t2(body);
  go = 1;
  t1.join();
  t2.join();
  (void)before;
  EXPECT_EQ(during.load(), 0u);
}

}  // namespace
}  // namespace slabby

// slabby::Pool: Allocate + Release per operation, single- and multi-threaded,
// against new/delete of the same size (glibc's allocator here: this binary is
// not preloaded) and against the seeds' published figures.
//
// Seeds' published figures (Go, Apple M2, 8 cores): 175.9 ns per
// allocate+release (BenchmarkCompareWithMake/SlabAllocator) and 20.6 ns per
// operation for the fast path. They are reported as counters next to ours so
// a run prints both; they are not measured here.
#include <benchmark/benchmark.h>

#include <memory>

#include "slabby/pool.hpp"

namespace {

constexpr size_t kSlab = 4096;
constexpr size_t kCapacity = 10000;

slabby::Pool& SharedPool() {
  static std::unique_ptr<slabby::Pool> pool = [] {
    auto p = slabby::Pool::Create(kSlab, kCapacity);
    if (!p.ok()) std::abort();
    return *std::move(p);
  }();
  return *pool;
}

slabby::Pool& ProductionPool() {
  static std::unique_ptr<slabby::Pool> pool = [] {
    slabby::Options o;
    o.secure = true;
    o.bit_guard = true;
    o.health_checks = true;
    o.breaker_threshold = 50;
    o.heap_fallback = true;
    o.max_alloc_latency = absl::Microseconds(100);
    auto p = slabby::Pool::Create(kSlab, kCapacity, o);
    if (!p.ok()) std::abort();
    return *std::move(p);
  }();
  return *pool;
}

void Seeds(benchmark::State& state, double ns) {
  state.counters["seeds_go_ns"] = benchmark::Counter(ns, benchmark::Counter::kAvgThreads);
}

// Allocate, touch one byte, Release.
void BM_PoolAllocateRelease(benchmark::State& state) {
  slabby::Pool& pool = SharedPool();
  for (auto _ : state) {
    auto r = pool.Allocate();
    r->bytes()[0] = std::byte{1};
    benchmark::DoNotOptimize(r->bytes().data());
    (void)r->Release();
  }
  Seeds(state, 175.9);
}
BENCHMARK(BM_PoolAllocateRelease)->ThreadRange(1, 4)->UseRealTime();

void BM_PoolAllocateFast(benchmark::State& state) {
  slabby::Pool& pool = SharedPool();
  for (auto _ : state) {
    auto f = pool.AllocateFast();
    f->bytes[0] = std::byte{1};
    benchmark::DoNotOptimize(f->bytes.data());
    (void)pool.DeallocateFast(f->id);
  }
  Seeds(state, 20.6);
}
BENCHMARK(BM_PoolAllocateFast)->ThreadRange(1, 4)->UseRealTime();

// The seeds' production options: secure zeroing of 4 KiB dominates.
void BM_PoolAllocateReleaseProduction(benchmark::State& state) {
  slabby::Pool& pool = ProductionPool();
  for (auto _ : state) {
    auto r = pool.Allocate();
    r->bytes()[0] = std::byte{1};
    benchmark::DoNotOptimize(r->bytes().data());
    (void)r->Release();
  }
}
BENCHMARK(BM_PoolAllocateReleaseProduction)->ThreadRange(1, 4)->UseRealTime();

void BM_NewDelete(benchmark::State& state) {
  for (auto _ : state) {
    auto* p = new std::byte[kSlab];
    p[0] = std::byte{1};
    benchmark::DoNotOptimize(p);
    delete[] p;
  }
}
BENCHMARK(BM_NewDelete)->ThreadRange(1, 4)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

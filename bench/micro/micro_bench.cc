// slabby micro benchmarks (Google Benchmark). The binary calls malloc and
// friends, so it measures whatever allocator LD_PRELOAD puts in front of
// glibc: run it under each (scripts/bench-micro does).
//
//   BM_Pair/<size>            malloc+free of one size, per size class boundary
//   BM_BatchN/<n>             n mallocs of 64 bytes, then n frees
//   BM_ReallocGrowth          calloc(16), realloc doubling to 64 KiB, free
//   BM_Aligned/<alignment>    aligned_alloc(alignment, 100) + free
//   BM_CallocLarge/<bytes>    calloc of a large zeroed block + free
//   BM_Threads/<remote>       1-16 threads; remote=1: every free on another thread
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

void BM_Pair(benchmark::State& state) {
  size_t n = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = malloc(n);
    benchmark::DoNotOptimize(p);
    free(p);
  }
}
BENCHMARK(BM_Pair)->Arg(8)->Arg(16)->Arg(64)->Arg(128)->Arg(256)->Arg(1024)->Arg(4096)
    ->Arg(16384)->Arg(32768)->Arg(65536)->Arg(1 << 20);

void BM_BatchN(benchmark::State& state) {
  size_t n = static_cast<size_t>(state.range(0));
  std::vector<void*> v(n);
  for (auto _ : state) {
    for (size_t i = 0; i < n; ++i) v[i] = malloc(64);
    benchmark::DoNotOptimize(v.data());
    for (size_t i = 0; i < n; ++i) free(v[i]);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}
BENCHMARK(BM_BatchN)->Arg(100)->Arg(1000)->Arg(10000);

void BM_ReallocGrowth(benchmark::State& state) {
  for (auto _ : state) {
    void* p = calloc(1, 16);
    for (size_t n = 32; n <= (64 << 10); n *= 2) p = realloc(p, n);
    benchmark::DoNotOptimize(p);
    free(p);
  }
}
BENCHMARK(BM_ReallocGrowth);

void BM_Aligned(benchmark::State& state) {
  size_t a = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = aligned_alloc(a, 100);
    benchmark::DoNotOptimize(p);
    free(p);
  }
}
BENCHMARK(BM_Aligned)->Arg(16)->Arg(64)->Arg(4096)->Arg(65536);

void BM_CallocLarge(benchmark::State& state) {
  size_t n = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = calloc(1, n);
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(n));
}
BENCHMARK(BM_CallocLarge)->Arg(1 << 20)->Arg(16 << 20);

// Threads: each allocates 32 blocks of 16..512 bytes per iteration. Local
// (remote=0): it frees them itself. Remote (remote=1): it deposits them in its
// slot and frees the batch its neighbour deposited, so nearly every free is
// on another thread than the malloc.
struct alignas(64) Slot {
  std::atomic<void**> blocks{nullptr};
};
Slot g_slots[64];

void free_batch(void** b) {
  for (int i = 0; i < 32; ++i) free(b[i]);
  free(b);
}

void BM_Threads(benchmark::State& state) {
  bool remote = state.range(0) != 0;
  int me = state.thread_index();
  int peer = (me + 1) % state.threads();
  for (auto _ : state) {
    void** mine = static_cast<void**>(malloc(32 * sizeof(void*)));
    for (int i = 0; i < 32; ++i) mine[i] = malloc(16 + static_cast<size_t>(i * 15));
    if (!remote) {
      free_batch(mine);
      continue;
    }
    if (void** unclaimed = g_slots[me].blocks.exchange(mine)) free_batch(unclaimed);
    if (void** theirs = g_slots[peer].blocks.exchange(nullptr)) free_batch(theirs);
  }
  if (remote)
    if (void** left = g_slots[me].blocks.exchange(nullptr)) free_batch(left);
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_Threads)->Arg(0)->Arg(1)->ThreadRange(1, 16)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

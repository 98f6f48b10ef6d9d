// 256 threads on a 2-core machine allocate and free small and medium blocks
// (most of them freed by other threads); afterwards RSS must come back near
// where it started.
//
// Bounds (stated here, printed on every run):
// - after the threads exit: start + 96 MiB. What may stay resident by
//   design: free pages the page heap keeps for reuse (SLABBY_RETAIN_MAX,
//   64 MiB by default), the per-CPU caches (at most about 40 KiB of block
//   pointers plus the blocks, a few MiB per CPU), the transfer stacks (at most
//   256 KiB per class) and one spare slab per shard and class.
// - after malloc_trim(0): start + 32 MiB (retained free pages are returned).
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "lifecycle_check.h"
#include "slabby/slabby.h"

namespace {

std::mutex g_mu;
std::vector<void*> g_shared;  // blocks left for other threads to free

void worker(unsigned seed) {
  std::vector<void*> mine;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 200; ++i) {
      seed = seed * 1103515245u + 12345u;
      size_t n = (seed >> 8) % 8 == 0 ? 4096 + (seed >> 12) % 28000 : 16 + (seed >> 12) % 600;
      void* p = malloc(n);
      memset(p, 0x5a, n);
      mine.push_back(p);
    }
    std::vector<void*> theirs;
    {
      std::lock_guard<std::mutex> g(g_mu);
      // Hand half of ours over, take what others left.
      theirs.swap(g_shared);
      g_shared.insert(g_shared.end(), mine.begin(), mine.begin() + mine.size() / 2);
    }
    for (size_t i = mine.size() / 2; i < mine.size(); ++i) free(mine[i]);
    mine.clear();
    for (void* p : theirs) free(p);
  }
}

}  // namespace

int main() {
  // Warm up the process's own structures (stdio, thread stacks' first use).
  std::thread([] { free(malloc(100)); }).join();
  long start = lc_rss_bytes();
  slabby_stats before;
  slabby_get_stats(&before, sizeof before);

  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 256; ++t) threads.emplace_back(worker, t * 7919u + 1);
  for (auto& th : threads) th.join();
  for (void* p : g_shared) free(p);
  g_shared.clear();
  g_shared.shrink_to_fit();

  long after = lc_rss_bytes();
  slabby_stats st;
  slabby_get_stats(&st, sizeof st);
  malloc_trim(0);
  long trimmed = lc_rss_bytes();
  const long kMiB = 1 << 20;
  printf("RSS start %ld MiB, after 256 threads %ld MiB (+%ld), after malloc_trim %ld MiB (+%ld)\n",
         start / kMiB, after / kMiB, (after - start) / kMiB, trimmed / kMiB,
         (trimmed - start) / kMiB);
  printf("live blocks %llu -> %llu, threads exited %llu, mode %s\n",
         static_cast<unsigned long long>(before.current_allocations),
         static_cast<unsigned long long>(st.current_allocations),
         static_cast<unsigned long long>(st.threads_exited),
         st.cache_mode == SLABBY_CACHE_PER_CPU ? "per-CPU" : "per-thread");
  LC_CHECK(st.threads_exited >= 256, "every worker's cache was torn down");
  LC_CHECK(st.current_allocations <= before.current_allocations + 16, "blocks leaked");
  LC_CHECK(after - start <= 96 * kMiB, "RSS after the threads exceeds start + 96 MiB");
  LC_CHECK(trimmed - start <= 32 * kMiB, "RSS after malloc_trim exceeds start + 32 MiB");
  return 0;
}

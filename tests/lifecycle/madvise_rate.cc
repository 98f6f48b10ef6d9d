// A steady free-heavy workload (large buffers of 64 KiB..8 MiB and small
// blocks, allocated and freed in a loop for 2 s) may return memory to the OS
// only in batches: at most 100 madvise calls per second, counted by slabby.
// (One madvise per free would be tens of thousands here.)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "lifecycle_check.h"
#include "slabby/slabby.h"

int main() {
  slabby_stats before, after;
  slabby_get_stats(&before, sizeof before);
  auto t0 = std::chrono::steady_clock::now();
  unsigned seed = 7;
  long frees = 0;
  std::vector<void*> small;
  double secs = 0;
  while (secs < 2.0) {
    for (int i = 0; i < 50; ++i) {
      seed = seed * 1103515245u + 12345u;
      size_t n = (size_t{64} << 10) << ((seed >> 8) % 8);  // 64 KiB .. 8 MiB
      char* p = static_cast<char*>(malloc(n));
      memset(p, 1, n);
      free(p);
      ++frees;
      for (int k = 0; k < 100; ++k) small.push_back(malloc(16 + (seed >> (k % 16)) % 2000));
      for (void* q : small) free(q);
      frees += static_cast<long>(small.size());
      small.clear();
    }
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  slabby_get_stats(&after, sizeof after);
  double calls = static_cast<double>(after.madvise_calls - before.madvise_calls);
  printf("%ld frees in %.2f s: %.0f madvise calls (%.1f per second)\n", frees, secs, calls,
         calls / secs);
  LC_CHECK(calls / secs <= 100.0, "%.1f madvise calls per second", calls / secs);
  return 0;
}

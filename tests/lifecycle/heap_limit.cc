// SLABBY_MAX_HEAP=64M caps slabby's memory in use. Run twice by ctest:
// - with fallback (the default): the program allocates 200 MiB anyway and runs
//   correctly; the excess comes from glibc, counted, and slabby stays under
//   the cap; frees of those blocks find their way back to glibc.
// - with SLABBY_HEAP_FALLBACK=0: malloc fails with ENOMEM near the cap and
//   operator new throws std::bad_alloc; after frees, allocation works again.
#include <errno.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "lifecycle_check.h"
#include "slabby/slabby.h"

char* volatile g_sink;

int main() {
  const char* fb = getenv("SLABBY_HEAP_FALLBACK");
  bool fallback = fb == nullptr || strcmp(fb, "0") != 0;
  const size_t kCap = size_t{64} << 20;
  std::vector<std::pair<char*, size_t>> blocks;
  size_t total = 0;
  bool failed = false;
  for (unsigned i = 0; total < (size_t{200} << 20); ++i) {
    size_t n = (i % 5 == 0) ? 100000 + (i % 7) * 50000 : 64 + (i * 37) % 4000;
    errno = 0;
    char* p = static_cast<char*>(malloc(n));
    if (p == nullptr) {
      LC_CHECK(!fallback, "malloc(%zu) failed with fallback on", n);
      LC_CHECK(errno == ENOMEM, "errno %d, not ENOMEM", errno);
      failed = true;
      break;
    }
    memset(p, static_cast<int>(i & 0xff), n);
    blocks.emplace_back(p, n);
    total += n;
  }
  slabby_stats s;
  slabby_get_stats(&s, sizeof s);
  LC_CHECK(s.max_heap_bytes == kCap, "max_heap %llu", static_cast<unsigned long long>(s.max_heap_bytes));
  LC_CHECK(s.mapped_bytes <= kCap, "slabby holds %llu bytes, over the cap",
           static_cast<unsigned long long>(s.mapped_bytes));
  LC_CHECK(s.limit_refusals > 0, "the cap was never reached");
  if (fallback) {
    LC_CHECK(s.heap_fallbacks > 0, "no fallback counted");
    LC_CHECK(total >= (size_t{200} << 20), "allocated only %zu", total);
  } else {
    LC_CHECK(failed, "never failed without fallback");
    LC_CHECK(total <= kCap + (size_t{8} << 20), "allocated %zu past the cap", total);
    bool threw = false;
    try {
      volatile size_t big = size_t{32} << 20;
      g_sink = new char[big];  // kept observable: C++ may elide a new/delete pair
      delete[] g_sink;
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    LC_CHECK(threw, "operator new did not throw at the cap");
  }
  // Every block intact, then freed (glibc's through glibc).
  for (size_t i = 0; i < blocks.size(); ++i) {
    auto [p, n] = blocks[i];
    LC_CHECK(static_cast<unsigned char>(p[n - 1]) == static_cast<unsigned char>(p[0]),
             "block %zu corrupted", i);
    free(p);
  }
  void* again = malloc(size_t{16} << 20);
  LC_CHECK(again != nullptr, "allocation after freeing failed");
  free(again);
  return 0;
}

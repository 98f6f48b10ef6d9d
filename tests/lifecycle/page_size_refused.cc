// A slabby built for pages smaller than the system's (SLABBY_PAGE_SIZE=4096 on an aarch64 kernel
// with 64 KiB pages) must not take over: at its first allocation it prints one line and glibc
// serves everything, counted as heap fallbacks. Run under qemu-aarch64 with 64 KiB pages by
// page_size_refused.sh, which checks that line; this program checks that memory still works.
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle_check.h"

int main() {
  void* blocks[64];
  size_t sizes[64];
  for (int i = 0; i < 64; i++) {
    sizes[i] = i % 8 == 0 ? (size_t{1} << 20) + i : 16 + i * 100;
    blocks[i] = malloc(sizes[i]);
    LC_CHECK(blocks[i] != nullptr, "malloc(%zu)", sizes[i]);
    memset(blocks[i], i, sizes[i]);
    LC_CHECK(malloc_usable_size(blocks[i]) >= sizes[i], "usable size of %zu bytes", sizes[i]);
  }
  void* r = realloc(blocks[1], 200000);
  LC_CHECK(r != nullptr && static_cast<unsigned char*>(r)[99] == 1, "realloc keeps the bytes");
  blocks[1] = r;
  void* c = calloc(1000, 100);
  LC_CHECK(c != nullptr, "calloc");
  for (int i = 0; i < 100000; i++) LC_CHECK(static_cast<char*>(c)[i] == 0, "calloc'd byte %d", i);
  free(c);
  void* a = aligned_alloc(65536, 100);
  LC_CHECK(a != nullptr && reinterpret_cast<uintptr_t>(a) % 65536 == 0, "aligned_alloc(65536)");
  free(a);
  for (int i = 0; i < 64; i++) free(blocks[i]);
  slabby_stats st;
  LC_CHECK(slabby_get_stats(&st, sizeof st) == 0, "slabby_get_stats");
  // 64 mallocs, the calloc and the aligned_alloc (the realloc resizes a block
  // glibc owns already: glibc's realloc, not a new fallback). More when
  // something else allocated first (libstdc++'s start-up did, when slabby
  // still loaded it).
  LC_CHECK(st.heap_fallbacks >= 66, "every allocation went to glibc: %llu heap fallbacks",
           static_cast<unsigned long long>(st.heap_fallbacks));
  printf("page_size_refused: ok, %llu allocations served by glibc\n",
         static_cast<unsigned long long>(st.heap_fallbacks));
  return 0;
}

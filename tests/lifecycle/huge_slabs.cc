// Slabs on transparent huge pages through the whole allocator: a program
// that puts 40 MiB into small blocks gets its later slabs on marked huge
// pages under SLABBY_THP=dense (the default; `on`, run with
// SLABBY_THP_TIMED=0), none under `large` (`off`), reads every byte back,
// and gets its memory back from malloc_trim either way (a purge inside a
// huge page splits it). `timed` (the default's timing, whose outcome depends
// on the host: heap/fault_judge.h, tested in fault_judge_test.cc): the
// first chunk at least, and the faults' times in the stats.
//
//   huge_slabs on|off|timed
#include <malloc.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "../common/vm_flags.h"
#include "lifecycle_check.h"

namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kBlock = 48;
constexpr size_t kBlocks = (40 * kMiB) / kBlock;

// Whether the mapping holding p is marked MADV_HUGEPAGE, or -1 when this
// kernel shows no marks at all (no transparent huge pages, an emulator).
int marked(const void* p) {
  if (!slabby_test::kernel_shows_huge_marks()) return -1;
  return slabby_test::marked_huge(reinterpret_cast<uintptr_t>(p));
}

}  // namespace

int main(int argc, char** argv) {
  LC_CHECK(argc == 2 && (strcmp(argv[1], "on") == 0 || strcmp(argv[1], "off") == 0 ||
                         strcmp(argv[1], "timed") == 0),
           "usage: huge_slabs on|off|timed");
  const bool on = strcmp(argv[1], "on") == 0;
  const bool timed = strcmp(argv[1], "timed") == 0;
  long start_rss = lc_rss_bytes();
  // The pointers live outside the allocator.
  void** blocks = static_cast<void**>(mmap(nullptr, kBlocks * sizeof(void*),
                                           PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                           -1, 0));
  LC_CHECK(blocks != MAP_FAILED, "mmap");
  for (size_t i = 0; i < kBlocks; ++i) {
    blocks[i] = malloc(kBlock);
    LC_CHECK(blocks[i] != nullptr, "malloc %zu", i);
    memset(blocks[i], static_cast<int>(i & 0xff), kBlock);
  }
  slabby_stats st;
  LC_CHECK(slabby_get_stats(&st, sizeof st) == 0, "slabby_get_stats");
  int last_marked = marked(blocks[kBlocks - 1]);
  int first_marked = marked(blocks[0]);
  printf("huge_slab_bytes %llu, last block marked %d, first %d\n",
         static_cast<unsigned long long>(st.huge_slab_bytes), last_marked, first_marked);
  printf("huge_fault_ns %llu, small_fault_ns %llu, huge_slab_declined %llu\n",
         static_cast<unsigned long long>(st.huge_fault_ns),
         static_cast<unsigned long long>(st.small_fault_ns),
         static_cast<unsigned long long>(st.huge_slab_declined));
  if (timed) {
    // The 16 MiB before the first chunk gave the small samples; the first
    // chunk is always made, and timed.
    LC_CHECK(st.huge_slab_bytes >= 2 * kMiB, "huge_slab_bytes %llu",
             static_cast<unsigned long long>(st.huge_slab_bytes));
    LC_CHECK(st.small_fault_ns > 0 && st.huge_fault_ns > 0, "faults not timed");
    LC_CHECK(first_marked != 1, "the first block's slab is on a marked mapping");
  } else if (on) {
    // 40 MiB of slabs, the first 16 MiB on small pages.
    LC_CHECK(st.huge_slab_bytes >= 8 * kMiB, "huge_slab_bytes %llu",
             static_cast<unsigned long long>(st.huge_slab_bytes));
    LC_CHECK(last_marked != 0, "the last block's slab is not on a marked mapping");
    LC_CHECK(first_marked != 1, "the first block's slab is on a marked mapping");
    LC_CHECK(st.huge_fault_ns == 0 && st.small_fault_ns == 0 && st.huge_slab_declined == 0,
             "faults timed under SLABBY_THP_TIMED=0");
  } else {
    LC_CHECK(st.huge_slab_bytes == 0, "huge_slab_bytes %llu under SLABBY_THP=large",
             static_cast<unsigned long long>(st.huge_slab_bytes));
    LC_CHECK(last_marked != 1, "the last block's slab is on a marked mapping");
  }
  for (size_t i = 0; i < kBlocks; ++i) {
    const unsigned char* b = static_cast<const unsigned char*>(blocks[i]);
    LC_CHECK(b[0] == (i & 0xff) && b[kBlock - 1] == (i & 0xff), "block %zu changed", i);
  }
  for (size_t i = 0; i < kBlocks; ++i) free(blocks[i]);
  malloc_trim(0);
  long end_rss = lc_rss_bytes();
  printf("rss: start %ld KiB, after trim %ld KiB\n", start_rss >> 10, end_rss >> 10);
  LC_CHECK(end_rss < start_rss + static_cast<long>(16 * kMiB),
           "RSS after malloc_trim %ld KiB, at the start %ld KiB", end_rss >> 10, start_rss >> 10);
  return 0;
}

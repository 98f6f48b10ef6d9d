// realloc and calloc above the small classes, through the front end
// (frontend/resize.cc, frontend/allocator.cc) on the process-wide runtime:
// which path serves each call, contents and usable sizes after each, and
// threads resizing at once (this file also runs under ASan and TSan).
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "frontend/allocator.h"
#include "os/os.h"
#include "telemetry/stats.h"

namespace slabby {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

slabby_stats stats() {
  static slabby_stats s;
  collect_stats(&s);
  return s;
}

void fill(void* p, size_t n, unsigned seed) {
  auto* c = static_cast<unsigned char*>(p);
  for (size_t i = 0; i < n; i += 64) c[i] = static_cast<unsigned char>(seed * 31 + i / 64);
  if (n > 0) c[n - 1] = static_cast<unsigned char>(seed);
}

::testing::AssertionResult holds(const void* p, size_t n, unsigned seed) {
  auto* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i + 1 < n; i += 64)
    if (c[i] != static_cast<unsigned char>(seed * 31 + i / 64))
      return ::testing::AssertionFailure() << "byte " << i << " of " << n << " changed";
  return ::testing::AssertionSuccess();
}

TEST(Realloc, MediumBlocksStayInTheirClassShrinkByCopyAndGrowIntoPageSpans) {
  void* p = malloc_fast(100000);  // class 112 KiB
  ASSERT_TRUE(is_medium_class(g_rt.heap.class_of(p)));
  fill(p, 100000, 1);
  EXPECT_EQ(realloc_impl(p, 110000), p);
  EXPECT_EQ(realloc_impl(p, 98305), p);
  // Into a smaller medium class: moved, so the memory follows the size.
  slabby_stats before = stats();
  void* q = realloc_impl(p, 60000);
  ASSERT_NE(q, p);
  EXPECT_EQ(usable_size_impl(q), class_size(medium_class_of(60000)));
  EXPECT_TRUE(holds(q, 60000, 1));
  EXPECT_EQ(stats().realloc_copies, before.realloc_copies + 1);
  // Growing: a page span with as many pages again as headroom, copied once.
  before = stats();
  void* r = realloc_impl(q, 200000);
  ASSERT_NE(r, q);
  EXPECT_EQ(g_rt.heap.class_of(r), 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r) % kPageSize, 0u);
  size_t pages = (200000 + kPageSize - 1) / kPageSize;
  EXPECT_EQ(usable_size_impl(r), 2 * pages * kPageSize);
  EXPECT_TRUE(holds(r, 60000, 1));
  slabby_stats after = stats();
  EXPECT_EQ(after.realloc_copies, before.realloc_copies + 1);
  EXPECT_EQ(after.realloc_copied_bytes,
            before.realloc_copied_bytes + class_size(medium_class_of(60000)));
  // The next steps up fit the headroom: kept.
  EXPECT_EQ(realloc_impl(r, 2 * pages * kPageSize), r);
  EXPECT_EQ(stats().realloc_copies, after.realloc_copies);
  free_fast(r);
}

TEST(Realloc, PageSpansShrinkInPlaceBelowHalfAndKeepTheRest) {
  void* p = malloc_fast(16 * kMiB);
  fill(p, 16 * kMiB, 2);
  slabby_stats before = stats();
  EXPECT_EQ(realloc_impl(p, 9 * kMiB), p);  // needs more than half: kept whole
  EXPECT_EQ(usable_size_impl(p), 16 * kMiB);
  EXPECT_EQ(realloc_impl(p, 4 * kMiB + 1), p);  // to its large class: [4, 5) MiB
  EXPECT_EQ(usable_size_impl(p), 5 * kMiB);
  EXPECT_TRUE(holds(p, 4 * kMiB, 2));
  EXPECT_EQ(stats().realloc_shrunk_in_place, before.realloc_shrunk_in_place + 1);
  // Into a small class: copied out of the span.
  void* q = realloc_impl(p, 100);
  ASSERT_NE(q, nullptr);
  EXPECT_LT(usable_size_impl(q), kPageSize);
  EXPECT_TRUE(holds(q, 100, 2));
  free_fast(q);
}

TEST(Realloc, PageSpansGrowInPlaceMoveByRemapOrCopy) {
  // Growth by 4 KiB steps from nothing to 24 MiB: every path in turn (small
  // and medium classes copy, spans grow in place or move), contents intact,
  // and far fewer bytes copied than a copy on each step would (quadratic).
  slabby_stats before = stats();
  char* p = nullptr;
  size_t have = 0;
  for (size_t n = 4096; n <= 24 * kMiB; n += 4096) {
    char* q = static_cast<char*>(realloc_impl(p, n));
    ASSERT_NE(q, nullptr) << n;
    ASSERT_GE(usable_size_impl(q), n);
    if (have > 0) ASSERT_EQ(q[have - 1], static_cast<char>(have / 4096)) << n;
    memset(q + have, static_cast<int>(n / 4096), n - have);
    p = q;
    have = n;
  }
  for (size_t i = 0; i < have; i += 4096) ASSERT_EQ(p[i], static_cast<char>(i / 4096 + 1)) << i;
  slabby_stats after = stats();
  uint64_t paths = (after.realloc_grown_in_place - before.realloc_grown_in_place) +
                   (after.realloc_remaps - before.realloc_remaps) +
                   (after.realloc_copies - before.realloc_copies);
  EXPECT_GT(paths, 0u);
  EXPECT_LT(after.realloc_copied_bytes - before.realloc_copied_bytes, 64 * kMiB);
  EXPECT_GT(after.realloc_remaps + after.realloc_grown_in_place,
            before.realloc_remaps + before.realloc_grown_in_place);
  free_fast(p);
  EXPECT_EQ(stats().remapped_blocks, before.remapped_blocks);
}

TEST(Realloc, AMoveByRemapKeepsEveryByteAndGivesHeadroom) {
  char* p = static_cast<char*>(malloc_fast(4 * kMiB));
  void* fence = malloc_fast(2 * kMiB);  // after p, or elsewhere: p may not grow in place
  fill(p, 4 * kMiB, 3);
  slabby_stats before = stats();
  char* q = static_cast<char*>(realloc_impl(p, 20 * kMiB));
  ASSERT_NE(q, nullptr);
  slabby_stats after = stats();
  if (q != p) {  // moved: by mremap (the pages), never by copying 4 MiB
    EXPECT_EQ(after.realloc_remaps, before.realloc_remaps + 1);
    EXPECT_EQ(after.realloc_copies, before.realloc_copies);
    EXPECT_GE(usable_size_impl(q), 40 * kMiB);  // headroom: twice what was asked
  }
  EXPECT_TRUE(holds(q, 4 * kMiB, 3));
  memset(q + 4 * kMiB, 1, 16 * kMiB);
  // Growth inside the headroom: no move at all.
  slabby_stats mid = stats();
  EXPECT_EQ(realloc_impl(q, usable_size_impl(q)), q);
  EXPECT_EQ(stats().realloc_remaps, mid.realloc_remaps);
  free_fast(q);
  free_fast(fence);
}

TEST(Realloc, FailureSetsEnomemAndKeepsTheOldBlock) {
  for (size_t n : {size_t{100}, size_t{300000}, 3 * kMiB}) {
    void* p = malloc_fast(n);
    fill(p, n, 4);
    for (size_t huge : {static_cast<size_t>(PTRDIFF_MAX), SIZE_MAX - 4096}) {
      errno = 0;
      EXPECT_EQ(realloc_impl(p, huge), nullptr) << n;
      EXPECT_EQ(errno, ENOMEM) << n;
      EXPECT_TRUE(holds(p, n, 4)) << n;
    }
    void* q = realloc_impl(p, n * 2);
    ASSERT_NE(q, nullptr);
    EXPECT_TRUE(holds(q, n - 1, 4));
    free_fast(q);
  }
}

TEST(Realloc, AlignedSpansKeepTheirAlignmentWhenGrownInPlace) {
  for (size_t align : {size_t{64} << 10, 2 * kMiB}) {
    void* p = aligned_alloc_impl(align, 3 * kMiB);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
    fill(p, 3 * kMiB, 5);
    void* q = realloc_impl(p, 5 * kMiB);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % kPageSize, 0u);
    if (q == p) EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % align, 0u);
    EXPECT_TRUE(holds(q, 3 * kMiB, 5));
    free_fast(q);
  }
}

TEST(Calloc, RecycledDirtyMemoryOfEverySizeIsZero) {
  for (size_t n : {size_t{40} << 10, size_t{100000}, size_t{512} << 10, kMiB, kMiB + 1, 3 * kMiB,
                   16 * kMiB, 40 * kMiB}) {
    for (int round = 0; round < 2; ++round) {
      char* d = static_cast<char*>(malloc_fast(n));
      memset(d, 0xee, n);
      free_fast(d);
      slabby_stats before = stats();
      char* p = static_cast<char*>(calloc_impl(round == 0 ? 1 : n, round == 0 ? n : 1));
      ASSERT_NE(p, nullptr);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(p[i], 0) << n << " at " << i;
      slabby_stats after = stats();
      EXPECT_EQ((after.calloc_fresh - before.calloc_fresh) +
                    (after.calloc_memset - before.calloc_memset),
                1u)
          << n;
      free_fast(p);
    }
  }
}

// slabby's page holds whole system pages (init refuses otherwise), and residency is counted in
// the units mincore answers in: the system's page, or under qemu-aarch64 -p the host's smaller
// one. Every other system page touched: exactly half resident, whatever the units.
TEST(Os, ResidencyIsCountedInTheUnitsMincoreAnswersIn) {
  const size_t page = os::system_page_size(), unit = os::mincore_page_size();
  EXPECT_EQ(kPageSize % page, 0u) << "slabby's page holds whole system pages";
  ASSERT_EQ(page % unit, 0u) << page << " " << unit;
  const size_t n = 64 * page;
  char* p = static_cast<char*>(os::map_rw(n));
  ASSERT_NE(p, nullptr);
  os::mark_huge(p, n, false);
  for (size_t i = 0; i < n; i += 2 * page) memset(p + i, 1, page);
  EXPECT_EQ(os::resident_bytes(p, n), n / 2);
  EXPECT_EQ(os::find_nonzero(p + page, n - page), page);
  EXPECT_EQ(os::zero_pages(p, n), n / 2);
  EXPECT_EQ(os::find_nonzero(p, n), SIZE_MAX);
  os::release(p, n);
}

// The zero checks of large blocks (secure/checked_large.cc: reused, and out
// of the quarantine) name the first changed byte: it is the first one set,
// wherever it falls in a word, a cache line or a page, whatever the range's
// start, and a byte just past the range is not seen.
TEST(Os, FindNonzeroNamesTheFirstChangedByteWherever) {
  const size_t n = 4 * os::system_page_size();
  char* p = static_cast<char*>(os::map_rw(n));
  ASSERT_NE(p, nullptr);
  const size_t starts[] = {0, 8, 248, 264};
  const size_t offsets[] = {0, 1, 7, 8, 247, 255, 256, 257, 511, 1000, 4095, 4096, 8191};
  for (size_t start : starts) {
    const size_t len = n - start - 8;
    EXPECT_EQ(os::find_nonzero(p + start, len), SIZE_MAX) << start;
    for (size_t off : offsets) {
      p[start + off] = 3;
      p[start + off + 100] = 5;  // a later byte does not hide the first
      EXPECT_EQ(os::find_nonzero(p + start, len), off) << start << " " << off;
      p[start + off] = 0;
      p[start + off + 100] = 0;
    }
    p[start + len] = 1;  // past the end
    EXPECT_EQ(os::find_nonzero(p + start, len), SIZE_MAX) << start;
    p[start + len] = 0;
  }
  os::release(p, n);
}

// Any range: the partial pages at its ends are written, the bytes around it
// kept, the whole pages between zeroed where resident and never faulted in
// (the checked modes zero freed large blocks with it: a big block used only
// at its start must not be faulted in whole).
TEST(Os, ZeroResidentTakesAnyRangeAndFaultsInOnlyItsEnds) {
  const size_t page = os::mincore_page_size(), n = 64 * page;
  char* p = static_cast<char*>(os::map_rw(n));
  ASSERT_NE(p, nullptr);
  os::mark_huge(p, n, false);
  memset(p, 7, page);  // page 0
  for (size_t i = 8; i < 12; ++i) memset(p + i * page, 7, page);
  memset(p + 63 * page, 7, page);  // page 63
  const size_t begin = 104, end = 63 * page + 56;
  EXPECT_EQ(os::zero_resident(p + begin, end - begin), (6 * page - begin) - (page - 56));
  EXPECT_EQ(p[begin - 1], 7);
  EXPECT_EQ(p[end], 7);
  EXPECT_EQ(os::find_nonzero(p + begin, end - begin), SIZE_MAX);
  EXPECT_EQ(os::resident_bytes(p, n), 6 * page) << "a page faulted in";
  // Ends on pages not resident: those two are faulted in, nothing else.
  os::purge(p, n);
  EXPECT_EQ(os::zero_resident(p + begin, end - begin), (page - begin) + 56);
  EXPECT_EQ(os::resident_bytes(p, n), 2 * page);
  os::release(p, n);
}

TEST(Calloc, ZeroingWritesOnlyResidentPagesAndFaultsNothingIn) {
  const size_t n = 16 * kMiB;
  char* p = static_cast<char*>(os::map_rw(n));
  ASSERT_NE(p, nullptr);
  os::mark_huge(p, n, false);  // small pages whatever the system's THP setting
  const size_t page = os::system_page_size();
  for (size_t i = 0; i < n; i += 16 * page) memset(p + i, 0xee, page);  // 1 page in 16
  size_t resident = os::resident_bytes(p, n);
  EXPECT_EQ(resident, n / 16);
  size_t written = os::zero_pages(p, n);
  EXPECT_EQ(written, n / 16);
  EXPECT_EQ(os::resident_bytes(p, n), resident) << "pages faulted in";
  for (size_t i = 0; i < n; i += 512) ASSERT_EQ(p[i], 0) << i;
  os::release(p, n);
}

TEST(Calloc, APartlyResidentSpanIsZero) {
  const size_t n = 16 * kMiB;
  char* d = static_cast<char*>(malloc_fast(n));
  for (size_t i = 0; i < n; i += 64 << 10) d[i] = 1;
  free_fast(d);
  char* p = static_cast<char*>(calloc_impl(1, n));
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(p[i], 0) << i;
  free_fast(p);
}

TEST(Resize, ThreadsGrowShrinkAndZeroLargeBlocksAtOnce) {
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int round = 0; round < 3; ++round) {
        char* p = nullptr;
        size_t have = 0;
        for (size_t n = 64 << 10; n <= 6 * kMiB; n += 192 << 10) {
          char* q = static_cast<char*>(realloc_impl(p, n));
          ASSERT_NE(q, nullptr);
          if (have > 0) ASSERT_EQ(q[have - 1], static_cast<char>(t + 1));
          memset(q + have, static_cast<int>(t + 1), n - have);
          p = q;
          have = n;
        }
        p = static_cast<char*>(realloc_impl(p, 2 * kMiB));
        ASSERT_EQ(p[2 * kMiB - 1], static_cast<char>(t + 1));
        free_fast(p);
        char* z = static_cast<char*>(calloc_impl(1, 3 * kMiB + t * 4096));
        for (size_t i = 0; i < 3 * kMiB; i += 4096) ASSERT_EQ(z[i], 0);
        memset(z, 1, 3 * kMiB);
        free_fast(z);
      }
    });
  }
  for (auto& th : threads) th.join();
}

}  // namespace
}  // namespace slabby

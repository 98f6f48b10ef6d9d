// Medium blocks (above 32 KiB, up to 1 MiB) on the checked paths
// (secure/checked_medium.cc): blocks of the medium classes through the
// caches, each with the size the program asked for and, with the bit guard,
// a canary right after it; reported as large blocks of that size. Each test
// is its own process (gtest_discover_tests): the modes are set in the
// environment before the runtime's first allocation.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cache/percpu_cache.h"
#include "frontend/allocator.h"
#include "os/os.h"
#include "runtime/runtime.h"
#include "secure/checked_block.h"
#include "secure/checked_cache.h"
#include "secure/checks.h"

namespace slabby {
namespace {

// SLABBY_SECURE alone: zeroing and the bit guard, the lean pair.
bool start_secure() {
  setenv("SLABBY_SECURE", "1", 1);
  free_fast(malloc_fast(1));
  return g_checks.bitguard && g_checks.zero_free && !g_checks.zero_alloc && !g_checks.guard_large &&
         !g_checks.extras;
}

// The general pair: the bit guard, zeroing on allocation, a quarantine.
bool start_general() {
  setenv("SLABBY_BITGUARD", "1", 1);
  setenv("SLABBY_ZERO", "alloc", 1);
  setenv("SLABBY_QUARANTINE", "256K", 1);
  free_fast(malloc_fast(1));
  return g_checks.bitguard && !g_checks.zero_free && g_checks.zero_alloc && g_checks.extras &&
         !g_checks.guard_large;
}

// A freed block waits in this CPU's cache (or this thread's bin): the tests
// that take it back stay on one CPU, and so do their death tests' children.
void stay_on_this_cpu() {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(static_cast<unsigned>(sched_getcpu()), &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
}

unsigned class_of_block(const void* p) { return g_rt.heap.class_of(p); }

TEST(CheckedMedium, RequestsAboveTheSmallClassesAreMediumBlocksOfTheirOwnSize) {
  if (!start_secure()) GTEST_SKIP() << "the runtime started before the modes were set";
  for (size_t n = kMaxSmallSize - kCanaryBytes + 1; n <= kMaxClassSize; n += 4093) {
    auto* p = static_cast<unsigned char*>(malloc_fast(n));
    ASSERT_NE(p, nullptr);
    const size_t usable = round_up(n, 16);
    ASSERT_EQ(usable_size_impl(p), usable) << "malloc(" << n << ")";
    unsigned cls = class_of_block(p);
    if (usable + kCanaryBytes > kMaxClassSize) {
      EXPECT_EQ(cls, 0u) << "no medium class holds " << n << " bytes and the canary: a span";
    } else {
      ASSERT_TRUE(is_medium_class(cls)) << "malloc(" << n << ") took class " << cls;
      EXPECT_EQ(cls, medium_class_of(usable + kCanaryBytes)) << "the first class that holds it";
    }
    // Freed blocks are zeroed: the first and last pages, and one between.
    for (size_t i : {size_t{0}, usable / 2, usable - 1}) ASSERT_EQ(p[i], 0) << n << " @" << i;
    memset(p, 0x5a, usable);
    checked_sized_free(p, n, "sized delete");  // aborts if the size maps to another class
  }
}

TEST(CheckedMediumDeathTest, AnOverflowPastTheRequestIsFoundByFree) {
  if (!start_secure()) GTEST_SKIP() << "the runtime started before the modes were set";
  auto* p = static_cast<char*>(malloc_fast(100000));
  ASSERT_TRUE(is_medium_class(class_of_block(p)));
  // 100000 is a multiple of 16: the first byte past the request is the canary's.
  EXPECT_EXIT(
      {
        p[100000] = 'x';
        free_fast(p);
      },
      testing::KilledBySignal(SIGABRT),
      "slabby: heap overflow past the 100000 usable bytes of 0x[0-9a-f]+ \\(large block of "
      "100000 bytes\\): canary byte 0 changed \\(found by free\\)");
  EXPECT_EXIT(
      {
        // Byte 3 of the canary is the key's: a fixed value equals it one
        // time in 256 (the test then failed to die); its complement never.
        p[100003] = static_cast<char>(~p[100003]);
        (void)usable_size_impl(p);
      },
      testing::KilledBySignal(SIGABRT),
      "slabby: heap overflow past the 100000 usable bytes of 0x[0-9a-f]+ .*: canary byte 3 "
      "changed \\(found by malloc_usable_size\\)");
  free_fast(p);
}

TEST(CheckedMediumDeathTest, ADoubleFreeIsNamedWithTheBlocksSize) {
  if (!start_secure()) GTEST_SKIP() << "the runtime started before the modes were set";
  void* p = malloc_fast(200000);
  ASSERT_TRUE(is_medium_class(class_of_block(p)));
  free_fast(p);
  EXPECT_EXIT(free_fast(p), testing::KilledBySignal(SIGABRT),
              "slabby: double free of 0x[0-9a-f]+ \\(large block of 200000 bytes\\)");
  EXPECT_EXIT(free_fast(static_cast<char*>(p) + 8192), testing::KilledBySignal(SIGABRT),
              "slabby: free of interior pointer 0x[0-9a-f]+: 8192 bytes into the block at "
              "0x[0-9a-f]+ \\(large block of 200000 bytes\\)");
}

TEST(CheckedMediumDeathTest, AWriteAfterFreeIsFoundWhenTheBlockIsTakenAgain) {
  if (!start_secure()) GTEST_SKIP() << "the runtime started before the modes were set";
  stay_on_this_cpu();
  auto* p = static_cast<char*>(malloc_fast(300000));
  memset(p, 'a', 300000);
  free_fast(p);
  EXPECT_EXIT(
      {
        p[200000] = 1;
        (void)malloc_fast(300000);  // its class's cache on this CPU gives p back
      },
      testing::KilledBySignal(SIGABRT),
      "slabby: write after free of 0x[0-9a-f]+ \\(large block of 300000 bytes\\): byte 200000 "
      "changed after it was freed \\(found by malloc\\)");
}

// A medium block's tag is its slab's (checked_block.h state_word), which no
// write of the program's reaches: its last word is body like the rest, and a
// write there after the free is named to the byte; a tag found neither free
// nor live (only the allocator, or memory corrupted outside the heap, could
// do that) is named as such, not as a write after free.
TEST(CheckedMediumDeathTest, ItsTagIsItsSlabsAndItsLastWordIsBody) {
  if (!start_secure()) GTEST_SKIP() << "the runtime started before the modes were set";
  stay_on_this_cpu();
  auto* p = static_cast<char*>(malloc_fast(300000));
  const size_t size = class_size(class_of_block(p));
  Span* slab = g_rt.heap.span_of(p);
  ASSERT_EQ(slab->start, reinterpret_cast<uintptr_t>(p)) << "one block a slab";
  EXPECT_EXIT(
      {
        slab->block_tag ^= 1;
        free_fast(p);
      },
      testing::KilledBySignal(SIGABRT),
      "slabby: free of 0x[0-9a-f]+, a block not marked live \\(large block of 300000 bytes\\)");
  free_fast(p);
  EXPECT_EXIT(
      {
        p[size - 1] = 1;
        (void)malloc_fast(300000);  // its class's cache on this CPU gives p back
      },
      testing::KilledBySignal(SIGABRT),
      "slabby: write after free of 0x[0-9a-f]+ \\(large block of 300000 bytes\\): byte " +
          std::to_string(size - 1) + " changed after it was freed \\(found by malloc\\)");
  EXPECT_EXIT(
      {
        slab->block_tag ^= 1;
        (void)malloc_fast(300000);
      },
      testing::KilledBySignal(SIGABRT),
      "slabby: the free block 0x[0-9a-f]+ \\(large block of 300000 bytes\\) is not marked free "
      "\\(found by malloc\\)");
}

// A thread on its checked bins keeps its medium blocks in its CPU's cache,
// as the default caches do (cache/thread_cache.h cache_medium_on_cpu), not
// one of each medium class in its own bin: a C++ program's eight threads on
// their bins held up to 6 MiB each that way (peak RSS 1.35 x the default's;
// docs/security.md, "Medium blocks of threads on their bins").
TEST(CheckedMedium, AThreadOnItsBinsKeepsItsMediumBlocksInItsCpusCache) {
  setenv("SLABBY_PERCPU_THREADS", "3", 1);  // this thread on its bins, whatever CI's variant says
  if (!start_secure()) GTEST_SKIP() << "the runtime started before the modes were set";
  if (!tl_cache.rseq_ok) GTEST_SKIP() << "no rseq area: the thread has no CPU cache";
  ASSERT_EQ(tl_checked.on_cpu, 0u) << "one thread: on its bins";
  stay_on_this_cpu();
  void* p = malloc_fast(100000);
  ASSERT_NE(p, nullptr);
  unsigned cls = class_of_block(p);
  ASSERT_TRUE(is_medium_class(cls));
  uint64_t before[kNumClasses] = {}, after[kNumClasses] = {};
  percpu_cached_blocks(before);
  free_fast(p);
  percpu_cached_blocks(after);
  EXPECT_EQ(after[cls], before[cls] + 1) << "the freed block is in the CPU's cache";
  EXPECT_EQ(checked_bin_count(tl_checked.bins[cls]), 0u) << "and not in the thread's bin";
  void* q = malloc_fast(100000);
  EXPECT_EQ(q, p) << "and comes back from there";
  free_fast(q);
}

// Zeroing at free and the zero check at reuse read and write only the pages
// that hold data: a block the program used the start of is not faulted in
// whole. Its first pages hold the data, the one after its usable bytes its
// canary; its last holds nothing (its tag is its slab's).
TEST(CheckedMedium, ABlockUsedAtItsStartIsNotFaultedInByItsFreeNorItsReuse) {
  if (!start_secure()) GTEST_SKIP() << "the runtime started before the modes were set";
  stay_on_this_cpu();
  const size_t n = size_t{512} << 10, page = os::mincore_page_size();
  const size_t system_page = os::system_page_size();  // (qemu's may be bigger than mincore's)
  auto* p = static_cast<char*>(malloc_fast(n));
  const unsigned cls = class_of_block(p);
  ASSERT_TRUE(is_medium_class(cls));
  ASSERT_GE(class_size(cls), n + 2 * system_page) << "the canary's page is not the block's last";
  memset(p, 1, 8192);
  const char* middle = p + (size_t{64} << 10);
  const size_t middle_bytes = n - (size_t{64} << 10);
  const char* tail = p + n + system_page;  // past the canary's page
  const size_t tail_bytes = class_size(cls) - n - system_page;
  auto untouched = [&](const char* when) {
    EXPECT_EQ(os::resident_bytes(middle, middle_bytes), 0u) << "the middle, " << when;
    EXPECT_EQ(os::resident_bytes(tail, tail_bytes), 0u) << "past the canary, " << when;
  };
  untouched("at first");
  free_fast(p);
  untouched("after the free's zeroing");
  auto* q = static_cast<char*>(malloc_fast(n));
  ASSERT_EQ(q, p) << "its class's cache on this CPU gives p back";
  untouched("after the zero check");
  for (size_t i = 0; i < 8192 + page; ++i) ASSERT_EQ(q[i], 0) << i;
  free_fast(q);
}

// The bit guard alone (no zeroing), no background thread (its purges would
// count in os::madvise_calls).
bool start_bitguard_alone() {
  setenv("SLABBY_BITGUARD", "1", 1);
  setenv("SLABBY_BACKGROUND", "0", 1);
  free_fast(malloc_fast(1));
  return g_checks.bitguard && !g_checks.zero_free && !g_checks.zero_alloc && !g_checks.extras &&
         !g_checks.guard_large;
}

// Two sizes of one medium class whose canaries fall on different pages,
// neither the block's first nor its last, each page shared with the
// program's last bytes.
struct TwoSizes {
  size_t small, big;
};
TwoSizes two_sizes_of_one_class() {
  const size_t small = (size_t{520} << 10) + 2048, big = (size_t{600} << 10) + 2048;
  EXPECT_EQ(checked_medium_class_of(small), checked_medium_class_of(big));
  EXPECT_NE(small / os::system_page_size(), big / os::system_page_size());
  return {small, big};
}

// Whether the page holding p is resident.
bool resident(const void* p) {
  uintptr_t page = round_down(reinterpret_cast<uintptr_t>(p), os::mincore_page_size());
  return os::resident_bytes(reinterpret_cast<const void*>(page), 1) != 0;
}

// A block handed out again for another size gives back the page its last
// canary held alone, either way: else such pages piled up, one per size a
// block served (medium-sparse: 42 MiB of peak RSS under SLABBY_SECURE=1
// against the default's 8). The same size again keeps its page: no call, no
// fault. A page the program wrote on is kept, though zeroed at its free.
TEST(CheckedMedium, ABlockHandedOutForAnotherSizeGivesBackItsLastCanarysPage) {
  setenv("SLABBY_BACKGROUND", "0", 1);  // (its purges would count in os::madvise_calls)
  if (!start_secure()) GTEST_SKIP() << "the runtime started before the modes were set";
  stay_on_this_cpu();
  const TwoSizes z = two_sizes_of_one_class();
  auto* p = static_cast<char*>(malloc_fast(z.big));
  memset(p, 1, 4096);
  ASSERT_TRUE(resident(p + z.big)) << "its canary";
  free_fast(p);
  auto* q = static_cast<char*>(malloc_fast(z.small));
  ASSERT_EQ(q, p) << "its class's cache on this CPU gives p back";
  EXPECT_FALSE(resident(p + z.big)) << "the canary's page of the last request, given back";
  EXPECT_TRUE(resident(p + z.small)) << "the new canary";
  free_fast(q);
  q = static_cast<char*>(malloc_fast(z.big));
  ASSERT_EQ(q, p);
  EXPECT_FALSE(resident(p + z.small)) << "a page below the new end is given back too";
  free_fast(q);
  const uint64_t calls = os::madvise_calls();
  for (int i = 0; i < 4; ++i) free_fast(malloc_fast(z.big));
  EXPECT_EQ(os::madvise_calls(), calls) << "the same size again gives nothing back";
  // A page the program wrote on is zeroed at the free and kept.
  q = static_cast<char*>(malloc_fast(z.small));
  ASSERT_EQ(q, p);
  q[z.small - 1024] = 7;
  free_fast(q);
  q = static_cast<char*>(malloc_fast(z.big));
  ASSERT_EQ(q, p);
  EXPECT_TRUE(resident(p + z.small)) << "the program wrote on it";
  EXPECT_EQ(q[z.small - 1024], 0);
  free_fast(q);
}

// Without zeroing, a page the program wrote keeps its data and is not given
// back (as the default keeps it); one only the canary wrote is.
TEST(CheckedMedium, WithoutZeroingOnlyAPageTheCanaryAloneWroteIsGivenBack) {
  if (!start_bitguard_alone()) GTEST_SKIP() << "the runtime started before the modes were set";
  stay_on_this_cpu();
  const TwoSizes z = two_sizes_of_one_class();
  auto* p = static_cast<char*>(malloc_fast(z.big));
  memset(p, 1, 4096);
  free_fast(p);
  auto* q = static_cast<char*>(malloc_fast(z.small));
  ASSERT_EQ(q, p) << "its class's cache on this CPU gives p back";
  EXPECT_FALSE(resident(p + z.big)) << "the canary alone wrote it";
  q[z.small - 1024] = 7;  // the program's byte on the page of its canary
  free_fast(q);
  q = static_cast<char*>(malloc_fast(z.big));
  ASSERT_EQ(q, p);
  EXPECT_TRUE(resident(p + z.small)) << "it holds the program's byte";
  EXPECT_EQ(q[z.small - 1024], 7) << "left as the program wrote it (no zeroing in this mode)";
  free_fast(q);
}

// A never-used medium block's pages are given back, not zeroed in place
// (checked::zero_fresh_body, called as its slab's block is first formatted):
// on pages that hold data, or on a huge page (a medium slab in the free pages
// a huge-page chunk left), every page of which is present, zeroing would
// leave them all present, to be zeroed and read again at each free and reuse
// of the block (under SLABBY_SECURE, a loop of 64 KiB-1 MiB blocks with 32 MiB
// of small blocks live took 3.8 s, against 1.6 s: docs/security.md).
TEST(CheckedMedium, ANeverUsedBodyIsZeroedByGivingItsPagesBack) {
  const size_t page = os::system_page_size(), n = size_t{1} << 20;
  void* m = mmap(nullptr, n + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  auto* p = static_cast<unsigned char*>(m);
  memset(p, 0x5a, n + page);
  checked::zero_fresh_body(reinterpret_cast<uintptr_t>(p), n);
  EXPECT_EQ(os::resident_bytes(p, n), page) << "the pages past its first kept";
  EXPECT_EQ(p[0], 0x5a) << "its first word (the link) is not the body's";
  for (size_t i = 8; i < n; ++i) ASSERT_EQ(p[i], 0) << i;
  EXPECT_EQ(p[n], 0x5a) << "the next block's bytes are left alone";
  munmap(m, n + page);
}

// With 64 KiB pages a medium block of the 32-64 KiB classes sits alone in a
// 64 KiB slab with no whole page inside its body: it is written, and nothing
// past it.
TEST(CheckedMedium, ANeverUsedBodyWithNoWholePageInsideIsWrittenAndNothingPastIt) {
  const size_t page = size_t{64} << 10, n = size_t{40} << 10;
  void* m = mmap(nullptr, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  // The block at the start of a (64 KiB) page, as its slab is.
  auto* p = reinterpret_cast<unsigned char*>(round_up(reinterpret_cast<uintptr_t>(m), page));
  memset(p, 0x5a, 2 * page);
  checked::zero_fresh_body(reinterpret_cast<uintptr_t>(p), n, page);
  for (size_t i = 0; i < 8; ++i) ASSERT_EQ(p[i], 0x5a) << "its link word: " << i;
  for (size_t i = 8; i < n; ++i) ASSERT_EQ(p[i], 0) << i;
  for (size_t i = n; i < 2 * page; ++i) ASSERT_EQ(p[i], 0x5a) << "past the body: " << i;
  munmap(m, 3 * page);
}

// realloc: within its class a medium block stays where it is (its canary
// moves to the new end); past it, it goes to a page span with room to grow,
// where the next steps take place in place; the span shrinks in place too.
TEST(CheckedMedium, ReallocGrowsInItsClassInPlaceAndPastItToASpanWithRoom) {
  if (!start_secure()) GTEST_SKIP() << "the runtime started before the modes were set";
  auto* p = static_cast<unsigned char*>(malloc_fast(100000));
  const unsigned cls = class_of_block(p);
  ASSERT_TRUE(is_medium_class(cls));
  for (size_t i = 0; i < 100000; ++i) p[i] = static_cast<unsigned char>(i * 7);
  ASSERT_EQ(checked_medium_class_of(104000), cls) << "the test's sizes no longer share a class";
  auto* q = static_cast<unsigned char*>(realloc_impl(p, 104000));
  ASSERT_EQ(q, p) << "grown within its class";
  ASSERT_EQ(usable_size_impl(q), 104000u);
  for (size_t i = 100000; i < 104000; ++i)
    ASSERT_EQ(q[i], 0) << "the old canary left behind: " << i;
  for (size_t i = 100000; i < 104000; ++i) q[i] = static_cast<unsigned char>(i * 7);
  EXPECT_DEATH(
      {
        q[104000] ^= 1;
        free_fast(q);
      },
      "slabby: heap overflow past the 104000 usable bytes of 0x[0-9a-f]+ .*canary byte 0 changed");
  auto* r = static_cast<unsigned char*>(realloc_impl(q, 200000));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(class_of_block(r), 0u) << "past its class: a page span";
  EXPECT_EQ(usable_size_impl(r), 200000u);
  for (size_t i = 0; i < 104000; ++i) ASSERT_EQ(r[i], static_cast<unsigned char>(i * 7)) << i;
  auto* s = static_cast<unsigned char*>(realloc_impl(r, 260000));
  EXPECT_EQ(s, r) << "the span had room to grow";
  EXPECT_EQ(realloc_impl(s, 150000), s) << "a shrink to more than half is kept";
  for (size_t i = 0; i < 104000; ++i) ASSERT_EQ(s[i], static_cast<unsigned char>(i * 7)) << i;
  // Below half: in place too, the bytes given up zeroed as free memory (so
  // growing over them again finds no write after free, and reads zero).
  memset(s + 104000, 0xee, 260000 - 104000);
  ASSERT_EQ(realloc_impl(s, 60000), s) << "a span shrinks in place";
  ASSERT_EQ(usable_size_impl(s), 60000u);
  EXPECT_DEATH(
      {
        s[60000] ^= 1;
        free_fast(s);
      },
      "slabby: heap overflow past the 60000 usable bytes of 0x[0-9a-f]+ .*canary byte 0 changed");
  ASSERT_EQ(realloc_impl(s, 250000), s) << "grown back over its own pages";
  for (size_t i = 0; i < 60000; ++i) ASSERT_EQ(s[i], static_cast<unsigned char>(i * 7)) << i;
  for (size_t i = 60000; i < 250000; ++i) ASSERT_EQ(s[i], 0) << i;
  free_fast(s);
}

// Dirty medium blocks handed out again read zero with SLABBY_ZERO=alloc, and
// calloc's read zero in every mode; a write into a medium block waiting in
// the quarantine is found as it leaves.
TEST(CheckedMedium, ZeroOnAllocAndCallocOfDirtyMediumBlocksReadZero) {
  if (!start_general()) GTEST_SKIP() << "the runtime started before the modes were set";
  for (size_t n : {size_t{40000}, size_t{100000}, size_t{700000}}) {
    for (int round = 0; round < 3; ++round) {
      auto* p = static_cast<unsigned char*>(malloc_fast(n));
      ASSERT_TRUE(is_medium_class(class_of_block(p)));
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(p[i], 0) << n << " @" << i;
      memset(p, 0xcd, n);
      free_fast(p);
      auto* c = static_cast<unsigned char*>(calloc_impl(1, n));
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(c[i], 0) << "calloc " << n << " @" << i;
      memset(c, 0xcd, n);
      free_fast(c);
    }
  }
}

TEST(CheckedMediumDeathTest, AWriteIntoAQuarantinedBlockIsFoundAsItLeaves) {
  setenv("SLABBY_ZERO", "free", 1);
  setenv("SLABBY_QUARANTINE", "256K", 1);
  free_fast(malloc_fast(1));
  if (!g_checks.zero_free || g_checks.quarantine == 0)
    GTEST_SKIP() << "the runtime started before the modes were set";
  auto* p = static_cast<char*>(malloc_fast(100000));
  ASSERT_TRUE(is_medium_class(class_of_block(p)));
  memset(p, 'a', 100000);
  free_fast(p);
  EXPECT_EXIT(
      {
        p[10] = 1;
        for (int i = 0; i < 4; ++i) free_fast(malloc_fast(200000));  // pushes p out
      },
      testing::KilledBySignal(SIGABRT),
      "slabby: write after free of 0x[0-9a-f]+ \\(large block of 100000 bytes\\): byte 10 "
      "changed while it was in quarantine");
}

// Four threads allocate medium and small blocks, fill, verify, resize and
// free them, a quarter freed by another thread: no byte lost, no report.
TEST(CheckedMedium, ThreadsSharingMediumBlocksKeepEveryByte) {
  if (!start_secure()) GTEST_SKIP() << "the runtime started before the modes were set";
  struct Block {
    unsigned char* p;
    size_t n;
    unsigned char fill;
  };
  std::mutex mu;
  std::vector<Block> shared;
  auto check = [](const Block& b) {
    for (size_t i = 0; i < b.n; i += 61) ASSERT_EQ(b.p[i], b.fill) << (void*)b.p << " @" << i;
    if (b.n > 0) ASSERT_EQ(b.p[b.n - 1], b.fill);
  };
  auto worker = [&](unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<Block> mine;
    auto medium = [&rng]() -> size_t {
      return 30000 + rng() % (rng() % 8 == 0 ? (size_t{1} << 20) : (size_t{200} << 10));
    };
    for (int op = 0; op < 800; ++op) {
      if (mine.size() < 24 || rng() % 2 == 0) {
        size_t n = rng() % 4 == 0 ? rng() % 2000 : medium();
        Block b{static_cast<unsigned char*>(malloc_fast(n)), n,
                static_cast<unsigned char>(rng() | 1)};
        ASSERT_NE(b.p, nullptr);
        memset(b.p, b.fill, n);
        mine.push_back(b);
        continue;
      }
      size_t at = rng() % mine.size();
      Block b = mine[at];
      mine[at] = mine.back();
      mine.pop_back();
      check(b);
      if (rng() % 4 == 0) {  // resized: kept bytes, new bytes filled
        size_t m = medium();
        auto* q = static_cast<unsigned char*>(realloc_impl(b.p, m));
        ASSERT_NE(q, nullptr);
        Block c{q, m < b.n ? m : b.n, b.fill};
        check(c);
        memset(q, b.fill, m);
        mine.push_back({q, m, b.fill});
      } else if (rng() % 3 == 0) {
        std::lock_guard<std::mutex> g(mu);
        shared.push_back(b);
      } else {
        free_fast(b.p);
      }
      std::vector<Block> theirs;
      {
        std::lock_guard<std::mutex> g(mu);
        if (shared.size() > 8) theirs.swap(shared);
      }
      for (const Block& t : theirs) {
        check(t);
        free_fast(t.p);
      }
    }
    for (const Block& b : mine) {
      check(b);
      free_fast(b.p);
    }
  };
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 4; ++t) threads.emplace_back(worker, 100 + t);
  for (auto& t : threads) t.join();
  for (const Block& b : shared) free_fast(b.p);
}

}  // namespace
}  // namespace slabby

// Slabs on transparent huge pages (heap/huge_slabs.cc): none below
// kHugeSlabsAfter bytes of slabs, then whole aligned huge pages at the
// frontier, marked, filled by the slabs that follow before the frontier
// moves, adjacent ones one mapping; never under SLABBY_THP=large. Heaps
// here do not time their faults (SLABBY_THP_TIMED=0), whose outcome depends
// on the host, except the last two tests', which tell their judges of slow
// faults.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "../common/vm_flags.h"
#include "common/size_class.h"
#include "heap/page_heap.h"
#include "os/os.h"

namespace slabby {
namespace {

constexpr size_t kArena = size_t{1} << 30;
constexpr size_t kMiB = size_t{1} << 20;

std::unique_ptr<PageHeap> make_heap(os::Thp thp) {
  auto h = std::make_unique<PageHeap>();
  EXPECT_TRUE(h->init(kArena, 64 * kMiB));
  h->set_thp(thp);
  h->set_thp_timed(false);
  h->set_decay_ms(3600 * 1000);
  return h;
}

using slabby_test::kernel_shows_huge_marks;
using slabby_test::vm_flags;
bool marked(uintptr_t p) { return slabby_test::marked_huge(p); }

bool huge_pages_fit_slabs() { return os::huge_page_size() <= 4 * kMiB; }

// Slabs of one page until `bytes` of them are out.
std::vector<Span*> take_slabs(PageHeap& h, size_t bytes) {
  std::vector<Span*> out;
  for (size_t got = 0; got < bytes; got += kPageSize) {
    Span* s = h.alloc_slab(1, 1);
    EXPECT_NE(s, nullptr);
    if (s == nullptr) break;
    out.push_back(s);
  }
  return out;
}

TEST(HugeSlabs, SlabsKeepSmallPagesUntilTheProgramHoldsEnoughOfThem) {
  if (!huge_pages_fit_slabs()) GTEST_SKIP() << "huge pages of " << os::huge_page_size();
  auto h = make_heap(os::Thp::kDense);
  // The slab that reaches the bound is the last before any chunk.
  std::vector<Span*> below = take_slabs(*h, PageHeap::kHugeSlabsAfter);
  EXPECT_EQ(h->stats().huge_slab_chunks, 0u);
  bool check_kernel = kernel_shows_huge_marks();
  for (Span* s : below) {
    ASSERT_FALSE(check_kernel && marked(s->start)) << std::hex << s->start;
    if (s == below[64]) break;  // smaps is slow to read: a sample
  }
  if (check_kernel) EXPECT_FALSE(marked(below.back()->start));

  // The next slab starts a chunk: a whole aligned huge page, marked.
  const size_t huge = os::huge_page_size();
  Span* first = h->alloc_slab(1, 1);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->start % huge, 0u);
  EXPECT_EQ(h->stats().huge_slab_chunks, 1u);
  EXPECT_EQ(h->stats().huge_slab_runs, 1u);
  if (check_kernel) EXPECT_TRUE(marked(first->start));

  // The slabs after it fill the chunk before the frontier moves again.
  std::vector<Span*> rest;
  for (size_t i = 1; i < huge / kPageSize; ++i) {
    Span* s = h->alloc_slab(1, 1);
    ASSERT_NE(s, nullptr);
    ASSERT_GE(s->start, first->start) << i;
    ASSERT_LT(s->start, first->start + huge) << i;
    rest.push_back(s);
  }
  EXPECT_EQ(h->stats().huge_slab_chunks, 1u);

  // The next chunk follows the first: one run, one mapping to the kernel.
  Span* second = h->alloc_slab(1, 1);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->start, first->start + huge);
  EXPECT_EQ(h->stats().huge_slab_chunks, 2u);
  EXPECT_EQ(h->stats().huge_slab_runs, 1u);
  if (check_kernel) {
    EXPECT_TRUE(marked(second->start));
    // Written and read back across the two chunks.
    for (Span* s : {first, rest.back(), second})
      memset(reinterpret_cast<void*>(s->start), 0x5a, kPageSize);
    for (Span* s : {first, rest.back(), second})
      EXPECT_EQ(reinterpret_cast<unsigned char*>(s->start)[kPageSize - 1], 0x5a);
  }
  for (Span* s : below) h->free_slab(s);
  for (Span* s : rest) h->free_slab(s);
  h->free_slab(first);
  h->free_slab(second);
}

TEST(HugeSlabs, AGapBeforeTheNextChunkBecomesFreePagesForLaterRequests) {
  if (!huge_pages_fit_slabs()) GTEST_SKIP() << "huge pages of " << os::huge_page_size();
  auto h = make_heap(os::Thp::kDense);
  std::vector<Span*> slabs = take_slabs(*h, PageHeap::kHugeSlabsAfter);
  // A large block moves the frontier off the huge page grain.
  Span* large = h->alloc_large(kMiB + 3 * kPageSize, kPageSize);
  ASSERT_NE(large, nullptr);
  const size_t huge = os::huge_page_size();
  ASSERT_NE(large->end() % huge, 0u);
  Span* chunked = h->alloc_slab(1, 1);
  ASSERT_NE(chunked, nullptr);
  EXPECT_EQ(chunked->start % huge, 0u);
  EXPECT_GT(chunked->start, large->end());
  EXPECT_EQ(h->stats().huge_slab_runs, 1u);
  // The pages between the large block and the chunk are free, and taken
  // first by a request that fits them (the chunk's rest is larger).
  size_t gap_pages = (chunked->start - large->end()) >> kPageShift;
  Span* in_gap = h->alloc_large(gap_pages << kPageShift, kPageSize);
  ASSERT_NE(in_gap, nullptr);
  EXPECT_EQ(in_gap->start, large->end());
  h->free_large(in_gap);
  h->free_large(large);
  h->free_slab(chunked);
  for (Span* s : slabs) h->free_slab(s);
}

TEST(HugeSlabs, LargeModeAndNeverModeKeepSlabsOnSmallPages) {
  for (os::Thp mode : {os::Thp::kLarge, os::Thp::kNever}) {
    auto h = make_heap(mode);
    std::vector<Span*> slabs = take_slabs(*h, PageHeap::kHugeSlabsAfter + 4 * kMiB);
    EXPECT_EQ(h->stats().huge_slab_chunks, 0u);
    if (kernel_shows_huge_marks()) EXPECT_FALSE(marked(slabs.back()->start));
    for (Span* s : slabs) h->free_slab(s);
  }
}

// Medium slabs (one block each, not filled by construction) take no chunk
// until their class is seen filled: past the bound, 64 unwritten ones of
// two classes take none (before 2026-12-07 they did outside the checked
// modes that zero: 400 blocks of 40 KiB-1 MiB with their first 4 KiB
// written peaked at 296 MiB, bench medium-sparse); a class whose previous
// slab is filled when the next one is taken gets chunks from then on, as
// small slabs do.
TEST(HugeSlabs, MediumSlabsTakeNoChunkUntilTheirClassIsSeenFilled) {
  if (!huge_pages_fit_slabs()) GTEST_SKIP() << "huge pages of " << os::huge_page_size();
  auto h = make_heap(os::Thp::kDense);
  std::vector<Span*> below = take_slabs(*h, PageHeap::kHugeSlabsAfter);
  ASSERT_EQ(h->stats().huge_slab_chunks, 0u);
  for (unsigned medium : {kNumSmallClasses, kNumClasses - 1}) {
    for (int i = 0; i < 64; ++i) {
      Span* m = h->alloc_slab(medium, kSlabPages[medium]);
      ASSERT_NE(m, nullptr);
      ASSERT_EQ(h->stats().huge_slab_chunks, 0u)
          << "a medium slab of class " << medium << " took a chunk";
    }
  }
  EXPECT_EQ(h->dense_medium(), 0u);
  // Filled: the next slab looks at it, and the one after takes a chunk.
  const unsigned filled = kNumSmallClasses + 1;
  Span* first = h->alloc_slab(filled, kSlabPages[filled]);
  ASSERT_NE(first, nullptr);
  memset(reinterpret_cast<void*>(first->start), 1, size_t{first->pages} << kPageShift);
  Span* second = h->alloc_slab(filled, kSlabPages[filled]);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(h->dense_medium(), uint64_t{1} << filled);
  EXPECT_EQ(h->stats().huge_slab_chunks, 0u);
  Span* third = h->alloc_slab(filled, kSlabPages[filled]);
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(h->stats().huge_slab_chunks, 1u) << "a slab of a filled medium class takes one";
  EXPECT_EQ(third->start % os::huge_page_size(), 0u);
  // The other medium classes still make none.
  Span* other = h->alloc_slab(kNumSmallClasses, kSlabPages[kNumSmallClasses]);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(h->stats().huge_slab_chunks, 1u);
}

// The bound counts slabs that are filled: a small class's (filled by
// construction) and a medium class's seen filled. Slabs of medium classes not
// seen filled (a program using its buffers at their start) do not bring
// small slabs onto huge pages: 32 MiB of 1-256 KiB blocks, their first and
// last bytes written, beside a few MiB of small blocks, otherwise put those
// on chunks, whose leftover pages medium slabs then took, and peaked at 22-36
// MiB where without chunks it takes 14 (bench medium-live-2-256k, 2026-12-07).
TEST(HugeSlabs, OnlySlabsOfFilledClassesCountTowardsTheBound) {
  if (!huge_pages_fit_slabs()) GTEST_SKIP() << "huge pages of " << os::huge_page_size();
  auto h = make_heap(os::Thp::kDense);
  const unsigned sparse = kNumClasses - 1;
  std::vector<Span*> medium;
  for (size_t got = 0; got < PageHeap::kHugeSlabsAfter; got += slab_bytes(sparse)) {
    medium.push_back(h->alloc_slab(sparse, kSlabPages[sparse]));
    ASSERT_NE(medium.back(), nullptr);
  }
  ASSERT_EQ(h->dense_medium(), 0u);
  Span* small = h->alloc_slab(1, 1);
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(h->stats().huge_slab_chunks, 0u) << "slabs of a class not seen filled counted";

  // A class seen filled counts from then on: its slabs and the small ones
  // reach the bound together. (Its slabs of clean pages only are looked at:
  // no slab has gone back yet.)
  const unsigned filled = kNumSmallClasses + 1;
  Span* look = h->alloc_slab(filled, kSlabPages[filled]);
  ASSERT_NE(look, nullptr);
  memset(reinterpret_cast<void*>(look->start), 1, slab_bytes(filled));
  std::vector<Span*> dense;
  dense.push_back(h->alloc_slab(filled, kSlabPages[filled]));
  ASSERT_EQ(h->dense_medium(), uint64_t{1} << filled);
  // (That slab was taken before the look: it is not counted, as `look`.)
  size_t counted = 0;
  while (counted < PageHeap::kHugeSlabsAfter / 2) {
    dense.push_back(h->alloc_slab(filled, kSlabPages[filled]));
    ASSERT_NE(dense.back(), nullptr);
    counted += slab_bytes(filled);
  }
  std::vector<Span*> below = take_slabs(*h, PageHeap::kHugeSlabsAfter - counted - kPageSize);
  EXPECT_EQ(h->stats().huge_slab_chunks, 0u);
  Span* next = h->alloc_slab(1, 1);
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(h->stats().huge_slab_chunks, 1u) << "the filled class's slabs not counted";

  // Slabs that go back take off what they counted, and only that: the
  // sparse class's, freed, leave the bound's count where it was.
  for (Span* s : medium) h->free_slab(s);
  for (Span* s : {small, look, next}) h->free_slab(s);
  for (Span* s : dense) h->free_slab(s);
  for (Span* s : below) h->free_slab(s);
}

// A medium slab placed in a chunk's pages (free pages after the chunk's
// slabs, which any request may take) is resident as the huge page is,
// whatever its block's program wrote: the look at a class's previous slab
// skips such a slab rather than take the class for filled (which then gave
// every later slab of the class a chunk of its own).
TEST(HugeSlabs, AMediumSlabInAChunkDoesNotMakeItsClassFilled) {
  if (!huge_pages_fit_slabs()) GTEST_SKIP() << "huge pages of " << os::huge_page_size();
  auto h = make_heap(os::Thp::kDense);
  std::vector<Span*> below = take_slabs(*h, PageHeap::kHugeSlabsAfter);
  Span* first = h->alloc_slab(1, 1);
  ASSERT_NE(first, nullptr);
  ASSERT_EQ(h->stats().huge_slab_chunks, 1u);
  const uintptr_t chunk = first->start, huge = os::huge_page_size();
  memset(reinterpret_cast<void*>(first->start), 1, kPageSize);  // faults the huge page in
  const unsigned cls = kNumSmallClasses;
  Span* in_chunk = h->alloc_slab(cls, kSlabPages[cls]);
  ASSERT_NE(in_chunk, nullptr);
  if (in_chunk->start < chunk || in_chunk->end() > chunk + huge)
    GTEST_SKIP() << "the medium slab was not placed in the chunk";
  const size_t bytes = slab_bytes(cls);
  if (os::resident_bytes(reinterpret_cast<void*>(in_chunk->start), bytes) < bytes / 8 * 7)
    GTEST_SKIP() << "no huge page behind the chunk (THP off or not granted)";
  // Its pages untouched, yet resident: the next slab of the class looks at it.
  Span* next = h->alloc_slab(cls, kSlabPages[cls]);
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(h->dense_medium(), 0u) << "a slab in a chunk made its class look filled";
  for (Span* s : {first, in_chunk, next}) h->free_slab(s);
  for (Span* s : below) h->free_slab(s);
}

// The smallest medium class whose slab is at least four of slabby's pages
// (a slab of one page is never made clean: 64 KiB builds).
unsigned medium_class_of_pages() {
  for (unsigned c = kNumSmallClasses; c < kNumClasses; ++c)
    if (kSlabPages[c] >= 4) return c;
  return kNumClasses - 1;
}

// The look at a class's previous slab reads residency, and a slab made of
// dirty pages holds what another block's program left there. So such a
// slab, when the next look will read it, has its pages but the first given
// back as it is made: the look then reads what its own program wrote. (A
// medium class's first slab taking the pages of a filled block, freed,
// made the class look filled at its second; and with only slabs of clean
// pages looked at, a class whose slabs all came from dirty pages once the
// heap stopped growing was never seen filled: buffers of varied sizes
// filled whole, 49 MiB of peak RSS against 40, bench medium-mixed-filled.)
TEST(HugeSlabs, AMediumSlabOfAnotherBlocksPagesIsJudgedByWhatItsProgramWrites) {
  if (!huge_pages_fit_slabs()) GTEST_SKIP() << "huge pages of " << os::huge_page_size();
  const unsigned big = kNumClasses - 1, cls = medium_class_of_pages();
  ASSERT_GE(kSlabPages[big], 2 * kSlabPages[cls]);
  for (bool fill_it : {false, true}) {
    auto h = make_heap(os::Thp::kDense);
    Span* before = h->alloc_slab(big, kSlabPages[big]);
    ASSERT_NE(before, nullptr);
    memset(reinterpret_cast<void*>(before->start), 1, slab_bytes(big));  // filled
    const uintptr_t from = before->start, to = before->end();
    h->free_slab(before);
    Span* first = h->alloc_slab(cls, kSlabPages[cls]);
    ASSERT_NE(first, nullptr);
    if (first->start < from || first->end() > to)
      GTEST_SKIP() << "the slab did not take the freed block's pages";
    EXPECT_LE(os::resident_bytes(reinterpret_cast<void*>(first->start), slab_bytes(cls)), kPageSize)
        << "its pages but the first were not given back";
    if (fill_it) memset(reinterpret_cast<void*>(first->start), 2, slab_bytes(cls));
    Span* second = h->alloc_slab(cls, kSlabPages[cls]);
    ASSERT_NE(second, nullptr);
    if (fill_it)
      EXPECT_EQ(h->dense_medium(), uint64_t{1} << cls) << "its program filled it";
    else
      EXPECT_EQ(h->dense_medium(), 0u) << "another block's pages made its class look filled";
    h->free_slab(first);
    h->free_slab(second);
  }
}

// ... for a class's first kDirtyLooksMost looks only: a class never seen
// filled (blocks used at their start) would otherwise pay a madvise and a
// fault at one slab in kDensityCheckEvery for as long as it runs.
TEST(HugeSlabs, OnlyAClasssFirstLooksGiveBackADirtySlabsPages) {
  if (!huge_pages_fit_slabs()) GTEST_SKIP() << "huge pages of " << os::huge_page_size();
  auto h = make_heap(os::Thp::kDense);
  const unsigned cls = medium_class_of_pages();
  const uint32_t slabs = PageHeap::kDensityCheckEvery * (PageHeap::kDirtyLooksMost + 2);
  // Filled medium slabs, freed: dirty pages (a large span's would be purged
  // at its free).
  const unsigned big = kNumClasses - 1;
  std::vector<Span*> filled;
  uintptr_t from = UINTPTR_MAX, to = 0;
  for (size_t got = 0; got < slab_bytes(cls) * (slabs + 1); got += slab_bytes(big)) {
    Span* b = h->alloc_slab(big, kSlabPages[big]);
    ASSERT_NE(b, nullptr);
    memset(reinterpret_cast<void*>(b->start), 1, slab_bytes(big));
    from = std::min(from, b->start);
    to = std::max(to, b->end());
    filled.push_back(b);
  }
  for (Span* b : filled) h->free_slab(b);
  uint32_t given_back = 0, taken = 0;
  std::vector<Span*> out;
  for (uint32_t i = 0; i < slabs; ++i) {
    Span* s = h->alloc_slab(cls, kSlabPages[cls]);
    ASSERT_NE(s, nullptr);
    out.push_back(s);
    if (s->start < from || s->end() > to) continue;  // (clean pages past the freed span)
    ++taken;
    if (os::resident_bytes(reinterpret_cast<void*>(s->start), slab_bytes(cls)) <= kPageSize)
      ++given_back;
  }
  ASSERT_GE(taken, slabs / 2) << "the slabs did not take the freed span's pages";
  EXPECT_GE(given_back, 1u);
  EXPECT_LE(given_back, PageHeap::kDirtyLooksMost);
  EXPECT_FALSE((h->dense_medium() >> cls) & 1) << "the class's slabs were not written";
  for (Span* s : out) h->free_slab(s);
}

TEST(HugeSlabs, TheBoundOnceReachedStaysWhenSlabsGoBack) {
  if (!huge_pages_fit_slabs()) GTEST_SKIP() << "huge pages of " << os::huge_page_size();
  auto h = make_heap(os::Thp::kDense);
  std::vector<Span*> slabs = take_slabs(*h, PageHeap::kHugeSlabsAfter);
  for (Span* s : slabs) h->free_slab(s);
  // The freed slabs' pages serve the next requests first (dirty spans).
  std::vector<Span*> again = take_slabs(*h, PageHeap::kHugeSlabsAfter);
  EXPECT_EQ(h->stats().huge_slab_chunks, 0u);
  // Past them, the frontier grows by chunks.
  Span* next = h->alloc_slab(1, 1);
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(next->start % os::huge_page_size(), 0u);
  EXPECT_EQ(h->stats().huge_slab_chunks, 1u);
  h->free_slab(next);
  for (Span* s : again) h->free_slab(s);
}

// A purge that touches a chunk marks it back, so khugepaged cannot collapse
// it and fault the purged pages in again (in part), and chunks purged whole
// and in part do not alternate, a mapping each (whole).
TEST(HugeSlabs, APurgeMarksBackTheChunksItTouches) {
  if (!huge_pages_fit_slabs()) GTEST_SKIP() << "huge pages of " << os::huge_page_size();
  auto h = make_heap(os::Thp::kDense);
  std::vector<Span*> below = take_slabs(*h, PageHeap::kHugeSlabsAfter);
  const size_t per_chunk = os::huge_page_size() / kPageSize;
  std::vector<Span*> a = take_slabs(*h, per_chunk * kPageSize);
  std::vector<Span*> b = take_slabs(*h, per_chunk * kPageSize);
  Span* c = h->alloc_slab(1, 1);  // B is not at the frontier's edge
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(a.front()->start % os::huge_page_size(), 0u);
  ASSERT_EQ(b.front()->start, a.front()->start + os::huge_page_size());
  ASSERT_EQ(c->start, b.front()->start + os::huge_page_size());
  ASSERT_EQ(h->stats().huge_slab_chunks, 3u);
  const bool check_kernel = kernel_shows_huge_marks();
  for (Span* s : a) memset(reinterpret_cast<void*>(s->start), 1, kPageSize);
  for (Span* s : b) memset(reinterpret_cast<void*>(s->start), 2, kPageSize);

  // All of B back and purged: B is marked back, and its run split in two.
  EXPECT_EQ(h->stats().huge_slab_runs, 1u);  // A, B and C
  for (Span* s : b) h->free_slab(s);
  EXPECT_GE(h->purge_all(), os::huge_page_size());
  EXPECT_EQ(h->stats().huge_slab_unmarked, 1u);
  EXPECT_EQ(h->stats().huge_slab_runs, 2u);  // A; C
  if (check_kernel) {
    EXPECT_FALSE(marked(b.front()->start));
    EXPECT_TRUE(marked(a.front()->start));
    EXPECT_TRUE(marked(c->start));
  }

  // A quarter of A's slabs, from its middle: A is marked back, alone. (A
  // chunk holds 512 slabs of 4 KiB pages, 32 of 64 KiB ones.)
  const size_t lo = per_chunk / 4, hi = per_chunk / 2;
  ASSERT_GT(lo, 0u);
  for (size_t i = lo; i < hi; ++i) h->free_slab(a[i]);
  EXPECT_EQ(h->purge_all(), (hi - lo) * kPageSize);
  EXPECT_EQ(h->stats().huge_slab_unmarked, 2u);
  EXPECT_EQ(h->stats().huge_slab_runs, 1u);  // C
  if (check_kernel) {
    EXPECT_FALSE(marked(a.front()->start));
    EXPECT_NE(vm_flags(a.front()->start).find(" nh"), std::string::npos);
    EXPECT_TRUE(marked(c->start));
  }
  // What stayed live in A reads as written.
  EXPECT_EQ(reinterpret_cast<unsigned char*>(a[lo - 1]->start)[0], 1);
  EXPECT_EQ(reinterpret_cast<unsigned char*>(a[hi]->start)[kPageSize - 1], 1);
  for (size_t i = 0; i < a.size(); ++i)
    if (i < lo || i >= hi) h->free_slab(a[i]);
  h->free_slab(c);
  for (Span* s : below) h->free_slab(s);
}

// A heap that grows again after its chunks were purged (and so marked back)
// gets chunks again, from the purged pages, and its slabs fill one chunk
// before the next. It used to take those pages 4 KiB at a time, and before
// them the best fit: a small clean span that is no chunk.
TEST(HugeSlabs, AHeapGrowingAgainAfterAPurgeGetsChunksFromThePurgedPages) {
  if (!huge_pages_fit_slabs()) GTEST_SKIP() << "huge pages of " << os::huge_page_size();
  auto h = make_heap(os::Thp::kDense);
  const size_t huge = os::huge_page_size();
  const size_t per_chunk = huge / kPageSize;
  std::vector<Span*> below = take_slabs(*h, PageHeap::kHugeSlabsAfter);
  std::vector<Span*> abc = take_slabs(*h, 3 * huge);  // chunks A, B, C
  std::vector<Span*> d = take_slabs(*h, huge);        // D, whole
  const uintptr_t a = abc.front()->start;
  ASSERT_EQ(a % huge, 0u);
  ASSERT_EQ(d.front()->start, a + 3 * huge);
  // A large block moves the frontier off the grain, so the next chunk (E,
  // whole) leaves a small clean span before it: the best fit for a slab.
  Span* large = h->alloc_large(kMiB + 3 * kPageSize, kPageSize);
  ASSERT_NE(large, nullptr);
  std::vector<Span*> e = take_slabs(*h, huge);
  ASSERT_EQ(e.front()->start % huge, 0u);
  const uintptr_t gap = large->end();
  ASSERT_LT(gap, e.front()->start);
  ASSERT_EQ(h->stats().huge_slab_chunks, 5u);
  ASSERT_EQ(h->stats().huge_slab_runs, 2u);  // A to D; E
  for (Span* s : abc) memset(reinterpret_cast<void*>(s->start), 7, kPageSize);

  // A, B and C back and purged: marked back, one clean free span.
  for (Span* s : abc) h->free_slab(s);
  EXPECT_GE(h->purge_all(), 3 * huge);
  EXPECT_EQ(h->stats().huge_slab_unmarked, 3u);
  EXPECT_EQ(h->stats().huge_slab_runs, 2u);  // D; E
  const bool check_kernel = kernel_shows_huge_marks();
  if (check_kernel) EXPECT_FALSE(marked(a));

  // The heap grows again: A is a chunk again, marked and filled first, then
  // B; nothing comes from the small span before E.
  std::vector<Span*> again = take_slabs(*h, huge + kPageSize);
  ASSERT_EQ(again.size(), per_chunk + 1);
  for (size_t i = 0; i < per_chunk; ++i) ASSERT_EQ(again[i]->start, a + i * kPageSize) << i;
  EXPECT_EQ(again.back()->start, a + huge);
  EXPECT_EQ(h->stats().huge_slab_chunks, 7u);
  EXPECT_EQ(h->stats().huge_slab_runs, 3u);  // A and B; D; E
  EXPECT_EQ(h->span_of(reinterpret_cast<void*>(gap))->state, SpanState::kFree);
  if (check_kernel) {
    EXPECT_TRUE(marked(a));
    EXPECT_TRUE(marked(a + huge));
    EXPECT_FALSE(marked(a + 2 * huge));
  }
  // The purged pages read as zero in the new slabs.
  for (Span* s : {again.front(), again[per_chunk / 2], again.back()})
    EXPECT_EQ(reinterpret_cast<unsigned char*>(s->start)[0], 0);
  for (auto* v : {&again, &d, &e, &below})
    for (Span* s : *v) h->free_slab(s);
  h->free_large(large);
}

}  // namespace
// With the faults timed (the default), the 16 MiB of slabs before the first
// chunk time small faults, the first chunk is timed; once a chunk faults
// slower than the small faults it replaces, slabs take small pages (no chunk
// for the next 32 MiB of them) until one chunk more is made as a probe.
TEST(HugeSlabs, SlowHugeFaultsStopChunksUntilAProbe) {
  if (!huge_pages_fit_slabs()) GTEST_SKIP() << "huge pages of " << os::huge_page_size();
  auto h = make_heap(os::Thp::kDense);
  h->set_thp_timed(true);
  std::vector<Span*> slabs = take_slabs(*h, PageHeap::kHugeSlabsAfter);
  EXPECT_GT(h->stats().small_fault_ns, 0u);
  Span* first = h->alloc_slab(1, 1);
  ASSERT_NE(first, nullptr);
  slabs.push_back(first);
  EXPECT_EQ(h->stats().huge_slab_chunks, 1u);
  EXPECT_EQ(h->stats().huge_fault_timed, 1u);
  EXPECT_GT(h->stats().huge_fault_ns, 0u);
  // The rest of that chunk, then huge faults reported ten times too slow.
  const size_t per_chunk = os::huge_page_size() / kPageSize;
  for (size_t i = 1; i < per_chunk; ++i) slabs.push_back(h->alloc_slab(1, 1));
  FaultJudge& judge = h->fault_judge_for_tests();
  // What the judge had measured, should anything below fail.
  SCOPED_TRACE(testing::Message() << "first chunk's fault " << judge.average_ns() << " ns, small "
                                  << judge.small_ns() << " ns");
  for (int i = 0; i < 8; ++i) judge.note_huge(10 * judge.limit_ns());
  ASSERT_FALSE(judge.on());
  // 32 MiB of slabs on small pages: no chunk, every slab declined one.
  const uint64_t declined = h->stats().huge_slab_declined;
  std::vector<Span*> small = take_slabs(*h, FaultJudge::kFirstProbe - kPageSize);
  EXPECT_EQ(h->stats().huge_slab_chunks, 1u);
  EXPECT_EQ(h->stats().huge_slab_declined - declined, small.size());
  // The next one is the probe: a chunk, timed.
  const uint64_t timed = h->stats().huge_fault_timed;
  Span* probe = h->alloc_slab(1, 1);
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->start % os::huge_page_size(), 0u);
  EXPECT_EQ(h->stats().huge_slab_chunks, 2u);
  EXPECT_EQ(h->stats().huge_fault_timed, timed + 1);
  h->free_slab(probe);
  for (Span* s : small) h->free_slab(s);
  for (Span* s : slabs) h->free_slab(s);
}

// Large spans follow the judge's verdict (learnt from the chunks): a fresh
// 16 MiB block of a size not learnt gets its inner huge pages marked while
// huge pages pay, and none once they do not.
TEST(HugeSlabs, LargeSpansAreMarkedOnlyWhileHugeFaultsPay) {
  if (!huge_pages_fit_slabs()) GTEST_SKIP() << "huge pages of " << os::huge_page_size();
  auto h = make_heap(os::Thp::kDense);
  h->set_thp_timed(true);
  Span* before = h->alloc_large(16 * kMiB, kPageSize);
  ASSERT_NE(before, nullptr);
  EXPECT_TRUE(before->huge);
  FaultJudge& judge = h->fault_judge_for_tests();
  judge.note_huge(10 * judge.limit_ns());
  ASSERT_FALSE(judge.on());
  Span* after = h->alloc_large(32 * kMiB, kPageSize);
  ASSERT_NE(after, nullptr);
  EXPECT_FALSE(after->huge);
  h->free_large(after);
  h->free_large(before);
}

}  // namespace slabby

// The page heap's large spans changing size (heap/span_resize.cc) and the
// reuse policy behind them (heap/page_heap.cc): in-place growth and shrink,
// moves by mremap, dirty spans first, the frontier span extended, huge spans
// returned until reuse is seen, huge pages, and the mappings all this adds.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "../common/vm_flags.h"
#include "heap/page_heap.h"
#include "os/os.h"

namespace slabby {
namespace {

constexpr size_t kArena = size_t{1} << 30;
constexpr size_t kMiB = size_t{1} << 20;

std::unique_ptr<PageHeap> make_heap(size_t retain = size_t{64} << 20,
                                    os::Thp thp = os::Thp::kLarge) {
  auto h = std::make_unique<PageHeap>();
  EXPECT_TRUE(h->init(kArena, retain));
  h->set_thp(thp);
  h->set_decay_ms(3600 * 1000);  // no purge by age under a slow (sanitizer) run
  return h;
}

char* at(Span* s) { return reinterpret_cast<char*>(s->start); }

void fill(Span* s, size_t bytes, unsigned seed) {
  for (size_t i = 0; i < bytes; i += 512) at(s)[i] = static_cast<char>(seed + i / 512);
}

::testing::AssertionResult holds(const char* p, size_t bytes, unsigned seed) {
  for (size_t i = 0; i < bytes; i += 512)
    if (p[i] != static_cast<char>(seed + i / 512))
      return ::testing::AssertionFailure() << "byte " << i << " changed";
  return ::testing::AssertionSuccess();
}

// Mappings of this process that overlap [lo, hi): what the kernel has to
// keep for the arena.
int mappings_in(uintptr_t lo, uintptr_t hi) {
  FILE* f = fopen("/proc/self/maps", "r");
  if (f == nullptr) return -1;
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, f) != nullptr) {
    unsigned long a, b;
    if (sscanf(line, "%lx-%lx", &a, &b) == 2 && b > lo && a < hi) ++n;
  }
  fclose(f);
  return n;
}

int arena_mappings(const PageHeap& h) { return mappings_in(h.base(), h.base() + h.size()); }

// A span purged at its free, then asked for again: from then on the heap
// keeps freed large spans (up to retain_max).
void see_reuse(PageHeap& h) {
  h.free_large(h.alloc_large(2 * kMiB, kPageSize));
  h.free_large(h.alloc_large(2 * kMiB, kPageSize));
}

// The arena's mappings once its first pages are committed: the read-write
// part (which the kernel may keep in more than one) and the reserved rest.
int committed_arena_mappings(PageHeap& h) {
  Span* s = h.alloc_large(kPageSize, kPageSize);
  h.free_large(s);
  return arena_mappings(h);
}

TEST(SpanResize, GrowsIntoTheFreePagesAfterIt) {
  auto h = make_heap();
  Span* a = h->alloc_large(8 * kMiB, kPageSize);
  Span* fence = h->alloc_large(kPageSize, kPageSize);  // keeps a's pages off the frontier
  uintptr_t a_start = a->start;
  h->free_large(a);
  Span* s = h->alloc_large(2 * kMiB, kPageSize);
  ASSERT_EQ(s->start, a_start) << "not the start of a's pages";
  fill(s, 2 * kMiB, 1);
  uintptr_t start = s->start;
  PageHeapStats before = h->stats();
  ASSERT_TRUE(h->grow_in_place(s, (6 * kMiB) >> kPageShift));
  EXPECT_EQ(s->start, start);
  EXPECT_EQ(s->pages, (6 * kMiB) >> kPageShift);
  EXPECT_EQ(s->usable, 6 * kMiB);
  EXPECT_TRUE(holds(at(s), 2 * kMiB, 1));
  memset(at(s) + 2 * kMiB, 7, 4 * kMiB);  // the grown part is the span's
  PageHeapStats after = h->stats();
  EXPECT_EQ(after.grown_in_place, before.grown_in_place + 1);
  EXPECT_EQ(after.in_use_bytes, before.in_use_bytes + 4 * kMiB);
  EXPECT_EQ(after.large_live_bytes, before.large_live_bytes + 4 * kMiB);
  // The rest of a's pages are still one free span right after it.
  EXPECT_EQ(after.free_dirty_bytes + after.free_clean_bytes,
            before.free_dirty_bytes + before.free_clean_bytes - 4 * kMiB);
  // Growing over a used span is refused, and changes nothing.
  EXPECT_FALSE(h->grow_in_place(s, (9 * kMiB) >> kPageShift));
  EXPECT_EQ(s->pages, (6 * kMiB) >> kPageShift);
  // Found by its start, freed whole.
  EXPECT_EQ(h->span_of(at(s)), s);
  EXPECT_EQ(h->span_of(at(s) + 6 * kMiB - 1), s);
  h->free_large(s);
  h->free_large(fence);
  EXPECT_EQ(h->stats().in_use_bytes, 0u);
}

TEST(SpanResize, GrowsAtTheFrontierAndThroughAFreeSpanThatEndsThere) {
  auto h = make_heap();
  Span* s = h->alloc_large(2 * kMiB, kPageSize);  // the arena's last span
  ASSERT_TRUE(h->grow_in_place(s, (5 * kMiB) >> kPageShift));
  EXPECT_EQ(h->stats().frontier_bytes, 5 * kMiB);
  // A free span between s and the frontier is taken, then the frontier.
  Span* t = h->alloc_large(kMiB, kPageSize);
  h->free_large(t);
  ASSERT_TRUE(h->grow_in_place(s, (8 * kMiB) >> kPageShift));
  EXPECT_EQ(h->stats().frontier_bytes, 8 * kMiB);
  EXPECT_EQ(h->stats().free_dirty_bytes + h->stats().free_clean_bytes, 0u);
  memset(at(s), 3, 8 * kMiB);
  // Past the arena: refused.
  EXPECT_FALSE(h->grow_in_place(s, (kArena >> kPageShift) + 1));
  EXPECT_EQ(s->pages, (8 * kMiB) >> kPageShift);
  h->free_large(s);
}

TEST(SpanResize, GrowthRespectsTheHeapCap) {
  auto h = make_heap();
  h->set_max_heap(4 * kMiB);
  Span* s = h->alloc_large(2 * kMiB, kPageSize);
  EXPECT_TRUE(h->grow_in_place(s, (4 * kMiB) >> kPageShift));
  EXPECT_FALSE(h->grow_in_place(s, (4 * kMiB + kPageSize) >> kPageShift));
  EXPECT_EQ(h->stats().in_use_bytes, 4 * kMiB);
  h->free_large(s);
}

TEST(SpanResize, ShrinkGivesTheTailBackAsAFreeSpan) {
  auto h = make_heap();
  Span* s = h->alloc_large(16 * kMiB, kPageSize);
  Span* fence = h->alloc_large(kPageSize, kPageSize);
  fill(s, 16 * kMiB, 2);
  h->shrink_in_place(s, (4 * kMiB) >> kPageShift);
  EXPECT_EQ(s->pages, (4 * kMiB) >> kPageShift);
  EXPECT_EQ(s->usable, 4 * kMiB);
  EXPECT_TRUE(holds(at(s), 4 * kMiB, 2));
  PageHeapStats st = h->stats();
  EXPECT_EQ(st.shrunk_in_place, 1u);
  EXPECT_EQ(st.in_use_bytes, 4 * kMiB + kPageSize);
  EXPECT_EQ(st.large_live_bytes, 4 * kMiB + kPageSize);
  EXPECT_EQ(st.free_dirty_bytes, 12 * kMiB);
  // The tail is reused, and the span can grow back over it.
  ASSERT_TRUE(h->grow_in_place(s, (10 * kMiB) >> kPageShift));
  EXPECT_EQ(h->stats().free_dirty_bytes, 6 * kMiB);
  h->free_large(s);
  h->free_large(fence);
}

TEST(SpanResize, MoveByRemapMovesThePagesNotTheBytes) {
  auto h = make_heap();
  Span* s = h->alloc_large(4 * kMiB, kPageSize);
  Span* fence = h->alloc_large(kPageSize, kPageSize);
  fill(s, 4 * kMiB, 3);
  uintptr_t old_start = s->start;
  int maps_before = committed_arena_mappings(*h);
  Span* d = h->move_by_remap(s, (16 * kMiB) >> kPageShift);
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->start, old_start);
  EXPECT_TRUE(d->remapped);
  EXPECT_EQ(d->pages, (16 * kMiB) >> kPageShift);
  EXPECT_TRUE(holds(at(d), 4 * kMiB, 3));
  // Past the old end: zero, and writable.
  EXPECT_EQ(at(d)[4 * kMiB], 0);
  EXPECT_EQ(at(d)[16 * kMiB - 1], 0);
  memset(at(d) + 4 * kMiB, 9, 12 * kMiB);
  PageHeapStats st = h->stats();
  EXPECT_EQ(st.remap_moves, 1u);
  EXPECT_EQ(st.remapped_live, 1u);
  EXPECT_EQ(st.in_use_bytes, 16 * kMiB + kPageSize);
  EXPECT_EQ(st.lost_bytes, 0u);
  // The old range is free (mapped afresh: clean) and usable again.
  Span* again = h->alloc_large(4 * kMiB, kPageSize);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->start, old_start);
  EXPECT_TRUE(again->zeroed);
  memset(at(again), 5, 4 * kMiB);
  // A remapped span never grows in place (it would straddle two mappings);
  // it moves again, as one mapping.
  EXPECT_FALSE(h->grow_in_place(d, (20 * kMiB) >> kPageShift));
  Span* e = h->move_by_remap(d, (24 * kMiB) >> kPageShift);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(h->stats().remapped_live, 1u);
  EXPECT_EQ(at(e)[4 * kMiB + 100], 9);
  EXPECT_TRUE(holds(at(e), 4 * kMiB, 3));
  // Shrinking one maps its tail afresh before freeing it.
  h->shrink_in_place(e, (6 * kMiB) >> kPageShift);
  EXPECT_TRUE(holds(at(e), 4 * kMiB, 3));
  h->free_large(e);
  h->free_large(again);
  EXPECT_EQ(h->stats().remapped_live, 0u);
  // Every range is linear again: no mappings are left behind (the kernel
  // merged them back).
  EXPECT_LE(arena_mappings(*h), maps_before);
  h->free_large(fence);
}

TEST(SpanResize, ManyMovesLeaveNoMappingsBehind) {
  auto h = make_heap();
  int maps_before = committed_arena_mappings(*h);
  std::vector<Span*> live;
  for (int round = 0; round < 20; ++round) {
    Span* s = h->alloc_large(kMiB, kPageSize);
    live.push_back(h->alloc_large(kPageSize, kPageSize));  // a fence after it
    for (size_t mib = 2; mib <= 16; mib *= 2) {
      Span* d = h->move_by_remap(s, (mib * kMiB) >> kPageShift);
      ASSERT_NE(d, nullptr);
      s = d;
      at(s)[mib * kMiB - 1] = 1;
    }
    live.push_back(s);
  }
  EXPECT_EQ(h->stats().remapped_live, 20u);
  // Each live remapped span costs at most two mappings.
  EXPECT_LE(arena_mappings(*h), maps_before + 2 * 20);
  for (Span* s : live) h->free_large(s);
  EXPECT_EQ(h->stats().remapped_live, 0u);
  EXPECT_LE(arena_mappings(*h), maps_before);
}

TEST(SpanResize, DirtySpansAreReusedBeforeCleanOnes) {
  auto h = make_heap();
  see_reuse(*h);
  h->purge_all();
  Span* a = h->alloc_large(2 * kMiB, kPageSize);
  Span* f1 = h->alloc_large(kPageSize, kPageSize);
  Span* b = h->alloc_large(4 * kMiB, kPageSize);
  Span* f2 = h->alloc_large(kPageSize, kPageSize);
  h->free_large(a);
  h->purge_all();  // a: clean, the better fit for 2 MiB
  memset(at(b), 1, 4 * kMiB);
  uintptr_t b_start = b->start;
  h->free_large(b);  // dirty: its pages are resident
  Span* s = h->alloc_large(2 * kMiB, kPageSize);
  EXPECT_EQ(s->start, b_start) << "took the clean span: its pages fault in again";
  EXPECT_FALSE(s->zeroed);
  // An mremap target prefers clean pages (the kernel discards the target's).
  Span* g = h->alloc_large(kMiB + kPageSize, kPageSize);
  h->free_large(s);
  Span* d = h->move_by_remap(g, (2 * kMiB) >> kPageShift);
  ASSERT_NE(d, nullptr);
  EXPECT_NE(d->start, b_start);
  h->free_large(d);
  h->free_large(f1);
  h->free_large(f2);
}

TEST(SpanResize, AFreeSpanAtTheFrontierIsExtendedNotLeftBehind) {
  auto h = make_heap();
  Span* a = h->alloc_large(10 * kMiB, kPageSize);
  memset(at(a), 1, 10 * kMiB);
  uintptr_t a_start = a->start;
  h->free_large(a);  // 10 MiB > retain / 8: purged, but still the last span
  Span* b = h->alloc_large(12 * kMiB, kPageSize);
  EXPECT_EQ(b->start, a_start);
  EXPECT_EQ(h->stats().frontier_bytes, 12 * kMiB);
  h->free_large(b);
}

TEST(SpanResize, LargeSpansGoBackAtFreeUntilReuseIsSeen) {
  auto h = make_heap(64 * kMiB);
  EXPECT_EQ(h->stats().keep_huge_bytes, kMiB);
  // A vector doubling: each freed half is above what is kept, and the next
  // request is bigger than it: returned at once, nothing stays resident.
  Span* v = h->alloc_large(4 * kMiB, kPageSize);
  for (size_t mib = 8; mib <= 64; mib *= 2) {
    Span* w = h->alloc_large(mib * kMiB, kPageSize);
    memset(at(w), 1, mib * kMiB);
    h->free_large(v);
    v = w;
  }
  PageHeapStats st = h->stats();
  EXPECT_EQ(st.huge_purged, 4u);  // 4, 8, 16 and 32 MiB
  EXPECT_EQ(st.keep_huge_bytes, kMiB);
  EXPECT_EQ(st.free_dirty_bytes, 0u);
  // A buffer freed and asked for again: from then on such spans are kept.
  h->free_large(v);  // 64 MiB: purged
  Span* again = h->alloc_large(48 * kMiB, kPageSize);
  EXPECT_EQ(h->stats().keep_huge_bytes, 64 * kMiB);
  memset(at(again), 2, 48 * kMiB);
  h->free_large(again);
  EXPECT_EQ(h->stats().huge_purged, 5u);
  EXPECT_GE(h->stats().free_dirty_bytes, 48 * kMiB);
  // Growth in place counts as a request too.
  auto g = make_heap(64 * kMiB);
  Span* a = g->alloc_large(8 * kMiB, kPageSize);
  g->free_large(a);  // purged
  Span* b = g->alloc_large(kMiB, kPageSize);  // not above keep_huge: no reuse seen yet
  EXPECT_EQ(g->stats().keep_huge_bytes, kMiB);
  ASSERT_TRUE(g->grow_in_place(b, (6 * kMiB) >> kPageShift));
  EXPECT_EQ(g->stats().keep_huge_bytes, 64 * kMiB);
  g->free_large(b);
}

TEST(SpanResize, LiveLargeSpansAreMarkedForHugePagesAndUnmarkedWhenFreed) {
  auto h = make_heap();
  int maps_before = committed_arena_mappings(*h);
  Span* small = h->alloc_large(kMiB + kPageSize, kPageSize);  // no whole aligned 2 MiB inside
  Span* big = h->alloc_large(8 * kMiB, kPageSize);            // at the frontier
  EXPECT_FALSE(small->huge);
  EXPECT_TRUE(big->huge);
  EXPECT_EQ(h->stats().huge_page_spans, 1u);
  memset(at(big), 1, 8 * kMiB);
  // One marked span is one mapping more (its flags differ) plus the split
  // it makes; grown in place, it stays one mapping.
  int maps_marked = arena_mappings(*h);
  EXPECT_LE(maps_marked, maps_before + 2);
  ASSERT_TRUE(h->grow_in_place(big, (12 * kMiB) >> kPageShift));
  EXPECT_EQ(arena_mappings(*h), maps_marked);
  // A shrink gives the tail the arena's flags back: it merges again.
  h->shrink_in_place(big, (3 * kMiB) >> kPageShift);
  EXPECT_LE(arena_mappings(*h), maps_marked);
  h->free_large(big);
  h->free_large(small);
  EXPECT_EQ(h->stats().huge_page_spans, 0u);
  EXPECT_LE(arena_mappings(*h), maps_before);
  // SLABBY_THP=never marks nothing.
  auto n = make_heap(64 * kMiB, os::Thp::kNever);
  Span* s = n->alloc_large(8 * kMiB, kPageSize);
  EXPECT_FALSE(s->huge);
  n->free_large(s);
}

// SLABBY_THP=dense (the default): a span is marked whole only at a size
// the program has been seen to fill (below it, at most its inner huge
// pages: the next test). Blocks written only at their start never teach their size, however
// many are freed; one written whole does, at its free, and from then on
// spans of that size (per power of two) are marked whole.
bool marked_whole(const Span* s) { return s->huge && !s->huge_inner; }

TEST(SpanResize, DenseMarksSpansOnlyAtSizesTheProgramFills) {
  static_assert(PageHeap::kDensityCheckEvery == 16);
  if (os::huge_page_size() > 2 * kMiB) GTEST_SKIP() << "no whole huge page in blocks of 4-7 MiB";
  auto h = make_heap(64 * kMiB, os::Thp::kDense);
  // 4-7 MiB: one size bit (10 with 4 KiB pages, 6 with 64 KiB ones).
  const uint64_t bit = uint64_t{1} << (63 - __builtin_clzll((4 * kMiB) >> kPageShift));
  for (int i = 0; i < 64; ++i) {
    Span* s = h->alloc_large((4 + i % 4) * kMiB, kPageSize);
    ASSERT_FALSE(marked_whole(s)) << i;
    memset(at(s), 1, 8192);
    h->free_large(s);
  }
  EXPECT_EQ(h->dense_sizes(), 0u);
  EXPECT_EQ(h->stats().huge_page_spans, 0u);
  // The 65th free of that size is looked at (one in 16): this one is filled.
  Span* d = h->alloc_large(5 * kMiB, kPageSize);
  EXPECT_FALSE(marked_whole(d));
  memset(at(d), 2, 5 * kMiB);
  h->free_large(d);
  EXPECT_EQ(h->dense_sizes(), bit);
  Span* e = h->alloc_large(6 * kMiB, kPageSize);
  EXPECT_TRUE(marked_whole(e));
  // Other sizes wait for one of theirs to be filled.
  Span* f = h->alloc_large(16 * kMiB, kPageSize);
  EXPECT_FALSE(marked_whole(f));
  h->free_large(e);
  h->free_large(f);
  EXPECT_EQ(h->stats().huge_page_spans, 0u);
}

// ... but a clean span of a size not learnt yet has the pages between its
// first and last whole huge pages marked: a program's first big array,
// filled from the start, takes huge pages from the second on (a load
// phase's array was faulted in 4 KiB at a time: trace-replay,
// docs/benchmarks.md), while one that writes only the start of its blocks,
// or their first and last bytes, never touches the marked pages. The first
// whole huge page stays small, and its density is what a free learns from.
// Dirty spans (pages already present), a calloc's, and spans with fewer
// than kInnerHugePages inner huge pages are not marked; the mark is undone
// at the free, not kept for the next span of those pages.
TEST(SpanResize, DenseMarksTheInnerHugePagesOfAFreshSpanOfASizeNotLearnt) {
  static_assert(PageHeap::kInnerHugePages == 3);
  if (os::huge_page_size() > 2 * kMiB) GTEST_SKIP() << "huge pages of more than 2 MiB";
  const size_t huge = os::huge_page_size();
  auto h = make_heap(64 * kMiB, os::Thp::kDense);
  Span* s = h->alloc_large(24 * kMiB, kPageSize);  // at the frontier: clean
  ASSERT_TRUE(s->zeroed);
  ASSERT_TRUE(s->huge);
  EXPECT_TRUE(s->huge_inner);
  EXPECT_EQ(h->stats().huge_page_spans, 1u);
  const uintptr_t from = round_up(s->start, huge) + huge;
  const uintptr_t to = round_down(s->end(), huge) - huge;
  const bool shows_marks = slabby_test::kernel_shows_huge_marks();
  if (shows_marks) {
    EXPECT_FALSE(slabby_test::marked_huge(from - kPageSize));
    EXPECT_TRUE(slabby_test::marked_huge(from));
    EXPECT_TRUE(slabby_test::marked_huge(to - kPageSize));
    EXPECT_FALSE(slabby_test::marked_huge(to));
  }
  memset(at(s), 3, 24 * kMiB);
  h->free_large(s);  // filled: its size is learnt from the first huge page
  EXPECT_EQ(h->stats().huge_page_spans, 0u);
  if (shows_marks) EXPECT_FALSE(slabby_test::marked_huge(from));
  const uint64_t bit = uint64_t{1} << (63 - __builtin_clzll((16 * kMiB) >> kPageShift));
  EXPECT_EQ(h->dense_sizes() & bit, bit);
  // A calloc's span (a zeroed table, often written sparsely): not marked.
  Span* z = h->alloc_large(40 * kMiB, kPageSize, kLargeZeroTable);
  ASSERT_TRUE(z->zeroed);
  EXPECT_FALSE(z->huge);
  h->free_large(z);
  // Room for two inner huge pages at most (8 MiB, a large class's exact
  // size: its first and last whole huge pages are two of at most four):
  // not marked.
  Span* small = h->alloc_large(8 * kMiB, kPageSize);
  EXPECT_FALSE(small->huge);
  // A dirty span of a size not learnt (8-15 MiB): not marked.
  see_reuse(*h);  // freed spans stay mapped (dirty) from now on
  Span* a = h->alloc_large(12 * kMiB, kPageSize);
  ASSERT_TRUE(a->huge_inner);
  memset(at(a), 4, 8192);
  h->free_large(a);  // kept mapped, dirty, its size not learnt
  Span* b = h->alloc_large(12 * kMiB, kPageSize);
  EXPECT_FALSE(b->zeroed);
  EXPECT_FALSE(b->huge);
  h->free_large(b);
  h->free_large(small);
  EXPECT_EQ(h->stats().huge_page_spans, 0u);
}

// An inner-marked span is three mappings (small, marked, small); one
// mremap moves one, so a move marks it whole first, and the moved span is
// marked whole. Its bytes move.
TEST(SpanResize, AnInnerMarkedSpanMovesByRemapAsOneMapping) {
  if (os::huge_page_size() > 2 * kMiB) GTEST_SKIP() << "huge pages of more than 2 MiB";
  auto h = make_heap(64 * kMiB, os::Thp::kDense);
  Span* s = h->alloc_large(24 * kMiB, kPageSize);  // at the frontier: clean
  Span* fence = h->alloc_large(kPageSize, kPageSize);
  ASSERT_TRUE(s->huge_inner);
  fill(s, 24 * kMiB, 7);
  Span* d = h->move_by_remap(s, (48 * kMiB) >> kPageShift);
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->huge);
  EXPECT_FALSE(d->huge_inner);
  EXPECT_TRUE(holds(at(d), 24 * kMiB, 7));
  if (slabby_test::kernel_shows_huge_marks()) {
    EXPECT_TRUE(slabby_test::marked_huge(d->start));
    EXPECT_TRUE(slabby_test::marked_huge(d->start + 24 * kMiB - kPageSize));
  }
  memset(at(d) + 24 * kMiB, 1, 24 * kMiB);
  h->free_large(d);
  h->free_large(fence);
  EXPECT_EQ(h->stats().huge_page_spans, 0u);
  EXPECT_EQ(h->stats().remapped_live, 0u);
}

// A marked buffer growing in place by small steps (realloc by 4 KiB) joins
// the marked mapping once per completed huge page, not at every step (one
// madvise per realloc before), and still moves by mremap as one mapping.
TEST(SpanResize, AMarkedSpanGrowingBySmallStepsIsMarkedOncePerHugePage) {
  auto h = make_heap();
  Span* s = h->alloc_large(4 * kMiB, kPageSize);  // at the frontier
  ASSERT_TRUE(s->huge);
  fill(s, 4 * kMiB, 7);
  uint64_t marks = os::huge_marks();
  size_t pages = s->pages;
  const size_t steps = (4 * kMiB) >> kPageShift;  // 4 MiB more, a page at a time
  for (size_t i = 0; i < steps; ++i) ASSERT_TRUE(h->grow_in_place(s, ++pages));
  EXPECT_EQ(s->pages, (8 * kMiB) >> kPageShift);
  // The span started on a huge page boundary or not: 2 or 3 boundaries crossed.
  EXPECT_LE(os::huge_marks() - marks, 3u);
  EXPECT_GE(os::huge_marks() - marks, 2u);
  memset(at(s) + 4 * kMiB, 1, 4 * kMiB);
  // Grown by one page more, its last page is outside the marked mapping;
  // moving it joins them first.
  ASSERT_TRUE(h->grow_in_place(s, pages + 1));
  Span* fence = h->alloc_large(kPageSize, kPageSize);
  Span* d = h->move_by_remap(s, (16 * kMiB) >> kPageShift);
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(holds(at(d), 4 * kMiB, 7));
  EXPECT_EQ(at(d)[8 * kMiB - 1], 1);
  EXPECT_EQ(at(d)[8 * kMiB + 100], 0);
  h->free_large(d);
  h->free_large(fence);
  EXPECT_EQ(h->stats().huge_page_spans, 0u);
}

// A marked span freed and kept mapped keeps its mark: asked for again, its
// pages cost no madvise (a buffer allocated and freed in a loop made two an
// iteration, each splitting and merging the mapping). Any other use of the
// pages marks them back first; a span covering them takes the mark over.
TEST(SpanResize, AFreedMarkedSpanKeepsItsMarkForTheNextRequestOfItsPages) {
  auto h = make_heap();
  see_reuse(*h);  // freed large spans stay mapped from now on
  int maps_before = committed_arena_mappings(*h);
  Span* a = h->alloc_large(4 * kMiB, kPageSize);
  Span* fence = h->alloc_large(kPageSize, kPageSize);
  ASSERT_TRUE(a->huge);
  uintptr_t start = a->start;
  memset(at(a), 1, 4 * kMiB);
  int maps_marked = arena_mappings(*h);
  uint64_t marks = os::huge_marks();
  uint64_t reused = h->stats().huge_marks_reused;
  for (int i = 0; i < 10; ++i) {
    h->free_large(a);
    EXPECT_EQ(h->stats().huge_marks_kept, 1u);
    EXPECT_EQ(h->stats().huge_page_spans, 0u);
    EXPECT_EQ(arena_mappings(*h), maps_marked);
    a = h->alloc_large(4 * kMiB, kPageSize);
    ASSERT_EQ(a->start, start);
    EXPECT_TRUE(a->huge);
    EXPECT_EQ(at(a)[0], 1);  // the same pages, kept
  }
  EXPECT_EQ(os::huge_marks(), marks);
  EXPECT_EQ(h->stats().huge_marks_reused - reused, 10u);
  EXPECT_EQ(h->stats().huge_page_spans, 1u);

  // Slabs taking those pages mark them back: the mapping merges again.
  h->free_large(a);
  std::vector<Span*> slabs;
  bool overlapped = false;
  for (int i = 0; i < 200 && !overlapped; ++i) {
    slabs.push_back(h->alloc_slab(1, 16));
    overlapped = slabs.back()->start - start < 4 * kMiB;
  }
  ASSERT_TRUE(overlapped);
  EXPECT_EQ(h->stats().huge_marks_kept, 0u);
  EXPECT_EQ(h->stats().huge_page_spans, 0u);
  // The kernel splits the mapping at a mark; an emulator's maps (qemu-user)
  // may not show it, and then there is no split to merge back.
  if (maps_marked > maps_before)
    EXPECT_LT(arena_mappings(*h), maps_marked);
  else
    EXPECT_LE(arena_mappings(*h), maps_marked);
  for (Span* s : slabs) h->free_slab(s);
  h->free_large(fence);

  // A span covering a kept mark takes it over with one madvise for the
  // whole span; at most kKeptMarks are kept, the oldest marked back.
  auto k = make_heap();
  see_reuse(*k);
  std::vector<Span*> v;
  for (size_t i = 0; i <= PageHeap::kKeptMarks; ++i) {
    v.push_back(k->alloc_large(4 * kMiB, kPageSize));
    ASSERT_TRUE(v.back()->huge);
    v.push_back(k->alloc_large(kPageSize, kPageSize));
  }
  for (size_t i = 0; i < v.size(); i += 2) k->free_large(v[i]);
  EXPECT_EQ(k->stats().huge_marks_kept, PageHeap::kKeptMarks);
  EXPECT_EQ(k->stats().huge_page_spans, 0u);
  uintptr_t last = v[v.size() - 2]->start;
  k->free_large(v.back());  // the last mark's pages now run to the frontier
  marks = os::huge_marks();
  Span* b = k->alloc_large(6 * kMiB, kPageSize);
  ASSERT_EQ(b->start, last);
  EXPECT_TRUE(b->huge);
  EXPECT_EQ(os::huge_marks() - marks, 1u);
  EXPECT_EQ(k->stats().huge_marks_kept, PageHeap::kKeptMarks - 1);
  EXPECT_EQ(k->stats().huge_page_spans, 1u);
  k->free_large(b);
  for (size_t i = 1; i + 2 < v.size(); i += 2) k->free_large(v[i]);
}

TEST(SpanResize, YoungDirtySpansWaitForTheBackgroundTickPastRetainMax) {
  auto h = make_heap(16 * kMiB);  // retain_max: 16 MiB
  see_reuse(*h);
  ASSERT_EQ(h->stats().keep_huge_bytes, 16 * kMiB);
  h->set_retain_grace_ms(1000);
  std::vector<Span*> v;
  for (int i = 0; i < 12; ++i) {
    v.push_back(h->alloc_large(2 * kMiB, kPageSize));
    memset(at(v.back()), 1, 2 * kMiB);
    v.push_back(h->alloc_large(kPageSize, kPageSize));
  }
  for (size_t i = 0; i < v.size(); i += 2) h->free_large(v[i]);
  // 24 MiB dirty, over retain_max, all freed just now: kept.
  EXPECT_EQ(h->stats().free_dirty_bytes, 24 * kMiB);
  h->enforce_retain(os::now_ms());
  EXPECT_EQ(h->stats().free_dirty_bytes, 24 * kMiB);
  // Once older than the grace period, the tick brings them under the bound.
  h->enforce_retain(os::now_ms() + 5000);
  EXPECT_LE(h->stats().free_dirty_bytes, 8 * kMiB);
  // Without a background thread (grace 0) every free enforces it at once.
  h->set_retain_grace_ms(0);
  for (size_t i = 0; i < v.size(); i += 2) v[i] = h->alloc_large(2 * kMiB, kPageSize);
  for (size_t i = 0; i < v.size(); i += 2) {
    memset(at(v[i]), 1, 2 * kMiB);
    h->free_large(v[i]);
  }
  EXPECT_LE(h->stats().free_dirty_bytes, 16 * kMiB);
  for (size_t i = 1; i < v.size(); i += 2) h->free_large(v[i]);
}

}  // namespace
}  // namespace slabby

#include "heap/page_heap.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "common/size_class.h"
#include "os/os.h"

namespace slabby {
namespace {

constexpr size_t kArena = size_t{256} << 20;

std::unique_ptr<PageHeap> make_heap(size_t retain = size_t{64} << 20) {
  auto h = std::make_unique<PageHeap>();
  EXPECT_TRUE(h->init(kArena, retain));
  return h;
}

// Every span of the heap freed and purged: all clean, it coalesces back into
// one span, so one allocation of everything used so far fits at the base
// (exactly that much: kLargeExactPages, not rounded up to a large class, which
// would also fit by growing the frontier).
void ExpectOneFreeSpanAfterPurge(PageHeap& h) {
  h.purge_all();
  PageHeapStats st = h.stats();
  EXPECT_EQ(st.in_use_bytes, 0u);
  Span* all = h.alloc_large(st.frontier_bytes, kPageSize, kLargeExactPages);
  ASSERT_NE(all, nullptr);
  EXPECT_EQ(all->start, h.base());
  h.free_large(all);
}

TEST(PageHeap, OwnsExactlyItsArena) {
  auto h = make_heap();
  EXPECT_EQ(h->size(), kArena);
  EXPECT_TRUE(h->owns(reinterpret_cast<void*>(h->base())));
  EXPECT_TRUE(h->owns(reinterpret_cast<void*>(h->base() + kArena - 1)));
  EXPECT_FALSE(h->owns(reinterpret_cast<void*>(h->base() + kArena)));
  EXPECT_FALSE(h->owns(reinterpret_cast<void*>(h->base() - 1)));
  EXPECT_FALSE(h->owns(nullptr));
  int local;
  EXPECT_FALSE(h->owns(&local));
}

TEST(PageHeap, LargeSpansAreWritableZeroedAndFoundByTheirStart) {
  auto h = make_heap();
  Span* s = h->alloc_large(100000, kPageSize);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->state, SpanState::kLarge);
  EXPECT_EQ(s->pages, (100000 + kPageSize - 1) / kPageSize);
  EXPECT_TRUE(s->zeroed);
  char* p = reinterpret_cast<char*>(s->start);
  for (size_t i = 0; i < 100000; ++i) ASSERT_EQ(p[i], 0);
  memset(p, 0x5a, 100000);
  EXPECT_EQ(h->span_of(p), s);
  EXPECT_EQ(h->span_of(p + (s->pages - 1) * kPageSize), s);
  EXPECT_EQ(h->class_of(p), 0);
  h->free_large(s);
  // Reused without purging: the same pages, no longer known to be zero.
  Span* again = h->alloc_large(100000, kPageSize);
  EXPECT_EQ(again->start, reinterpret_cast<uintptr_t>(p));
  EXPECT_FALSE(again->zeroed);
  h->free_large(again);
}

TEST(PageHeap, AlignmentsUpToTwoMegabytes) {
  auto h = make_heap();
  std::vector<Span*> spans;
  for (size_t align = kPageSize; align <= (size_t{2} << 20); align *= 2) {
    for (size_t bytes : {size_t{1}, align - 1, align + 1, 3 * align}) {
      Span* s = h->alloc_large(bytes, align);
      ASSERT_NE(s, nullptr);
      EXPECT_EQ(s->start % align, 0u) << align;
      EXPECT_GE(uint64_t{s->pages} * kPageSize, bytes);
      spans.push_back(s);
    }
  }
  for (Span* s : spans) h->free_large(s);
  // Freed (dirty) spans do not absorb the clean gaps alignment left between
  // them; once purged, everything is clean and coalesces back into one span:
  // one big allocation fits where they were.
  ExpectOneFreeSpanAfterPurge(*h);
}

TEST(PageHeap, FreeSpansCoalesceInAnyOrder) {
  auto h = make_heap();
  Span* a = h->alloc_large(3 * kPageSize, kPageSize);
  Span* b = h->alloc_large(5 * kPageSize, kPageSize);
  Span* c = h->alloc_large(7 * kPageSize, kPageSize);
  uintptr_t start = a->start;
  h->free_large(b);
  h->free_large(a);
  h->free_large(c);
  Span* whole = h->alloc_large(15 * kPageSize, kPageSize);
  EXPECT_EQ(whole->start, start);
  EXPECT_EQ(h->stats().frontier_bytes, 15 * kPageSize);
  h->free_large(whole);
}

// Free spans above 128 pages are binned by size class (8 per power of two):
// a request gets the best fit among the first spans of its own class, else
// the first span of the next non-empty class, never a span too small.
class LargeBins {
 public:
  LargeBins() : h_(std::make_unique<PageHeap>()) {
    size_t arena = 8192 * kPageSize;
    EXPECT_TRUE(h_->init(arena, arena));  // nothing purged: every free span dirty
  }
  ~LargeBins() {
    for (Span* s : live_) h_->free_large(s);
  }
  // Spans of these sizes, each followed by a live page so that none merges,
  // freed in this order (the last freed is the first of its bin); their
  // starts. Exact sizes (kLargeExactPages: not rounded to a large class, which
  // from 1 MiB on, 16 pages of 64 KiB, would change them).
  std::vector<uintptr_t> free_spans(std::initializer_list<size_t> pages) {
    std::vector<Span*> spans;
    for (size_t p : pages) {
      spans.push_back(h_->alloc_large(p * kPageSize, kPageSize, kLargeExactPages));
      live_.push_back(h_->alloc_large(kPageSize, kPageSize));
    }
    std::vector<uintptr_t> starts;
    for (Span* s : spans) {
      starts.push_back(s->start);
      h_->free_large(s);
    }
    return starts;
  }
  // A span of at least `pages`, kept live; its start.
  uintptr_t take(size_t pages) {
    Span* s = h_->alloc_large(pages * kPageSize, kPageSize, kLargeExactPages);
    EXPECT_GE(s->pages, pages);
    live_.push_back(s);
    return s->start;
  }

 private:
  std::unique_ptr<PageHeap> h_;
  std::vector<Span*> live_;
};

TEST(PageHeap, LargeFreeSpansAreFoundByTheirSizeClass) {
  LargeBins h;
  auto s = h.free_spans({129, 200, 256, 300, 1000});
  EXPECT_EQ(h.take(250), s[2]);  // its class [240, 256) is empty: the next, [256, 288)
  EXPECT_EQ(h.take(129), s[0]);  // its own class [128, 144): an exact fit
  EXPECT_EQ(h.take(100), s[1]);  // no exact bin from 100 up holds a span: the smallest class
  EXPECT_EQ(h.take(900), s[4]);  // [896, 1024): 1000 fits
  EXPECT_EQ(h.take(290), s[3]);  // [288, 320): 300
}

TEST(PageHeap, ALargeRequestReadsAtMostAFewSpansOfItsClass) {
  // [240, 256) holds a 250 (freed first, so last in its bin) behind 16 spans
  // of 241: a request for 245 reads kScanLarge of them, then takes the next
  // class's span.
  static_assert(PageHeap::kScanLarge == 16);
  LargeBins h;
  auto s = h.free_spans(
      {250, 241, 241, 241, 241, 241, 241, 241, 241, 241, 241, 241, 241, 241, 241, 241, 241, 270});
  uintptr_t fits = s[0], newest_241 = s[16], next = s[17];
  EXPECT_EQ(h.take(245), next);
  EXPECT_EQ(h.take(241), newest_241);  // an exact fit, first in its bin
  EXPECT_EQ(h.take(245), fits);        // now within the first kScanLarge
  EXPECT_EQ(h.take(241), s[15]);
}

TEST(PageHeap, LargeClassesAreFourPerDoublingFromOneMebibyte) {
  constexpr size_t kFrom = PageHeap::kLargeClassBytes >> kPageShift;
  for (size_t p = 1; p <= kFrom; ++p) ASSERT_EQ(PageHeap::large_class_pages(p), p);
  size_t last = kFrom;
  for (size_t p = kFrom + 1; p <= 64 * kFrom; ++p) {
    size_t c = PageHeap::large_class_pages(p);
    ASSERT_GE(c, p);
    ASSERT_LE((c - p) * 4, p) << p;  // at most a quarter over the request
    ASSERT_EQ(PageHeap::large_class_pages(c), c) << p;
    ASSERT_GE(c, last) << p;
    if (c != last) {  // a new class: a quarter of its power of two above the last
      size_t pow2 = size_t{1} << (63 - __builtin_clzll(c - 1));
      ASSERT_EQ(c - last, pow2 / 4) << p;
      last = c;
    }
  }
}

// A freed large span is reused whole by the next request of its class, also
// a larger one; before the classes, a request a few pages larger than the
// hole missed it and took fresh pages, so blocks of random sizes crept over
// the arena, leaving the pages their first bytes had touched resident
// (large-sparse: 23 x jemalloc's peak RSS).
TEST(PageHeap, AFreedLargeSpanFitsTheNextRequestOfItsClass) {
  auto h = make_heap();
  constexpr size_t kMiB = size_t{1} << 20;
  Span* a = h->alloc_large(3 * kMiB + kMiB / 8, kPageSize);
  Span* fence = h->alloc_large(kPageSize, kPageSize);
  ASSERT_NE(a, nullptr);
  uintptr_t start = a->start;
  EXPECT_EQ(uint64_t{a->pages} << kPageShift, 3 * kMiB + kMiB / 2);
  size_t frontier = h->stats().frontier_bytes;
  h->free_large(a);
  Span* b = h->alloc_large(3 * kMiB + 3 * kMiB / 8, kPageSize);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->start, start);
  EXPECT_EQ(h->stats().frontier_bytes, frontier);
  h->free_large(b);
  h->free_large(fence);
}

// An aligned request takes a free span that holds an aligned run of its
// pages, however much smaller than pages + alignment it is, and grows the
// frontier only to that run's end. Before, it asked for pages + alignment - 1
// pages: a block smaller than its alignment never reused the span it had
// been freed into (posix_memalign(2 MiB, 1 MiB) in a loop took 3 MiB of
// fresh arena a call until the arena ran out).
TEST(PageHeap, ABlockSmallerThanItsAlignmentReusesTheSpanItWasFreedInto) {
  auto h = make_heap();
  constexpr size_t kAlign = size_t{2} << 20, kBytes = size_t{1} << 20;
  Span* offset = h->alloc_large(kPageSize, kPageSize);  // the frontier off a 2 MiB boundary
  Span* first = h->alloc_large(kBytes, kAlign);
  ASSERT_NE(first, nullptr);
  uintptr_t start = first->start;
  EXPECT_EQ(start % kAlign, 0u);
  EXPECT_EQ(h->stats().frontier_bytes, start + kBytes - h->base());
  h->free_large(first);
  for (int i = 0; i < 1000; ++i) {
    Span* s = h->alloc_large(kBytes, kAlign);
    ASSERT_NE(s, nullptr) << i;
    ASSERT_EQ(s->start, start) << i;
    h->free_large(s);
  }
  EXPECT_EQ(h->stats().frontier_bytes, start + kBytes - h->base());
  h->free_large(offset);
}

TEST(PageHeap, AnAlignedRequestTakesAFreeSpanWithAnAlignedRunInIt) {
  auto h = make_heap();
  // The arena starts on a 2 MiB boundary: P pages further is the next one.
  constexpr size_t kAlign = size_t{2} << 20, P = kAlign / kPageSize;
  // Pages [0, 7P/8) live, [7P/8, 10P/8) free, one more live page: the free
  // span has an aligned run of P/4 pages, from P on.
  Span* before = h->alloc_large(P * 7 / 8 * kPageSize, kPageSize);
  Span* gap = h->alloc_large(P * 3 / 8 * kPageSize, kPageSize);
  Span* after = h->alloc_large(kPageSize, kPageSize);
  ASSERT_EQ(h->base() % kAlign, 0u);
  ASSERT_EQ(gap->start, h->base() + P * 7 / 8 * kPageSize);
  uint64_t frontier = h->stats().frontier_bytes;
  h->free_large(gap);
  Span* s = h->alloc_large(P / 8 * kPageSize, kAlign);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->start, h->base() + kAlign);
  EXPECT_EQ(s->pages, P / 8);
  EXPECT_EQ(h->stats().frontier_bytes, frontier);
  // P/4 + 1 pages do not fit there: the frontier grows.
  Span* t = h->alloc_large((P / 4 + 1) * kPageSize, kAlign);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->start % kAlign, 0u);
  EXPECT_GE(t->start, after->end());
  for (Span* x : {before, after, s, t}) h->free_large(x);
}

// Aligned and unaligned requests of every size mixed with frees: every span
// is aligned as asked, inside the arena, apart from every other live span,
// and once all are freed and purged the arena is one free span again.
TEST(PageHeap, MixedAlignedRequestsNeverOverlapAndCoalesceBack) {
  auto h = make_heap(0);
  std::vector<Span*> live;
  uint64_t x = 0x9e3779b97f4a7c15;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int i = 0; i < 4000; ++i) {
    if (!live.empty() && (next() % 3 == 0 || live.size() > 40)) {
      size_t j = next() % live.size();
      h->free_large(live[j]);
      live[j] = live.back();
      live.pop_back();
      continue;
    }
    size_t align = std::min(kPageSize << (next() % 10), size_t{2} << 20);  // a page .. 2 MiB
    size_t bytes = 1 + next() % (size_t{3} << 20);
    Span* s = h->alloc_large(bytes, align);
    ASSERT_NE(s, nullptr) << i;
    ASSERT_EQ(s->start % align, 0u) << i;
    ASSERT_GE(uint64_t{s->pages} * kPageSize, bytes);
    ASSERT_LE(s->end(), h->base() + h->size());
    for (Span* o : live) ASSERT_TRUE(s->end() <= o->start || o->end() <= s->start) << i;
    live.push_back(s);
  }
  for (Span* s : live) h->free_large(s);
  ExpectOneFreeSpanAfterPurge(*h);
}

TEST(PageHeap, SlabsFillAndClearTheClassMap) {
  auto h = make_heap();
  unsigned cls = 20;
  Span* s = h->alloc_slab(cls, kSlabPages[cls]);
  ASSERT_NE(s, nullptr);
  for (uint32_t i = 0; i < s->pages; ++i) {
    void* page = reinterpret_cast<void*>(s->start + i * kPageSize + 100);
    EXPECT_EQ(h->class_of(page), cls);
    EXPECT_EQ(h->span_of(page), s);
  }
  uintptr_t start = s->start;
  h->free_slab(s);
  EXPECT_EQ(h->class_of(reinterpret_cast<void*>(start)), 0);
}

TEST(PageHeap, ExhaustionReturnsNull) {
  auto h = make_heap();
  EXPECT_EQ(h->alloc_large(kArena + kPageSize, kPageSize), nullptr);
  Span* big = h->alloc_large(kArena - (size_t{1} << 20), kPageSize);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(h->alloc_large(size_t{2} << 20, kPageSize), nullptr);
  h->free_large(big);
  EXPECT_NE(h->alloc_large(size_t{2} << 20, kPageSize), nullptr);
}

TEST(PageHeap, DirtyPagesAboveTheCapArePurgedInBatches) {
  auto h = make_heap(/*retain=*/size_t{8} << 20);
  std::vector<Span*> spans;
  for (int i = 0; i < 16; ++i) {
    Span* s = h->alloc_large(size_t{1} << 20, kPageSize);
    memset(reinterpret_cast<void*>(s->start), 1, size_t{1} << 20);
    spans.push_back(s);
    // A live 1-page span between them keeps them from coalescing.
    spans.push_back(h->alloc_large(kPageSize, kPageSize));
  }
  uint64_t calls_before = os::madvise_calls();
  for (size_t i = 0; i < spans.size(); i += 2) h->free_large(spans[i]);
  PageHeapStats st = h->stats();
  EXPECT_LE(st.free_dirty_bytes, size_t{8} << 20);
  uint64_t calls = os::madvise_calls() - calls_before;
  EXPECT_GE(calls, 1u);
  EXPECT_LT(calls, 16u) << "purging must not be one madvise per free";
  EXPECT_GE(h->purge_all(), 1u);
  EXPECT_EQ(h->stats().free_dirty_bytes, 0u);
  EXPECT_EQ(h->purge_all(), 0u);
  // Purged memory reads back as zero and is known to be.
  Span* s = h->alloc_large(size_t{1} << 20, kPageSize);
  EXPECT_TRUE(s->zeroed);
  EXPECT_EQ(reinterpret_cast<char*>(s->start)[12345], 0);
}

TEST(PageHeap, DirtySpansNeverAbsorbCleanOnesSoPurgingIsExact) {
  auto h = make_heap();
  Span* a = h->alloc_large(size_t{8} << 20, kPageSize);
  Span* b = h->alloc_large(kPageSize, kPageSize);
  h->free_large(a);
  h->purge_all();  // a: 8 MiB clean
  Span* c = h->alloc_large(kPageSize, kPageSize);  // carved from a's start: a dirty page follows
  memset(reinterpret_cast<void*>(c->start), 1, kPageSize);
  h->free_large(c);  // 4 KiB dirty, next to 8 MiB - 4 KiB clean
  uint64_t purged_before = os::purged_bytes();
  EXPECT_EQ(h->stats().free_dirty_bytes, kPageSize);
  h->purge_all();
  EXPECT_EQ(os::purged_bytes() - purged_before, kPageSize) << "purged clean pages again";
  h->free_large(b);
}

TEST(PageHeap, DecayReturnsOnlyPagesFreeLongEnough) {
  auto h = make_heap();
  h->set_decay_ms(1000);
  Span* a = h->alloc_large(size_t{1} << 20, kPageSize);
  Span* sep = h->alloc_large(kPageSize, kPageSize);
  Span* b = h->alloc_large(size_t{1} << 20, kPageSize);
  uint64_t t0 = os::now_ms();
  h->free_large(a);
  h->free_large(b);
  EXPECT_EQ(h->decay(t0 + 10), 0u) << "nothing is a second old yet";
  EXPECT_EQ(h->stats().free_dirty_bytes, size_t{2} << 20);
  EXPECT_EQ(h->decay(t0 + 5000), size_t{2} << 20);
  EXPECT_EQ(h->stats().free_dirty_bytes, 0u);
  h->free_large(sep);
}

TEST(PageHeap, ResidentBytesFollowTouchedPages) {
  auto h = make_heap();
  Span* s = h->alloc_large(size_t{4} << 20, kPageSize);
  EXPECT_LT(h->resident(nullptr, 0), size_t{1} << 20);
  memset(reinterpret_cast<void*>(s->start), 1, size_t{4} << 20);
  EXPECT_GE(h->resident(nullptr, 0), size_t{4} << 20);
  h->free_large(s);
  h->purge_all();
  EXPECT_LT(h->resident(nullptr, 0), size_t{1} << 20);
}

}  // namespace
}  // namespace slabby

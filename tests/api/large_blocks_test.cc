// Blocks above 32 KiB: medium size classes (to 1 MiB), page spans, and the paths realloc and
// calloc take for them.
//
// Like api_conformance_test, this binary is linked with libslabby_malloc.so (every allocation in
// the process goes through slabby), built with -O0 -fno-builtin, and passes sizes through
// volatile variables so the compiler cannot fold or elide allocator calls. Each test runs in a
// process of its own (gtest_discover_tests), so the heap a test starts from holds only
// GoogleTest's own blocks.
//
// Which path served a call is read from slabby_get_stats deltas (the stats v3 fields). Where the
// placement of a block cannot be made certain, a test asserts what must hold whatever path was
// taken: contents kept, sizes and alignment, and that the path counters add up to the number of
// calls.
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "slabby/slabby.h"

namespace {

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;
// The largest small class: above it every request is a medium block or a page span.
constexpr size_t kMaxSmall = 32 * kKiB;
// The largest medium class: above it every request is a page span.
constexpr size_t kMaxMedium = kMiB;

// slabby's page (SLABBY_PAGE_SIZE, 4 KiB unless built otherwise; a compile definition of the
// whole build). Page spans start on one; above 1 MiB their usable size is a large size class.
const size_t kPage = size_t{1} << SLABBY_PAGE_SHIFT;

// How many bytes each byte of mincore's answer stands for: the system's page, except under
// qemu-aarch64 -p 65536, where the host kernel answers for its 4 KiB pages.
size_t MincorePage() {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* m = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  static_cast<volatile char*>(m)[0] = 1;
  unsigned char vec[256];
  memset(vec, 0xff, sizeof vec);
  size_t n = 0;
  if (mincore(m, page, vec) == 0)
    while (n < sizeof vec && vec[n] != 0xff) n++;
  munmap(m, page);
  return n == 0 ? page : page / n;
}
const size_t kMincorePage = MincorePage();

// Hides the value from the optimizer.
size_t V(size_t x) {
  volatile size_t v = x;
  return v;
}

slabby_stats Stats() {
  slabby_stats s;
  memset(&s, 0, sizeof(s));
  EXPECT_EQ(slabby_get_stats(&s, sizeof(s)), 0);
  return s;
}

uint8_t Pat(uint64_t seed, size_t i) {
  return static_cast<uint8_t>((i * 131u) ^ (i >> 9) ^ (seed * 0x9Du) ^ (seed >> 7));
}

void Fill(void* p, size_t n, uint64_t seed) {
  uint8_t* b = static_cast<uint8_t*>(p);
  for (size_t i = 0; i < n; i++) b[i] = Pat(seed, i);
}

// Fills [from, to) with the pattern of a buffer filled from 0 (so Check(p, to, seed) holds).
void FillRange(void* p, size_t from, size_t to, uint64_t seed) {
  uint8_t* b = static_cast<uint8_t*>(p);
  for (size_t i = from; i < to; i++) b[i] = Pat(seed, i);
}

// Returns the index of the first byte that does not hold the pattern, or SIZE_MAX.
size_t Check(const void* p, size_t n, uint64_t seed) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; i++) {
    if (b[i] != Pat(seed, i)) return i;
  }
  return SIZE_MAX;
}

// Same over [from, to).
size_t CheckRange(const void* p, size_t from, size_t to, uint64_t seed) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (size_t i = from; i < to; i++) {
    if (b[i] != Pat(seed, i)) return i;
  }
  return SIZE_MAX;
}

// Index of the first byte that is not zero, or SIZE_MAX.
size_t FirstNonZero(const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; i++) {
    if (b[i] != 0) return i;
  }
  return SIZE_MAX;
}

bool Aligned(const void* p, size_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

char* At(void* p, size_t off) { return static_cast<char*>(p) + off; }

// realloc through a volatile size; every non-null result must be aligned for any object.
void* Realloc(void* p, size_t n) {
  void* q = realloc(p, V(n));
  if (q != nullptr) {
    EXPECT_TRUE(Aligned(q, alignof(max_align_t))) << "realloc(" << p << ", " << n << ") = " << q;
  }
  return q;
}

// How realloc calls were served, between two stats snapshots.
struct Paths {
  uint64_t grown, shrunk, remaps, remap_failures, copies, copied_bytes;
  // Moves and in-place changes: each realloc takes at most one of these (a refused mremap is
  // counted as a failure and then as a copy).
  uint64_t total() const { return grown + shrunk + remaps + copies; }
};

Paths Delta(const slabby_stats& a, const slabby_stats& b) {
  return {b.realloc_grown_in_place - a.realloc_grown_in_place,
          b.realloc_shrunk_in_place - a.realloc_shrunk_in_place,
          b.realloc_remaps - a.realloc_remaps,
          b.realloc_remap_failures - a.realloc_remap_failures,
          b.realloc_copies - a.realloc_copies,
          b.realloc_copied_bytes - a.realloc_copied_bytes};
}

std::string Describe(const Paths& d) {
  return "grown " + std::to_string(d.grown) + ", shrunk " + std::to_string(d.shrunk) + ", remaps " +
         std::to_string(d.remaps) + " (failures " + std::to_string(d.remap_failures) +
         "), copies " + std::to_string(d.copies) + " (" + std::to_string(d.copied_bytes) +
         " bytes)";
}

uint64_t CallocPaths(const slabby_stats& s) { return s.calloc_fresh + s.calloc_memset; }

// The medium classes: four per power of two from 32 KiB to 1 MiB (40K 48K 56K 64K 80K ... 1M).
std::vector<size_t> MediumClasses() {
  std::vector<size_t> v;
  for (size_t p = kMaxSmall; p < kMaxMedium; p *= 2) {
    for (size_t q = 5; q <= 8; q++) v.push_back(p * q / 4);
  }
  return v;
}

// Resident bytes of [p, p + n) (p page-aligned, n up to 64 MiB), SIZE_MAX if unknown. Allocates
// nothing: a small block taken here could be carved from the very free span being measured.
size_t ResidentBytes(void* p, size_t n) {
  static unsigned char vec[64 * kMiB / 4096];
  size_t pages = (n + kMincorePage - 1) / kMincorePage;
  if (pages > sizeof(vec) || mincore(p, n, vec) != 0) return SIZE_MAX;
  size_t r = 0;
  for (size_t i = 0; i < pages; i++) r += (vec[i] & 1) ? kMincorePage : 0;
  return r;
}

// ---------------------------------------------------------------------------------------------
// realloc of page spans: grown in place

// A 2 MiB block carved from the start of a free 8 MiB span has 6 MiB of free pages after it:
// growing it to 6 MiB takes them, at the same address.
TEST(LargeRealloc, GrowsInPlaceIntoTheFreePagesAfterIt) {
  void* big = malloc(V(8 * kMiB));
  ASSERT_NE(big, nullptr);
  free(big);
  // The free span is the only one of its size in a fresh process, so a 2 MiB request takes its
  // start. Should another free span fit 2 MiB better, it is taken first: keep such blocks
  // (they fill those spans) until one lands at the start of ours.
  std::vector<void*> others;
  void* p = nullptr;
  for (int i = 0; i < 16; i++) {
    void* b = malloc(V(2 * kMiB));
    ASSERT_NE(b, nullptr);
    if (b == big) {
      p = b;
      break;
    }
    others.push_back(b);
  }
  ASSERT_EQ(p, big) << "setup: no 2 MiB block landed at the start of the freed 8 MiB span";
  EXPECT_EQ(malloc_usable_size(p), 2 * kMiB);
  Fill(p, 2 * kMiB, 1);

  slabby_stats s0 = Stats();
  void* q = Realloc(p, 6 * kMiB);
  slabby_stats s1 = Stats();
  ASSERT_NE(q, nullptr);
  Paths d = Delta(s0, s1);
  EXPECT_EQ(q, p) << "not grown in place: " << Describe(d);
  EXPECT_EQ(d.grown, 1u) << Describe(d);
  EXPECT_EQ(d.total(), 1u) << Describe(d);
  EXPECT_EQ(d.copied_bytes, 0u);
  EXPECT_GE(malloc_usable_size(q), 6 * kMiB);
  ASSERT_EQ(Check(q, 2 * kMiB, 1), SIZE_MAX) << "contents lost by growth in place";
  // The grown part is the block's: all of it writable.
  memset(At(q, 2 * kMiB), 0x3C, malloc_usable_size(q) - 2 * kMiB);
  ASSERT_EQ(Check(q, 2 * kMiB, 1), SIZE_MAX);
  EXPECT_EQ(s1.large_live_bytes - s0.large_live_bytes, malloc_usable_size(q) - 2 * kMiB)
      << "the live large bytes follow the growth";
  free(q);
  for (void* b : others) free(b);
}

// A block that ends at the heap's frontier grows by extending the frontier.
TEST(LargeRealloc, GrowsInPlaceAtTheFrontier) {
  // Bigger than any free span of a fresh process: served at the frontier.
  void* p = malloc(V(48 * kMiB));
  ASSERT_NE(p, nullptr);
  Fill(p, 64 * kKiB, 2);
  memset(At(p, 48 * kMiB - kPage), 0x77, kPage);
  for (size_t n : {56 * kMiB, 96 * kMiB}) {
    slabby_stats s0 = Stats();
    void* q = Realloc(p, n);
    slabby_stats s1 = Stats();
    ASSERT_NE(q, nullptr);
    Paths d = Delta(s0, s1);
    EXPECT_EQ(q, p) << n << ": " << Describe(d);
    EXPECT_EQ(d.grown, 1u) << n << ": " << Describe(d);
    EXPECT_EQ(d.total(), 1u) << Describe(d);
    EXPECT_GE(malloc_usable_size(q), n);
    ASSERT_EQ(Check(q, 64 * kKiB, 2), SIZE_MAX);
    EXPECT_EQ(static_cast<unsigned char>(*At(q, 48 * kMiB - 1)), 0x77);
    p = q;
  }
  memset(At(p, 95 * kMiB), 1, kMiB);
  free(p);
}

// ---------------------------------------------------------------------------------------------
// realloc of page spans: shrunk in place, or kept whole

TEST(LargeRealloc, ShrinksInPlaceToAQuarter) {
  void* p = malloc(V(16 * kMiB));
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(malloc_usable_size(p), 16 * kMiB);
  Fill(p, 4 * kMiB, 3);
  memset(At(p, 4 * kMiB), 0x55, 12 * kMiB);

  slabby_stats s0 = Stats();
  void* q = Realloc(p, 4 * kMiB);
  slabby_stats s1 = Stats();
  ASSERT_EQ(q, p) << "a shrinking page span stays where it is";
  Paths d = Delta(s0, s1);
  EXPECT_EQ(d.shrunk, 1u) << Describe(d);
  EXPECT_EQ(d.total(), 1u) << Describe(d);
  EXPECT_EQ(malloc_usable_size(q), 4 * kMiB) << "the tail went back: usable size is the new size";
  ASSERT_EQ(Check(q, 4 * kMiB, 3), SIZE_MAX);
  EXPECT_EQ(s0.large_live_bytes - s1.large_live_bytes, 12 * kMiB);
  EXPECT_EQ(s1.current_allocations, s0.current_allocations);

  // More than half of the 4 MiB span: kept whole, nothing counted.
  for (size_t n : {4 * kMiB - 1, 3 * kMiB, 2 * kMiB + kPage, 2 * kMiB + 1}) {
    slabby_stats a = Stats();
    void* r = Realloc(q, n);
    slabby_stats b = Stats();
    ASSERT_EQ(r, q) << n;
    Paths dd = Delta(a, b);
    EXPECT_EQ(dd.total(), 0u) << n << ": " << Describe(dd);
    EXPECT_EQ(malloc_usable_size(r), 4 * kMiB) << n << ": the span is kept whole";
    ASSERT_EQ(Check(r, 4 * kMiB, 3), SIZE_MAX) << n;
  }
  // Growing back within the span: kept too.
  slabby_stats a = Stats();
  void* r = Realloc(q, 4 * kMiB);
  EXPECT_EQ(r, q);
  EXPECT_EQ(Delta(a, Stats()).total(), 0u);
  ASSERT_EQ(Check(r, 4 * kMiB, 3), SIZE_MAX);
  free(r);
}

// realloc's rule (src/frontend/resize.cc's header): a page span is kept while the new size needs
// more than half of its pages, and shrunk in place when it needs half or less. The boundary:
// exactly half. Fails on 6aad316: realloc_span shrinks only when (pages - needed) * 2 > pages,
// so a span asked for exactly half stays whole (usable size unchanged, no shrink counted).
// Exactly half is kept whole (a moved span has twice the pages it needs: the next step's
// growth must not give that headroom back); one page less than half gives the tail back, down
// to the large size class that holds the new size (half: a class, four per power of two).
TEST(LargeRealloc, HalfKeepsTheSpanAndLessGivesBackTheTail) {
  for (size_t span : {4 * kMiB, 16 * kMiB}) {
    void* p = malloc(V(span));
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(malloc_usable_size(p), span);
    Fill(p, span / 2, 4);
    slabby_stats s0 = Stats();
    void* q = Realloc(p, span / 2);
    slabby_stats s1 = Stats();
    ASSERT_EQ(q, p);
    Paths d = Delta(s0, s1);
    EXPECT_EQ(d.shrunk, 0u) << span << " -> " << span / 2 << ": " << Describe(d);
    EXPECT_EQ(malloc_usable_size(q), span) << span << " -> " << span / 2;
    q = Realloc(p, span / 2 - kPage);
    slabby_stats s2 = Stats();
    ASSERT_EQ(q, p);
    d = Delta(s1, s2);
    EXPECT_EQ(d.shrunk, 1u) << span << " -> " << span / 2 - kPage << ": " << Describe(d);
    EXPECT_EQ(malloc_usable_size(q), span / 2);
    ASSERT_EQ(Check(q, span / 2 - kPage, 4), SIZE_MAX);
    free(q);
  }
}

// ---------------------------------------------------------------------------------------------
// realloc of page spans: moved by mremap

TEST(LargeRealloc, MovesByRemapWhenTheNextPagesAreTaken) {
  void* p = malloc(V(4 * kMiB));
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(malloc_usable_size(p), 4 * kMiB);
  // A live page span right after p, so p cannot grow in place. In a fresh process p and the
  // blocker both come from the frontier; should a free span elsewhere take the first blocker,
  // keep allocating until one lies right after p.
  std::vector<void*> blockers;
  bool blocked = false;
  for (int i = 0; i < 64 && !blocked; i++) {
    void* b = malloc(V(kMiB + 1));  // a page span (above the largest class)
    ASSERT_NE(b, nullptr);
    blockers.push_back(b);
    blocked = b == At(p, 4 * kMiB);
  }
  ASSERT_TRUE(blocked) << "setup: no block landed right after " << p;
  Fill(p, 4 * kMiB, 5);

  slabby_stats s0 = Stats();
  void* q = Realloc(p, 32 * kMiB);
  slabby_stats s1 = Stats();
  ASSERT_NE(q, nullptr);
  Paths d = Delta(s0, s1);
  EXPECT_NE(q, p);
  EXPECT_EQ(d.remaps, 1u) << Describe(d);
  EXPECT_EQ(d.remap_failures, 0u) << Describe(d);
  EXPECT_EQ(d.copies, 0u) << Describe(d);
  EXPECT_EQ(d.copied_bytes, 0u) << Describe(d);
  EXPECT_EQ(d.grown, 0u) << Describe(d);
  EXPECT_EQ(s1.remapped_blocks, s0.remapped_blocks + 1);
  EXPECT_EQ(s1.current_allocations, s0.current_allocations);
  EXPECT_TRUE(Aligned(q, kPage)) << q;
  size_t usable = malloc_usable_size(q);
  EXPECT_GE(usable, 32 * kMiB);
  // A move gets twice the pages it needs: the headroom later growth uses in place.
  EXPECT_EQ(usable, 64 * kMiB);
  ASSERT_EQ(Check(q, 4 * kMiB, 5), SIZE_MAX) << "contents lost by the move";
  // Every byte past the old size is the program's.
  memset(At(q, 4 * kMiB), 0xA5, usable - 4 * kMiB);
  ASSERT_EQ(Check(q, 4 * kMiB, 5), SIZE_MAX);
  ASSERT_EQ(static_cast<unsigned char>(*At(q, usable - 1)), 0xA5);

  // Growing within the headroom: kept, no move.
  slabby_stats s2 = Stats();
  void* r = Realloc(q, 48 * kMiB);
  EXPECT_EQ(r, q);
  EXPECT_EQ(Delta(s2, Stats()).total(), 0u);
  q = r;

  // The old range went back to the heap, mapped afresh: reusable, writable, and clean. The
  // best fit for a 4 MiB request is that 4 MiB hole (dirty free spans are taken first: keep
  // whatever else comes back until it does).
  std::vector<void*> reuse;
  bool reused = false;
  for (int i = 0; i < 8 && !reused; i++) {
    slabby_stats c0 = Stats();
    void* b = calloc(V(1), V(4 * kMiB));
    slabby_stats c1 = Stats();
    ASSERT_NE(b, nullptr);
    ASSERT_EQ(FirstNonZero(b, 4 * kMiB), SIZE_MAX) << "calloc returned dirty memory at " << b;
    reuse.push_back(b);
    if (b == p) {
      reused = true;
      EXPECT_EQ(c1.calloc_fresh, c0.calloc_fresh + 1) << "the old range was mapped afresh";
      memset(b, 0x5A, 4 * kMiB);
    }
  }
  EXPECT_TRUE(reused) << "the range " << p << " the block moved away from was never reused";
  ASSERT_EQ(Check(q, 4 * kMiB, 5), SIZE_MAX) << "reusing the old range changed the moved block";

  slabby_stats f0 = Stats();
  free(q);
  slabby_stats f1 = Stats();
  EXPECT_EQ(f1.total_deallocations, f0.total_deallocations + 1);
  EXPECT_EQ(f1.remapped_blocks, f0.remapped_blocks - 1);
  EXPECT_EQ(f1.remapped_blocks, s0.remapped_blocks);
  for (void* b : reuse) free(b);
  for (void* b : blockers) free(b);
  // The allocator still serves blocks of the moved block's size afterwards.
  void* again = malloc(V(64 * kMiB));
  ASSERT_NE(again, nullptr);
  memset(again, 1, 64 * kMiB);
  free(again);
  EXPECT_EQ(Stats().lost_bytes, 0u);
}

// A buffer grown 4 KiB at a time to 32 MiB: contents kept at every step, and the bytes copied
// stay far below what a copy per step would cost (headroom and growth in place do the rest).
TEST(LargeRealloc, GrowthBySmallStepsCopiesLittle) {
  constexpr size_t kStep = 4 * kKiB;
  constexpr size_t kEnd = 32 * kMiB;
  constexpr uint64_t kSeed = 6;
  slabby_stats s0 = Stats();
  size_t cur = kStep;
  void* p = malloc(V(cur));
  ASSERT_NE(p, nullptr);
  Fill(p, cur, kSeed);
  size_t reallocs = 0, moves = 0;
  size_t next_full_check = 64 * kKiB;
  for (size_t n = cur + kStep; n <= kEnd; n += kStep) {
    void* q = Realloc(p, n);
    ASSERT_NE(q, nullptr) << cur << " -> " << n;
    reallocs++;
    moves += q != p;
    ASSERT_GE(malloc_usable_size(q), n);
    // A sample at every step: the start, the end of the old contents, and a byte in between.
    ASSERT_EQ(CheckRange(q, 0, 64, kSeed), SIZE_MAX) << cur << " -> " << n;
    ASSERT_EQ(CheckRange(q, cur - 64, cur, kSeed), SIZE_MAX) << cur << " -> " << n;
    size_t mid = (cur / 2) * 7 / 13;
    ASSERT_EQ(CheckRange(q, mid, mid + 1, kSeed), SIZE_MAX) << cur << " -> " << n;
    // All of it at every power of two.
    if (n >= next_full_check) {
      ASSERT_EQ(Check(q, cur, kSeed), SIZE_MAX) << cur << " -> " << n;
      next_full_check *= 2;
    }
    FillRange(q, cur, n, kSeed);
    p = q;
    cur = n;
  }
  ASSERT_EQ(Check(p, cur, kSeed), SIZE_MAX);
  slabby_stats s1 = Stats();
  Paths d = Delta(s0, s1);
  EXPECT_LE(d.total(), reallocs) << Describe(d);
  // Every move is a copy or a remap.
  EXPECT_EQ(d.copies + d.remaps, moves) << Describe(d);
  // A copy per step would move about kEnd^2 / (2 kStep) = 128 GiB.
  EXPECT_LT(d.copied_bytes, 64 * kMiB) << Describe(d);
  EXPECT_LT(moves, 64u) << "moves are amortised (headroom): " << Describe(d);
  free(p);
  slabby_stats s2 = Stats();
  EXPECT_EQ(s2.remapped_blocks, s0.remapped_blocks) << "a freed remapped block is counted off";
  EXPECT_EQ(s2.current_allocations, s0.current_allocations);
}

// Several buffers resized at random between 1 KiB and 24 MiB, interleaved so that every path
// meets the others' leftovers (remapped spans shrunk and moved again, tails given back next to
// live spans, ...). Each buffer keeps one pattern: the bytes up to its size always hold it.
TEST(LargeRealloc, RandomResizingOfSeveralBuffersKeepsContents) {
  constexpr int kBuffers = 6;
  struct Buf {
    void* p;
    size_t n;
  } bufs[kBuffers];
  uint64_t rng = 0x5eed;
  auto next_rand = [&rng] {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return rng >> 33;
  };
  auto random_size = [&] {
    size_t r = next_rand();
    switch (r % 4) {
      case 0:
        return 1 * kKiB + r % (32 * kKiB);  // small
      case 1:
        return kMaxSmall + 1 + r % kMaxMedium;  // medium, or just above
      default:
        return kMiB + r % (24 * kMiB);  // page spans
    }
  };
  slabby_stats s0 = Stats();
  for (int i = 0; i < kBuffers; i++) {
    bufs[i].n = random_size();
    bufs[i].p = malloc(V(bufs[i].n));
    ASSERT_NE(bufs[i].p, nullptr);
    Fill(bufs[i].p, bufs[i].n, 100 + i);
  }
  const int kSteps = 400;
  for (int step = 0; step < kSteps; step++) {
    int i = static_cast<int>(next_rand() % kBuffers);
    Buf& b = bufs[i];
    size_t n = next_rand() % 3 == 0 ? b.n + 1 + next_rand() % (2 * kMiB) : random_size();
    void* q = Realloc(b.p, n);
    ASSERT_NE(q, nullptr) << b.n << " -> " << n;
    ASSERT_GE(malloc_usable_size(q), n);
    size_t keep = std::min(b.n, n);
    // The first and last KiB kept, and 16 bytes in between.
    ASSERT_EQ(CheckRange(q, 0, std::min<size_t>(keep, kKiB), 100 + i), SIZE_MAX)
        << "step " << step << ": " << b.n << " -> " << n;
    ASSERT_EQ(CheckRange(q, keep - std::min<size_t>(keep, kKiB), keep, 100 + i), SIZE_MAX)
        << "step " << step << ": " << b.n << " -> " << n;
    for (int k = 0; k < 16; k++) {
      size_t at = next_rand() % keep;
      ASSERT_EQ(CheckRange(q, at, at + 1, 100 + i), SIZE_MAX)
          << "step " << step << ": " << b.n << " -> " << n << ", byte " << at;
    }
    if (n > b.n) FillRange(q, b.n, n, 100 + i);
    b.p = q;
    b.n = n;
  }
  for (int i = 0; i < kBuffers; i++) {
    ASSERT_EQ(Check(bufs[i].p, bufs[i].n, 100 + i), SIZE_MAX) << "buffer " << i;
    free(bufs[i].p);
  }
  slabby_stats s1 = Stats();
  Paths d = Delta(s0, s1);
  EXPECT_LE(d.total(), static_cast<uint64_t>(kSteps)) << Describe(d);
  EXPECT_EQ(s1.current_allocations, s0.current_allocations);
  EXPECT_EQ(s1.remapped_blocks, s0.remapped_blocks);
  EXPECT_EQ(s1.large_live_bytes, s0.large_live_bytes);
  EXPECT_EQ(s1.lost_bytes, 0u);
  // Every kind of block is served afterwards, and its pages are writable.
  for (size_t n : {size_t{100}, 100 * kKiB, 3 * kMiB, 30 * kMiB}) {
    void* p = malloc(V(n));
    ASSERT_NE(p, nullptr);
    memset(p, 0x42, n);
    free(p);
  }
  std::printf("paths: %s\n", Describe(d).c_str());
}

// ---------------------------------------------------------------------------------------------
// realloc: the copy path, between small blocks and page spans

TEST(LargeRealloc, SmallToLargeCopiesIntoAPageSpan) {
  void* p = malloc(V(100));
  ASSERT_NE(p, nullptr);
  size_t old_usable = malloc_usable_size(p);
  ASSERT_LT(old_usable, 4096u);
  Fill(p, old_usable, 7);
  slabby_stats s0 = Stats();
  void* q = Realloc(p, 3 * kMiB);
  slabby_stats s1 = Stats();
  ASSERT_NE(q, nullptr);
  Paths d = Delta(s0, s1);
  EXPECT_EQ(d.copies, 1u) << Describe(d);
  EXPECT_EQ(d.total(), 1u) << Describe(d);
  // Every usable byte of the old block is copied (at least the 100 requested).
  EXPECT_TRUE(d.copied_bytes == old_usable || d.copied_bytes == 100) << d.copied_bytes;
  ASSERT_EQ(Check(q, old_usable, 7), SIZE_MAX);
  EXPECT_TRUE(Aligned(q, kPage)) << "a page span: " << q;
  EXPECT_GE(malloc_usable_size(q), 3 * kMiB);
  memset(At(q, old_usable), 0x11, malloc_usable_size(q) - old_usable);
  ASSERT_EQ(Check(q, old_usable, 7), SIZE_MAX);
  EXPECT_EQ(s1.large_allocations, s0.large_allocations + 1);
  EXPECT_EQ(s1.current_allocations, s0.current_allocations);
  free(q);
}

TEST(LargeRealloc, LargeToSmallMovesIntoAClassBlock) {
  void* p = malloc(V(3 * kMiB));
  ASSERT_NE(p, nullptr);
  Fill(p, 3 * kMiB, 8);
  slabby_stats s0 = Stats();
  void* q = Realloc(p, 100);
  slabby_stats s1 = Stats();
  ASSERT_NE(q, nullptr);
  EXPECT_NE(q, p);
  Paths d = Delta(s0, s1);
  EXPECT_EQ(d.copies, 1u) << Describe(d);
  EXPECT_EQ(d.total(), 1u) << Describe(d);
  EXPECT_EQ(d.copied_bytes, 100u) << Describe(d);
  EXPECT_LT(malloc_usable_size(q), 4096u) << "a small block, not a page span";
  EXPECT_GE(malloc_usable_size(q), 100u);
  ASSERT_EQ(Check(q, 100, 8), SIZE_MAX);
  EXPECT_EQ(s1.large_frees, s0.large_frees + 1) << "the span was freed";
  EXPECT_EQ(s1.current_allocations, s0.current_allocations);
  free(q);
}

// ---------------------------------------------------------------------------------------------
// Medium blocks (32 KiB .. 1 MiB): one-block slabs of a size class

TEST(MediumBlocks, UsableSizeIsTheClassSizeAndPageAligned) {
  std::vector<size_t> classes = MediumClasses();
  ASSERT_EQ(classes.size(), 20u);
  EXPECT_EQ(classes.front(), 40 * kKiB);
  EXPECT_EQ(classes.back(), kMaxMedium);
  // The class table slabby reports lists them too.
  slabby_stats s = Stats();
  for (size_t c : classes) {
    bool found = false;
    for (uint32_t i = 0; i < s.num_classes; i++) found |= s.classes[i].block_size == c;
    EXPECT_TRUE(found) << c << " is not a size class";
  }
  size_t prev = kMaxSmall;
  std::vector<void*> live;
  for (size_t c : classes) {
    for (size_t n : {prev + 1, (prev + c) / 2, c - 1, c}) {
      slabby_stats a = Stats();
      void* p = malloc(V(n));
      slabby_stats b = Stats();
      ASSERT_NE(p, nullptr) << n;
      EXPECT_EQ(malloc_usable_size(p), c) << "malloc(" << n << ")";
      EXPECT_TRUE(Aligned(p, kPage)) << "malloc(" << n << ") = " << p;
      EXPECT_EQ(b.large_allocations, a.large_allocations) << n << " is not a page span";
      memset(p, 0x6B, c);
      live.push_back(p);
    }
    prev = c;
  }
  // Just above the largest class: a page span, page-aligned too.
  void* span = malloc(V(kMaxMedium + 1));
  ASSERT_NE(span, nullptr);
  EXPECT_TRUE(Aligned(span, kPage));
  EXPECT_GE(malloc_usable_size(span), kMaxMedium + 1);
  free(span);
  for (void* p : live) free(p);
  // calloc of every medium size is served by a class block too, zeroed.
  for (size_t c : classes) {
    void* p = calloc(V(1), V(c));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(malloc_usable_size(p), c);
    EXPECT_TRUE(Aligned(p, kPage)) << p;
    ASSERT_EQ(FirstNonZero(p, c), SIZE_MAX) << c;
    free(p);
  }
}

TEST(MediumBlocks, ReallocWithinTheClassKeepsThePointer) {
  // 80 KiB class: requests of 64 KiB + 1 .. 80 KiB.
  void* p = malloc(V(70000));
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(malloc_usable_size(p), 80 * kKiB);
  Fill(p, 80 * kKiB, 9);
  for (size_t n : {size_t{80 * kKiB}, size_t{64 * kKiB + 1}, size_t{75000}, size_t{70000}}) {
    slabby_stats a = Stats();
    void* q = Realloc(p, n);
    slabby_stats b = Stats();
    ASSERT_EQ(q, p) << n << " is in the same class";
    EXPECT_EQ(Delta(a, b).total(), 0u) << n << ": " << Describe(Delta(a, b));
    EXPECT_EQ(malloc_usable_size(q), 80 * kKiB);
    ASSERT_EQ(Check(q, 80 * kKiB, 9), SIZE_MAX) << n;
  }
  free(p);
}

TEST(MediumBlocks, AGrowingMediumBlockBecomesAPageSpanThatMovesRarely) {
  std::vector<size_t> classes = MediumClasses();
  // Up through every medium class, then past them, then down again and into
  // a small class.
  size_t cur = 40 * kKiB;
  void* p = malloc(V(cur));
  ASSERT_NE(p, nullptr);
  Fill(p, cur, 10);
  uint64_t seed = 10;
  std::vector<size_t> up(classes.begin() + 1, classes.end());
  up.push_back(kMaxMedium + kPage);
  std::vector<size_t> down;
  for (size_t i = classes.size() - 1; i-- > 0;) down.push_back(classes[i]);
  uint64_t copied_up = 0, moves_up = 0;
  for (size_t k = 0; k < up.size() + down.size() + 1; ++k) {
    size_t n = k < up.size()                 ? up[k]
               : k < up.size() + down.size() ? down[k - up.size()]
                                             : 20 * kKiB;
    size_t old_usable = malloc_usable_size(p);
    slabby_stats a = Stats();
    void* q = Realloc(p, n);
    slabby_stats b = Stats();
    ASSERT_NE(q, nullptr) << cur << " -> " << n;
    Paths d = Delta(a, b);
    ASSERT_EQ(Check(q, std::min(cur, n), seed), SIZE_MAX) << cur << " -> " << n;
    EXPECT_GE(malloc_usable_size(q), n);
    EXPECT_LE(d.total(), 1u) << Describe(d);
    EXPECT_EQ(b.current_allocations, a.current_allocations);
    if (k == 0) {
      // The medium block grows out of its class: copied once into a page
      // span with as many pages again as headroom.
      EXPECT_EQ(d.copies, 1u) << Describe(d);
      EXPECT_EQ(d.copied_bytes, old_usable);
      EXPECT_TRUE(Aligned(q, kPage)) << q;
      EXPECT_GE(malloc_usable_size(q), 2 * n);
    }
    if (k < up.size()) {
      copied_up += d.copied_bytes;
      moves_up += d.copies + d.remaps;
    } else if (n > kMaxSmall) {
      // A page span going down: in place.
      EXPECT_EQ(q, p) << cur << " -> " << n << ": " << Describe(d);
      EXPECT_EQ(d.copies + d.remaps + d.grown, 0u) << Describe(d);
    } else {
      EXPECT_EQ(d.copies, 1u) << cur << " -> " << n << ": " << Describe(d);
    }
    p = q;
    cur = n;
    seed++;
    Fill(p, cur, seed);
  }
  // From class to class, 19 steps would have copied each block (6.4 MiB in
  // all); as a span with headroom it moves at most once per doubling.
  EXPECT_LE(moves_up, 5u);
  EXPECT_LT(copied_up, 2 * kMaxMedium);
  EXPECT_LT(malloc_usable_size(p), kMaxSmall + 1);
  free(p);
}

// A buffer resized to each message's size (64 KiB to 1 MiB and back, in
// 64 KiB steps): copied at every growth step from class to class before
// (14 s for a million calls against jemalloc's 0.3 s), now in place.
TEST(MediumBlocks, ABufferCyclingBetween64KiBAnd1MiBIsNotCopiedAtEachStep) {
  char* p = static_cast<char*>(malloc(V(64 * kKiB)));
  ASSERT_NE(p, nullptr);
  memset(p, 7, 64 * kKiB);
  slabby_stats a = Stats();
  for (int round = 0; round < 10; ++round) {
    for (size_t n = 64 * kKiB; n <= kMaxMedium; n += 64 * kKiB) {
      p = static_cast<char*>(Realloc(p, n));
      ASSERT_NE(p, nullptr);
      ASSERT_EQ(p[0], 7);
      ASSERT_EQ(p[64 * kKiB - 2], 7);
      p[n - 1] = 1;
    }
  }
  Paths d = Delta(a, Stats());
  // 10 rounds of 16 steps; class to class each growth copied 0.5 MiB on
  // average, 75 MiB in all.
  EXPECT_LT(d.copied_bytes, 2 * kMaxMedium) << Describe(d);
  EXPECT_LE(d.copies + d.remaps, 3u) << Describe(d);
  free(p);
}

// ---------------------------------------------------------------------------------------------
// realloc failure: NULL, ENOMEM, the old block untouched, for every kind of block

TEST(ReallocFailure, ImpossibleSizesLeaveTheBlockIntact) {
  struct Kind {
    const char* name;
    size_t size;
  } kinds[] = {{"small", 100}, {"medium", 100 * 1000}, {"large", 3 * kMiB}};
  for (const Kind& k : kinds) {
    void* p = malloc(V(k.size));
    ASSERT_NE(p, nullptr) << k.name;
    size_t usable = malloc_usable_size(p);
    ASSERT_GE(usable, k.size);
    Fill(p, usable, k.size);
    for (size_t n : {static_cast<size_t>(PTRDIFF_MAX), SIZE_MAX - 4096}) {
      slabby_stats a = Stats();
      errno = 0;
      void* q = realloc(p, V(n));
      int err = errno;
      slabby_stats b = Stats();
      EXPECT_EQ(q, nullptr) << k.name << " realloc to " << n;
      EXPECT_EQ(err, ENOMEM) << k.name << " realloc to " << n;
      ASSERT_EQ(Check(p, usable, k.size), SIZE_MAX)
          << k.name << " block damaged by a failed realloc to " << n;
      EXPECT_EQ(malloc_usable_size(p), usable) << k.name;
      EXPECT_EQ(b.current_allocations, a.current_allocations) << k.name;
      EXPECT_EQ(b.live_bytes, a.live_bytes) << k.name;
      EXPECT_EQ(b.remapped_blocks, a.remapped_blocks) << k.name;
    }
    // Still a valid block: it grows, keeps its bytes, and frees.
    void* q = Realloc(p, usable + 1);
    ASSERT_NE(q, nullptr) << k.name;
    ASSERT_EQ(Check(q, usable, k.size), SIZE_MAX) << k.name;
    q = Realloc(q, 2 * usable);
    ASSERT_NE(q, nullptr) << k.name;
    ASSERT_EQ(Check(q, usable, k.size), SIZE_MAX) << k.name;
    free(q);
  }
}

// ---------------------------------------------------------------------------------------------
// calloc above 32 KiB

const size_t kCallocSizes[] = {40 * kKiB, 100 * 1000, 512 * kKiB, kMiB,
                               kMiB + 1,  3 * kMiB,   16 * kMiB,  40 * kMiB};

// Dirty blocks of every size range, freed and asked for again by calloc (both argument orders):
// every byte zero, and exactly one of calloc_fresh / calloc_memset counted per call.
TEST(LargeCalloc, ZeroOnRecycledDirtyMemory) {
  for (size_t n : kCallocSizes) {
    void* p = malloc(V(n));
    ASSERT_NE(p, nullptr) << n;
    memset(p, 0xEE, malloc_usable_size(p));
    free(p);
    for (int form = 0; form < 2; form++) {
      slabby_stats a = Stats();
      void* q = form == 0 ? calloc(V(1), V(n)) : calloc(V(n), V(1));
      slabby_stats b = Stats();
      ASSERT_NE(q, nullptr) << n;
      ASSERT_EQ(FirstNonZero(q, n), SIZE_MAX)
          << "calloc(" << (form == 0 ? "1, n" : "n, 1") << ") of " << n << " bytes at " << q
          << " (the freed block was " << p << ")";
      EXPECT_EQ(CallocPaths(b) - CallocPaths(a), 1u)
          << n << ": fresh +" << b.calloc_fresh - a.calloc_fresh << ", memset +"
          << b.calloc_memset - a.calloc_memset;
      EXPECT_LE(b.calloc_memset_bytes - a.calloc_memset_bytes, malloc_usable_size(q)) << n;
      // Dirty again for the next round.
      memset(q, 0xEE, malloc_usable_size(q));
      free(q);
    }
  }
}

// A 16 MiB span with only one page in 16 resident: calloc zeroes what is resident and leaves
// the rest (which reads as zero) alone.
TEST(LargeCalloc, ZeroOnPartlyResidentSpan) {
  constexpr size_t kSize = 16 * kMiB;
  // A freed span above 8 MiB is purged until the program is seen reusing such sizes: reuse one,
  // so the next one stays dirty and calloc has to zero it.
  for (int i = 0; i < 2; i++) {
    void* warm = malloc(V(kSize));
    ASSERT_NE(warm, nullptr);
    memset(warm, 0x21, kSize);
    free(warm);
  }
  for (int round = 0; round < 3; round++) {
    // A clean span: dirtied, then purged by malloc_trim.
    void* c = malloc(V(kSize));
    ASSERT_NE(c, nullptr);
    memset(c, 0xEE, kSize);
    free(c);
    malloc_trim(0);
    // Taken again and written one byte every 64 KiB: only those pages are resident (whole huge
    // pages where the kernel backs the span with them).
    char* p = static_cast<char*>(malloc(V(kSize)));
    ASSERT_NE(p, nullptr);
    for (size_t off = 0; off < kSize; off += 64 * kKiB) p[off + (off / 64 % 4093)] = 0x5C;
    free(p);
    size_t resident = ResidentBytes(p, kSize);  // still slabby's mapping: mincore is fine
    slabby_stats a = Stats();
    void* q = round == 2 ? calloc(V(kSize), V(1)) : calloc(V(1), V(kSize));
    slabby_stats b = Stats();
    ASSERT_NE(q, nullptr);
    ASSERT_EQ(FirstNonZero(q, kSize), SIZE_MAX) << "round " << round << ": " << q;
    EXPECT_EQ(CallocPaths(b) - CallocPaths(a), 1u);
    uint64_t written = b.calloc_memset_bytes - a.calloc_memset_bytes;
    EXPECT_LE(written, kSize);
    // The dirty span freed just before is the one calloc takes, and its old data is zeroed.
    EXPECT_EQ(q, p) << "round " << round;
    EXPECT_EQ(b.calloc_memset, a.calloc_memset + 1) << "round " << round;
    if (q == p && resident != SIZE_MAX) {
      EXPECT_LE(written, resident) << "round " << round << ": zeroing wrote pages not resident";
    }
    // The whole block is usable after calloc.
    memset(q, 0xEE, kSize);
    free(q);
  }
}

TEST(LargeCalloc, ZeroAfterMallocTrim) {
  for (size_t n : kCallocSizes) {
    void* p = malloc(V(n));
    ASSERT_NE(p, nullptr);
    memset(p, 0xEE, malloc_usable_size(p));
    free(p);
    malloc_trim(0);
    slabby_stats a = Stats();
    void* q = calloc(V(n), V(1));
    slabby_stats b = Stats();
    ASSERT_NE(q, nullptr);
    ASSERT_EQ(FirstNonZero(q, n), SIZE_MAX) << n << " after malloc_trim(0): " << q;
    EXPECT_EQ(CallocPaths(b) - CallocPaths(a), 1u) << n;
    if (n > kMaxMedium) {
      // malloc_trim purged every free span: their pages are known to be zero, nothing written.
      EXPECT_EQ(b.calloc_fresh, a.calloc_fresh + 1) << n;
      EXPECT_EQ(b.calloc_memset_bytes, a.calloc_memset_bytes) << n;
    } else {
      // A medium block is a class block from the caches: zeroed by memset.
      EXPECT_EQ(b.calloc_memset, a.calloc_memset + 1) << n;
    }
    memset(q, 0xEE, n);
    free(q);
  }
}

// ---------------------------------------------------------------------------------------------
// Aligned allocation of medium sizes and page spans

enum class AlignFn { kPosixMemalign, kAlignedAlloc, kMemalign };

const char* Name(AlignFn fn) {
  return fn == AlignFn::kPosixMemalign
             ? "posix_memalign"
             : (fn == AlignFn::kAlignedAlloc ? "aligned_alloc" : "memalign");
}

void* AllocAligned(AlignFn fn, size_t align, size_t size) {
  switch (fn) {
    case AlignFn::kPosixMemalign: {
      void* p = nullptr;
      int r = posix_memalign(&p, V(align), V(size));
      EXPECT_EQ(r, 0) << "posix_memalign(" << align << ", " << size << ")";
      return r == 0 ? p : nullptr;
    }
    case AlignFn::kAlignedAlloc:
      return aligned_alloc(V(align), V(size));
    case AlignFn::kMemalign:
      return memalign(V(align), V(size));
  }
  return nullptr;
}

TEST(LargeAlign, EveryFunctionAlignmentAndSize) {
  for (AlignFn fn : {AlignFn::kPosixMemalign, AlignFn::kAlignedAlloc, AlignFn::kMemalign}) {
    std::vector<std::pair<void*, size_t>> live;
    uint64_t seed = 20;
    for (size_t align : {4 * kKiB, 64 * kKiB, 2 * kMiB}) {
      for (size_t size : {100 * kKiB, 3 * kMiB}) {
        void* p = AllocAligned(fn, align, size);
        ASSERT_NE(p, nullptr) << Name(fn) << "(" << align << ", " << size << ")";
        EXPECT_TRUE(Aligned(p, align)) << Name(fn) << "(" << align << ", " << size << ") = " << p;
        EXPECT_TRUE(Aligned(p, kPage)) << Name(fn) << "(" << align << ", " << size << ") = " << p;
        ASSERT_GE(malloc_usable_size(p), size);
        Fill(p, size, seed + live.size());
        live.push_back({p, size});
      }
    }
    // Live blocks do not overlap, and realloc keeps their contents (at least 16-byte aligned).
    for (size_t i = 0; i < live.size(); i++) {
      ASSERT_EQ(Check(live[i].first, live[i].second, seed + i), SIZE_MAX) << Name(fn) << " #" << i;
    }
    for (size_t i = 0; i < live.size(); i++) {
      void* q = Realloc(live[i].first, 2 * live[i].second + 12345);
      ASSERT_NE(q, nullptr);
      ASSERT_EQ(Check(q, live[i].second, seed + i), SIZE_MAX) << Name(fn) << " #" << i;
      free(q);
    }
  }
}

// An aligned span that grows in place keeps its address, so its alignment; whatever path the
// growth takes, the contents are kept and exactly one path is counted.
TEST(LargeAlign, GrowthInPlaceKeepsTheAlignment) {
  int in_place = 0;
  for (AlignFn fn : {AlignFn::kPosixMemalign, AlignFn::kAlignedAlloc, AlignFn::kMemalign}) {
    for (size_t align : {4 * kKiB, 64 * kKiB, 2 * kMiB}) {
      void* p = AllocAligned(fn, align, 3 * kMiB);
      ASSERT_NE(p, nullptr);
      ASSERT_TRUE(Aligned(p, align)) << p;
      Fill(p, 3 * kMiB, align);
      // Aligned spans are carved from a larger free run (the alignment slack after them is
      // freed) or from the frontier: the next 64 KiB are free in a fresh process.
      slabby_stats a = Stats();
      void* q = Realloc(p, 3 * kMiB + 64 * kKiB);
      slabby_stats b = Stats();
      ASSERT_NE(q, nullptr);
      Paths d = Delta(a, b);
      EXPECT_EQ(d.total(), 1u) << Describe(d);
      ASSERT_EQ(Check(q, 3 * kMiB, align), SIZE_MAX) << Name(fn) << " " << align;
      if (d.grown == 1) {
        in_place++;
        EXPECT_EQ(q, p) << "grown in place, yet moved";
        EXPECT_TRUE(Aligned(q, align)) << q;
      } else {
        EXPECT_NE(q, p) << Describe(d);
      }
      EXPECT_GE(malloc_usable_size(q), 3 * kMiB + 64 * kKiB);
      // Shrinking back keeps the address.
      void* r = Realloc(q, 3 * kMiB);
      EXPECT_EQ(r, q);
      ASSERT_EQ(Check(r, 3 * kMiB, align), SIZE_MAX);
      free(r);
    }
  }
  EXPECT_GT(in_place, 0) << "no aligned span ever grew in place";
}

// ---------------------------------------------------------------------------------------------
// The new stats fields in every export format

std::string WriteStats(int format) {
  int fds[2];
  if (pipe(fds) != 0) return "";
  // Read while slabby writes: the report is larger than a pipe's buffer.
  std::string out;
  std::thread reader([&] {
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  });
  EXPECT_EQ(slabby_write_stats(fds[1], format), 0);
  close(fds[1]);
  reader.join();
  close(fds[0]);
  return out;
}

// The digits after `key` in `text`, or -1 when the key is missing.
long long NumberAfter(const std::string& text, const std::string& key) {
  size_t at = text.find(key);
  if (at == std::string::npos) return -1;
  at += key.size();
  if (at >= text.size() || text[at] < '0' || text[at] > '9') return -1;
  return std::stoll(text.substr(at, 24));
}

TEST(LargeStats, JsonPrometheusAndTextHaveTheNewFields) {
  // Every path at least once, so the values are not all zero.
  void* p = malloc(V(4 * kMiB));
  void* blocker = malloc(V(2 * kMiB));
  memset(p, 1, 4 * kMiB);
  p = Realloc(p, 16 * kMiB);                      // grown, remapped or copied
  p = Realloc(p, 2 * kMiB);                       // shrunk
  void* s = Realloc(malloc(V(100)), 200 * 1000);  // copied
  void* c = calloc(V(1), V(5 * kMiB));
  void* m = calloc(V(1), V(100 * 1000));
  ASSERT_NE(p, nullptr);
  ASSERT_NE(s, nullptr);
  ASSERT_NE(c, nullptr);
  ASSERT_NE(m, nullptr);

  struct F {
    const char* json;
    const char* prom;
    const char* type;
    uint64_t slabby_stats::*member;
  };
  const F fields[] = {
      {"realloc_grown_in_place", "realloc_grown_in_place_total", "counter",
       &slabby_stats::realloc_grown_in_place},
      {"realloc_shrunk_in_place", "realloc_shrunk_in_place_total", "counter",
       &slabby_stats::realloc_shrunk_in_place},
      {"realloc_remaps", "realloc_remaps_total", "counter", &slabby_stats::realloc_remaps},
      {"realloc_remap_failures", "realloc_remap_failures_total", "counter",
       &slabby_stats::realloc_remap_failures},
      {"realloc_copies", "realloc_copies_total", "counter", &slabby_stats::realloc_copies},
      {"realloc_copied_bytes", "realloc_copied_bytes_total", "counter",
       &slabby_stats::realloc_copied_bytes},
      {"remapped_blocks", "remapped_blocks", "gauge", &slabby_stats::remapped_blocks},
      {"calloc_fresh", "calloc_fresh_total", "counter", &slabby_stats::calloc_fresh},
      {"calloc_memset", "calloc_memset_total", "counter", &slabby_stats::calloc_memset},
      {"calloc_memset_bytes", "calloc_memset_bytes_total", "counter",
       &slabby_stats::calloc_memset_bytes},
      {"lost_bytes", "lost_bytes", "gauge", &slabby_stats::lost_bytes},
  };
  slabby_stats st = Stats();
  EXPECT_GE(st.version, 3u);
  EXPECT_GE(st.struct_size, offsetof(slabby_stats, lost_bytes) + sizeof(uint64_t));
  EXPECT_GE(st.realloc_shrunk_in_place, 1u);
  EXPECT_GE(st.realloc_copies, 1u);
  EXPECT_GE(st.realloc_grown_in_place + st.realloc_remaps + st.realloc_copies, 2u);
  EXPECT_GE(st.calloc_fresh + st.calloc_memset, 2u);

  // Nothing below reallocs or callocs above 32 KiB: the counters stay as read.
  std::string json = WriteStats(SLABBY_FORMAT_JSON);
  std::string prom = WriteStats(SLABBY_FORMAT_PROMETHEUS);
  std::string text = WriteStats(SLABBY_FORMAT_TEXT);
  ASSERT_FALSE(json.empty());
  ASSERT_FALSE(prom.empty());
  ASSERT_FALSE(text.empty());
  EXPECT_NE(json.find("\"stats_version\":" + std::to_string(SLABBY_STATS_VERSION)), std::string::npos);
  for (const F& f : fields) {
    long long want = static_cast<long long>(st.*(f.member));
    EXPECT_EQ(NumberAfter(json, std::string("\"") + f.json + "\":"), want) << "JSON " << f.json;
    std::string name = std::string("slabby_") + f.prom;
    EXPECT_NE(prom.find("# HELP " + name + " "), std::string::npos) << name;
    EXPECT_NE(prom.find("# TYPE " + name + " " + f.type + "\n"), std::string::npos) << name;
    EXPECT_EQ(NumberAfter(prom, "\n" + name + " "), want) << "Prometheus " << name;
  }
  // The text report shows the realloc and calloc rows (failures and lost bytes only when
  // non-zero).
  for (const char* row : {"realloc_grown_in_place", "realloc_shrunk_in_place", "realloc_remaps",
                          "realloc_copies", "realloc_copied_bytes", "remapped_blocks",
                          "calloc_fresh", "calloc_memset", "calloc_memset_bytes"}) {
    EXPECT_NE(text.find(std::string("slabby:   ") + row + " "), std::string::npos) << row;
  }
  free(p);
  free(blocker);
  free(s);
  free(c);
  free(m);
}

}  // namespace

// API conformance of every allocation symbol slabby exports.
//
// This binary is linked with libslabby_malloc.so, so every allocation in the process (GoogleTest's
// included) goes through slabby. It is built with -O0 -fno-builtin and passes sizes through
// volatile variables so the compiler cannot fold or elide allocator calls.
//
// slabby promises glibc semantics: where glibc 2.36 defines a behaviour (realloc(p, 0) frees and
// returns NULL, malloc(0) returns a unique pointer, ENOMEM on impossible sizes, ...) the tests
// check exactly that behaviour. Every test here also passes on plain glibc, except those that
// read slabby's own statistics.
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <new>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "slabby/slabby.h"

// glibc's own entry points: memory obtained here is "foreign" to slabby.
extern "C" void* __libc_malloc(size_t);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_memalign(size_t, size_t);
extern "C" void __libc_free(void*);
// Removed from glibc's headers (and only a compat symbol there); slabby exports it.
extern "C" void cfree(void*) __attribute__((weak));

namespace {

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

// Returns the index of the first byte that does not hold the pattern, or SIZE_MAX.
size_t Check(const void* p, size_t n, uint64_t seed) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; i++) {
    if (b[i] != Pat(seed, i)) return i;
  }
  return SIZE_MAX;
}

bool AllZero(const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; i++) {
    if (b[i] != 0) return false;
  }
  return true;
}

// For allocations expected to throw; frees the block should one come back.
void Discard(void* p) { free(p); }

bool Aligned(const void* p, size_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

size_t PageSize() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

// Sizes 0 .. max: every size up to 1024, then a geometric walk that also lands on each power of
// two and its neighbours.
std::vector<size_t> SampleSizes(size_t max) {
  std::set<size_t> s;
  for (size_t n = 0; n <= std::min<size_t>(1024, max); n++) s.insert(n);
  for (size_t p = 1024; p <= max; p *= 2) {
    for (size_t d : {p - 1, p, p + 1, p + p / 4, p + p / 2, p + 3 * p / 4}) {
      if (d <= max) s.insert(d);
    }
  }
  for (size_t n = 1024; n <= max; n = n * 9 / 8 + 7) s.insert(n);
  s.insert(max);
  return std::vector<size_t>(s.begin(), s.end());
}

constexpr size_t kMiB = size_t{1} << 20;

// ---------------------------------------------------------------------------------------------
// slabby's own API.

TEST(SlabbyApi, IsActiveAndCountsAllocations) {
  EXPECT_EQ(slabby_is_active(), 1);
  slabby_stats before = Stats();
  void* p = malloc(V(24));
  ASSERT_NE(p, nullptr);
  slabby_stats after = Stats();
  EXPECT_EQ(after.total_allocations, before.total_allocations + 1);
  EXPECT_EQ(after.current_allocations, before.current_allocations + 1);
  EXPECT_EQ(after.live_bytes, before.live_bytes + malloc_usable_size(p));
  free(p);
  slabby_stats freed = Stats();
  EXPECT_EQ(freed.total_deallocations, after.total_deallocations + 1);
  EXPECT_EQ(freed.current_allocations, before.current_allocations);
  EXPECT_EQ(freed.live_bytes, before.live_bytes);
}

TEST(SlabbyApi, VersionString) {
  ASSERT_NE(slabby_version(), nullptr);
  EXPECT_STREQ(slabby_version(), SLABBY_VERSION_STRING);
}

TEST(SlabbyApi, GetStatsArgumentsAndVersioning) {
  slabby_stats s;
  EXPECT_EQ(slabby_get_stats(nullptr, sizeof(s)), -1);
  EXPECT_EQ(slabby_get_stats(&s, 4), -1);
  EXPECT_EQ(slabby_get_stats(&s, offsetof(slabby_stats, classes) - 1), -1);

  // An "older" caller whose struct ends before classes[]: nothing beyond is written.
  const size_t header = offsetof(slabby_stats, classes);
  memset(&s, 0xEE, sizeof(s));
  ASSERT_EQ(slabby_get_stats(&s, header), 0);
  EXPECT_EQ(s.version, static_cast<uint32_t>(SLABBY_STATS_VERSION));
  EXPECT_LE(s.struct_size, header);
  const uint8_t* tail = reinterpret_cast<const uint8_t*>(&s) + header;
  for (size_t i = 0; i < sizeof(s) - header; i++) {
    ASSERT_EQ(tail[i], 0xEE) << "byte " << i << " past the caller's struct was written";
  }

  memset(&s, 0, sizeof(s));
  ASSERT_EQ(slabby_get_stats(&s, sizeof(s)), 0);
  EXPECT_EQ(s.version, static_cast<uint32_t>(SLABBY_STATS_VERSION));
  EXPECT_GE(s.struct_size, header);
  EXPECT_LE(s.struct_size, sizeof(s));
  EXPECT_EQ(s.current_allocations, s.total_allocations - s.total_deallocations);
}

TEST(SlabbyApi, GetHealthArgumentsVersioningAndRanges) {
  slabby_health h;
  EXPECT_EQ(slabby_get_health(nullptr, sizeof(h)), -1);
  EXPECT_EQ(slabby_get_health(&h, 4), -1);
  // An "older" caller with only the header and the three percentiles.
  const size_t small = offsetof(slabby_health, alloc_latency_max);
  memset(&h, 0xEE, sizeof(h));
  ASSERT_EQ(slabby_get_health(&h, small), 0);
  EXPECT_EQ(h.version, static_cast<uint32_t>(SLABBY_HEALTH_VERSION));
  EXPECT_EQ(h.struct_size, small);
  EXPECT_EQ(h.alloc_latency_max, 0xEEEEEEEEEEEEEEEEull) << "written past the caller's struct";

  ASSERT_EQ(slabby_get_health(&h, sizeof(h)), 0);
  EXPECT_EQ(h.struct_size, sizeof(h));
  for (double v : {h.fragmentation_score, h.memory_pressure, h.error_rate, h.cache_efficiency,
                   h.health_score}) {
    EXPECT_GE(v, 0.0);
    EXPECT_LE(v, 1.0);
  }
  EXPECT_EQ(h.circuit_breaker_open, 0u);
  EXPECT_LE(h.alloc_latency_p50, h.alloc_latency_p95);
  EXPECT_LE(h.alloc_latency_p95, h.alloc_latency_p99);
  EXPECT_STREQ(slabby_trend_name(h.recent_trend), h.recent_trend == SLABBY_TREND_STABLE ? "stable"
                                                  : h.recent_trend == SLABBY_TREND_IMPROVING
                                                      ? "improving"
                                                      : "degrading");
}

TEST(SlabbyApi, GetConfigListsEveryVariableLikeSnprintf) {
  char buf[8192];
  size_t n = slabby_get_config(buf, sizeof(buf));
  ASSERT_GT(n, 0u);
  ASSERT_LT(n, sizeof(buf));
  EXPECT_EQ(strlen(buf), n);
  for (const char* want :
       {"SLABBY_ARENA_SIZE=", "SLABBY_LATENCY_SAMPLE=", "SLABBY_BREAKER_THRESHOLD=0\n",
        "SLABBY_LOG_LEVEL=warn\n", "SLABBY_LOG_FORMAT=text\n"}) {
    EXPECT_NE(strstr(buf, want), nullptr) << want;
  }
  char tiny[10];
  EXPECT_EQ(slabby_get_config(tiny, sizeof(tiny)), n);
  EXPECT_EQ(strlen(tiny), sizeof(tiny) - 1);
  EXPECT_EQ(slabby_get_config(nullptr, 0), n);
}

TEST(SlabbyApi, ClassTableMatchesUsableSizes) {
  slabby_stats s = Stats();
  ASSERT_GE(s.num_classes, 1u);
  ASSERT_LE(s.num_classes, static_cast<uint32_t>(SLABBY_MAX_CLASSES));
  for (uint32_t c = 1; c < s.num_classes; c++) {
    EXPECT_LT(s.classes[c - 1].block_size, s.classes[c].block_size) << "class " << c;
  }
  // A small block's usable size is its class's block size.
  for (size_t n : {size_t{1}, size_t{8}, size_t{24}, size_t{100}, size_t{1000}}) {
    void* p = malloc(V(n));
    ASSERT_NE(p, nullptr);
    size_t u = malloc_usable_size(p);
    bool found = false;
    for (uint32_t c = 0; c < s.num_classes; c++) found |= s.classes[c].block_size == u;
    EXPECT_TRUE(found) << "usable size " << u << " of malloc(" << n << ") is no class size";
    free(p);
  }
}

TEST(SlabbyApi, PrintStatsWritesReport) {
  FILE* f = tmpfile();
  ASSERT_NE(f, nullptr);
  int fd = fileno(f);
  slabby_print_stats(fd);
  off_t len = lseek(fd, 0, SEEK_END);
  EXPECT_GT(len, 0);
  fclose(f);
}

// ---------------------------------------------------------------------------------------------
// malloc / free

TEST(Malloc, ZeroReturnsUniqueFreeablePointers) {
  void* a = malloc(V(0));
  void* b = malloc(V(0));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  std::set<void*> seen{a, b};
  std::vector<void*> more;
  for (int i = 0; i < 1000; i++) {
    void* p = malloc(V(0));
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(seen.insert(p).second) << "malloc(0) returned a live pointer twice";
    more.push_back(p);
  }
  free(a);
  free(b);
  for (void* p : more) free(p);
}

TEST(Malloc, ImpossibleSizesFailWithEnomem) {
  for (size_t n : {SIZE_MAX, SIZE_MAX - 4096, SIZE_MAX / 2, static_cast<size_t>(PTRDIFF_MAX) + 1}) {
    errno = 0;
    void* p = malloc(V(n));
    EXPECT_EQ(p, nullptr) << "malloc(" << n << ")";
    EXPECT_EQ(errno, ENOMEM) << "malloc(" << n << ")";
  }
}

TEST(Malloc, AlignmentAndWholeUsableSizeWritable) {
  std::vector<void*> live;
  for (size_t n : SampleSizes(kMiB)) {
    void* p = malloc(V(n));
    ASSERT_NE(p, nullptr) << n;
    // 16 (alignof(max_align_t)) for blocks that can hold such an object, at least 8 below.
    EXPECT_TRUE(Aligned(p, n >= 16 ? alignof(max_align_t) : 8)) << n << " -> " << p;
    size_t u = malloc_usable_size(p);
    ASSERT_GE(u, n);
    memset(p, 0x5A, u);
    live.push_back(p);
    if (live.size() > 64) {
      free(live.front());
      live.erase(live.begin());
    }
  }
  for (void* p : live) free(p);
}

TEST(Malloc, LiveBlocksDoNotOverlap) {
  struct Blk {
    void* p;
    size_t n;
  };
  std::vector<Blk> blocks;
  uint64_t seed = 1;
  for (size_t n : SampleSizes(256 * 1024)) {
    for (int k = 0; k < 2; k++) {
      void* p = malloc(V(n));
      ASSERT_NE(p, nullptr);
      Fill(p, n, seed + blocks.size());
      blocks.push_back({p, n});
    }
  }
  for (size_t i = 0; i < blocks.size(); i++) {
    ASSERT_EQ(Check(blocks[i].p, blocks[i].n, seed + i), SIZE_MAX)
        << "block of " << blocks[i].n << " bytes was overwritten by another live block";
    free(blocks[i].p);
  }
}

TEST(Free, NullIsNoop) {
  slabby_stats before = Stats();
  free(nullptr);
  free(nullptr);
  slabby_stats after = Stats();
  EXPECT_EQ(after.total_deallocations, before.total_deallocations);
  EXPECT_EQ(after.foreign_frees, before.foreign_frees);
}

TEST(Free, PreservesErrno) {
  std::vector<void*> ptrs = {nullptr,
                             malloc(V(1)),
                             malloc(V(100)),
                             malloc(V(5000)),
                             malloc(V(256 * 1024)),
                             malloc(V(8 * kMiB)),
                             calloc(V(1000), V(1000)),
                             memalign(V(4096), V(100)),
                             memalign(V(2 * kMiB), V(3 * kMiB)),
                             __libc_malloc(V(64)),
                             __libc_malloc(V(4 * kMiB))};
  for (size_t i = 0; i < ptrs.size(); i++) {
    errno = 1234;
    free(ptrs[i]);
    EXPECT_EQ(errno, 1234) << "free() of pointer #" << i << " changed errno";
  }
  void* p = malloc(V(40));
  errno = 4321;
  free(p);
  EXPECT_EQ(errno, 4321);
}

TEST(Cfree, FreesSlabbyAndForeignBlocks) {
  ASSERT_NE(&cfree, nullptr) << "cfree is not exported";
  slabby_stats before = Stats();
  void* p = malloc(V(100));
  memset(p, 1, 100);
  cfree(p);
  slabby_stats after = Stats();
  EXPECT_EQ(after.current_allocations, before.current_allocations);
  cfree(nullptr);
  cfree(__libc_malloc(V(100)));
}

// ---------------------------------------------------------------------------------------------
// C23's free_sized and free_aligned_sized. glibc has them from 2.43 (Debian 12's 2.36 does not),
// so they are reached by their symbol names here, under names of their own: a newer <stdlib.h>
// declares them too. A program built against glibc 2.43 calls them for slabby's blocks, which
// glibc's would take for its own: they must be slabby's.

extern "C" void test_free_sized(void*, size_t) __asm__("free_sized") __attribute__((weak));
extern "C" void test_free_aligned_sized(void*, size_t, size_t) __asm__("free_aligned_sized")
    __attribute__((weak));

// The library that defines the function at f.
std::string DefiningObject(void* f) {
  Dl_info info;
  if (dladdr(f, &info) == 0 || info.dli_fname == nullptr) return "(none)";
  return info.dli_fname;
}

TEST(FreeSized, IsSlabbysAndFreesEveryMallocFamilyBlock) {
  ASSERT_NE(&test_free_sized, nullptr) << "free_sized is not exported";
  EXPECT_NE(DefiningObject(reinterpret_cast<void*>(&test_free_sized)).find("libslabby_malloc"),
            std::string::npos)
      << DefiningObject(reinterpret_cast<void*>(&test_free_sized));
  for (size_t n : {size_t{0}, size_t{1}, size_t{48}, size_t{1000}, size_t{3000}, size_t{100000},
                   3 * kMiB}) {
    for (int how = 0; how < 3; ++how) {
      slabby_stats s0 = Stats();
      size_t asked = n;
      void* p = nullptr;
      if (how == 0) {
        p = malloc(V(n));
      } else if (how == 1) {
        asked = 3 * n;
        p = calloc(V(3), V(n));
      } else {
        void* q = malloc(V(n / 2 + 1));
        ASSERT_NE(q, nullptr);
        p = realloc(q, V(n));  // realloc(q, 0) frees q and returns NULL
        if (n == 0) {
          EXPECT_EQ(p, nullptr);
          continue;
        }
      }
      ASSERT_NE(p, nullptr) << how << " " << n;
      memset(p, 7, asked);
      slabby_stats s1 = Stats();
      errno = 4321;
      test_free_sized(p, V(asked));
      EXPECT_EQ(errno, 4321);
      slabby_stats s2 = Stats();
      EXPECT_EQ(s2.total_deallocations, s1.total_deallocations + 1) << how << " " << n;
      EXPECT_EQ(s2.current_allocations, s0.current_allocations) << how << " " << n;
    }
  }
  test_free_sized(nullptr, V(0));
  test_free_sized(nullptr, V(100));
  test_free_sized(__libc_malloc(V(100)), V(100));  // glibc's block: back to glibc
}

TEST(FreeAlignedSized, IsSlabbysAndFreesAlignedAllocBlocks) {
  ASSERT_NE(&test_free_aligned_sized, nullptr) << "free_aligned_sized is not exported";
  EXPECT_NE(
      DefiningObject(reinterpret_cast<void*>(&test_free_aligned_sized)).find("libslabby_malloc"),
      std::string::npos);
  for (size_t align : {size_t{8}, size_t{16}, size_t{64}, size_t{4096}, size_t{65536}}) {
    for (size_t n : {align, 3 * align, 40 * align, 2 * kMiB}) {
      slabby_stats s0 = Stats();
      void* p = aligned_alloc(V(align), V(n));
      ASSERT_NE(p, nullptr) << align << " " << n;
      ASSERT_TRUE(Aligned(p, align));
      memset(p, 5, n);
      errno = 4321;
      test_free_aligned_sized(p, V(align), V(n));
      EXPECT_EQ(errno, 4321);
      slabby_stats s1 = Stats();
      EXPECT_EQ(s1.total_deallocations, s0.total_deallocations + 1) << align << " " << n;
      EXPECT_EQ(s1.current_allocations, s0.current_allocations) << align << " " << n;
    }
  }
  test_free_aligned_sized(nullptr, V(64), V(0));
  test_free_aligned_sized(__libc_memalign(V(64), V(100)), V(64), V(100));  // glibc's block
}

// ---------------------------------------------------------------------------------------------
// calloc

TEST(Calloc, OverflowFailsWithEnomem) {
  struct {
    size_t a, b;
  } cases[] = {{SIZE_MAX / 2, 3},
               {3, SIZE_MAX / 2},
               {SIZE_MAX, SIZE_MAX},
               {size_t{1} << 32, size_t{1} << 32},
               {SIZE_MAX, 2},
               {static_cast<size_t>(PTRDIFF_MAX), 1},
               {SIZE_MAX - 4096, 1}};
  for (auto& c : cases) {
    errno = 0;
    void* p = calloc(V(c.a), V(c.b));
    EXPECT_EQ(p, nullptr) << "calloc(" << c.a << ", " << c.b << ")";
    EXPECT_EQ(errno, ENOMEM) << "calloc(" << c.a << ", " << c.b << ")";
  }
}

TEST(Calloc, ZeroSizesReturnFreeablePointers) {
  void* a = calloc(V(0), V(0));
  void* b = calloc(V(0), V(SIZE_MAX));
  void* c = calloc(V(SIZE_MAX), V(0));
  EXPECT_NE(a, nullptr);
  EXPECT_NE(b, nullptr);
  EXPECT_NE(c, nullptr);
  free(a);
  free(b);
  free(c);
}

TEST(Calloc, ResultIsZeroed) {
  for (size_t n : SampleSizes(100000)) {
    if (n == 0) continue;
    void* p = calloc(V(1), V(n));
    ASSERT_NE(p, nullptr) << n;
    ASSERT_TRUE(AllZero(p, n)) << "calloc(1, " << n << ") not zeroed";
    memset(p, 0xCD, n);
    free(p);
  }
  for (size_t n : {size_t{3}, size_t{24}, size_t{1000}, size_t{4096}}) {
    void* p = calloc(V(n), V(7));
    ASSERT_NE(p, nullptr);
    ASSERT_TRUE(AllZero(p, n * 7)) << "calloc(" << n << ", 7)";
    free(p);
  }
}

// A freed dirty block of the same size is the most likely one to be handed back by calloc.
TEST(Calloc, ZeroedAfterDirtyBlockReuse) {
  std::vector<size_t> sizes = SampleSizes(100000);
  for (size_t n : {kMiB, 3 * kMiB, 4 * kMiB, 9 * kMiB}) sizes.push_back(n);
  for (size_t n : sizes) {
    if (n == 0) continue;
    for (int round = 0; round < 2; round++) {
      void* p = malloc(V(n));
      ASSERT_NE(p, nullptr);
      memset(p, 0xAB, malloc_usable_size(p));
      free(p);
      void* q = round == 0 ? calloc(V(1), V(n)) : calloc(V(n), V(1));
      ASSERT_NE(q, nullptr);
      ASSERT_TRUE(AllZero(q, n)) << "calloc(" << n << ") returned dirty memory (reused " << p
                                 << " as " << q << ")";
      memset(q, 0xAB, n);
      free(q);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// realloc / reallocarray

TEST(Realloc, NullBehavesAsMalloc) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{70000}, 5 * kMiB}) {
    slabby_stats before = Stats();
    void* p = realloc(nullptr, V(n));
    ASSERT_NE(p, nullptr) << n;
    slabby_stats after = Stats();
    EXPECT_EQ(after.total_allocations, before.total_allocations + 1) << n;
    EXPECT_GE(malloc_usable_size(p), n);
    memset(p, 0x11, n);
    free(p);
  }
}

TEST(Realloc, ZeroSizeFreesAndReturnsNull) {
  for (size_t n : {size_t{1}, size_t{100}, size_t{70000}, 5 * kMiB}) {
    void* p = malloc(V(n));
    ASSERT_NE(p, nullptr);
    slabby_stats before = Stats();
    errno = 0;
    void* q = realloc(p, V(0));
    EXPECT_EQ(q, nullptr) << "glibc's realloc(p, 0) frees p and returns NULL";
    EXPECT_EQ(errno, 0);
    slabby_stats after = Stats();
    EXPECT_EQ(after.total_deallocations, before.total_deallocations + 1) << n;
    EXPECT_EQ(after.current_allocations, before.current_allocations - 1) << n;
  }
}

// Walks up from 8 bytes to 4 MiB and back down, crossing every power of two (and the sizes right
// around it), checking the preserved prefix at every step.
TEST(Realloc, GrowAndShrinkKeepContents) {
  std::vector<size_t> up;
  for (size_t p = 8; p <= 4 * kMiB; p *= 2) {
    for (size_t n : {p - 1, p, p + 1, p + p / 3}) {
      if (n >= 8 && n <= 4 * kMiB) up.push_back(n);
    }
  }
  std::vector<size_t> walk = up;
  walk.insert(walk.end(), up.rbegin(), up.rend());
  walk.push_back(8);
  uint64_t seed = 7;
  size_t cur = walk[0];
  void* p = malloc(V(cur));
  ASSERT_NE(p, nullptr);
  Fill(p, cur, seed);
  for (size_t i = 1; i < walk.size(); i++) {
    size_t next = walk[i];
    void* q = realloc(p, V(next));
    ASSERT_NE(q, nullptr) << cur << " -> " << next;
    size_t keep = std::min(cur, next);
    ASSERT_EQ(Check(q, keep, seed), SIZE_MAX) << "realloc " << cur << " -> " << next;
    ASSERT_GE(malloc_usable_size(q), next);
    p = q;
    cur = next;
    seed++;
    Fill(p, cur, seed);
  }
  free(p);
}

TEST(Realloc, RandomWalkKeepsContents) {
  uint64_t rng = 0x1234567;
  auto next_rand = [&rng] {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return rng >> 33;
  };
  size_t cur = 1;
  void* p = malloc(V(cur));
  Fill(p, cur, 0);
  for (int i = 1; i < 3000; i++) {
    size_t r = next_rand();
    size_t next = (r % 10 == 0) ? r % (2 * kMiB) : (r % 8 == 0 ? r % 40000 : r % 1200);
    if (next == 0) next = 1;
    void* q = realloc(p, V(next));
    ASSERT_NE(q, nullptr);
    ASSERT_EQ(Check(q, std::min(cur, next), i - 1), SIZE_MAX) << cur << " -> " << next;
    p = q;
    cur = next;
    Fill(p, cur, i);
  }
  free(p);
}

// Bytes past the requested size but within malloc_usable_size() belong to the program too:
// glibc's realloc keeps all of them, so slabby must.
TEST(Realloc, KeepsAllUsableBytes) {
  for (size_t n : SampleSizes(kMiB)) {
    for (int growth = 0; growth < 3; growth++) {
      void* p = malloc(V(n));
      ASSERT_NE(p, nullptr);
      size_t u = malloc_usable_size(p);
      Fill(p, u, n + growth);
      size_t bigger = growth == 0 ? u + 1 : (growth == 1 ? 2 * u + 16 : u + 2 * kMiB);
      void* q = realloc(p, V(bigger));
      ASSERT_NE(q, nullptr);
      ASSERT_EQ(Check(q, u, n + growth), SIZE_MAX)
          << "malloc(" << n << ") usable " << u << " realloc to " << bigger;
      free(q);
    }
  }
}

TEST(Realloc, ImpossibleSizeFailsAndKeepsBlock) {
  for (size_t old : {size_t{64}, size_t{5000}, 3 * kMiB}) {
    void* p = malloc(V(old));
    ASSERT_NE(p, nullptr);
    Fill(p, old, old);
    for (size_t n : {SIZE_MAX, SIZE_MAX - 4096, static_cast<size_t>(PTRDIFF_MAX) + 1}) {
      errno = 0;
      void* q = realloc(p, V(n));
      EXPECT_EQ(q, nullptr) << "realloc(" << old << " -> " << n << ")";
      EXPECT_EQ(errno, ENOMEM);
      ASSERT_EQ(Check(p, old, old), SIZE_MAX) << "old block damaged by failed realloc";
      EXPECT_GE(malloc_usable_size(p), old);
    }
    void* q = realloc(p, V(old + 1));  // the old block is still a valid block
    ASSERT_NE(q, nullptr);
    ASSERT_EQ(Check(q, old, old), SIZE_MAX);
    free(q);
  }
}

TEST(Reallocarray, OverflowFailsWithEnomem) {
  errno = 0;
  EXPECT_EQ(reallocarray(nullptr, V(SIZE_MAX / 2), V(3)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  void* p = malloc(V(100));
  Fill(p, 100, 3);
  errno = 0;
  EXPECT_EQ(reallocarray(p, V(size_t{1} << 33), V(size_t{1} << 33)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  ASSERT_EQ(Check(p, 100, 3), SIZE_MAX);
  void* q = reallocarray(p, V(50), V(8));
  ASSERT_NE(q, nullptr);
  EXPECT_GE(malloc_usable_size(q), 400u);
  EXPECT_EQ(Check(q, 100, 3), SIZE_MAX);
  free(q);
  void* r = reallocarray(nullptr, V(10), V(10));
  ASSERT_NE(r, nullptr);
  memset(r, 0, 100);
  free(r);
}

// ---------------------------------------------------------------------------------------------
// malloc_usable_size

TEST(UsableSize, AtLeastRequestedAndStable) {
  EXPECT_EQ(malloc_usable_size(nullptr), 0u);
  for (size_t n : SampleSizes(kMiB)) {
    void* p = malloc(V(n));
    ASSERT_NE(p, nullptr);
    size_t u = malloc_usable_size(p);
    EXPECT_GE(u, n);
    memset(p, 0x77, u);
    EXPECT_EQ(malloc_usable_size(p), u) << n;
    EXPECT_EQ(malloc_usable_size(p), u) << n;
    free(p);
  }
}

// ---------------------------------------------------------------------------------------------
// posix_memalign / aligned_alloc / memalign / valloc / pvalloc

TEST(PosixMemalign, BadAlignmentIsEinvalAndLeavesPointer) {
  void* const sentinel = reinterpret_cast<void*>(uintptr_t{0xDEADBEEF});
  for (size_t a : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, sizeof(void*) / 2, size_t{12},
                   size_t{24}, size_t{40}, size_t{48}, size_t{96}, size_t{4095}, size_t{4097},
                   SIZE_MAX}) {
    void* p = sentinel;
    int r = posix_memalign(&p, V(a), V(64));
    EXPECT_EQ(r, EINVAL) << "alignment " << a;
    EXPECT_EQ(p, sentinel) << "alignment " << a;
  }
}

TEST(PosixMemalign, ImpossibleIsEnomemAndLeavesPointer) {
  void* const sentinel = reinterpret_cast<void*>(uintptr_t{0xDEADBEEF});
  void* p = sentinel;
  EXPECT_EQ(posix_memalign(&p, V(64), V(SIZE_MAX - 100)), ENOMEM);
  EXPECT_EQ(p, sentinel);
  EXPECT_EQ(posix_memalign(&p, V(size_t{1} << 63), V(10)), ENOMEM);
  EXPECT_EQ(p, sentinel);
  EXPECT_EQ(posix_memalign(&p, V(4096), V(static_cast<size_t>(PTRDIFF_MAX) + 1)), ENOMEM);
  EXPECT_EQ(p, sentinel);
}

TEST(PosixMemalign, ZeroSize) {
  void* p = nullptr;
  ASSERT_EQ(posix_memalign(&p, V(64), V(0)), 0);
  EXPECT_NE(p, nullptr);
  EXPECT_TRUE(Aligned(p, 64));
  free(p);
}

enum class AlignFn { kPosixMemalign, kAlignedAlloc, kMemalign };

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

const char* Name(AlignFn fn) {
  return fn == AlignFn::kPosixMemalign ? "posix_memalign"
                                       : (fn == AlignFn::kAlignedAlloc ? "aligned_alloc"
                                                                       : "memalign");
}

class AlignedAllocTest : public ::testing::TestWithParam<AlignFn> {};

TEST_P(AlignedAllocTest, EveryPowerOfTwoAlignment) {
  AlignFn fn = GetParam();
  for (size_t align = 8; align <= 2 * kMiB; align *= 2) {
    std::vector<std::pair<void*, size_t>> live;
    for (size_t size : {size_t{1}, align - 1, align, align + 1, 3 * align}) {
      void* p = AllocAligned(fn, align, size);
      ASSERT_NE(p, nullptr) << Name(fn) << "(" << align << ", " << size << ")";
      ASSERT_TRUE(Aligned(p, align)) << Name(fn) << "(" << align << ", " << size << ") = " << p;
      ASSERT_GE(malloc_usable_size(p), size) << Name(fn) << "(" << align << ", " << size << ")";
      memset(p, static_cast<int>(live.size() + 1), size);
      live.push_back({p, size});
    }
    for (size_t i = 0; i < live.size(); i++) {
      const uint8_t* b = static_cast<const uint8_t*>(live[i].first);
      size_t n = live[i].second;
      EXPECT_EQ(b[0], i + 1);
      EXPECT_EQ(b[n / 2], i + 1);
      EXPECT_EQ(b[n - 1], i + 1) << Name(fn) << " align " << align << " blocks overlap";
      free(live[i].first);
    }
  }
}

// Several live blocks at once, so they come from fresh positions inside the allocator.
TEST_P(AlignedAllocTest, ManyLiveBlocksStayAlignedAndDisjoint) {
  AlignFn fn = GetParam();
  for (size_t align : {size_t{16}, size_t{32}, size_t{64}, size_t{128}, size_t{256}, size_t{512},
                       size_t{1024}, size_t{4096}, size_t{65536}}) {
    for (size_t size : {align / 2, align, 2 * align, align + 8}) {
      std::vector<void*> live;
      for (int i = 0; i < 40; i++) {
        void* p = AllocAligned(fn, align, size);
        ASSERT_NE(p, nullptr);
        ASSERT_TRUE(Aligned(p, align)) << Name(fn) << "(" << align << ", " << size << ") #" << i;
        Fill(p, size, i);
        live.push_back(p);
      }
      for (int i = 0; i < 40; i++) {
        ASSERT_EQ(Check(live[i], size, i), SIZE_MAX)
            << Name(fn) << "(" << align << ", " << size << ") blocks overlap";
        free(live[i]);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllFunctions, AlignedAllocTest,
                         ::testing::Values(AlignFn::kPosixMemalign, AlignFn::kAlignedAlloc,
                                           AlignFn::kMemalign),
                         [](const ::testing::TestParamInfo<AlignFn>& info) {
                           return std::string(Name(info.param));
                         });

// mimalloc once returned misaligned memory for exactly these.
TEST(AlignedAlloc, KnownTrickyPairs) {
  for (auto [align, size] : {std::pair<size_t, size_t>{256, 512}, {512, 1024}, {128, 256},
                             {1024, 2048}, {4096, 8192}}) {
    std::vector<void*> live;
    for (int i = 0; i < 20; i++) {
      void* p = aligned_alloc(V(align), V(size));
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(Aligned(p, align)) << "aligned_alloc(" << align << ", " << size << ") = " << p;
      EXPECT_GE(malloc_usable_size(p), size);
      Fill(p, size, i);
      live.push_back(p);
    }
    for (int i = 0; i < 20; i++) {
      EXPECT_EQ(Check(live[i], size, i), SIZE_MAX);
      free(live[i]);
    }
  }
}

TEST(Memalign, NonPowerOfTwoAlignmentRoundsUp) {
  // glibc rounds a non-power-of-two memalign alignment up to the next power of two.
  for (auto [align, expect] : {std::pair<size_t, size_t>{24, 32}, {48, 64}, {100, 128},
                               {3000, 4096}}) {
    void* p = memalign(V(align), V(100));
    ASSERT_NE(p, nullptr) << align;
    EXPECT_TRUE(Aligned(p, expect)) << "memalign(" << align << ") = " << p;
    memset(p, 0, 100);
    free(p);
  }
  // Alignments below the malloc alignment behave like malloc.
  for (size_t align : {size_t{0}, size_t{1}, size_t{2}, size_t{4}}) {
    void* p = memalign(V(align), V(40));
    ASSERT_NE(p, nullptr) << align;
    EXPECT_TRUE(Aligned(p, 16));
    free(p);
  }
}

TEST(AlignedFamily, ImpossibleSizesFailWithEnomem) {
  errno = 0;
  EXPECT_EQ(memalign(V(64), V(SIZE_MAX - 100)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(aligned_alloc(V(64), V(SIZE_MAX - 100)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(memalign(V(4096), V(static_cast<size_t>(PTRDIFF_MAX) + 1)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(valloc(V(SIZE_MAX - 100)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(pvalloc(V(SIZE_MAX - 100)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(Valloc, PageAligned) {
  const size_t page = PageSize();
  for (size_t n : {size_t{0}, size_t{1}, size_t{100}, page - 1, page, page + 1, size_t{10000},
                   size_t{200000}, kMiB, 5 * kMiB}) {
    void* p = valloc(V(n));
    ASSERT_NE(p, nullptr) << n;
    EXPECT_TRUE(Aligned(p, page)) << "valloc(" << n << ") = " << p;
    EXPECT_GE(malloc_usable_size(p), n);
    memset(p, 0x3C, n);
    free(p);
  }
}

// Note: glibc's pvalloc usable size is NOT a multiple of the page size (pvalloc(1) has 4104
// usable bytes, pvalloc(0) only 24), so what is checked is the documented promise: page aligned
// and at least the request rounded up to whole pages, all of it writable.
TEST(Pvalloc, PageAlignedAndRoundedToPages) {
  const size_t page = PageSize();
  for (size_t n : {size_t{1}, size_t{100}, page - 1, page, page + 1, size_t{10000}, size_t{200000},
                   kMiB + 1, 5 * kMiB}) {
    void* p = pvalloc(V(n));
    ASSERT_NE(p, nullptr) << n;
    EXPECT_TRUE(Aligned(p, page)) << "pvalloc(" << n << ") = " << p;
    size_t rounded = (n + page - 1) / page * page;
    EXPECT_GE(malloc_usable_size(p), rounded) << "pvalloc(" << n << ")";
    memset(p, 0x3D, rounded);
    free(p);
  }
  void* p = pvalloc(V(0));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(Aligned(p, page));
  free(p);
}

// ---------------------------------------------------------------------------------------------
// Pointers from glibc's own malloc (e.g. from a library bound to glibc by RTLD_DEEPBIND) reach
// slabby's free/realloc/malloc_usable_size: slabby must route them back to glibc.

TEST(Foreign, FreeOfGlibcPointer) {
  for (size_t n : {size_t{16}, size_t{100}, size_t{5000}, size_t{200000}, 4 * kMiB}) {
    void* p = __libc_malloc(V(n));
    ASSERT_NE(p, nullptr);
    memset(p, 0x42, n);
    slabby_stats before = Stats();
    free(p);
    slabby_stats after = Stats();
    EXPECT_EQ(after.foreign_frees, before.foreign_frees + 1) << n;
    EXPECT_EQ(after.total_deallocations, before.total_deallocations) << n;
  }
  free(__libc_calloc(V(10), V(10)));
  free(__libc_memalign(V(4096), V(1000)));
  free(__libc_memalign(V(64), V(3 * kMiB)));
}

TEST(Foreign, UsableSizeOfGlibcPointer) {
  for (size_t n : {size_t{1}, size_t{24}, size_t{100}, size_t{5000}, size_t{200000}, 4 * kMiB}) {
    void* p = __libc_malloc(V(n));
    ASSERT_NE(p, nullptr);
    size_t u = malloc_usable_size(p);
    EXPECT_GE(u, n);
    EXPECT_LT(u, n + 64 + PageSize()) << "implausible usable size for a glibc block";
    memset(p, 0x43, u);
    __libc_free(p);
  }
}

TEST(Foreign, ReallocOfGlibcPointer) {
  for (size_t n : {size_t{24}, size_t{100}, size_t{5000}, 4 * kMiB}) {
    for (size_t m : {size_t{8}, size_t{200}, size_t{100000}, 6 * kMiB}) {
      void* p = __libc_malloc(V(n));
      ASSERT_NE(p, nullptr);
      Fill(p, n, n ^ m);
      void* q = realloc(p, V(m));
      ASSERT_NE(q, nullptr) << n << " -> " << m;
      ASSERT_EQ(Check(q, std::min(n, m), n ^ m), SIZE_MAX) << "foreign realloc " << n << " -> " << m;
      EXPECT_GE(malloc_usable_size(q), m);
      free(q);
    }
  }
  void* p = __libc_malloc(V(100));
  EXPECT_EQ(realloc(p, V(0)), nullptr);  // frees the glibc block
}

// ---------------------------------------------------------------------------------------------
// glibc-specific introspection entry points: callable, sane, no crash.

TEST(GlibcExtras, CallableWithoutCrash) {
  struct mallinfo2 mi2 = mallinfo2();
  (void)mi2;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo mi = mallinfo();
  (void)mi;
#pragma GCC diagnostic pop
  int r = mallopt(M_TRIM_THRESHOLD, 128 * 1024);
  EXPECT_TRUE(r == 0 || r == 1) << r;
  r = mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  EXPECT_TRUE(r == 0 || r == 1) << r;
  r = mallopt(M_ARENA_MAX, 8);
  EXPECT_TRUE(r == 0 || r == 1) << r;
  void* big = malloc(V(8 * kMiB));
  memset(big, 1, 8 * kMiB);
  free(big);
  r = malloc_trim(0);
  EXPECT_TRUE(r == 0 || r == 1) << r;
  r = malloc_trim(V(64 * 1024));
  EXPECT_TRUE(r == 0 || r == 1) << r;
  malloc_stats();
  // The allocator still works afterwards.
  void* p = malloc(V(100));
  ASSERT_NE(p, nullptr);
  free(p);
}

// ---------------------------------------------------------------------------------------------
// C++ operators

int g_handler_calls = 0;
void* g_reserve = nullptr;

void FreeReserveThenUninstallAfterThree() {
  g_handler_calls++;
  if (g_reserve != nullptr) {
    free(g_reserve);
    g_reserve = nullptr;
  }
  if (g_handler_calls == 3) std::set_new_handler(nullptr);
}

struct HandlerError {};
void ThrowingHandler() {
  g_handler_calls++;
  throw HandlerError();
}

class NewHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override { g_handler_calls = 0; }
  void TearDown() override { std::set_new_handler(nullptr); }
};

TEST(CxxNew, ImpossibleSizeThrowsBadAlloc) {
  for (size_t n : {SIZE_MAX, SIZE_MAX / 2, SIZE_MAX - 4096 * 1024}) {
    EXPECT_THROW(Discard(::operator new(V(n))), std::bad_alloc) << n;
    EXPECT_THROW(Discard(::operator new[](V(n))), std::bad_alloc) << n;
    if (n == SIZE_MAX) continue;  // see AlignedNewOfSizeMaxThrows
    EXPECT_THROW(Discard(::operator new(V(n), std::align_val_t(64))), std::bad_alloc) << n;
    EXPECT_THROW(Discard(::operator new[](V(n), std::align_val_t(4096))), std::bad_alloc) << n;
  }
  volatile size_t count = SIZE_MAX / 4;
  EXPECT_THROW(
      {
        char* a = new char[count];
        delete[] a;
      },
      std::bad_alloc);
}

// libstdc++ 12's own aligned operator new rounds the size up to a multiple of the alignment
// without an overflow check, so on plain glibc ::operator new(SIZE_MAX, align_val_t(64)) calls
// aligned_alloc(64, 0) and "succeeds" with a tiny block. slabby exports the aligned operators
// itself, and a successful return for an impossible size is a buffer overflow waiting to happen:
// slabby must throw. (This is the one test here that fails on glibc + libstdc++ 12.)
TEST(CxxNew, AlignedNewOfSizeMaxThrows) {
  for (size_t align : {size_t{16}, size_t{64}, size_t{4096}, size_t{1} << 16}) {
    EXPECT_THROW(Discard(::operator new(V(SIZE_MAX), std::align_val_t(align))), std::bad_alloc)
        << align;
    EXPECT_THROW(Discard(::operator new[](V(SIZE_MAX - 1), std::align_val_t(align))),
                 std::bad_alloc)
        << align;
    EXPECT_EQ(::operator new(V(SIZE_MAX), std::align_val_t(align), std::nothrow), nullptr) << align;
  }
}

TEST_F(NewHandlerTest, CalledUntilItUninstallsItself) {
  g_reserve = malloc(V(kMiB));
  std::set_new_handler(FreeReserveThenUninstallAfterThree);
  EXPECT_THROW(Discard(::operator new(V(SIZE_MAX / 2))), std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 3);
  EXPECT_EQ(g_reserve, nullptr) << "the handler's first call frees the reserve";
  EXPECT_EQ(std::get_new_handler(), nullptr);
}

TEST_F(NewHandlerTest, CalledForArrayAndAlignedForms) {
  std::set_new_handler(FreeReserveThenUninstallAfterThree);
  EXPECT_THROW(Discard(::operator new[](V(SIZE_MAX / 2))), std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 3);
  g_handler_calls = 0;
  std::set_new_handler(FreeReserveThenUninstallAfterThree);
  EXPECT_THROW(Discard(::operator new(V(SIZE_MAX / 2), std::align_val_t(256))), std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 3);
  g_handler_calls = 0;
  std::set_new_handler(FreeReserveThenUninstallAfterThree);
  EXPECT_THROW(Discard(::operator new[](V(SIZE_MAX / 2), std::align_val_t(8192))), std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 3);
}

TEST_F(NewHandlerTest, ThrowingHandlerPropagates) {
  std::set_new_handler(ThrowingHandler);
  EXPECT_THROW(Discard(::operator new(V(SIZE_MAX / 2))), HandlerError);
  EXPECT_EQ(g_handler_calls, 1);
  EXPECT_THROW(Discard(::operator new(V(SIZE_MAX / 2), std::align_val_t(64))), HandlerError);
  EXPECT_EQ(g_handler_calls, 2);
  // A successful allocation never calls the handler.
  void* p = ::operator new(V(100));
  EXPECT_EQ(g_handler_calls, 2);
  ::operator delete(p);
}

// The standard's nothrow new calls operator new(size) and so runs the new_handler loop too.
TEST_F(NewHandlerTest, NothrowNewRunsHandlerThenReturnsNull) {
  std::set_new_handler(FreeReserveThenUninstallAfterThree);
  EXPECT_EQ(::operator new(V(SIZE_MAX / 2), std::nothrow), nullptr);
  EXPECT_EQ(g_handler_calls, 3);
  g_handler_calls = 0;
  std::set_new_handler(ThrowingHandler);
  EXPECT_EQ(::operator new[](V(SIZE_MAX / 2), std::nothrow), nullptr)
      << "nothrow new swallows the handler's exception";
  EXPECT_EQ(g_handler_calls, 1);
}

TEST(CxxNew, NothrowFormsReturnNull) {
  size_t huge = V(SIZE_MAX / 2);
  EXPECT_EQ(::operator new(huge, std::nothrow), nullptr);
  EXPECT_EQ(::operator new[](huge, std::nothrow), nullptr);
  EXPECT_EQ(::operator new(huge, std::align_val_t(64), std::nothrow), nullptr);
  EXPECT_EQ(::operator new[](huge, std::align_val_t(4096), std::nothrow), nullptr);
  volatile size_t count = SIZE_MAX / 4;
  char* a = new (std::nothrow) char[count];
  EXPECT_EQ(a, nullptr);
}

TEST(CxxNew, ZeroSizeIsUniqueNonNull) {
  void* a = ::operator new(V(0));
  void* b = ::operator new(V(0));
  EXPECT_NE(a, nullptr);
  EXPECT_NE(b, nullptr);
  EXPECT_NE(a, b);
  ::operator delete(a);
  ::operator delete(b);
  void* c = ::operator new[](V(0), std::align_val_t(64));
  EXPECT_NE(c, nullptr);
  EXPECT_TRUE(Aligned(c, 64));
  ::operator delete[](c, std::align_val_t(64));
}

TEST(CxxNew, SizedDelete) {
  for (size_t n : SampleSizes(kMiB)) {
    if (n % 7 != 0 && n > 64) continue;  // keep it quick
    slabby_stats before = Stats();
    void* p = ::operator new(V(n));
    memset(p, 0x21, n);
    ::operator delete(p, V(n));
    void* q = ::operator new[](V(n));
    memset(q, 0x22, n);
    ::operator delete[](q, V(n));
    slabby_stats after = Stats();
    ASSERT_EQ(after.total_deallocations, before.total_deallocations + 2) << n;
    ASSERT_EQ(after.current_allocations, before.current_allocations) << n;
  }
}

struct alignas(64) Align64 {
  char c[100];
};
struct alignas(4096) Align4K {
  char c[10];
};
struct alignas(2 * 1024 * 1024) Align2M {
  char c[3];
};

TEST(CxxNew, OverAlignedTypes) {
  for (int i = 0; i < 50; i++) {
    Align64* a = new Align64;
    EXPECT_TRUE(Aligned(a, 64)) << a;
    memset(a, 1, sizeof(*a));
    Align64* aa = new Align64[V(7)];
    EXPECT_TRUE(Aligned(aa, 64)) << aa;
    memset(aa, 2, 7 * sizeof(Align64));
    delete a;
    delete[] aa;
  }
  for (int i = 0; i < 10; i++) {
    Align4K* b = new Align4K;
    EXPECT_TRUE(Aligned(b, 4096)) << b;
    memset(b, 3, sizeof(*b));
    Align4K* bb = new Align4K[V(3)];
    EXPECT_TRUE(Aligned(bb, 4096)) << bb;
    memset(bb, 4, 3 * sizeof(Align4K));
    delete b;
    delete[] bb;
  }
  Align2M* c = new Align2M;
  EXPECT_TRUE(Aligned(c, 2 * kMiB)) << c;
  delete c;
  std::vector<Align64> v(1000);
  EXPECT_TRUE(Aligned(v.data(), 64));
}

TEST(CxxNew, ExplicitAlignedOperators) {
  for (size_t align : {size_t{16}, size_t{64}, size_t{4096}, size_t{1} << 16, size_t{1} << 21}) {
    for (size_t n : {size_t{1}, size_t{100}, align, 3 * align + 5}) {
      const std::align_val_t al{align};
      void* p = ::operator new(V(n), al);
      ASSERT_TRUE(Aligned(p, align)) << align << " " << n;
      memset(p, 5, n);
      ::operator delete(p, al);

      p = ::operator new(V(n), al);
      ASSERT_TRUE(Aligned(p, align));
      memset(p, 6, n);
      ::operator delete(p, V(n), al);  // sized + aligned

      p = ::operator new[](V(n), al);
      ASSERT_TRUE(Aligned(p, align));
      memset(p, 7, n);
      ::operator delete[](p, al);

      p = ::operator new[](V(n), al);
      ASSERT_TRUE(Aligned(p, align));
      ::operator delete[](p, V(n), al);

      p = ::operator new(V(n), al, std::nothrow);
      ASSERT_NE(p, nullptr);
      ASSERT_TRUE(Aligned(p, align));
      memset(p, 8, n);
      ::operator delete(p, al, std::nothrow);

      p = ::operator new[](V(n), al, std::nothrow);
      ASSERT_NE(p, nullptr);
      ASSERT_TRUE(Aligned(p, align));
      ::operator delete[](p, al, std::nothrow);
    }
  }
}

// Every operator new form is served by slabby (counted) and every delete form returns the block.
TEST(CxxNew, EveryFormGoesThroughSlabby) {
  struct Form {
    const char* name;
    void* (*alloc)(size_t);
    void (*release)(void*, size_t);
  };
  const Form forms[] = {
      {"new/delete", [](size_t n) { return ::operator new(n); },
       [](void* p, size_t) { ::operator delete(p); }},
      {"new/sized delete", [](size_t n) { return ::operator new(n); },
       [](void* p, size_t n) { ::operator delete(p, n); }},
      {"new[]/delete[]", [](size_t n) { return ::operator new[](n); },
       [](void* p, size_t) { ::operator delete[](p); }},
      {"new[]/sized delete[]", [](size_t n) { return ::operator new[](n); },
       [](void* p, size_t n) { ::operator delete[](p, n); }},
      {"nothrow new/delete", [](size_t n) { return ::operator new(n, std::nothrow); },
       [](void* p, size_t) { ::operator delete(p, std::nothrow); }},
      {"nothrow new[]/delete[]", [](size_t n) { return ::operator new[](n, std::nothrow); },
       [](void* p, size_t) { ::operator delete[](p, std::nothrow); }},
      {"aligned new/delete", [](size_t n) { return ::operator new(n, std::align_val_t(256)); },
       [](void* p, size_t) { ::operator delete(p, std::align_val_t(256)); }},
      {"aligned new/sized delete",
       [](size_t n) { return ::operator new(n, std::align_val_t(256)); },
       [](void* p, size_t n) { ::operator delete(p, n, std::align_val_t(256)); }},
      {"aligned new[]/delete[]",
       [](size_t n) { return ::operator new[](n, std::align_val_t(256)); },
       [](void* p, size_t) { ::operator delete[](p, std::align_val_t(256)); }},
      {"aligned new[]/sized delete[]",
       [](size_t n) { return ::operator new[](n, std::align_val_t(256)); },
       [](void* p, size_t n) { ::operator delete[](p, n, std::align_val_t(256)); }},
      {"aligned nothrow new/delete",
       [](size_t n) { return ::operator new(n, std::align_val_t(256), std::nothrow); },
       [](void* p, size_t) { ::operator delete(p, std::align_val_t(256), std::nothrow); }},
      {"aligned nothrow new[]/delete[]",
       [](size_t n) { return ::operator new[](n, std::align_val_t(256), std::nothrow); },
       [](void* p, size_t) { ::operator delete[](p, std::align_val_t(256), std::nothrow); }},
  };
  for (const Form& f : forms) {
    for (size_t n : {size_t{1}, size_t{48}, size_t{3000}, 3 * kMiB}) {
      slabby_stats s0 = Stats();
      void* p = f.alloc(V(n));
      slabby_stats s1 = Stats();
      ASSERT_NE(p, nullptr) << f.name;
      EXPECT_EQ(s1.total_allocations, s0.total_allocations + 1) << f.name << " " << n;
      EXPECT_GE(malloc_usable_size(p), n) << f.name;
      memset(p, 9, n);
      f.release(p, n);
      slabby_stats s2 = Stats();
      EXPECT_EQ(s2.total_deallocations, s1.total_deallocations + 1) << f.name << " " << n;
      EXPECT_EQ(s2.current_allocations, s0.current_allocations) << f.name << " " << n;
    }
  }
}

TEST(CxxNew, DeleteNullIsNoop) {
  ::operator delete(nullptr);
  ::operator delete[](nullptr);
  ::operator delete(nullptr, std::align_val_t(64));
  ::operator delete[](nullptr, std::align_val_t(64));
  ::operator delete(nullptr, std::nothrow);
  ::operator delete(nullptr, std::align_val_t(64), std::nothrow);
  Align64* a = nullptr;
  delete a;
  delete[] a;
}

TEST(CxxNew, ContainersRoundTrip) {
  std::vector<std::vector<int>> vv;
  for (int i = 0; i < 2000; i++) {
    vv.emplace_back(static_cast<size_t>(i % 300), i);
  }
  for (int i = 0; i < 2000; i++) {
    ASSERT_EQ(vv[i].size(), static_cast<size_t>(i % 300));
    for (int x : vv[i]) ASSERT_EQ(x, i);
  }
  std::string s;
  for (int i = 0; i < 100000; i++) s.push_back(static_cast<char>('a' + i % 26));
  EXPECT_EQ(s[99999], static_cast<char>('a' + 99999 % 26));
}

}  // namespace

// slabby_write_stats: every format writes something well-formed; an unknown
// format is refused.
TEST(SlabbyApi, WriteStatsInEachFormat) {
  for (int format : {SLABBY_FORMAT_TEXT, SLABBY_FORMAT_JSON, SLABBY_FORMAT_PROMETHEUS}) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
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
    ASSERT_FALSE(out.empty()) << format;
    if (format == SLABBY_FORMAT_JSON) {
      EXPECT_EQ(out.front(), '{');
      EXPECT_EQ(out.substr(out.size() - 2), "}\n");
      EXPECT_NE(out.find("\"total_allocations\":"), std::string::npos);
    } else if (format == SLABBY_FORMAT_PROMETHEUS) {
      EXPECT_EQ(out.rfind("# HELP slabby_", 0), 0u);
      EXPECT_NE(out.find("\nslabby_class_allocations_total{class=\"1\",block_size=\"16\"} "),
                std::string::npos);
    } else {
      EXPECT_EQ(out.rfind("slabby: stats for pid ", 0), 0u);
    }
  }
  EXPECT_EQ(slabby_write_stats(2, 7), -1);
  EXPECT_EQ(slabby_write_stats(2, -1), -1);
}

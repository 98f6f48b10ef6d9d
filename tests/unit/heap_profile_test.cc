// The heap profile's sampler and tables (telemetry/heap_profile.h): the
// estimators are unbiased, sampled blocks are spans that leave the live
// profile when freed, and four threads sampling, freeing and dumping at
// once lose nothing (run plain, under ASan and under TSan).
#include "telemetry/heap_profile.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "frontend/allocator.h"

namespace slabby {
namespace {

// Sum of the weights over n allocations of `size` bytes through the
// small-block path: a candidate every prof_next_candidate() allocations,
// taken or not by prof_take_small.
double small_estimate(size_t size, uint64_t n, ProfThread& t) {
  double bytes = 0;
  int64_t left = prof_next_candidate(t);
  for (uint64_t i = 0; i < n; ++i) {
    if (--left > 0) continue;
    left = prof_next_candidate(t);
    ProfWeight w;
    if (prof_take_small(t, size, &w)) bytes += w.bytes;
  }
  return bytes;
}

TEST(HeapProfile, SmallBlockEstimatesAreUnbiasedAtEverySize) {
  heap_profile_set_sample(64 << 10);
  ProfThread t{0, 12345};
  // Below SAMPLE / 64 (1 KiB here) each block is sampled with probability
  // size / SAMPLE; above, one in 64. Either way the sum estimates the bytes.
  for (size_t size : {16, 100, 1000, 4096, 32768}) {
    uint64_t n = (uint64_t{400} << 20) / size;  // 400 MiB of each
    double est = small_estimate(size, n, t);
    double real = static_cast<double>(n) * static_cast<double>(size);
    EXPECT_NEAR(est / real, 1.0, 0.05) << "size " << size;
  }
  heap_profile_set_sample(512 << 10);
}

TEST(HeapProfile, LargeRequestEstimatesAreUnbiased) {
  heap_profile_set_sample(64 << 10);
  ProfThread t{0, 777};
  t.bytes_left = 1;
  for (size_t size : {size_t{40} << 10, size_t{100} << 10, size_t{3} << 20}) {
    double est = 0;
    uint64_t n = (uint64_t{2} << 30) / size;  // 2 GiB of each
    for (uint64_t i = 0; i < n; ++i) {
      ProfWeight w;
      if (prof_take_bytes(t, size, &w)) {
        est += w.bytes;
        EXPECT_NEAR(w.blocks * static_cast<double>(size), w.bytes, 1.0);
      }
    }
    EXPECT_NEAR(est / (static_cast<double>(n) * static_cast<double>(size)), 1.0, 0.05)
        << "size " << size;
  }
  heap_profile_set_sample(512 << 10);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(HeapProfile, FourThreadsSampleFreeAndDumpAtOnce) {
  free_fast(malloc_fast(1));  // the runtime is initialised
  ASSERT_TRUE(heap_profile_set_active(true));
  heap_profile_set_sample(16 << 10);
  ProfCounters before = heap_profile_counters();
  std::string path = "/tmp/slabby_unit_profile." + std::to_string(getpid()) + ".heap";
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &path] {
      sampling_restart_this_thread();
      std::vector<void*> live;
      for (int i = 0; i < 60000; ++i) {
        size_t n = static_cast<size_t>(16 + (i * 7919 + t) % 6000);
        if (i % 97 == 0) n = size_t{50} << 10;  // a medium request now and then
        void* p = malloc_fast(n);
        ASSERT_NE(p, nullptr);
        memset(p, t, n < 64 ? n : 64);
        live.push_back(p);
        if (live.size() > 200) {
          free_fast(live.front());
          live.erase(live.begin());
        }
        if (t == 0 && i % 20000 == 0) EXPECT_EQ(heap_profile_dump(path.c_str()), 0);
      }
      for (void* p : live) free_fast(p);
    });
  }
  for (auto& th : threads) th.join();
  ProfCounters after = heap_profile_counters();
  EXPECT_GT(after.samples - before.samples, 200u);
  // Every sampled block was freed: none is live in the profile.
  EXPECT_EQ(after.live_samples, before.live_samples);
  EXPECT_EQ(after.dropped, before.dropped);
  ASSERT_EQ(heap_profile_dump(path.c_str()), 0);
  std::string text = read_file(path);
  EXPECT_EQ(text.rfind("heap profile: ", 0), 0u);
  EXPECT_NE(text.find("MAPPED_LIBRARIES:"), std::string::npos);
  unlink(path.c_str());
  heap_profile_set_active(false);
  heap_profile_set_sample(512 << 10);
}

// Profiling on with every candidate taken and every large request sampled,
// until it goes out of scope (then off, at the default rate, as the other
// tests expect).
struct SampleEverything {
  SampleEverything() {
    free_fast(malloc_fast(1));
    active = heap_profile_set_active(true);
    heap_profile_set_sample(1);
    sampling_restart_this_thread();
  }
  ~SampleEverything() {
    heap_profile_set_active(false);
    heap_profile_set_sample(512 << 10);
  }
  bool active;
};

TEST(HeapProfile, ASampledBlockIsASpanAndReallocMovesIt) {
  SampleEverything on;
  ASSERT_TRUE(on.active);
  ProfCounters before = heap_profile_counters();
  // A large request is sampled at once (a point every byte or two).
  void* p = malloc_fast(size_t{200} << 10);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(heap_profile_counters().samples, before.samples + 1);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kPageSize, 0u);
  Span* s = g_rt.heap.span_of(p);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->sampled);
  memset(p, 0x5a, size_t{200} << 10);
  // realloc moves a sampled block (copy), keeping its bytes; the old one leaves the profile.
  void* q = realloc_impl(p, size_t{300} << 10);
  ASSERT_NE(q, nullptr);
  EXPECT_NE(q, p);
  EXPECT_EQ(static_cast<unsigned char*>(q)[(size_t{200} << 10) - 1], 0x5a);
  free_fast(q);
  EXPECT_EQ(heap_profile_counters().live_samples, before.live_samples);
}

// A block sampled, freed and allocated again at the same address, over and
// over (a malloc+free loop), reuses its slot in the sampled-block table: the
// removed entries must not pile up on its probe path (each sample made it one
// slot longer, and a 30 M-pair loop took 4 x its time with SLABBY_PROF=1).
TEST(HeapProfile, OneAddressSampledAgainAndAgainKeepsOneSlot) {
  SampleEverything on;
  ASSERT_TRUE(on.active);
  ProfCounters before = heap_profile_counters();
  size_t used_before = heap_profile_slots_used();
  std::vector<uintptr_t> seen;
  for (int i = 0; i < 2000; ++i) {
    void* p = malloc_fast(size_t{200} << 10);  // every large request is sampled at this rate
    ASSERT_NE(p, nullptr);
    seen.push_back(reinterpret_cast<uintptr_t>(p));
    free_fast(p);
  }
  ProfCounters after = heap_profile_counters();
  EXPECT_EQ(after.samples, before.samples + 2000);
  EXPECT_EQ(after.live_samples, before.live_samples);
  std::sort(seen.begin(), seen.end());
  size_t distinct = std::unique(seen.begin(), seen.end()) - seen.begin();
  EXPECT_LE(distinct, 8u) << "the loop was meant to reuse one address";
  EXPECT_LE(heap_profile_slots_used(), used_before + distinct);
}

// A sampled block's usable size is its class's, and its span holds all of
// it (a 45000-byte request is a 49152-byte block of a medium class: the span
// must be 12 pages, not the 11 the request needs).
TEST(HeapProfile, ASampledBlocksSpanHoldsItsWholeUsableSize) {
  SampleEverything on;
  ASSERT_TRUE(on.active);
  for (size_t n : {size_t{33000}, size_t{45000}, size_t{300000}, size_t{1} << 20}) {
    void* p = malloc_fast(n);
    ASSERT_NE(p, nullptr);
    Span* s = g_rt.heap.span_of(p);
    ASSERT_NE(s, nullptr);
    ASSERT_TRUE(s->sampled) << n;
    size_t usable = usable_size_impl(p);
    EXPECT_EQ(usable, class_size(class_of_size(n))) << n;
    EXPECT_LE(usable, uintptr_t{s->pages} << kPageShift) << n;
    memset(p, 0x3c, usable);
    EXPECT_EQ(realloc_impl(p, usable), p);  // fits: kept
    free_fast(p);
  }
}

}  // namespace
}  // namespace slabby

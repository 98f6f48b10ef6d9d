// The huge-page fault judge (heap/fault_judge.h): chunks are made while
// huge faults, on a moving average, cost at most the small faults they
// replace (the small ones' median times pages per huge page); after that
// one probe per kFirstProbe bytes of slabs, the interval doubling to
// kMaxProbe while probes are slow and back to kFirstProbe after a fast one.
#include "heap/fault_judge.h"

#include <gtest/gtest.h>

namespace slabby {
namespace {

constexpr uint64_t kSlab = 16384;

// Slabs of kSlab asking for a chunk until one is granted; how many asked.
uint64_t asks_until_granted(FaultJudge& j, uint64_t max) {
  for (uint64_t n = 1; n <= max; ++n)
    if (j.chunk_pays(kSlab)) return n;
  return 0;
}

void sample_small(FaultJudge& j, uint32_t small_ns) {
  j.init(512);
  for (uint32_t i = 0; i < FaultJudge::kSmallSamples; ++i) j.note_small(small_ns);
}

TEST(FaultJudge, TheLimitIsTheMedianSmallFaultTimesPagesPerHugePage) {
  FaultJudge j;
  j.init(512);
  EXPECT_EQ(j.limit_ns(), FaultJudge::kDefaultLimitNs);
  // Outliers on either side (a preempted touch, a page already present)
  // leave the median where most samples are.
  j.note_small(100000);
  j.note_small(50);
  for (int i = 0; i < 7; ++i) j.note_small(1500);
  EXPECT_EQ(j.small_ns(), 1500u);
  EXPECT_EQ(j.limit_ns(), 1500u * 512);
  for (uint32_t i = 0; i < 2 * FaultJudge::kSmallSamples; ++i) j.note_small(1);
  EXPECT_FALSE(j.wants_small_sample());
  EXPECT_EQ(j.small_ns(), 1u) << "the median of the first 32";
}

TEST(FaultJudge, FastHugeFaultsKeepChunksComing) {
  FaultJudge j;
  sample_small(j, 1400);  // limit 716.8 us
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(j.chunk_pays(kSlab));
    j.note_huge(83000);
  }
  EXPECT_TRUE(j.on());
  EXPECT_EQ(j.chunks_declined(), 0u);
  EXPECT_EQ(j.chunks_timed(), 100u);
}

TEST(FaultJudge, OneSlowFaultAmongFastOnesPaysForItselfButARunOfThemDoesNot) {
  FaultJudge j;
  sample_small(j, 1400);  // limit 716.8 us
  for (int i = 0; i < 8; ++i) j.note_huge(80000);
  // A 2 ms fault (a preempted touch, say): the average stays below the limit.
  j.note_huge(2000000);
  EXPECT_TRUE(j.on());
  // 4.3 ms faults (memory the host must bring back): off after the second.
  j.note_huge(4300000);
  EXPECT_FALSE(j.on());
  EXPECT_FALSE(j.chunk_pays(kSlab));
  EXPECT_EQ(j.chunks_declined(), 1u);
}

TEST(FaultJudge, ProbesComeEverFurtherApartWhileSlowAndResetWhenFast) {
  FaultJudge j;
  sample_small(j, 1400);
  j.note_huge(4300000);  // the first chunk alone decides
  ASSERT_FALSE(j.on());
  const uint64_t first = FaultJudge::kFirstProbe / kSlab;
  EXPECT_EQ(asks_until_granted(j, 1 << 20), first);
  EXPECT_TRUE(j.chunk_pays(kSlab)) << "until the probe is timed, chunks may be made";
  j.note_huge(4300000);
  EXPECT_EQ(asks_until_granted(j, 1 << 20), 2 * first);
  j.note_huge(4300000);
  EXPECT_EQ(asks_until_granted(j, 1 << 20), 4 * first);
  // A fast probe alone turns chunks on again, whatever the average was.
  j.note_huge(90000);
  EXPECT_TRUE(j.on());
  EXPECT_TRUE(j.chunk_pays(kSlab));
  // And the next time they go off, the first probe is kFirstProbe away.
  j.note_huge(9000000);
  ASSERT_FALSE(j.on());
  EXPECT_EQ(asks_until_granted(j, 1 << 20), first);
}

TEST(FaultJudge, ProbesAreAtMostMaxProbeApart) {
  FaultJudge j;
  sample_small(j, 1400);
  j.note_huge(4300000);
  uint64_t last = 0;
  for (int i = 0; i < 12; ++i) {
    last = asks_until_granted(j, uint64_t{1} << 24);
    ASSERT_NE(last, 0u);
    j.note_huge(4300000);
  }
  EXPECT_EQ(last, FaultJudge::kMaxProbe / kSlab);
}

TEST(FaultJudge, DisabledEveryChunkPaysAndNothingIsSampled) {
  FaultJudge j;
  j.init(512);
  j.set_enabled(false);
  EXPECT_FALSE(j.wants_small_sample());
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(j.chunk_pays(kSlab));
  EXPECT_EQ(j.chunks_declined(), 0u);
}

}  // namespace
}  // namespace slabby

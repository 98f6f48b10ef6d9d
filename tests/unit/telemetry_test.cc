// The observability parts on their own: the latency histogram, the circuit
// breaker's state machine (with the clock passed in) and the event log's
// format and rate limit.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "frontend/allocator.h"
#include "runtime/breaker.h"
#include "telemetry/latency.h"
#include "telemetry/log.h"

namespace slabby {
namespace {

TEST(LatencyHistogram, BucketsCoverEveryValueInOrder) {
  EXPECT_EQ(LatencyHistogram::bucket_of(0), 0u);
  EXPECT_EQ(LatencyHistogram::bucket_of(3), 3u);
  EXPECT_LT(LatencyHistogram::bucket_of(~uint64_t{0}), LatencyHistogram::kBuckets);
  for (uint64_t v : {uint64_t{4}, uint64_t{5}, uint64_t{7}, uint64_t{8}, uint64_t{100},
                     uint64_t{1000}, uint64_t{123456789}, uint64_t{1} << 40}) {
    size_t b = LatencyHistogram::bucket_of(v);
    EXPECT_LE(LatencyHistogram::bucket_low(b), v) << v;
    EXPECT_GT(LatencyHistogram::bucket_high(b), v) << v;
    // Four sub-buckets per power of two: a bucket is at most 25% of its values wide.
    EXPECT_LE(LatencyHistogram::bucket_high(b) - LatencyHistogram::bucket_low(b),
              LatencyHistogram::bucket_low(b) / 4 + 1)
        << v;
  }
  for (size_t b = 1; b + 1 < LatencyHistogram::kBuckets; ++b)
    EXPECT_EQ(LatencyHistogram::bucket_high(b - 1), LatencyHistogram::bucket_low(b)) << b;
}

TEST(LatencyHistogram, EmptyGivesZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(0.5), 0u);
}

TEST(LatencyHistogram, UniformDistributionPercentilesWithinABucket) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100000; ++v) h.record(v);
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_EQ(h.max(), 100000u);
  for (double q : {0.5, 0.95, 0.99}) {
    double want = q * 100000;
    double got = static_cast<double>(h.percentile(q));
    EXPECT_NEAR(got, want, want * 0.125) << q;
  }
}

TEST(LatencyHistogram, PercentilesAreOrderedOnAHeavyTail) {
  LatencyHistogram h;
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> d(5.0, 1.5);
  for (int i = 0; i < 200000; ++i) h.record(static_cast<uint64_t>(d(rng)));
  uint64_t p50 = h.percentile(0.5), p95 = h.percentile(0.95), p99 = h.percentile(0.99);
  EXPECT_GT(p50, 0u);
  EXPECT_LE(p50, p95);
  EXPECT_LE(p95, p99);
  EXPECT_LE(p99, h.max());
  // exp(5) is the median of this distribution.
  EXPECT_NEAR(static_cast<double>(p50), 148.4, 148.4 * 0.15);
}

TEST(LatencyHistogram, TwoPointDistributionSplitsAtTheRightRank) {
  LatencyHistogram h;
  for (int i = 0; i < 96; ++i) h.record(1000);
  for (int i = 0; i < 4; ++i) h.record(1000000);
  EXPECT_NEAR(static_cast<double>(h.percentile(0.5)), 1000, 125);
  EXPECT_NEAR(static_cast<double>(h.percentile(0.95)), 1000, 125);
  EXPECT_NEAR(static_cast<double>(h.percentile(0.99)), 1000000, 125000);
  EXPECT_LE(h.percentile(0.99), 1000000u);  // capped by the largest sample
}

TEST(LatencyHistogram, ConcurrentRecordsAreAllCounted) {
  LatencyHistogram h;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&h, t] {
      for (int i = 0; i < 50000; ++i) h.record(static_cast<uint64_t>(t * 1000 + i % 700));
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(h.count(), 200000u);
  EXPECT_EQ(h.max(), 3699u);
}

TEST(Latency, TheAllocationPathTimesOneAllocationInN) {
  free_fast(malloc_fast(1));  // the runtime is initialised
  uint32_t saved = g_latency_sample;
  g_latency_sample = 10;
  latency_histogram().reset();
  sampling_restart_this_thread();
  for (int i = 0; i < 1000; ++i) free_fast(malloc_fast(i % 2 ? 48 : 40000));
  EXPECT_EQ(latency_histogram().count(), 100u);
  // Off: the countdown, once it runs out, is set far away; nothing is timed.
  g_latency_sample = 0;
  for (int i = 0; i < 1000; ++i) free_fast(malloc_fast(48));
  EXPECT_EQ(latency_histogram().count(), 100u);
  g_latency_sample = saved;
}

TEST(Latency, CalibrationConvertsCyclesToNanoseconds) {
  latency_init(1, 0);
  latency_histogram().reset();
  // Time a sleep of ~2 ms with the cycle counter.
  uint64_t t0 = cycles_now();
  usleep(2000);
  uint64_t cycles = cycles_now() - t0;
  latency_record(cycles);
  LatencySummary s = latency_summary();
  EXPECT_EQ(s.samples, 1u);
  EXPECT_GT(s.cycles_per_us, 0u);
  // The sleep took at least 2 ms and (loaded machine) well under a second.
  EXPECT_GE(s.max_ns, 1900000u);
  EXPECT_LT(s.max_ns, 1000000000u);
  EXPECT_LE(s.p50_ns, s.max_ns);
  latency_histogram().reset();
  latency_init(0, 0);  // sampling off again for the other tests
}

// ---------------------------------------------------------------- breaker --

TEST(CircuitBreaker, OffPassesEverything) {
  CircuitBreaker b;
  b.configure(0, 100);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(b.admit(i), BreakerTicket::kPass);
    b.report(BreakerTicket::kPass, false, i);
  }
  EXPECT_EQ(b.stats().state, BreakerState::kClosed);
  EXPECT_EQ(b.stats().transitions, 0u);
  EXPECT_EQ(b.stats().failures, 100u);  // still counted
}

TEST(CircuitBreaker, OpensAfterThresholdFailuresWithinTheWindow) {
  CircuitBreaker b;
  b.configure(3, 100);
  // Two failures, then the window (100 ms) passes: the count starts again.
  b.report(b.admit(1000), false, 1000);
  b.report(b.admit(1010), false, 1010);
  b.report(b.admit(1200), false, 1200);
  b.report(b.admit(1210), false, 1210);
  EXPECT_EQ(b.stats().state, BreakerState::kClosed);
  b.report(b.admit(1220), false, 1220);
  EXPECT_EQ(b.stats().state, BreakerState::kOpen);
  EXPECT_EQ(b.stats().transitions, 1u);
  EXPECT_EQ(b.stats().failures, 5u);
  EXPECT_GT(b.stats().last_transition_unix_ms, 0u);
}

TEST(CircuitBreaker, OpenRefusesThenOneProbeThenCloses) {
  CircuitBreaker b;
  b.configure(1, 100);
  b.report(b.admit(1000), false, 1000);
  ASSERT_EQ(b.stats().state, BreakerState::kOpen);
  EXPECT_EQ(b.admit(1050), BreakerTicket::kRefused);
  EXPECT_EQ(b.admit(1099), BreakerTicket::kRefused);
  BreakerTicket probe = b.admit(1100);
  EXPECT_EQ(probe, BreakerTicket::kProbe);
  EXPECT_EQ(b.stats().state, BreakerState::kHalfOpen);
  // Only one probe: the others are still refused while it runs.
  EXPECT_EQ(b.admit(1101), BreakerTicket::kRefused);
  EXPECT_EQ(b.admit(1500), BreakerTicket::kRefused);
  b.report(probe, true, 1102);
  EXPECT_EQ(b.stats().state, BreakerState::kClosed);
  EXPECT_EQ(b.admit(1103), BreakerTicket::kPass);
  EXPECT_EQ(b.stats().transitions, 3u);  // open, half-open, closed
  EXPECT_EQ(b.stats().rejections, 4u);
}

TEST(CircuitBreaker, FailedProbeReopensForAnotherTimeout) {
  CircuitBreaker b;
  b.configure(1, 100);
  b.report(b.admit(1000), false, 1000);
  BreakerTicket probe = b.admit(1100);
  ASSERT_EQ(probe, BreakerTicket::kProbe);
  b.report(probe, false, 1100);
  EXPECT_EQ(b.stats().state, BreakerState::kOpen);
  EXPECT_EQ(b.admit(1150), BreakerTicket::kRefused);
  EXPECT_EQ(b.admit(1200), BreakerTicket::kProbe);
  EXPECT_EQ(b.stats().opens, 2u);
  EXPECT_EQ(b.stats().transitions, 4u);
}

TEST(CircuitBreaker, ExactlyOneProbeUnderContention) {
  CircuitBreaker b;
  b.configure(1, 10);
  b.report(b.admit(1000), false, 1000);
  std::atomic<int> probes{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        if (b.admit(2000) == BreakerTicket::kProbe) probes++;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(probes.load(), 1);
}

// -------------------------------------------------------------------- log --

std::string read_all(FILE* f) {
  fflush(f);
  rewind(f);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  return out;
}

TEST(Log, TextAndJsonLines) {
  FILE* f = tmpfile();
  ASSERT_NE(f, nullptr);
  log_init_fd(fileno(f), static_cast<int>(LogLevel::kInfo), false);
  { LogLine(LogEvent::kHeapLimit, LogLevel::kWarn).u64("bytes", 4096).str("why", "cap"); }
  { LogLine(LogEvent::kPurge, LogLevel::kDebug).u64("bytes", 1); }  // above the level
  log_init_fd(fileno(f), static_cast<int>(LogLevel::kInfo), true);
  { LogLine(LogEvent::kHeapExhausted, LogLevel::kWarn).u64("bytes", 8192).str("q", "a\"b"); }
  std::string all = read_all(f);
  std::istringstream in(all);
  std::string text, json, extra;
  std::getline(in, text);
  std::getline(in, json);
  EXPECT_FALSE(std::getline(in, extra)) << all;
  EXPECT_EQ(text.rfind("slabby: ", 0), 0u) << text;
  EXPECT_NE(text.find(" warn heap_limit pid="), std::string::npos) << text;
  EXPECT_NE(text.find(" bytes=4096 why=cap"), std::string::npos) << text;
  EXPECT_EQ(json.rfind("{\"ts\":", 0), 0u) << json;
  EXPECT_NE(json.find("\"level\":\"warn\",\"event\":\"heap_exhausted\",\"pid\":"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"bytes\":8192,\"q\":\"a\\\"b\"}"), std::string::npos) << json;
  log_init_fd(-1, -1, false);
  fclose(f);
}

TEST(Log, RateLimitHoldsAndCountsWhatItDrops) {
  FILE* f = tmpfile();
  ASSERT_NE(f, nullptr);
  log_init_fd(fileno(f), static_cast<int>(LogLevel::kDebug), false);
  LogStats before = log_stats();
  for (int i = 0; i < 10000; ++i) LogLine(LogEvent::kHeapFallback, LogLevel::kInfo).u64("i", i);
  LogStats after = log_stats();
  uint64_t written = after.lines - before.lines;
  // A burst of 10, then one per 100 ms: a slow machine may let a few more through.
  EXPECT_GE(written, 10u);
  EXPECT_LE(written, 30u);
  EXPECT_EQ(written + (after.suppressed - before.suppressed), 10000u);
  log_report_suppressed();
  std::string all = read_all(f);
  EXPECT_NE(all.find("log_suppressed"), std::string::npos) << all;
  EXPECT_NE(all.find("of=heap_fallback lines="), std::string::npos) << all;
  log_init_fd(-1, -1, false);
  fclose(f);
}

}  // namespace
}  // namespace slabby

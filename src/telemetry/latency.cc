#include "telemetry/latency.h"

#include <time.h>

#include <cerrno>

#include "telemetry/log.h"

namespace slabby {

uint32_t g_latency_sample = 0;

namespace {

LatencyHistogram g_histogram;
std::atomic<uint64_t> g_slow{0};
uint64_t g_max_latency_ns = 0;

// Calibration: cycles and CLOCK_MONOTONIC at init (the baseline), and the
// rate measured since, as picoseconds per 1024 cycles. It is refined on
// every read until the baseline is a second old, then kept.
uint64_t g_base_cycles = 0;
uint64_t g_base_ns = 0;
std::atomic<uint64_t> g_ps_per_kcycle{0};
std::atomic<uint64_t> g_slow_cycles{0};  // the threshold in cycles (0: none yet)
std::atomic<bool> g_calibrated{false};   // final: measured over at least a second
std::atomic<uint64_t> g_next_calibration{0};  // cycle count of the next refinement

uint64_t monotonic_ns() {
  int saved = errno;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  errno = saved;
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
}

// Measures the rate since the baseline. With `wait`, first spins until the
// baseline is 1 ms old (a read right after init). False if too early.
bool calibrate(bool wait) {
  if (g_calibrated.load(std::memory_order_acquire)) return true;
  if (g_base_ns == 0) return false;
  uint64_t ns = monotonic_ns();
  uint64_t cyc = cycles_now();
  while (wait && ns - g_base_ns < 1000000) {
    ns = monotonic_ns();
    cyc = cycles_now();
  }
  uint64_t dns = ns - g_base_ns;
  uint64_t dcyc = cyc - g_base_cycles;
  if (dns < 1000000 || dcyc == 0) return false;
  unsigned __int128 q = static_cast<unsigned __int128>(dns) * 1000 * 1024 / dcyc;
  g_ps_per_kcycle.store(static_cast<uint64_t>(q), std::memory_order_relaxed);
  if (g_max_latency_ns != 0) {
    unsigned __int128 c = static_cast<unsigned __int128>(g_max_latency_ns) * dcyc / dns;
    g_slow_cycles.store(c == 0 ? 1 : static_cast<uint64_t>(c), std::memory_order_relaxed);
  }
  if (dns >= 1000000000) g_calibrated.store(true, std::memory_order_release);
  // Refined again after another eighth of the time measured so far.
  g_next_calibration.store(cyc + dcyc / 8, std::memory_order_relaxed);
  return true;
}

}  // namespace

uint64_t LatencyHistogram::count() const noexcept {
  uint64_t n = 0;
  for (const auto& c : counts_) n += c.load(std::memory_order_relaxed);
  return n;
}

uint64_t LatencyHistogram::percentile(double q) const noexcept {
  uint64_t snap[kBuckets];
  uint64_t total = 0;
  for (size_t b = 0; b < kBuckets; ++b) {
    snap[b] = counts_[b].load(std::memory_order_relaxed);
    total += snap[b];
  }
  if (total == 0) return 0;
  if (q < 0) q = 0;
  if (q > 1) q = 1;
  // The rank of the sample wanted: ceil(q * total), at least 1.
  double exact = q * static_cast<double>(total);
  uint64_t rank = static_cast<uint64_t>(exact);
  if (static_cast<double>(rank) < exact) ++rank;
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  uint64_t m = max();
  for (size_t b = 0; b < kBuckets; ++b) {
    seen += snap[b];
    if (seen < rank) continue;
    uint64_t lo = bucket_low(b), hi = bucket_high(b);
    uint64_t mid = lo + (hi - lo) / 2;
    if (hi - lo <= 1) mid = lo;
    return m != 0 && mid > m ? m : mid;
  }
  return m;
}

void LatencyHistogram::reset() noexcept {
  for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
  max_.store(0, std::memory_order_relaxed);
}

LatencyHistogram& latency_histogram() noexcept { return g_histogram; }

void latency_init(uint64_t sample_every, uint64_t max_alloc_latency_ns) noexcept {
  g_latency_sample = sample_every > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(sample_every);
  g_max_latency_ns = max_alloc_latency_ns;
  g_base_ns = monotonic_ns();
  g_base_cycles = cycles_now();
}

void latency_set(uint64_t sample_every, uint64_t max_alloc_latency_ns) noexcept {
  g_latency_sample = sample_every > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(sample_every);
  g_max_latency_ns = max_alloc_latency_ns;
  // The threshold in cycles, with the calibration so far (refined later
  // while the calibration is not final).
  uint64_t q = g_ps_per_kcycle.load(std::memory_order_relaxed);
  uint64_t c = 0;
  if (max_alloc_latency_ns != 0 && q != 0) {
    unsigned __int128 v = static_cast<unsigned __int128>(max_alloc_latency_ns) * 1000 * 1024 / q;
    c = v == 0 ? 1 : static_cast<uint64_t>(v);
  }
  g_slow_cycles.store(c, std::memory_order_relaxed);
}

uint64_t cycles_to_ns(uint64_t cycles) noexcept {
  uint64_t q = g_ps_per_kcycle.load(std::memory_order_relaxed);
  return static_cast<uint64_t>(static_cast<unsigned __int128>(cycles) * q / (1000 * 1024));
}

void latency_record(uint64_t cycles) noexcept {
  g_histogram.record(cycles);
  // Until the calibration is final (a second after init) records refine it
  // now and then: a counter read, and a vDSO clock read about 24 times in
  // that second.
  if (SLABBY_UNLIKELY(!g_calibrated.load(std::memory_order_relaxed)) &&
      cycles_now() >= g_next_calibration.load(std::memory_order_relaxed))
    calibrate(false);
  uint64_t slow = g_slow_cycles.load(std::memory_order_relaxed);
  if (slow == 0 || cycles <= slow) return;
  g_slow.fetch_add(1, std::memory_order_relaxed);
  LogLine line(LogEvent::kSlowAllocation, LogLevel::kWarn);
  line.u64("latency_ns", cycles_to_ns(cycles)).u64("threshold_ns", g_max_latency_ns);
}

LatencySummary latency_summary() noexcept {
  LatencySummary s{};
  s.samples = g_histogram.count();
  s.slow_allocations = g_slow.load(std::memory_order_relaxed);
  if (!calibrate(true)) return s;
  s.p50_ns = cycles_to_ns(g_histogram.percentile(0.50));
  s.p95_ns = cycles_to_ns(g_histogram.percentile(0.95));
  s.p99_ns = cycles_to_ns(g_histogram.percentile(0.99));
  s.max_ns = cycles_to_ns(g_histogram.max());
  s.cycles_per_us = g_ps_per_kcycle.load(std::memory_order_relaxed) == 0
                        ? 0
                        : 1000000ull * 1024 / g_ps_per_kcycle.load(std::memory_order_relaxed);
  return s;
}

}  // namespace slabby

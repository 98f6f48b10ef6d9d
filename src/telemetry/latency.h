// slabby: allocation latency, sampled. One allocation in SLABBY_LATENCY_SAMPLE
// is timed end to end with the cycle counter and recorded in a lock-free
// log-linear histogram; the percentiles are read from it on demand.
//
// Who times what: the countdown lives on the allocation fast path
// (frontend/allocator.h: sample_due, two instructions), so every allocation
// path is sampled alike; the picked allocation is timed end to end by
// alloc_sampled (small) or alloc_large (large).
//
// Histogram: values in cycles; below 4 one bucket per value, above that four
// sub-buckets per power of two (error at most 25% of the value, 12.5% when a
// bucket is reported by its midpoint). 256 buckets cover every uint64_t.
// Counts are relaxed atomic increments: a reader may see a sample's count
// before another's, never a torn one.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/base.h"

#if SLABBY_ASM_X86_64
#include <x86intrin.h>
#elif !SLABBY_ASM_AARCH64
#include <time.h>
#endif

namespace slabby {

// The CPU's cycle counter (common/base.h chooses): rdtsc on x86-64
// (constant-rate on every x86_64 Linux supports for this; not serialising,
// which is what a cheap sample wants); on aarch64 the virtual counter, which
// Linux lets user space read (constant-rate too, 24 MHz to 1 GHz: coarse on
// older cores, and what the vDSO's clock reads anyway). The portable path
// (other targets, SLABBY_PORTABLE) reads CLOCK_MONOTONIC through the vDSO:
// nanoseconds. latency.cc calibrates any of them against CLOCK_MONOTONIC.
SLABBY_INLINE uint64_t cycles_now() noexcept {
#if SLABBY_ASM_X86_64
  return __rdtsc();
#elif SLABBY_ASM_AARCH64
  uint64_t v;
  asm volatile("mrs %0, cntvct_el0" : "=r"(v));
  return v;
#else
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
#endif
}

class LatencyHistogram {
 public:
  static constexpr size_t kBuckets = 256;

  static constexpr size_t bucket_of(uint64_t v) {
    if (v < 4) return static_cast<size_t>(v);
    unsigned e = 63u - static_cast<unsigned>(__builtin_clzll(v));  // >= 2
    return (e - 1) * 4 + static_cast<size_t>((v >> (e - 2)) & 3);
  }
  // Smallest value of the bucket, and one past its largest (saturating).
  static constexpr uint64_t bucket_low(size_t b) {
    if (b < 4) return b;
    unsigned e = static_cast<unsigned>(b / 4 + 1);
    return (uint64_t{1} << e) | (uint64_t{b % 4} << (e - 2));
  }
  static constexpr uint64_t bucket_high(size_t b) {
    return b + 1 >= kBuckets ? ~uint64_t{0} : bucket_low(b + 1);
  }

  void record(uint64_t v) noexcept {
    counts_[bucket_of(v)].fetch_add(1, std::memory_order_relaxed);
    uint64_t m = max_.load(std::memory_order_relaxed);
    while (v > m && !max_.compare_exchange_weak(m, v, std::memory_order_relaxed)) {
    }
  }
  uint64_t count() const noexcept;
  uint64_t max() const noexcept { return max_.load(std::memory_order_relaxed); }
  // The value below which a fraction q (0..1) of the samples lie: the
  // midpoint of the bucket holding the ceil(q * count)-th sample, capped by
  // the largest sample seen. 0 when empty.
  uint64_t percentile(double q) const noexcept;
  void reset() noexcept;

 private:
  std::atomic<uint64_t> counts_[kBuckets] = {};
  std::atomic<uint64_t> max_{0};
};

struct LatencySummary {
  uint64_t samples;  // allocations timed
  uint64_t p50_ns, p95_ns, p99_ns, max_ns;
  uint64_t slow_allocations;  // timed allocations above SLABBY_MAX_ALLOC_LATENCY_NS
  uint64_t cycles_per_us;     // the calibration used (0: not yet calibrated)
};

// Sampling period: SLABBY_LATENCY_SAMPLE, copied at init (0: off).
extern uint32_t g_latency_sample;

// Init: sampling period, slow threshold, calibration baseline. No allocation.
void latency_init(uint64_t sample_every, uint64_t max_alloc_latency_ns) noexcept;
// A running process's change of both (slabby_set_option); the histogram and
// the calibration are kept.
void latency_set(uint64_t sample_every, uint64_t max_alloc_latency_ns) noexcept;

// Records one timed allocation of `cycles`. Above SLABBY_MAX_ALLOC_LATENCY_NS
// (converted with the current calibration) it is counted in slow_allocations
// and logged (rate-limited, event "slow_allocation").
void latency_record(uint64_t cycles) noexcept;

// P50/P95/P99/max in ns from the histogram, calibrating cycles against
// CLOCK_MONOTONIC first (over at least 1 ms since init: the first read after
// a very early one may wait up to 1 ms).
LatencySummary latency_summary() noexcept;

// Cycles to ns with the calibration so far (0 before any).
uint64_t cycles_to_ns(uint64_t cycles) noexcept;

// The process-wide histogram (tests reset it).
LatencyHistogram& latency_histogram() noexcept;

}  // namespace slabby

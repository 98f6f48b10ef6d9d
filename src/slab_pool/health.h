// slabby::Pool's health parts: the allocation-latency histogram and the
// circuit breaker. Both are lock-free and allocation-free.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

namespace slabby::slab_pool {

inline int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// Log-linear histogram of sampled allocation latencies: four buckets per
// power of two of nanoseconds, so a percentile is within 25% of the truth.
// Invariant: count == sum of buckets (once writers are done).
class LatencyHistogram {
 public:
  static constexpr int kSub = 4;
  static constexpr int kBuckets = 64 * kSub;

  void record(int64_t ns);
  // The upper bound of the bucket holding the q-quantile (0 when empty).
  int64_t quantile(double q) const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  int64_t sum_ns() const { return sum_.load(std::memory_order_relaxed); }
  int64_t max_ns() const { return max_.load(std::memory_order_relaxed); }

 private:
  static int bucket_of(uint64_t v);
  static int64_t upper_bound(int b);

  std::atomic<uint64_t> buckets_[kBuckets] = {};
  std::atomic<uint64_t> count_{0};
  std::atomic<int64_t> sum_{0};
  std::atomic<int64_t> max_{0};
};

// Closed -> (threshold consecutive failures) -> open for timeout -> half-open:
// one trial allocation; success closes, failure re-opens.
// Invariant: open_until_ns_ == 0 iff closed. A closed breaker costs one
// relaxed load per allocation.
class CircuitBreaker {
 public:
  enum class Change { kNone, kOpened, kClosed };

  void init(int64_t threshold, int64_t timeout_ns) {
    threshold_ = threshold;
    timeout_ns_ = timeout_ns;
  }
  bool enabled() const { return threshold_ > 0; }
  bool is_open() const { return open_until_ns_.load(std::memory_order_relaxed) != 0; }

  // May an allocation be attempted now?
  bool admit() {
    int64_t until = open_until_ns_.load(std::memory_order_relaxed);
    if (__builtin_expect(until == 0, 1)) return true;
    if (now_ns() < until) return false;
    bool expected = false;  // half-open: exactly one trial
    return trial_.compare_exchange_strong(expected, true, std::memory_order_acq_rel);
  }
  Change on_success() {
    if (failures_.load(std::memory_order_relaxed) != 0)
      failures_.store(0, std::memory_order_relaxed);
    if (__builtin_expect(open_until_ns_.load(std::memory_order_relaxed) == 0, 1))
      return Change::kNone;
    open_until_ns_.store(0, std::memory_order_relaxed);
    trial_.store(false, std::memory_order_relaxed);
    return Change::kClosed;
  }
  Change on_failure() {
    int64_t f = failures_.fetch_add(1, std::memory_order_relaxed) + 1;
    bool was_trial = trial_.load(std::memory_order_relaxed);
    if (f < threshold_ && !was_trial) return Change::kNone;
    bool was_closed = open_until_ns_.load(std::memory_order_relaxed) == 0;
    open_until_ns_.store(now_ns() + timeout_ns_, std::memory_order_relaxed);
    trial_.store(false, std::memory_order_relaxed);
    return was_closed || was_trial ? Change::kOpened : Change::kNone;
  }

 private:
  int64_t threshold_ = 0;
  int64_t timeout_ns_ = 0;
  std::atomic<int64_t> failures_{0};  // consecutive
  std::atomic<int64_t> open_until_ns_{0};
  std::atomic<bool> trial_{false};
};

}  // namespace slabby::slab_pool

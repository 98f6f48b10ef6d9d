// Latency histogram (health.h).
#include "slab_pool/health.h"

namespace slabby::slab_pool {

int LatencyHistogram::bucket_of(uint64_t v) {
  if (v < kSub) return static_cast<int>(v);
  int log = 63 - __builtin_clzll(v);
  int sub = static_cast<int>((v >> (log - 2)) & (kSub - 1));
  int b = (log - 1) * kSub + sub;
  return b < kBuckets ? b : kBuckets - 1;
}

int64_t LatencyHistogram::upper_bound(int b) {
  if (b < kSub) return b;
  int log = b / kSub + 1;
  int sub = b % kSub;
  return (int64_t{1} << log) + (int64_t{sub + 1} << (log - 2)) - 1;
}

void LatencyHistogram::record(int64_t ns) {
  if (ns < 0) ns = 0;
  buckets_[bucket_of(static_cast<uint64_t>(ns))].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(ns, std::memory_order_relaxed);
  int64_t m = max_.load(std::memory_order_relaxed);
  while (ns > m && !max_.compare_exchange_weak(m, ns, std::memory_order_relaxed)) {
  }
}

int64_t LatencyHistogram::quantile(double q) const {
  uint64_t total = 0;
  for (const auto& b : buckets_) total += b.load(std::memory_order_relaxed);
  if (total == 0) return 0;
  uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total - 1)) + 1;
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += buckets_[b].load(std::memory_order_relaxed);
    if (seen >= rank) return upper_bound(b);
  }
  return upper_bound(kBuckets - 1);
}

}  // namespace slabby::slab_pool

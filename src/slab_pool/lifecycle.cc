// slabby::Pool: Stats, HealthCheck and its monitor thread, Reset, Close,
// leak reports (finalizers) and debug allocation stacks.
#include <execinfo.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "slab_pool/pool_impl.h"

namespace slabby {

// ---- stats -----------------------------------------------------------------

PoolStats PoolImpl::stats() const {
  PoolStats s;
  s.version = "slabby-pool 0.1.0";
  s.total_slabs = capacity_;
  s.slab_size = slab_size_;
  s.cache_line_size = options_.cache_line;
  uint64_t home = 0, steals = 0, frees = 0;
  for (uint32_t i = 0; i < lists_.shards(); ++i) {
    const slab_pool::ShardCounters& c = lists_.shard(i).counters;
    home += c.home_hits.load(std::memory_order_relaxed);
    steals += c.steals.load(std::memory_order_relaxed);
    frees += c.frees.load(std::memory_order_relaxed);
    s.fast_allocations += c.fast_allocs.load(std::memory_order_relaxed);
    s.fast_deallocations += c.fast_frees.load(std::memory_order_relaxed);
  }
  const uint64_t slot_allocs = home + steals;
  s.used_slabs = slot_allocs >= frees ? slot_allocs - frees : 0;  // exact when quiescent
  s.available_slabs = capacity_ - std::min<uint64_t>(s.used_slabs, capacity_);
  s.heap_fallbacks = heap_fallbacks_.load(std::memory_order_relaxed);
  const uint64_t heap_frees = heap_frees_.load(std::memory_order_relaxed);
  s.current_allocations = s.used_slabs + (s.heap_fallbacks - heap_frees);
  s.total_allocations = slot_allocs + s.heap_fallbacks;
  s.total_deallocations = frees + heap_frees;
  s.batch_allocations = batch_allocs_.load(std::memory_order_relaxed);
  s.batch_deallocations = batch_frees_.load(std::memory_order_relaxed);
  s.allocation_errors = alloc_errors_.load(std::memory_order_relaxed);
  s.deallocation_errors = dealloc_errors_.load(std::memory_order_relaxed);
  s.timeouts = timeouts_.load(std::memory_order_relaxed);
  s.breaker_rejections = breaker_rejections_.load(std::memory_order_relaxed);
  s.corruptions_detected = corruptions_.load(std::memory_order_relaxed);
  s.leaks_reported = leaks_.load(std::memory_order_relaxed);
  s.latency_violations = latency_violations_.load(std::memory_order_relaxed);
  if (latency_.count() != 0)
    s.avg_alloc_time_ns = double(latency_.sum_ns()) / double(latency_.count());
  s.max_alloc_time_ns = latency_.max_ns();
  s.fragmentation_ratio = double(region_.stride() - requested_size_) / double(region_.stride());
  s.memory_utilization = double(s.used_slabs) / double(capacity_);
  s.secure_mode = options_.secure;
  s.bit_guard_enabled = options_.bit_guard;
  s.pcpu_cache_hits = home;
  s.lock_free_hits = steals;
  s.mapped_bytes = region_.mapped() ? region_.mapped_bytes() : 0;
  return s;
}

// ---- health ----------------------------------------------------------------

HealthMetrics PoolImpl::health() {
  PoolStats s = stats();
  HealthMetrics h;
  h.alloc_latency_p50 = absl::Nanoseconds(latency_.quantile(0.50));
  h.alloc_latency_p95 = absl::Nanoseconds(latency_.quantile(0.95));
  h.alloc_latency_p99 = absl::Nanoseconds(latency_.quantile(0.99));
  h.fragmentation_score = s.fragmentation_ratio;
  h.memory_pressure = s.memory_utilization;
  uint64_t slot_allocs = s.pcpu_cache_hits + s.lock_free_hits;
  h.cache_efficiency = slot_allocs == 0 ? 1.0 : double(s.pcpu_cache_hits) / double(slot_allocs);
  h.circuit_breaker_open = breaker_.is_open();

  std::lock_guard<std::mutex> lock(health_mu_);
  // The error rate covers the window since the previous HealthCheck.
  uint64_t attempts = s.total_allocations + s.allocation_errors;
  uint64_t d_attempts = attempts - last_attempts_;
  uint64_t d_errors = s.allocation_errors - last_errors_;
  h.error_rate = d_attempts == 0 ? 0.0 : double(d_errors) / double(d_attempts);
  last_attempts_ = attempts;
  last_errors_ = s.allocation_errors;

  double score = 1.0 - 0.5 * h.error_rate;
  if (h.memory_pressure > 0.9) score -= 0.2 * (h.memory_pressure - 0.9) / 0.1;
  if (h.circuit_breaker_open) score -= 0.3;
  int64_t bound = absl::ToInt64Nanoseconds(options_.max_alloc_latency);
  if (bound > 0 && absl::ToInt64Nanoseconds(h.alloc_latency_p99) > bound) score -= 0.1;
  if (s.corruptions_detected != 0) score -= 0.2;
  h.health_score = std::clamp(score, 0.0, 1.0);
  if (!has_last_ || std::abs(h.health_score - last_score_) < 0.05)
    h.recent_trend = "stable";
  else
    h.recent_trend = h.health_score > last_score_ ? "improving" : "degrading";
  last_score_ = h.health_score;
  has_last_ = true;
  return h;
}

void PoolImpl::monitor_loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(monitor_mu_);
      monitor_cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.health_interval),
                           [this] { return monitor_stop_; });
      if (monitor_stop_) return;
    }
    HealthMetrics h = health();
    if (h.health_score < 0.5 || h.recent_trend == "degrading")
      log(LogLevel::kWarning,
          "slabby: pool health %.2f (%s): pressure %.2f, error rate %.3f, breaker %s, p99 %lld ns",
          h.health_score, h.recent_trend.c_str(), h.memory_pressure, h.error_rate,
          h.circuit_breaker_open ? "open" : "closed",
          static_cast<long long>(absl::ToInt64Nanoseconds(h.alloc_latency_p99)));
  }
}

// ---- Reset, Close, leaks ---------------------------------------------------

void PoolImpl::reset() {
  if (closed()) return;
  for (uint32_t i = 0; i < capacity_; ++i) {
    uint32_t w = words_[i].load(std::memory_order_acquire);
    // The same CAS as a release, so a racing Release of the slab loses
    // cleanly (FailedPrecondition) instead of freeing it twice.
    if (slab_pool::is_allocated(w) &&
        words_[i].compare_exchange_strong(w, w + 1, std::memory_order_acq_rel))
      recycle(i, i % lists_.shards()).IgnoreError();  // corruption is logged and counted
  }
}

void PoolImpl::report_leaks() {
  for (uint32_t i = 0; i < capacity_; ++i) {
    uint32_t w = words_[i].load(std::memory_order_acquire);
    if (!slab_pool::is_allocated(w)) continue;
    leaks_.fetch_add(1, std::memory_order_relaxed);
    std::string where = stack_of(i, w);
    log(LogLevel::kWarning, "slabby: leak: slab %u (id %llu) never released%s%s", i,
        static_cast<unsigned long long>(uint64_t{w} << 32 | i),
        where.empty() ? "" : "; allocated at:\n", where.c_str());
  }
}

absl::Status PoolImpl::close() {
  if (closed_.exchange(true, std::memory_order_acq_rel))
    return absl::FailedPreconditionError("slabby: pool closed (already)");
  if (monitor_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(monitor_mu_);
      monitor_stop_ = true;
    }
    monitor_cv_.notify_all();
    monitor_.join();
  }
  if (waiters_.load(std::memory_order_seq_cst) != 0) wake_waiters();
  if (options_.finalizers && words_ != nullptr) report_leaks();  // null: Create failed
  region_.unmap();
  return absl::OkStatus();
}

PoolImpl::~PoolImpl() {
  if (!closed()) close().IgnoreError();
  if (shard_storage_ != nullptr) lists_.destroy();
  std::free(shard_storage_);
  std::free(nodes_);
  delete[] words_;
  delete[] stacks_;
  delete[] depths_;
}

// ---- debug stacks ----------------------------------------------------------

void PoolImpl::capture_stack(uint32_t index) {
  depths_[index] = static_cast<uint8_t>(backtrace(stacks_ + size_t{index} * kFrames, kFrames));
}

std::string PoolImpl::stack_of(uint32_t index, uint32_t gen) const {
  if (stacks_ == nullptr || index >= capacity_ || !owns(index, gen)) return {};
  int n = depths_[index];
  char** names = backtrace_symbols(stacks_ + size_t{index} * kFrames, n);
  if (names == nullptr) return {};
  std::string out;
  for (int i = 0; i < n; ++i) absl::StrAppend(&out, "  ", names[i], "\n");
  std::free(names);
  return out;
}

// ---- Pool's public methods ---------------------------------------------------

void Pool::Reset() { PoolImpl::of(this)->reset(); }
PoolStats Pool::Stats() const { return PoolImpl::of(this)->stats(); }
HealthMetrics Pool::HealthCheck() { return PoolImpl::of(this)->health(); }
absl::Status Pool::Close() { return PoolImpl::of(this)->close(); }

}  // namespace slabby

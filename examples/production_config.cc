// The seeds' production configuration in C++: security, reliability,
// performance and observability options together, then a million
// allocate/release cycles and the stats and health report.
#include <cstdio>
#include <thread>

#include "slabby/pool.hpp"

namespace {

const char* LevelName(slabby::LogLevel l) {
  switch (l) {
    case slabby::LogLevel::kDebug:
      return "DEBUG";
    case slabby::LogLevel::kInfo:
      return "INFO";
    case slabby::LogLevel::kWarning:
      return "WARN";
    case slabby::LogLevel::kError:
      return "ERROR";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<slabby::Pool>> NewProductionPool(size_t slab_size, size_t capacity) {
  slabby::Options o;
  // Security
  o.secure = true;
  o.bit_guard = true;
  // Reliability
  o.health_checks = true;
  o.breaker_threshold = 50;
  o.breaker_timeout = absl::Seconds(30);
  o.heap_fallback = true;
  // Performance
  o.shards = 2 * std::max(1u, std::thread::hardware_concurrency());
  o.per_cpu_cache = true;
  // Observability
  o.logger = [](slabby::LogLevel level, std::string_view msg) {
    std::fprintf(stderr, "[%s] %.*s\n", LevelName(level), static_cast<int>(msg.size()), msg.data());
  };
  o.health_interval = absl::Seconds(15);
  o.max_alloc_latency = absl::Microseconds(100);
  return slabby::Pool::Create(slab_size, capacity, o);
}

void ProcessHighFrequencyData(std::span<std::byte> data) { data[0] = std::byte{1}; }

}  // namespace

int main() {
  auto pool = NewProductionPool(4096, 10000);
  if (!pool.ok()) {
    std::fprintf(stderr, "Failed to initialize allocator: %s\n", pool.status().ToString().c_str());
    return 1;
  }
  for (int i = 0; i < 1000000; ++i) {
    absl::StatusOr<slabby::SlabRef> ref = (*pool)->Allocate();  // no heap allocation
    if (!ref.ok()) {
      std::fprintf(stderr, "Allocation failed: %s\n", ref.status().ToString().c_str());
      return 1;
    }
    ProcessHighFrequencyData(ref->bytes());
    if (absl::Status s = ref->Release(); !s.ok()) {
      std::fprintf(stderr, "Release failed: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  slabby::PoolStats stats = (*pool)->Stats();
  slabby::HealthMetrics health = (*pool)->HealthCheck();
  std::printf("total_allocations=%llu avg_latency_ns=%.1f p99=%s health_score=%.2f trend=%s\n",
              static_cast<unsigned long long>(stats.total_allocations), stats.avg_alloc_time_ns,
              absl::FormatDuration(health.alloc_latency_p99).c_str(), health.health_score,
              health.recent_trend.c_str());
  if (stats.total_allocations != 1000000 || stats.used_slabs != 0 || stats.heap_fallbacks != 0)
    return 1;
  return (*pool)->Close().ok() ? 0 : 1;
}

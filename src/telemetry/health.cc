// slabby: the seeds' HealthMetrics, derived on demand from the stats, the
// latency histogram, the circuit breaker and the log. Formulas: docs/stats.md.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/lock.h"
#include "runtime/breaker.h"
#include "runtime/runtime.h"
#include "telemetry/latency.h"
#include "telemetry/log.h"
#include "telemetry/stats.h"

namespace slabby {

namespace {

double clamp01(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

// 1 - MemAvailable / MemTotal from /proc/meminfo (0 when unreadable).
double system_memory_use() {
  int saved = errno;
  char buf[2048];
  ssize_t n = -1;
  int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
  }
  errno = saved;
  if (n <= 0) return 0;
  buf[n] = '\0';
  auto value_of = [&buf](const char* key) -> uint64_t {
    const char* p = strstr(buf, key);
    if (p == nullptr) return 0;
    p += strlen(key);
    while (*p == ' ' || *p == ':') ++p;
    uint64_t v = 0;
    while (*p >= '0' && *p <= '9') v = v * 10 + static_cast<uint64_t>(*p++ - '0');
    return v;
  };
  uint64_t total = value_of("MemTotal");
  uint64_t avail = value_of("MemAvailable");
  if (total == 0 || avail > total) return 0;
  return 1.0 - static_cast<double>(avail) / static_cast<double>(total);
}

// The previous sample, for error_rate and recent_trend.
struct Previous {
  bool valid;
  uint64_t allocations;
  uint64_t fallbacks;
  double score;
};
Previous g_prev;
Mutex g_prev_mu;

}  // namespace

void telemetry_init(const Config& c) {
  log_init(c);
  latency_init(c.latency_sample, c.max_alloc_latency_ns);
  g_breaker.configure(c.breaker_threshold, c.breaker_timeout_ms);
}

void collect_health(const slabby_stats& s, slabby_health* out) {
  memset(out, 0, sizeof(*out));
  out->version = SLABBY_HEALTH_VERSION;
  out->struct_size = sizeof(*out);

  LatencySummary l = latency_summary();
  out->alloc_latency_p50 = l.p50_ns;
  out->alloc_latency_p95 = l.p95_ns;
  out->alloc_latency_p99 = l.p99_ns;
  out->alloc_latency_max = l.max_ns;
  out->latency_samples = l.samples;
  out->slow_allocations = l.slow_allocations;
  out->max_alloc_latency_ns = g_rt.config.config.max_alloc_latency_ns;

  out->fragmentation_score =
      s.mapped_bytes == 0
          ? 0
          : clamp01(1.0 - static_cast<double>(s.live_bytes) / static_cast<double>(s.mapped_bytes));
  double pressure = system_memory_use();
  if (s.max_heap_bytes != 0) {
    double cap = static_cast<double>(s.mapped_bytes) / static_cast<double>(s.max_heap_bytes);
    if (cap > pressure) pressure = cap;
  }
  out->memory_pressure = clamp01(pressure);
  out->cache_efficiency = s.total_allocations == 0
                              ? 1
                              : clamp01(static_cast<double>(s.cache_hits + s.lock_free_hits) /
                                        static_cast<double>(s.total_allocations));
  out->circuit_breaker_open = s.breaker_state != SLABBY_BREAKER_CLOSED;
  out->last_gc_duration = s.last_purge_ns;
  LogStats ls = log_stats();
  out->log_lines = ls.lines;
  out->log_suppressed = ls.suppressed;

  LockGuard g(g_prev_mu);
  // Allocations asked of slabby: those it served plus those glibc served.
  uint64_t allocs = s.total_allocations + s.heap_fallbacks;
  uint64_t d_allocs = allocs, d_fallbacks = s.heap_fallbacks;
  if (g_prev.valid && allocs >= g_prev.allocations && s.heap_fallbacks >= g_prev.fallbacks) {
    d_allocs = allocs - g_prev.allocations;
    d_fallbacks = s.heap_fallbacks - g_prev.fallbacks;
  }
  out->error_rate =
      d_allocs == 0 ? 0 : clamp01(static_cast<double>(d_fallbacks) / static_cast<double>(d_allocs));
  double slow_fraction =
      l.samples == 0 ? 0 : static_cast<double>(l.slow_allocations) / static_cast<double>(l.samples);
  double errors = out->error_rate * 10 > 1 ? 1 : out->error_rate * 10;
  double score = 1.0 - 0.25 * out->fragmentation_score - 0.25 * out->memory_pressure -
                 0.3 * errors - 0.1 * (1.0 - out->cache_efficiency) - 0.1 * clamp01(slow_fraction);
  if (out->circuit_breaker_open && score > 0.5) score = 0.5;
  out->health_score = clamp01(score);
  out->recent_trend = SLABBY_TREND_STABLE;
  if (g_prev.valid && out->health_score > g_prev.score + 0.05)
    out->recent_trend = SLABBY_TREND_IMPROVING;
  if (g_prev.valid && out->health_score < g_prev.score - 0.05)
    out->recent_trend = SLABBY_TREND_DEGRADING;
  g_prev = {true, allocs, s.heap_fallbacks, out->health_score};
}

void get_health(slabby_health* out) {
  static slabby_stats s;  // 6 KiB: static, not on a possibly small stack
  static Mutex mu;
  LockGuard g(mu);
  collect_stats(&s);
  collect_health(s, out);
}

size_t config_text(char* buf, size_t size) {
  const Config& c = g_rt.config.config;
  size_t total = 0;
  for (size_t i = 0; i < num_options(); ++i) {
    char line[320];
    size_t n = strlen(option(i).name);
    memcpy(line, option(i).name, n);
    line[n++] = '=';
    n += format_option_value(c, i, line + n, sizeof(line) - n - 1);
    line[n++] = '\n';
    for (size_t k = 0; k < n; ++k, ++total)
      if (total + 1 < size) buf[total] = line[k];
  }
  if (size > 0) buf[total < size ? total : size - 1] = '\0';
  return total;
}

const char* trend_name(uint32_t trend) {
  switch (trend) {
    case SLABBY_TREND_IMPROVING:
      return "improving";
    case SLABBY_TREND_DEGRADING:
      return "degrading";
    default:
      return "stable";
  }
}

}  // namespace slabby

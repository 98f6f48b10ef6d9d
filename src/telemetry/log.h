// slabby: the event log. SLABBY_LOG=stderr|PATH turns it on (off by default:
// slabby prints nothing unless asked), SLABBY_LOG_LEVEL picks the events
// (error, warn, info, debug), SLABBY_LOG_FORMAT the line format:
//
//   text: slabby: 1763718781.123 warn breaker_open pid=4242 failures=3 window_ms=1000
//   json: {"ts":1763718781.123,"level":"warn","event":"breaker_open","pid":4242,"failures":3,...}
//
// One line per event, built in a stack buffer and written with one write(2)
// (O_APPEND for a file, so lines from several processes do not interleave).
// Nothing allocates and errno is preserved. Each event kind has its own rate
// limit: a burst of 10 lines, then one per 100 ms. Lines over the limit are
// dropped and counted; the next line of that kind carries
// "suppressed=N", and at exit one "log_suppressed" line per kind reports
// what is still uncounted.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/base.h"

namespace slabby {

struct Config;

enum class LogLevel : uint8_t { kError = 0, kWarn, kInfo, kDebug };

// Every kind of line, each rate-limited on its own.
enum class LogEvent : uint8_t {
  kBreakerOpen = 0,  // warn: the circuit breaker opened (or reopened after a failed probe)
  kBreakerHalfOpen,  // info: timeout over, one probe request goes to the page heap
  kBreakerClosed,    // info: the probe succeeded
  kSlowAllocation,   // warn: a timed allocation took longer than SLABBY_MAX_ALLOC_LATENCY_NS
  kHeapFallback,     // info: an allocation the system allocator served
  kHeapLimit,        // warn: SLABBY_MAX_HEAP refused a span
  kHeapExhausted,    // warn: the OS refused memory or the arena is full
  kPurge,            // debug: a purge pass returned pages to the OS
  kSuppressed,       // warn: at exit, lines dropped by the rate limit
  kCount
};

// The most verbose level logged; -1 when the log is off. Set once at init.
extern int g_log_max_level;

SLABBY_INLINE bool log_enabled(LogLevel level) noexcept {
  return static_cast<int>(level) <= g_log_max_level;
}

// Opens the log as configured (at init, after the config is parsed).
void log_init(const Config& c) noexcept;

// A running process's change of SLABBY_LOG_LEVEL (no effect while the log
// is off).
void log_set_level(int level) noexcept;

// For the unit tests: log to `fd` at `level` (-1: off) in text or JSON.
void log_init_fd(int fd, int level, bool json) noexcept;

// One line: construct (takes a rate-limit token), add fields, destroy (writes
// it). When the level is off or the limit is hit, ok() is false and the
// field calls do nothing.
class LogLine {
 public:
  LogLine(LogEvent event, LogLevel level) noexcept;
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;
  bool ok() const noexcept { return ok_; }
  LogLine& u64(const char* key, uint64_t v) noexcept;
  LogLine& str(const char* key, const char* v) noexcept;

 private:
  void raw(const char* s, size_t n) noexcept;
  void raw(const char* s) noexcept;
  void key(const char* k) noexcept;

  bool ok_;
  char buf_[480];
  size_t len_ = 0;
};

struct LogStats {
  uint64_t lines;       // lines written
  uint64_t suppressed;  // lines dropped by the rate limit
};
LogStats log_stats() noexcept;

// Writes the "log_suppressed" lines of kinds with dropped lines not yet
// reported (at exit; also callable by tests).
void log_report_suppressed() noexcept;

const char* log_event_name(LogEvent e) noexcept;

}  // namespace slabby

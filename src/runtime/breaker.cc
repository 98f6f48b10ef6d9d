#include "runtime/breaker.h"

#include <time.h>

#include <cerrno>

#include "telemetry/log.h"

namespace slabby {

constinit CircuitBreaker g_breaker;

namespace {

uint64_t unix_ms() {
  int saved = errno;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  errno = saved;
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

}  // namespace

const char* breaker_state_name(BreakerState s) noexcept {
  switch (s) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half-open";
  }
  return "?";
}

BreakerTicket CircuitBreaker::admit_slow(uint64_t now_ms) noexcept {
  BreakerState s = state_.load(std::memory_order_acquire);
  if (s == BreakerState::kOpen &&
      now_ms - opened_ms_.load(std::memory_order_relaxed) >= timeout_ms_) {
    // The first thread past the timeout takes the single probe.
    if (state_.compare_exchange_strong(s, BreakerState::kHalfOpen, std::memory_order_acq_rel)) {
      transition(BreakerState::kHalfOpen, now_ms);
      return BreakerTicket::kProbe;
    }
  }
  if (s == BreakerState::kClosed) return BreakerTicket::kPass;  // closed meanwhile
  rejections_.fetch_add(1, std::memory_order_relaxed);
  return BreakerTicket::kRefused;
}

void CircuitBreaker::report_slow(BreakerTicket t, bool ok, uint64_t now_ms) noexcept {
  if (!ok) failures_.fetch_add(1, std::memory_order_relaxed);
  if (threshold_ == 0) return;  // off: failures are only counted
  if (t == BreakerTicket::kProbe) {
    // Only the probe's holder changes a half-open breaker.
    if (!ok) opened_ms_.store(now_ms, std::memory_order_relaxed);
    BreakerState to = ok ? BreakerState::kClosed : BreakerState::kOpen;
    if (ok) {
      window_failures_.store(0, std::memory_order_relaxed);
      window_start_ms_.store(0, std::memory_order_relaxed);
    }
    state_.store(to, std::memory_order_release);
    transition(to, now_ms);
    return;
  }
  if (ok || t != BreakerTicket::kPass) return;
  // A failure while closed: count it in the current window, or start one.
  // Races between threads starting a window at once may lose a count; the
  // breaker then opens one failure later, which is harmless.
  uint64_t start = window_start_ms_.load(std::memory_order_relaxed);
  if (start == 0 || now_ms - start >= timeout_ms_) {
    if (window_start_ms_.compare_exchange_strong(start, now_ms == 0 ? 1 : now_ms,
                                                 std::memory_order_relaxed))
      window_failures_.store(0, std::memory_order_relaxed);
  }
  uint64_t n = window_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n < threshold_) return;
  BreakerState closed = BreakerState::kClosed;
  opened_ms_.store(now_ms, std::memory_order_relaxed);
  if (state_.compare_exchange_strong(closed, BreakerState::kOpen, std::memory_order_acq_rel)) {
    window_failures_.store(0, std::memory_order_relaxed);
    window_start_ms_.store(0, std::memory_order_relaxed);
    transition(BreakerState::kOpen, now_ms);
  }
}

void CircuitBreaker::transition(BreakerState to, uint64_t now_ms) noexcept {
  (void)now_ms;
  transitions_.fetch_add(1, std::memory_order_relaxed);
  if (to == BreakerState::kOpen) opens_.fetch_add(1, std::memory_order_relaxed);
  last_transition_unix_ms_.store(unix_ms(), std::memory_order_relaxed);
  static constexpr LogEvent kEvents[] = {LogEvent::kBreakerClosed, LogEvent::kBreakerOpen,
                                         LogEvent::kBreakerHalfOpen};
  LogLine line(kEvents[static_cast<int>(to)],
               to == BreakerState::kOpen ? LogLevel::kWarn : LogLevel::kInfo);
  line.str("state", breaker_state_name(to))
      .u64("threshold", threshold_)
      .u64("timeout_ms", timeout_ms_)
      .u64("failures", failures_.load(std::memory_order_relaxed))
      .u64("transitions", transitions_.load(std::memory_order_relaxed));
}

BreakerStats CircuitBreaker::stats() const noexcept {
  BreakerStats s;
  s.state = state_.load(std::memory_order_acquire);
  s.transitions = transitions_.load(std::memory_order_relaxed);
  s.last_transition_unix_ms = last_transition_unix_ms_.load(std::memory_order_relaxed);
  s.failures = failures_.load(std::memory_order_relaxed);
  s.rejections = rejections_.load(std::memory_order_relaxed);
  s.opens = opens_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace slabby

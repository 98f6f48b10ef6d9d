// slabby: the circuit breaker in front of the page heap.
//
// Closed (normal): every request for new memory goes to the page heap.
// SLABBY_BREAKER_THRESHOLD failures (the OS refused to commit memory, the
// arena is full, or SLABBY_MAX_HEAP refused the span) within one window of
// SLABBY_BREAKER_TIMEOUT_MS (the window starts at the first failure after
// the previous window ended) open it.
// Open: requests for new memory are refused at once and the caller serves
// them from the system allocator (counted as heap fallbacks; their frees find
// glibc by the ownership check). Blocks already in caches, transfer stacks
// and partial slabs are still served. After SLABBY_BREAKER_TIMEOUT_MS:
// Half-open: exactly one request (the probe) goes to the page heap; the others
// are still refused. The probe's success closes the breaker, its failure
// reopens it for another timeout.
//
// Threshold 0 (the default) turns it off: admit() is then one load and a
// branch. Lock-free (a forked child inherits no held lock); every transition
// is counted, timestamped and logged.
#pragma once

#include <atomic>
#include <cstdint>

namespace slabby {

enum class BreakerState : uint32_t { kClosed = 0, kOpen = 1, kHalfOpen = 2 };
enum class BreakerTicket : uint8_t { kPass, kProbe, kRefused };

struct BreakerStats {
  BreakerState state;
  uint64_t transitions;              // closed->open, open->half-open, half-open->closed|open
  uint64_t last_transition_unix_ms;  // wall-clock time of the last one (0: none)
  uint64_t failures;                 // page heap failures seen, ever
  uint64_t rejections;               // requests refused while open or half-open
  uint64_t opens;                    // transitions into open
};

const char* breaker_state_name(BreakerState s) noexcept;

class CircuitBreaker {
 public:
  void configure(uint64_t threshold, uint64_t timeout_ms) noexcept {
    threshold_ = threshold;
    timeout_ms_ = timeout_ms;
  }
  bool enabled() const noexcept { return threshold_ != 0; }

  // Before asking the page heap for new memory. kRefused: do not ask (fall
  // back); otherwise ask, then report() with this ticket.
  BreakerTicket admit(uint64_t now_ms) noexcept {
    if (threshold_ == 0) return BreakerTicket::kPass;
    if (state_.load(std::memory_order_acquire) == BreakerState::kClosed)
      return BreakerTicket::kPass;
    return admit_slow(now_ms);
  }
  void report(BreakerTicket t, bool ok, uint64_t now_ms) noexcept {
    if (t == BreakerTicket::kPass && ok) return;
    report_slow(t, ok, now_ms);
  }

  BreakerStats stats() const noexcept;

 private:
  BreakerTicket admit_slow(uint64_t now_ms) noexcept;
  void report_slow(BreakerTicket t, bool ok, uint64_t now_ms) noexcept;
  void transition(BreakerState to, uint64_t now_ms) noexcept;

  uint64_t threshold_ = 0;
  uint64_t timeout_ms_ = 1000;
  std::atomic<BreakerState> state_{BreakerState::kClosed};
  std::atomic<uint64_t> opened_ms_{0};        // monotonic time of the last opening
  std::atomic<uint64_t> window_start_ms_{0};  // monotonic start of the failure window
  std::atomic<uint64_t> window_failures_{0};
  std::atomic<uint64_t> transitions_{0};
  std::atomic<uint64_t> opens_{0};
  std::atomic<uint64_t> last_transition_unix_ms_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> rejections_{0};
};

// The process's breaker (configured at init from SLABBY_BREAKER_*).
extern constinit CircuitBreaker g_breaker;

}  // namespace slabby

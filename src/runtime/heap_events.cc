#include "runtime/heap_events.h"

#include "heap/page_heap.h"
#include "os/os.h"
#include "runtime/breaker.h"
#include "telemetry/log.h"

namespace slabby {

namespace {

bool admit(uint32_t* ticket) {
  uint64_t now = g_breaker.enabled() ? os::now_ms() : 0;
  BreakerTicket t = g_breaker.admit(now);
  *ticket = static_cast<uint32_t>(t);
  return t != BreakerTicket::kRefused;
}

void outcome(uint32_t ticket, bool ok) {
  auto t = static_cast<BreakerTicket>(ticket);
  if (t == BreakerTicket::kPass && ok) return;  // the common case: no clock read
  g_breaker.report(t, ok, g_breaker.enabled() ? os::now_ms() : 0);
}

void failed(size_t bytes, bool limit, size_t max_heap) {
  LogLine line(limit ? LogEvent::kHeapLimit : LogEvent::kHeapExhausted, LogLevel::kWarn);
  line.u64("bytes", bytes);
  if (limit) line.u64("max_heap", max_heap);
}

// Under the heap lock: the line is rate-limited, and written only at
// SLABBY_LOG_LEVEL=debug.
void purged(size_t bytes, uint64_t ns, const char* why) {
  if (!log_enabled(LogLevel::kDebug)) return;
  LogLine line(LogEvent::kPurge, LogLevel::kDebug);
  line.str("reason", why).u64("bytes", bytes).u64("ns", ns);
}

}  // namespace

void install_heap_events(PageHeap& heap) { heap.set_hooks({admit, outcome, failed, purged}); }

}  // namespace slabby

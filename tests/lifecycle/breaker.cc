// The circuit breaker's whole cycle in a real process, with the transitions
// visible in slabby_get_stats. Run by ctest with SLABBY_MAX_HEAP=16M,
// SLABBY_BREAKER_THRESHOLD=3 and SLABBY_BREAKER_TIMEOUT_MS=1000:
// 1. large blocks past the cap: 3 refusals open the breaker; allocations go
//    on (from glibc, counted as fallbacks and rejections);
// 2. past the timeout, still over the cap: the probe fails, it reopens;
// 3. memory freed, past the timeout again: the probe succeeds, it closes, and
//    slabby serves large blocks again.
// Sleeps are 2.5 times the timeout, and phase 1 touches one byte per block
// (the cap counts mapped bytes; filling 80 MiB under a loaded CI machine took
// longer than a 300 ms timeout, and the breaker probed inside phase 1).
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vector>

#include "lifecycle_check.h"
#include "slabby/slabby.h"

static slabby_stats g_s;

static const slabby_stats& stats() {
  LC_CHECK(slabby_get_stats(&g_s, sizeof g_s) == 0, "slabby_get_stats failed");
  return g_s;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static bool ours(const slabby_stats& before, const slabby_stats& after) {
  return after.large_allocations > before.large_allocations;
}

int main() {
  // Large blocks (page spans, above the 1 MiB medium classes): every one is
  // a request to the page heap, none is served from a cache.
  const size_t kBlock = size_t{2} << 20;
  std::vector<char*> blocks;
  const slabby_stats& s0 = stats();
  LC_CHECK(s0.version >= 2 && s0.breaker_enabled == 1, "breaker not enabled (version %u)",
           s0.version);
  LC_CHECK(s0.breaker_state == SLABBY_BREAKER_CLOSED, "starts in state %u", s0.breaker_state);

  // 1. Up to 80 MiB: the cap (16M) refuses spans; three refusals open it.
  for (int i = 0; i < 40; ++i) {
    char* p = static_cast<char*>(malloc(kBlock));
    LC_CHECK(p != nullptr, "malloc failed with fallback on");
    p[0] = static_cast<char>(i);
    blocks.push_back(p);
  }
  slabby_stats open1 = stats();
  LC_CHECK(open1.breaker_state == SLABBY_BREAKER_OPEN, "state %u after the cap, not open",
           open1.breaker_state);
  LC_CHECK(open1.breaker_transitions == 1, "transitions %llu",
           (unsigned long long)open1.breaker_transitions);
  LC_CHECK(open1.breaker_failures >= 3, "failures %llu",
           (unsigned long long)open1.breaker_failures);
  LC_CHECK(open1.breaker_rejections > 0, "no request refused while open");
  LC_CHECK(open1.breaker_last_transition_ms > 0, "no transition time");
  LC_CHECK(open1.heap_fallbacks >= open1.breaker_rejections, "rejections not served by glibc");

  // While open, even a block that fits under the cap goes to glibc.
  char* q = static_cast<char*>(malloc(kBlock));
  LC_CHECK(q != nullptr, "malloc failed while open");
  slabby_stats still = stats();
  LC_CHECK(!ours(open1, still), "slabby served a large block while open");
  free(q);

  // 2. Past the timeout, still over the cap: the probe fails, it reopens.
  sleep_ms(2500);
  char* r = static_cast<char*>(malloc(kBlock));
  LC_CHECK(r != nullptr, "malloc failed (probe)");
  blocks.push_back(r);
  slabby_stats reopened = stats();
  LC_CHECK(reopened.breaker_state == SLABBY_BREAKER_OPEN, "state %u after a failed probe",
           reopened.breaker_state);
  LC_CHECK(reopened.breaker_transitions == 3, "transitions %llu (want open, half-open, open)",
           (unsigned long long)reopened.breaker_transitions);
  LC_CHECK(reopened.breaker_opens == 2, "opens %llu", (unsigned long long)reopened.breaker_opens);

  // 3. Everything freed; past the timeout the probe succeeds.
  for (char* p : blocks) free(p);
  blocks.clear();
  sleep_ms(2500);
  slabby_stats before = stats();
  char* t = static_cast<char*>(malloc(kBlock));
  LC_CHECK(t != nullptr, "malloc failed after the timeout");
  memset(t, 1, kBlock);
  slabby_stats closed = stats();
  LC_CHECK(closed.breaker_state == SLABBY_BREAKER_CLOSED, "state %u after a good probe",
           closed.breaker_state);
  LC_CHECK(closed.breaker_transitions == 5, "transitions %llu",
           (unsigned long long)closed.breaker_transitions);
  LC_CHECK(ours(before, closed), "the probe's block is not slabby's");
  // And slabby serves again.
  char* u = static_cast<char*>(malloc(kBlock));
  slabby_stats after = stats();
  LC_CHECK(ours(closed, after), "closed breaker, but the block is not slabby's");
  free(u);
  free(t);

  slabby_health h;
  LC_CHECK(slabby_get_health(&h, sizeof h) == 0, "slabby_get_health failed");
  LC_CHECK(h.circuit_breaker_open == 0, "health says the breaker is open");
  return 0;
}

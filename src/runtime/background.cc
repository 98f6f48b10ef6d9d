#include "runtime/background.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <cerrno>

#include "cache/percpu_cache.h"
#include "cache/thread_cache.h"
#include "os/os.h"
#include "telemetry/heap_profile.h"

namespace slabby {

std::atomic<int> g_background{kBgNone};

namespace {

// The background pass's period: SLABBY_DECAY_MS, at least 100 ms.
uint64_t decay_period_ms() {
  uint64_t ms = g_rt.config.config.decay_ms;
  return ms < 100 ? 100 : ms;
}

void sleep_ms(uint64_t ms) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ms / 1000);
  ts.tv_nsec = static_cast<long>((ms % 1000) * 1000000);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void* background_main(void*) {
  thread_init();  // its own cache and, in per-CPU mode, its rseq area
  cache_mark_internal();
  const Config& cfg = g_rt.config.config;
  uint64_t period = decay_period_ms();
  uint64_t tick = period / 4;
  uint64_t interval = cfg.stats_interval_ms;
  if (interval != 0 && interval < tick) tick = interval < 10 ? 10 : interval;
  uint64_t prof_every = cfg.prof_interval_ms;
  if (prof_every != 0 && prof_every < tick) tick = prof_every < 10 ? 10 : prof_every;
  uint64_t last_report = os::now_ms();
  uint64_t seen[kNumClasses] = {};
  uint64_t last_reclaim = os::now_ms();
  // From now on this thread bounds free pages past SLABBY_RETAIN_MAX on its
  // ticks, so frees may spare the pages freed within the last tick (a loop
  // freeing a big buffer and allocating the next reuses them).
  g_rt.heap.set_retain_grace_ms(tick);
  for (;;) {
    sleep_ms(tick);
    uint64_t now = os::now_ms();
    g_rt.heap.decay(now);
    g_rt.heap.enforce_retain(now);
    if (interval != 0 && now - last_report >= interval) {
      last_report = now;
      write_configured_report();
    }
    heap_profile_tick(now);  // SLABBY_PROF_INTERVAL_MS, and dumps a signal asked for
    if (now - last_reclaim < period) continue;
    last_reclaim = now;
    percpu_drain_idle(false);
    cache_decay_tick();  // each thread's next slow path decays its grown bins
    for (unsigned c = 1; c < kNumClasses; ++c) {
      uint64_t a = g_central_pools[c].activity();
      if (a == seen[c]) g_central_pools[c].reclaim();
      seen[c] = g_central_pools[c].activity();
    }
  }
  return nullptr;
}

}  // namespace

void start_background() noexcept {
  if (!g_rt.config.config.background) return;
  int expected = kBgNone;
  if (!g_background.compare_exchange_strong(expected, kBgStarting)) return;
  int saved_errno = errno;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 128 * 1024);
  // The thread must never take a signal meant for the program: it starts
  // with every signal blocked (the mask is inherited from this thread).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  int rc = pthread_create(&t, &attr, background_main, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (rc == 0) pthread_setname_np(t, "slabby-purge");
  g_background.store(rc == 0 ? kBgRunning : kBgFailed, std::memory_order_release);
  errno = saved_errno;
}

namespace {

// When a release last emptied every CPU's cache (os::now_ms; 0: never).
std::atomic<uint64_t> g_last_full_release_ms{0};

// Both releases: every CPU's cache if every_cpu, else by release_for_trim's
// rule.
size_t release_free(bool every_cpu, uint64_t now_ms) noexcept {
  if (g_rt.init_state.load(std::memory_order_acquire) != kInitReady) return 0;
  cache_flush_all();  // this thread's own bins (in per-thread mode)
  // Emptying another CPU's cache means running there for a moment: a
  // migration (30-50 us here) per CPU that has a cache, at every call of a
  // program that trims after each request, and a wait for each busy CPU.
  // So malloc_trim visits every CPU at most once per decay period and
  // empties the calling CPU's cache in between; the background pass
  // empties idle CPUs' caches anyway.
  if (!every_cpu) {
    uint64_t last = g_last_full_release_ms.load(std::memory_order_relaxed);
    every_cpu = (last == 0 || now_ms - last >= decay_period_ms()) &&
                g_last_full_release_ms.compare_exchange_strong(last, now_ms == 0 ? 1 : now_ms,
                                                               std::memory_order_relaxed);
  }
  if (every_cpu)
    percpu_drain_idle(true);
  else
    percpu_drain_current();
  for (unsigned c = 1; c < kNumClasses; ++c) g_central_pools[c].reclaim();
  return g_rt.heap.purge_all();
}

}  // namespace

size_t release_all_now() noexcept { return release_free(true, 0); }

size_t release_for_trim(uint64_t now_ms) noexcept { return release_free(false, now_ms); }

}  // namespace slabby

#include "runtime/control.h"

#include <strings.h>

#include <cerrno>
#include <cstring>

#include "cache/percpu_cache.h"
#include "cache/thread_cache.h"
#include "common/lock.h"
#include "config/config.h"
#include "frontend/allocator.h"
#include "runtime/background.h"
#include "runtime/runtime.h"
#include "slabby/slabby.h"
#include "telemetry/heap_profile.h"
#include "telemetry/latency.h"
#include "telemetry/log.h"

namespace slabby {

namespace {

// Changes are serialised; g_rt.config keeps the effective values (so
// slabby_get_config and the stats show them).
Mutex g_control_mu;

// The options a running process may change, and how each takes effect.
enum class Live {
  kNo,
  kDecay,
  kRetain,
  kMaxHeap,
  kProf,
  kProfSample,
  kProfInterval,
  kLatency,
  kLogLevel
};

Live live_kind(const char* name) {
  struct Entry {
    const char* name;
    Live kind;
  };
  static constexpr Entry kLive[] = {
      {"SLABBY_DECAY_MS", Live::kDecay},         {"SLABBY_RETAIN_MAX", Live::kRetain},
      {"SLABBY_MAX_HEAP", Live::kMaxHeap},       {"SLABBY_PROF", Live::kProf},
      {"SLABBY_PROF_SAMPLE", Live::kProfSample}, {"SLABBY_PROF_INTERVAL_MS", Live::kProfInterval},
      {"SLABBY_LATENCY_SAMPLE", Live::kLatency}, {"SLABBY_MAX_ALLOC_LATENCY_NS", Live::kLatency},
      {"SLABBY_LOG_LEVEL", Live::kLogLevel},
  };
  for (const Entry& e : kLive)
    if (strcmp(e.name, name) == 0) return e.kind;
  return Live::kNo;
}

// "decay_ms", "Decay_MS" and "SLABBY_DECAY_MS" all name SLABBY_DECAY_MS.
bool full_name(const char* name, char* out, size_t cap) {
  static constexpr char kPrefix[] = "SLABBY_";
  size_t n = strlen(name);
  bool prefixed = n >= 7 && strncasecmp(name, kPrefix, 7) == 0;
  size_t total = n + (prefixed ? 0 : 7);
  if (n == 0 || total >= cap) return false;
  size_t at = 0;
  if (!prefixed) {
    memcpy(out, kPrefix, 7);
    at = 7;
  }
  for (size_t i = 0; i < n; ++i) {
    char c = name[i];
    out[at++] = c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
  }
  out[at] = '\0';
  return true;
}

int apply_live(Live kind, const Config& c) {
  switch (kind) {
    case Live::kNo:
      return SLABBY_ERR_FIXED;
    case Live::kDecay:
      g_rt.heap.lock();
      g_rt.heap.set_decay_ms(c.decay_ms);
      g_rt.heap.unlock();
      break;
    case Live::kRetain:
      g_rt.heap.lock();
      g_rt.heap.set_retain_max(c.retain_max);
      g_rt.heap.unlock();
      break;
    case Live::kMaxHeap:
      g_rt.heap.lock();
      g_rt.heap.set_max_heap(c.max_heap);
      g_rt.heap.unlock();
      break;
    case Live::kProf:
      if (!heap_profile_set_active(c.prof)) return SLABBY_ERR_UNAVAILABLE;
      break;
    case Live::kProfSample:
      heap_profile_set_sample(c.prof_sample);
      break;
    case Live::kProfInterval:
      heap_profile_set_interval(c.prof_interval_ms);
      if (c.prof_interval_ms != 0) start_background();
      break;
    case Live::kLatency:
      latency_set(c.latency_sample, c.max_alloc_latency_ns);
      break;
    case Live::kLogLevel:
      log_set_level(static_cast<int>(c.log_level));
      break;
  }
  return SLABBY_OK;
}

}  // namespace

int control_set_option(const char* name, const char* value) noexcept {
  if (name == nullptr || value == nullptr) return SLABBY_ERR_VALUE;
  if (!ensure_init()) return SLABBY_ERR_UNAVAILABLE;
  char full[96];
  if (!full_name(name, full, sizeof(full))) return SLABBY_ERR_UNKNOWN;
  size_t i = find_option(full);
  if (i == num_options()) return SLABBY_ERR_UNKNOWN;
  Live kind = live_kind(full);
  LockGuard g(g_control_mu);
  Config next = g_rt.config.config;
  if (!parse_option_value(i, value, &next)) return SLABBY_ERR_VALUE;
  if (kind == Live::kNo) return SLABBY_ERR_FIXED;
  int r = apply_live(kind, next);
  if (r != SLABBY_OK) return r;
  // Only the changed field is written: other threads read the config.
  const OptionSpec& o = option(i);
  if (o.flag != nullptr) g_rt.config.config.*o.flag = next.*o.flag;
  if (o.bytes != nullptr) g_rt.config.config.*o.bytes = next.*o.bytes;
  g_rt.config.source[i] = ValueSource::kEnvironment;
  if (kind == Live::kProf || kind == Live::kLatency) sampling_restart_this_thread();
  return SLABBY_OK;
}

size_t control_flush_thread_cache() noexcept {
  if (g_rt.init_state.load(std::memory_order_acquire) != kInitReady) return 0;
  return static_cast<size_t>(cache_flush_all() + percpu_drain_current());
}

int control_dump_profile(const char* path) noexcept {
  int r = heap_profile_dump(path);
  if (r == 0) return SLABBY_OK;
  return r == EINVAL ? SLABBY_ERR_UNAVAILABLE : SLABBY_ERR_VALUE;
}

}  // namespace slabby

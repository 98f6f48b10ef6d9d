#include "frontend/allocator.h"

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "common/writer.h"
#include "frontend/glibc.h"
#include "os/os.h"
#include "runtime/background.h"
#include "secure/checks.h"
#include "telemetry/heap_profile.h"
#include "telemetry/latency.h"
#include "telemetry/log.h"

namespace slabby {

size_t glibc_usable_size(const void* p) {
  size_t word = reinterpret_cast<const size_t*>(p)[-1];
  size_t chunk = word & ~size_t{7};
  if (word & 2) return chunk - 2 * sizeof(size_t);  // mmapped chunk
  return chunk - sizeof(size_t);
}

void invalid_pointer(const char* what, const void* p) {
  char msg[160];
  size_t n = 0;
  auto add = [&](const char* s) {
    while (*s && n < sizeof(msg) - 1) msg[n++] = *s++;
  };
  add("slabby: ");
  add(what);
  add(" of invalid pointer 0x");
  uintptr_t v = reinterpret_cast<uintptr_t>(p);
  char hex[17];
  int h = 0;
  do {
    hex[h++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  while (h > 0 && n < sizeof(msg) - 1) msg[n++] = hex[--h];
  add(" (inside slabby's heap, not the start of a live block)");
  msg[n] = '\0';
  os::fatal(msg);
}

void* fallback_alloc(size_t n, size_t align) noexcept {
  // SLABBY_HEAP_FALLBACK=0: slabby's limit is the program's (read only once
  // init succeeded; before, or if init failed, glibc always serves).
  if (g_rt.init_state.load(std::memory_order_acquire) == kInitReady &&
      !g_rt.config.config.heap_fallback) {
    errno = ENOMEM;
    return nullptr;
  }
  void* p = align > kMinAlign ? __libc_memalign(align, n) : __libc_malloc(n);
  if (p == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  g_rt.heap_fallbacks.fetch_add(1, std::memory_order_relaxed);
  unsigned cls = n <= kMaxClassSize && align <= kMinAlign ? class_of_size(n) : 0;
  g_rt.class_fallbacks[cls].fetch_add(1, std::memory_order_relaxed);
  if (SLABBY_UNLIKELY(log_enabled(LogLevel::kInfo)))
    LogLine(LogEvent::kHeapFallback, LogLevel::kInfo).u64("bytes", n);
  return p;
}

namespace {

// The countdown is never set further than this, so a change of
// SLABBY_LATENCY_SAMPLE or of profiling at run time reaches every thread
// within this many of its allocations (one slow call per 65536 when both
// samplers are off).
constexpr int32_t kMaxArm = 1 << 16;

struct Due {
  bool latency;  // time this allocation
  bool prof;     // a heap-profile candidate
};

// The thread's countdown ran out: which sampler is due. Re-arms it for the
// nearer of the two (each keeps its own count of allocations left).
Due countdown_fired(ThreadCache& tc) {
  Due d{false, false};
  int32_t every = static_cast<int32_t>(g_latency_sample > INT32_MAX ? INT32_MAX : g_latency_sample);
  bool prof = g_prof_active.load(std::memory_order_relaxed);
  int32_t elapsed = tc.sample_armed;
  if (elapsed == 0) {
    // The thread's first allocation: it is timed when sampling is on.
    d.latency = every != 0;
    tc.latency_left = every;
    tc.prof_left = static_cast<int32_t>(prof_next_candidate(tc.prof));
  } else {
    if (every != 0) {
      tc.latency_left -= elapsed;
      if (tc.latency_left <= 0) {
        d.latency = true;
        tc.latency_left = every;
      } else if (tc.latency_left > every) {
        tc.latency_left = every;  // the period was shortened
      }
    }
    tc.prof_left -= elapsed;
    if (tc.prof_left <= 0) {
      d.prof = prof;
      tc.prof_left = static_cast<int32_t>(prof_next_candidate(tc.prof));
    }
  }
  int32_t arm = kMaxArm;
  if (every != 0 && tc.latency_left < arm) arm = tc.latency_left;
  if (prof && tc.prof_left < arm) arm = tc.prof_left;
  tc.sample_armed = arm;
  tc.sample_countdown = arm - 1;
  return d;
}

// The sampled allocation, timed end to end into the latency histogram.
template <class Alloc>
SLABBY_INLINE void* timed(Alloc alloc) {
  uint64_t t0 = cycles_now();
  void* p = alloc();
  latency_record(cycles_now() - t0);
  return p;
}

void* alloc_large_untimed(size_t n, size_t align, unsigned flags) noexcept {
  if (SLABBY_UNLIKELY(n > kMaxRequest)) {
    if (g_checks.on) checked_huge_request(n);
    errno = ENOMEM;
    return nullptr;
  }
  if (SLABBY_UNLIKELY(!ensure_init())) return fallback_alloc(n, align);
  if (SLABBY_UNLIKELY(g_checks.on)) return checked_alloc_large(n, align, flags);
  Span* s = g_rt.heap.alloc_large(n == 0 ? 1 : n, align < kPageSize ? kPageSize : align, flags);
  if (SLABBY_UNLIKELY(s == nullptr)) return fallback_alloc(n, align);  // arena exhausted
  maybe_start_background();
  return reinterpret_cast<void*>(s->start);
}

// Medium requests (up to 1 MiB, alignment up to a page: every medium block
// starts on one) are blocks of a class, through the caches; the checked
// paths choose their own (secure/checks.h checked_medium_class_of: the
// canary after the request, no medium class under SLABBY_GUARD_PAGES).
// The checks are read once init is done (it sets them); before, or if init
// failed, the request goes on to alloc_span, which sorts that out.
SLABBY_INLINE bool is_medium_request(size_t n, size_t align) {
  return n <= kMaxClassSize && align <= kPageSize && SLABBY_LIKELY(ensure_init()) &&
         SLABBY_LIKELY(!g_checks.on);
}

}  // namespace

namespace {

// A heap-profile sample: a page span of its own (its free reaches the span
// path, which drops it from the profile), recorded with the caller's stack.
// Its usable size is what the block would have had unsampled (its class's
// size up to 1 MiB), so sampling changes nothing a program can see, and
// realloc copies no more than that.
SLABBY_NOINLINE void* alloc_profiled(size_t n, size_t align, const ProfWeight& w) {
  bool classed = !g_checks.on && n <= kMaxClassSize;
  size_t usable = classed ? class_size(class_of_size(n)) : n;
  // The span holds all of `usable` (a checked block: a span, never a medium class's).
  void* p = g_checks.on ? checked_alloc_span(usable, align) : alloc_large_untimed(usable, align, 0);
  if (p != nullptr && g_rt.heap.owns(p)) {
    Span* s = g_rt.heap.span_of(p);
    s->sampled = true;
    if (classed) s->usable = usable;
    heap_profile_record(p, n, w);
  }
  return p;
}

}  // namespace

void* alloc_sampled(uintptr_t cls, size_t n) noexcept {
  // A thread's first allocation lands here (its countdown starts at 0),
  // possibly before init has read the settings. It initialises the thread
  // too: the CPU's cache may serve the thread's calls without a miss, and
  // the thread should be registered (stats, its teardown) from its first.
  thread_init();
  if (SLABBY_UNLIKELY(!ensure_init())) return fallback_alloc(class_size(cls), 0);
  ThreadCache& tc = tl_cache;
  bool first = tc.sample_armed == 0;  // (or the first since sampling was restarted)
  Due d = countdown_fired(tc);
  // Medium classes are sampled by bytes in alloc_large.
  if (d.prof && cls < kNumSmallClasses) {
    ProfWeight w;
    size_t size = class_size(cls);
    if (prof_take_small(tc.prof, size, &w)) {
      if (!d.latency) return alloc_profiled(size, 0, w);
      return timed([&] { return alloc_profiled(size, 0, w); });
    }
  }
  // The thread's first block: not the one on top of its cache (cache_alloc_first;
  // under a divert, its own rule with checked blocks: SmallDivert::alloc_first).
  if (first && cls < kNumSmallClasses) {
    auto c = static_cast<unsigned>(cls);
    if (!d.latency) return cache_alloc_first(c, n);
    return timed([c, n] { return cache_alloc_first(c, n); });
  }
  if (!d.latency) return alloc_in_class_untimed(cls, n);
  return timed([cls, n] { return alloc_in_class_untimed(cls, n); });
}

void sampling_restart_this_thread() noexcept {
  ThreadCache& tc = tl_cache;
  tc.sample_armed = 0;
  tc.sample_countdown = 0;
}

void* alloc_span(size_t n, size_t align, unsigned flags) noexcept {
  if (SLABBY_LIKELY(!sample_due(tl_cache_offset()))) return alloc_large_untimed(n, align, flags);
  if (SLABBY_UNLIKELY(!ensure_init())) return fallback_alloc(n, align);
  if (!countdown_fired(tl_cache).latency) return alloc_large_untimed(n, align, flags);
  return timed([=] { return alloc_large_untimed(n, align, flags); });
}

namespace {

// Requests past the small classes count their bytes down to the profile's
// next sample point (nullptr: not sampled, or profiling is off).
SLABBY_INLINE void* maybe_profiled(size_t n, size_t align) {
  if (SLABBY_LIKELY(!g_prof_active.load(std::memory_order_relaxed))) return nullptr;
  ProfWeight w;
  if (!prof_take_bytes(tl_cache.prof, n, &w)) return nullptr;
  if (SLABBY_UNLIKELY(n > kMaxRequest)) return nullptr;
  return alloc_profiled(n, align, w);
}

}  // namespace

void* alloc_large(size_t n, size_t align) noexcept {
  if (void* p = maybe_profiled(n, align)) return p;
  if (is_medium_request(n, align)) {
    // With pages above 32 KiB, aligned_alloc sends small requests here when
    // no small class is aligned enough (align 64 KiB): a medium block is.
    if constexpr (kPageSize > kMaxSmallSize) {
      if (n <= kMaxSmallSize) n = kMaxSmallSize + 1;
    }
    return alloc_in_class(class_of_size(n), n);
  }
  return alloc_span(n, align, 0);
}

namespace {

SLABBY_NOINLINE void forget_if_sampled(void* p) noexcept {
  Span* s = g_rt.heap.span_of(p);
  if (s != nullptr && s->state == SpanState::kLarge && s->sampled) {
    s->sampled = false;
    heap_profile_forget(p);
  }
}

}  // namespace

void free_not_small(void* p) noexcept {
  if (SLABBY_UNLIKELY(g_prof_tables.load(std::memory_order_relaxed))) forget_if_sampled(p);
  if (SLABBY_UNLIKELY(g_checks.on)) return checked_free_large(p);
  Span* s = g_rt.heap.span_of(p);
  if (SLABBY_LIKELY(s != nullptr && s->state == SpanState::kLarge &&
                    s->start == reinterpret_cast<uintptr_t>(p))) {
    g_rt.heap.free_large(s);
    return;  // (the background thread starts from allocations only: runtime/background.h)
  }
  invalid_pointer("free", p);
}

void free_foreign(void* p) noexcept {
  if (p == nullptr) return;
  g_rt.foreign_frees.fetch_add(1, std::memory_order_relaxed);
  int saved = errno;
  __libc_free(p);
  errno = saved;
}

void* aligned_alloc_impl(size_t align, size_t n) noexcept {
  if (align <= kMinAlign) return malloc_fast(n);
  // The checks are read once init (which sets them) is done.
  if (SLABBY_UNLIKELY(!ensure_init())) return fallback_alloc(n, align);
  if (SLABBY_UNLIKELY(g_checks.small)) return checked_aligned(align, n);
  if (align <= kPageSize) {
    unsigned cls = aligned_size_class_of(n, align);
    if (cls != 0) return alloc_in_class(cls, n);
  }
  if (SLABBY_UNLIKELY(n > kMaxRequest)) {
    errno = ENOMEM;
    return nullptr;
  }
  return alloc_large(n, align);
}

void* calloc_impl(size_t count, size_t size) noexcept {
  size_t total;
  if (SLABBY_UNLIKELY(__builtin_mul_overflow(count, size, &total))) {
    if (g_checks.on) checked_calloc_overflow(count, size);
    errno = ENOMEM;
    return nullptr;
  }
  if (SLABBY_LIKELY(total <= kMaxSmallSize)) {
    void* p = alloc_in_class(size_class_of(total), total);
    if (SLABBY_LIKELY(p != nullptr)) memset(p, 0, total);
    return p;
  }
  return calloc_large(total);
}

namespace {

void count_memset(size_t bytes) {
  g_rt.calloc_memset.fetch_add(1, std::memory_order_relaxed);
  g_rt.calloc_memset_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

}  // namespace

namespace {

// Zeroes a block of whole pages from the page heap (or glibc's), sampled
// or not, without faulting in what the program will not touch.
void* zero_large(void* p, size_t total) {
  if (!g_rt.heap.owns(p)) {
    memset(p, 0, total);  // a glibc fallback block
  } else if (SLABBY_UNLIKELY(g_checks.on)) {
    // A checked block: a page span, or a medium class's block. Freed blocks
    // are zeroed with SLABBY_ZERO=free (and SLABBY_SECURE), and the checked
    // paths have just found this one still zero: nothing to write. Otherwise
    // (a span's guards and canaries around it, so not page-aligned) its
    // resident pages, as below, and the partial pages at its ends; nothing
    // when its span is fresh.
    bool fresh = g_rt.heap.class_of(p) == 0 && g_rt.heap.span_of(p)->zeroed;
    if (fresh)
      g_rt.calloc_fresh.fetch_add(1, std::memory_order_relaxed);
    else if (!g_checks.zero_free)
      count_memset(os::zero_resident(p, total));
  } else if (g_rt.heap.span_of(p)->zeroed) {
    // Pages fresh from the OS or purged since their last use are zero.
    g_rt.calloc_fresh.fetch_add(1, std::memory_order_relaxed);
  } else {
    // Old data: only the resident pages are written (the others read as
    // zero already, or are returned to the OS), so nothing is faulted in
    // that the program does not touch (docs/benchmarks.md, calloc).
    // The requested bytes only, not the span's class rounding (up to a
    // quarter more, whose pages another block's data may keep resident).
    Span* s = g_rt.heap.span_of(p);
    size_t span = size_t{s->pages} << kPageShift;
    size_t bytes = round_up(total, os::mincore_page_size());
    count_memset(os::zero_pages(p, bytes < span ? bytes : span));
  }
  return p;
}

}  // namespace

void* calloc_large(size_t total) noexcept {
  // A sampled block is one of whole pages too: the heap profile samples by
  // bytes, so nearly every big calloc is one when it is on.
  if (void* p = maybe_profiled(total, 0)) return zero_large(p, total);
  if (is_medium_request(total, 0)) {
    void* p = alloc_in_class(medium_class_of(total), total);
    if (p == nullptr) return nullptr;
    memset(p, 0, total);
    count_memset(total);
    return p;
  }
  void* p = alloc_span(total, 0, kLargeZeroTable);
  if (p == nullptr) return nullptr;
  return zero_large(p, total);
}

size_t usable_size_impl(const void* p) noexcept {
  if (p == nullptr) return 0;
  if (!g_rt.heap.owns(p)) return glibc_usable_size(p);
  if (SLABBY_UNLIKELY(g_checks.on)) return checked_usable_size(p);
  unsigned cls = g_rt.heap.class_of(p);
  if (cls != 0) return class_size(cls);
  Span* s = g_rt.heap.span_of(p);
  if (s != nullptr && s->state == SpanState::kLarge && s->start == reinterpret_cast<uintptr_t>(p))
    return s->sampled ? s->usable : uintptr_t{s->pages} << kPageShift;
  invalid_pointer("malloc_usable_size", p);
}

}  // namespace slabby

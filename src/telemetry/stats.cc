#include "telemetry/stats.h"

#include <unistd.h>

#include <cstring>

#include "cache/percpu_cache.h"
#include "common/writer.h"
#include "os/os.h"
#include "runtime/background.h"
#include "runtime/breaker.h"
#include "runtime/runtime.h"
#include "secure/checks.h"
#include "secure/guard_fault.h"
#include "telemetry/heap_profile.h"

namespace slabby {

void collect_stats(slabby_stats* out) {
  memset(out, 0, sizeof(*out));
  out->version = SLABBY_STATS_VERSION;
  out->struct_size = sizeof(*out);
  out->num_classes = kNumClasses - 1;  // classes[i] describes class i + 1
  if (g_rt.init_state.load(std::memory_order_acquire) != kInitReady) {
    out->heap_fallbacks = g_rt.heap_fallbacks.load(std::memory_order_relaxed);
    out->foreign_frees = g_rt.foreign_frees.load(std::memory_order_relaxed);
    return;
  }

  uint64_t allocs[kNumClasses] = {}, frees[kNumClasses] = {}, cached[kNumClasses] = {};
  int64_t percpu_net[kNumClasses] = {};
  {
    LockGuard g(g_threads.mu);
    for (unsigned c = 1; c < kNumClasses; ++c) {
      allocs[c] = g_threads.retired_allocs[c];
      frees[c] = g_threads.retired_frees[c];
      percpu_net[c] = g_threads.retired_percpu_net[c];
    }
    // Other threads' counters are read while they run: each 64-bit load is
    // atomic on the platforms slabby supports, so a figure may be a moment
    // old but never torn.
    for (ThreadCache* t = g_threads.list; t != nullptr; t = t->next) {
      for (unsigned c = 1; c < kNumClasses; ++c) {
        allocs[c] += __atomic_load_n(&t->allocs[c], __ATOMIC_RELAXED);
        frees[c] += __atomic_load_n(&t->frees[c], __ATOMIC_RELAXED);
        percpu_net[c] += __atomic_load_n(&t->percpu_net[c], __ATOMIC_RELAXED);
        cached[c] += static_cast<uint32_t>(__atomic_load_n(&t->bins[c].limit, __ATOMIC_RELAXED) -
                                           __atomic_load_n(&t->bins[c].space, __ATOMIC_RELAXED));
      }
    }
    out->realloc_copies = g_threads.retired_realloc_copies;
    out->realloc_copied_bytes = g_threads.retired_realloc_copied_bytes;
    for (ThreadCache* t = g_threads.list; t != nullptr; t = t->next) {
      out->realloc_copies += __atomic_load_n(&t->realloc_copies, __ATOMIC_RELAXED);
      out->realloc_copied_bytes += __atomic_load_n(&t->realloc_copied_bytes, __ATOMIC_RELAXED);
    }
    out->threads_live = g_threads.live;
    out->threads_exited = g_threads.exited;
  }
  {
    // The CPU caches' blocks, and the inline paths' hits on them (counted in
    // the regions).
    uint64_t pops[kNumClasses] = {}, pushes[kNumClasses] = {};
    percpu_fast_counts(percpu_net, cached, pops, pushes);
    for (unsigned c = 1; c < kNumClasses; ++c) {
      allocs[c] += pops[c];
      frees[c] += pushes[c];
    }
  }
  uint64_t resident[kNumClasses] = {};
  out->resident_bytes = g_rt.heap.resident(resident, kNumClasses);

  for (unsigned c = 1; c < kNumClasses; ++c) {
    allocs[c] += g_threads.uncached_allocs[c].load(std::memory_order_relaxed);
    frees[c] += g_threads.uncached_frees[c].load(std::memory_order_relaxed);
    slabby_class_stats& s = out->classes[c - 1];
    CentralPoolStats p = g_central_pools[c].stats();
    s.block_size = class_size(c);
    s.slab_bytes = slab_bytes(c);
    s.allocations = allocs[c];
    s.frees = frees[c];
    // A block freed on one thread may be counted before its allocation on
    // another is: clamp rather than wrap.
    s.live_blocks = allocs[c] > frees[c] ? allocs[c] - frees[c] : 0;
    s.live_bytes = s.live_blocks * s.block_size;
    s.cached_blocks = cached[c];
    s.slabs = p.slabs;
    s.mapped_bytes = p.slabs * s.slab_bytes;
    s.resident_bytes = resident[c];
    s.refills = p.refills;
    s.flushes = p.flushes;
    s.fallbacks = g_rt.class_fallbacks[c].load(std::memory_order_relaxed);
    uint64_t uncached = g_threads.uncached_allocs[c].load(std::memory_order_relaxed);
    uint64_t misses = p.refills + uncached;
    s.cache_hits = s.allocations > misses ? s.allocations - misses : 0;
    s.lock_free_hits = p.lock_free_hits;
    s.shard_hits = p.shard_hits;
    s.new_slabs = p.new_slabs;
    s.transfer_batches = p.stack_batches;
    out->cache_hits += s.cache_hits;
    out->lock_free_hits += s.lock_free_hits;
    out->shard_hits += s.shard_hits;
    out->new_slabs += s.new_slabs;
    out->total_allocations += s.allocations;
    out->total_deallocations += s.frees;
    out->live_bytes += s.live_bytes;
  }

  PageHeapStats h = g_rt.heap.stats();
  out->large_allocations = h.large_allocations;
  out->large_frees = h.large_frees;
  out->large_live_bytes = h.large_live_bytes;
  out->total_allocations += h.large_allocations;
  out->total_deallocations += h.large_frees;
  out->live_bytes += h.large_live_bytes;
  out->current_allocations = out->total_allocations > out->total_deallocations
                                 ? out->total_allocations - out->total_deallocations
                                 : 0;
  out->heap_fallbacks = g_rt.heap_fallbacks.load(std::memory_order_relaxed);
  out->foreign_frees = g_rt.foreign_frees.load(std::memory_order_relaxed);
  out->cache_mode = g_percpu_mode ? SLABBY_CACHE_PER_CPU : SLABBY_CACHE_PER_THREAD;
  out->num_shards = g_rt.num_shards;
  out->arena_reserved_bytes = g_rt.heap.size();
  out->mapped_bytes = h.in_use_bytes;
  out->free_dirty_bytes = h.free_dirty_bytes;
  out->metadata_bytes = h.metadata_bytes;
  out->purged_bytes = os::purged_bytes();
  out->madvise_calls = os::madvise_calls();
  out->retained_bytes = h.free_clean_bytes;
  out->purge_passes = h.purge_passes;
  out->decay_purged_bytes = h.decay_purged_bytes;
  // Remapped spans, spans marked for huge pages and runs of slab chunks
  // marked now are mappings of their own.
  out->mappings = os::mappings() + h.remapped_live + h.huge_page_spans + h.huge_slab_runs;
  out->max_heap_bytes = g_rt.config.config.max_heap;
  out->limit_refusals = h.limit_refusals;
  out->realloc_grown_in_place = h.grown_in_place;
  out->realloc_shrunk_in_place = h.shrunk_in_place;
  out->realloc_remaps = h.remap_moves;
  out->realloc_remap_failures = h.remap_failures;
  out->remapped_blocks = h.remapped_live;
  out->lost_bytes = h.lost_bytes;
  ProfCounters prof = heap_profile_counters();
  out->prof_samples = prof.samples;
  out->prof_live_samples = prof.live_samples;
  out->prof_dropped = prof.dropped;
  out->prof_dumps = prof.dumps;
  out->cpu_cache_capacity_bytes = percpu_capacity_bytes();
  out->cpu_cache_grows = percpu_grows();
  out->cpu_cache_shrinks = percpu_shrinks();
  out->thread_cache_grows = g_threads.bin_grows.load(std::memory_order_relaxed);
  out->thread_cache_shrinks = g_threads.bin_shrinks.load(std::memory_order_relaxed);
  out->huge_slab_bytes = h.huge_slab_chunks * os::huge_page_size();
  out->huge_fault_ns = h.huge_fault_ns;
  out->small_fault_ns = h.small_fault_ns;
  out->huge_slab_declined = h.huge_slab_declined;
  out->calloc_fresh = g_rt.calloc_fresh.load(std::memory_order_relaxed);
  out->calloc_memset = g_rt.calloc_memset.load(std::memory_order_relaxed);
  out->calloc_memset_bytes = g_rt.calloc_memset_bytes.load(std::memory_order_relaxed);
  out->background_thread = g_background.load(std::memory_order_relaxed) == kBgRunning ? 1 : 0;
  BreakerStats b = g_breaker.stats();
  out->breaker_state = static_cast<uint32_t>(b.state);
  out->breaker_enabled = g_breaker.enabled() ? 1 : 0;
  out->breaker_transitions = b.transitions;
  out->breaker_opens = b.opens;
  out->breaker_last_transition_ms = b.last_transition_unix_ms;
  out->breaker_failures = b.failures;
  out->breaker_rejections = b.rejections;
  out->last_purge_ns = h.last_purge_ns;
  const Checks& k = g_checks;
  out->security_modes = (k.zero_free ? SLABBY_SECURITY_ZERO_FREE : 0) |
                        (k.zero_alloc ? SLABBY_SECURITY_ZERO_ALLOC : 0) |
                        (k.bitguard ? SLABBY_SECURITY_BITGUARD : 0) |
                        (k.guard_large ? SLABBY_SECURITY_GUARD_PAGES : 0) |
                        (k.guard_sample != 0 ? SLABBY_SECURITY_GUARD_SAMPLE : 0) |
                        (k.quarantine != 0 ? SLABBY_SECURITY_QUARANTINE : 0) |
                        (k.leak_check ? SLABBY_SECURITY_LEAK_CHECK : 0);
  out->guard_page_violations = g_guard_violations.load(std::memory_order_relaxed);
  out->guarded_blocks = g_live_guarded.load(std::memory_order_relaxed);
  out->guarded_blocks_total = g_guarded_total.load(std::memory_order_relaxed);
}

void print_report(int fd) {
  static slabby_stats s;  // 3 KiB: static, not on a possibly small stack
  static Mutex report_mu;
  LockGuard g(report_mu);
  collect_stats(&s);
  Writer w(fd);
  auto row = [&w](const char* name, uint64_t v) {
    w.str("slabby:   ").str_pad(name, 22).u64_pad(v, 16).ch('\n');
  };
  auto row_bytes = [&w](const char* name, uint64_t v) {
    w.str("slabby:   ").str_pad(name, 22).u64_pad(v, 16).str("  (").bytes(v).str(")\n");
  };
  w.str("slabby: stats for pid ").u64(static_cast<uint64_t>(getpid()));
  w.str(" (slabby " SLABBY_VERSION_STRING ", ");
  w.str(s.cache_mode == SLABBY_CACHE_PER_CPU ? "per-CPU caches" : "per-thread caches");
  // Below SLABBY_PERCPU_THREADS live threads, threads run on their own bins.
  if (s.cache_mode == SLABBY_CACHE_PER_CPU && g_threads.percpu_threads > 1)
    w.str(" from ").u64(g_threads.percpu_threads).str(" live threads");
  w.str(kHardenedBuild ? ", hardened library)\n" : ")\n");
  row("total_allocations", s.total_allocations);
  row("total_deallocations", s.total_deallocations);
  row("current_allocations", s.current_allocations);
  row_bytes("live_bytes", s.live_bytes);
  row("large_allocations", s.large_allocations);
  row_bytes("large_live_bytes", s.large_live_bytes);
  row("heap_fallbacks", s.heap_fallbacks);
  row("limit_refusals", s.limit_refusals);
  row("foreign_frees", s.foreign_frees);
  row_bytes("arena_reserved_bytes", s.arena_reserved_bytes);
  row_bytes("mapped_bytes", s.mapped_bytes);
  row_bytes("resident_bytes", s.resident_bytes);
  row_bytes("free_dirty_bytes", s.free_dirty_bytes);
  row_bytes("metadata_bytes", s.metadata_bytes);
  row_bytes("purged_bytes", s.purged_bytes);
  row("madvise_calls", s.madvise_calls);
  row_bytes("retained_bytes", s.retained_bytes);
  row("purge_passes", s.purge_passes);
  row("mappings", s.mappings);
  row("background_thread", s.background_thread);
  row("threads_live", s.threads_live);
  row("threads_exited", s.threads_exited);
  row("cache_hits", s.cache_hits);
  row("lock_free_hits", s.lock_free_hits);
  row("shard_hits", s.shard_hits);
  row("new_slabs", s.new_slabs);
  row("num_shards", s.num_shards);
  row("realloc_grown_in_place", s.realloc_grown_in_place);
  row("realloc_shrunk_in_place", s.realloc_shrunk_in_place);
  row("realloc_remaps", s.realloc_remaps);
  row("realloc_copies", s.realloc_copies);
  row_bytes("realloc_copied_bytes", s.realloc_copied_bytes);
  row("remapped_blocks", s.remapped_blocks);
  row("calloc_fresh", s.calloc_fresh);
  row("calloc_memset", s.calloc_memset);
  row_bytes("calloc_memset_bytes", s.calloc_memset_bytes);
  if (s.realloc_remap_failures != 0) row("realloc_remap_failures", s.realloc_remap_failures);
  if (s.lost_bytes != 0) row_bytes("lost_bytes", s.lost_bytes);
  if (s.cache_mode == SLABBY_CACHE_PER_CPU) {
    row_bytes("cpu_cache_capacity", s.cpu_cache_capacity_bytes);
    row("cpu_cache_grows", s.cpu_cache_grows);
    row("cpu_cache_shrinks", s.cpu_cache_shrinks);
  }
  if (s.thread_cache_grows != 0) {
    row("thread_cache_grows", s.thread_cache_grows);
    row("thread_cache_shrinks", s.thread_cache_shrinks);
  }
  if (s.huge_slab_bytes != 0) row_bytes("huge_slab_bytes", s.huge_slab_bytes);
  if (s.huge_fault_ns != 0 || s.huge_slab_declined != 0) {
    row("huge_fault_ns", s.huge_fault_ns);
    row("small_fault_ns", s.small_fault_ns);
    row("huge_slab_declined", s.huge_slab_declined);
  }
  if (s.prof_samples != 0 || s.prof_dumps != 0) {
    row("prof_samples", s.prof_samples);
    row("prof_live_samples", s.prof_live_samples);
    row("prof_dropped", s.prof_dropped);
    row("prof_dumps", s.prof_dumps);
  }
  static slabby_health h;
  collect_health(s, &h);
  auto row_ratio = [&w](const char* name, double v) {
    w.str("slabby:   ").str_pad(name, 22);
    uint64_t fixed = static_cast<uint64_t>((v < 0 ? 0 : v > 1 ? 1 : v) * 10000 + 0.5);
    w.str("          ").fixed(fixed, 4).ch('\n');
  };
  w.str("slabby: circuit breaker ")
      .str(breaker_state_name(static_cast<BreakerState>(s.breaker_state)))
      .str(s.breaker_enabled ? "" : " (off)")
      .str(", ")
      .u64(s.breaker_transitions)
      .str(" transitions, ")
      .u64(s.breaker_failures)
      .str(" failures, ")
      .u64(s.breaker_rejections)
      .str(" rejections\n");
  w.str("slabby: health\n");
  row("alloc_latency_p50", h.alloc_latency_p50);
  row("alloc_latency_p95", h.alloc_latency_p95);
  row("alloc_latency_p99", h.alloc_latency_p99);
  row("alloc_latency_max", h.alloc_latency_max);
  row("latency_samples", h.latency_samples);
  row("slow_allocations", h.slow_allocations);
  row_ratio("fragmentation_score", h.fragmentation_score);
  row_ratio("memory_pressure", h.memory_pressure);
  row_ratio("error_rate", h.error_rate);
  row_ratio("cache_efficiency", h.cache_efficiency);
  row_ratio("health_score", h.health_score);
  w.str("slabby:   ")
      .str_pad("recent_trend", 22)
      .str("  ")
      .str(trend_name(h.recent_trend))
      .ch('\n');
  row("last_gc_duration", h.last_gc_duration);
  w.str(
      "slabby: class   block      allocs       frees        live   cached  slabs      mapped    "
      "resident\n");
  for (uint32_t i = 0; i < s.num_classes; ++i) {
    const slabby_class_stats& c = s.classes[i];
    if (c.allocations == 0 && c.slabs == 0) continue;
    w.str("slabby: ").u64_pad(i + 1, 5).u64_pad(c.block_size, 8).u64_pad(c.allocations, 12);
    w.u64_pad(c.frees, 12).u64_pad(c.live_blocks, 12).u64_pad(c.cached_blocks, 9);
    w.u64_pad(c.slabs, 7).u64_pad(c.mapped_bytes, 12).u64_pad(c.resident_bytes, 12).ch('\n');
  }
}

}  // namespace slabby

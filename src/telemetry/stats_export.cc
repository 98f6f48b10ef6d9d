// slabby: the stats in machine formats, JSON and the Prometheus text
// exposition format, written without allocating.
//
// One table per level (process, size class) names every exported field once:
// its JSON key (the seeds' AllocatorStats names in snake_case where they
// have one: total_allocations, pcpu_cache_hits, ...), its Prometheus name
// (slabby_ prefix; counters end in _total, gauges do not) and its help text.
// Derived figures are documented in docs/stats.md.
#include <cstddef>
#include <cstring>

#include "common/lock.h"
#include "common/writer.h"
#include "runtime/breaker.h"
#include "runtime/runtime.h"
#include "telemetry/stats.h"

namespace slabby {

namespace {

enum class Kind { kCounter, kGauge };

struct Field {
  const char* json;
  const char* prom;  // without the slabby_ prefix
  Kind kind;
  size_t offset;
  const char* help;
};

#define PROCESS(json, prom, kind, member, help) \
  Field { json, prom, Kind::kind, offsetof(slabby_stats, member), help }
constexpr Field kProcess[] = {
    PROCESS("total_allocations", "allocations_total", kCounter, total_allocations,
            "Allocations slabby served (small blocks and large spans)."),
    PROCESS("total_deallocations", "deallocations_total", kCounter, total_deallocations,
            "Frees of slabby's blocks."),
    PROCESS("current_allocations", "live_allocations", kGauge, current_allocations,
            "Live blocks: total_allocations - total_deallocations."),
    PROCESS("live_bytes", "live_bytes", kGauge, live_bytes, "Usable bytes of live blocks."),
    PROCESS("large_allocations", "large_allocations_total", kCounter, large_allocations,
            "Allocations above the largest size class (page spans)."),
    PROCESS("large_frees", "large_frees_total", kCounter, large_frees, "Frees of large spans."),
    PROCESS("large_live_bytes", "large_live_bytes", kGauge, large_live_bytes,
            "Bytes of live large spans."),
    PROCESS("heap_fallbacks", "heap_fallbacks_total", kCounter, heap_fallbacks,
            "Allocations served by the system allocator instead of slabby."),
    PROCESS("foreign_frees", "foreign_frees_total", kCounter, foreign_frees,
            "Frees and reallocs of pointers slabby does not own, passed to glibc."),
    PROCESS("pcpu_cache_hits", "cache_hits_total", kCounter, cache_hits,
            "Allocations served by a per-CPU (or per-thread) cache without a refill."),
    PROCESS("lock_free_hits", "lock_free_hits_total", kCounter, lock_free_hits,
            "Cache refills served by a batch from a lock-free transfer stack."),
    PROCESS("shard_hits", "shard_hits_total", kCounter, shard_hits,
            "Cache refills served from existing slabs in the sharded lists."),
    PROCESS("new_slabs", "new_slabs_total", kCounter, new_slabs,
            "Slabs carved from the page heap."),
    PROCESS("arena_reserved_bytes", "arena_reserved_bytes", kGauge, arena_reserved_bytes,
            "Virtual address space reserved for the arena."),
    PROCESS("mapped_bytes", "mapped_bytes", kGauge, mapped_bytes,
            "Arena bytes in use by slabs and large spans (active)."),
    PROCESS("resident_bytes", "resident_bytes", kGauge, resident_bytes,
            "Arena pages resident in RAM (mincore)."),
    PROCESS("free_dirty_bytes", "free_dirty_bytes", kGauge, free_dirty_bytes,
            "Free pages kept mapped for reuse (not yet purged)."),
    PROCESS("retained_bytes", "retained_bytes", kGauge, retained_bytes,
            "Free pages purged but kept reserved for reuse."),
    PROCESS("metadata_bytes", "metadata_bytes", kGauge, metadata_bytes,
            "Span descriptors, page map and class map."),
    PROCESS("purged_bytes", "purged_bytes_total", kCounter, purged_bytes,
            "Bytes returned to the OS with MADV_DONTNEED."),
    PROCESS("decay_purged_bytes", "decay_purged_bytes_total", kCounter, decay_purged_bytes,
            "Of purged_bytes, those returned because they were free for SLABBY_DECAY_MS."),
    PROCESS("madvise_calls", "madvise_calls_total", kCounter, madvise_calls,
            "MADV_DONTNEED calls."),
    PROCESS("purge_passes", "purge_passes_total", kCounter, purge_passes,
            "Purges that returned memory (cap, decay or malloc_trim)."),
    PROCESS("mappings", "mappings", kGauge, mappings, "Memory mappings slabby holds."),
    PROCESS("max_heap_bytes", "max_heap_bytes", kGauge, max_heap_bytes,
            "SLABBY_MAX_HEAP, the cap on slabby's memory in use (0: none)."),
    PROCESS("limit_refusals", "limit_refusals_total", kCounter, limit_refusals,
            "Span requests refused by SLABBY_MAX_HEAP (served by glibc or failed)."),
    PROCESS("threads_live", "threads_live", kGauge, threads_live,
            "Threads with an active slabby cache."),
    PROCESS("threads_exited", "threads_exited_total", kCounter, threads_exited,
            "Threads whose cache was returned at exit."),
    PROCESS("breaker_transitions", "breaker_transitions_total", kCounter, breaker_transitions,
            "Circuit breaker state changes."),
    PROCESS("breaker_opens", "breaker_opens_total", kCounter, breaker_opens,
            "Circuit breaker transitions into open."),
    PROCESS("breaker_last_transition_ms", "breaker_last_transition_ms", kGauge,
            breaker_last_transition_ms,
            "Unix time in ms of the last circuit breaker transition (0: none)."),
    PROCESS("breaker_failures", "breaker_failures_total", kCounter, breaker_failures,
            "Page heap failures (OS refusal, arena full, SLABBY_MAX_HEAP) the breaker saw."),
    PROCESS("breaker_rejections", "breaker_rejections_total", kCounter, breaker_rejections,
            "Requests for new memory the open breaker sent to the system allocator."),
    PROCESS("last_purge_ns", "last_purge_ns", kGauge, last_purge_ns,
            "Duration of the last purge pass that returned pages to the OS."),
    PROCESS("security_modes", "security_modes", kGauge, security_modes,
            "Security modes in force (SLABBY_SECURITY_* bits: 1 zero on free, 2 zero on "
            "allocation, 4 bit guard, 8 guard pages, 16 guard sample, 32 quarantine, 64 leak "
            "check)."),
    PROCESS("guard_page_violations", "guard_page_violations_total", kCounter, guard_page_violations,
            "Faults on slabby's guard pages (each is fatal)."),
    PROCESS("guarded_blocks", "guarded_blocks", kGauge, guarded_blocks,
            "Blocks placed between guard pages now."),
    PROCESS("guarded_blocks_total", "guarded_blocks_total", kCounter, guarded_blocks_total,
            "Blocks placed between guard pages, ever."),
    PROCESS("realloc_grown_in_place", "realloc_grown_in_place_total", kCounter,
            realloc_grown_in_place, "Page spans realloc grew into the free pages after them."),
    PROCESS("realloc_shrunk_in_place", "realloc_shrunk_in_place_total", kCounter,
            realloc_shrunk_in_place, "Page spans realloc shrank, giving back their tail."),
    PROCESS("realloc_remaps", "realloc_remaps_total", kCounter, realloc_remaps,
            "Page spans realloc moved with mremap (pages moved, no bytes copied)."),
    PROCESS("realloc_remap_failures", "realloc_remap_failures_total", kCounter,
            realloc_remap_failures, "Moves by mremap the OS refused (copied instead)."),
    PROCESS("realloc_copies", "realloc_copies_total", kCounter, realloc_copies,
            "Blocks realloc moved by allocating anew and copying."),
    PROCESS("realloc_copied_bytes", "realloc_copied_bytes_total", kCounter, realloc_copied_bytes,
            "Bytes copied by those moves."),
    PROCESS("remapped_blocks", "remapped_blocks", kGauge, remapped_blocks,
            "Live page spans that are a mapping of their own (moved by mremap)."),
    PROCESS("calloc_fresh", "calloc_fresh_total", kCounter, calloc_fresh,
            "callocs above 32 KiB served by pages known to be zero (nothing written)."),
    PROCESS("calloc_memset", "calloc_memset_total", kCounter, calloc_memset,
            "callocs above 32 KiB of blocks with old data (their resident pages written with "
            "zeros)."),
    PROCESS("calloc_memset_bytes", "calloc_memset_bytes_total", kCounter, calloc_memset_bytes,
            "Bytes those callocs wrote."),
    PROCESS("lost_bytes", "lost_bytes", kGauge, lost_bytes,
            "Address ranges the OS refused to map again after a move (never reused)."),
    PROCESS("prof_samples", "prof_samples_total", kCounter, prof_samples,
            "Allocations the heap profile sampled (SLABBY_PROF)."),
    PROCESS("prof_live_samples", "prof_live_samples", kGauge, prof_live_samples,
            "Sampled allocations not freed yet."),
    PROCESS("prof_dropped", "prof_dropped_total", kCounter, prof_dropped,
            "Samples not recorded: the heap profile's tables were full."),
    PROCESS("prof_dumps", "prof_dumps_total", kCounter, prof_dumps, "Heap profiles written."),
    PROCESS(
        "cpu_cache_capacity_bytes", "cpu_cache_capacity_bytes", kGauge, cpu_cache_capacity_bytes,
        "Bytes the per-CPU caches may hold now (capacity times block size, every CPU and class)."),
    PROCESS("cpu_cache_grows", "cpu_cache_grows_total", kCounter, cpu_cache_grows,
            "Times a size class's capacity grew on a CPU (its blocks did not fit)."),
    PROCESS(
        "cpu_cache_shrinks", "cpu_cache_shrinks_total", kCounter, cpu_cache_shrinks,
        "Times a size class's capacity shrank back on a CPU (quiet for a pass, or the CPU idled)."),
    PROCESS("thread_cache_grows", "thread_cache_grows_total", kCounter, thread_cache_grows,
            "Times a size class's limit grew in a thread's cache (its blocks did not fit)."),
    PROCESS("thread_cache_shrinks", "thread_cache_shrinks_total", kCounter, thread_cache_shrinks,
            "Times a size class's limit went back down in a thread's cache (quiet for a pass, or "
            "flushed)."),
    PROCESS("huge_slab_bytes", "huge_slab_bytes_total", kCounter, huge_slab_bytes,
            "Bytes of the arena marked for transparent huge pages for slabs (SLABBY_THP=dense)."),
    PROCESS("huge_fault_ns", "huge_fault_ns", kGauge, huge_fault_ns,
            "A new huge page's first write for slabs, moving average in ns (0: none timed)."),
    PROCESS("small_fault_ns", "small_fault_ns", kGauge, small_fault_ns,
            "A new small page's first write for a slab, median of the first 32, in ns."),
    PROCESS("huge_slab_declined", "huge_slab_declined_total", kCounter, huge_slab_declined,
            "Slabs that took small pages because huge pages faulted slower than small ones."),
};
#undef PROCESS

#define CLASS(json, prom, kind, member, help) \
  Field { json, prom, Kind::kind, offsetof(slabby_class_stats, member), help }
constexpr Field kClass[] = {
    CLASS("allocations", "class_allocations_total", kCounter, allocations,
          "Blocks of the size class handed to the program."),
    CLASS("frees", "class_frees_total", kCounter, frees, "Blocks of the size class freed."),
    CLASS("live_blocks", "class_live_blocks", kGauge, live_blocks, "allocations - frees."),
    CLASS("live_bytes", "class_live_bytes", kGauge, live_bytes, "live_blocks * block_size."),
    CLASS("cached_blocks", "class_cached_blocks", kGauge, cached_blocks,
          "Free blocks held in per-CPU and per-thread caches."),
    CLASS("slabs", "class_slabs", kGauge, slabs, "Slabs the size class owns."),
    CLASS("mapped_bytes", "class_mapped_bytes", kGauge, mapped_bytes, "slabs * slab_bytes."),
    CLASS("resident_bytes", "class_resident_bytes", kGauge, resident_bytes,
          "Of mapped_bytes, pages resident in RAM."),
    CLASS("pcpu_cache_hits", "class_cache_hits_total", kCounter, cache_hits,
          "Allocations served by a cache without a refill."),
    CLASS("lock_free_hits", "class_lock_free_hits_total", kCounter, lock_free_hits,
          "Refills served by the lock-free transfer stack."),
    CLASS("shard_hits", "class_shard_hits_total", kCounter, shard_hits,
          "Refills served from the sharded slab lists."),
    CLASS("new_slabs", "class_new_slabs_total", kCounter, new_slabs, "Slabs carved."),
    CLASS("transfer_batches", "class_transfer_batches", kGauge, transfer_batches,
          "Batches waiting on the transfer stack."),
    CLASS("refills", "class_refills_total", kCounter, refills, "Cache refills."),
    CLASS("flushes", "class_flushes_total", kCounter, flushes, "Cache flushes."),
    CLASS("heap_fallbacks", "class_heap_fallbacks_total", kCounter, fallbacks,
          "Requests of this class served by the system allocator."),
};
#undef CLASS

// The seeds' HealthMetrics (slabby_health), integers then ratios.
#define HEALTH(json, prom, kind, member, help) \
  Field { json, prom, Kind::kind, offsetof(slabby_health, member), help }
constexpr Field kHealth[] = {
    HEALTH("alloc_latency_p50", "alloc_latency_p50_ns", kGauge, alloc_latency_p50,
           "Median latency of timed allocations (SLABBY_LATENCY_SAMPLE), ns."),
    HEALTH("alloc_latency_p95", "alloc_latency_p95_ns", kGauge, alloc_latency_p95,
           "95th percentile latency of timed allocations, ns."),
    HEALTH("alloc_latency_p99", "alloc_latency_p99_ns", kGauge, alloc_latency_p99,
           "99th percentile latency of timed allocations, ns."),
    HEALTH("alloc_latency_max", "alloc_latency_max_ns", kGauge, alloc_latency_max,
           "Slowest timed allocation, ns."),
    HEALTH("latency_samples", "latency_samples_total", kCounter, latency_samples,
           "Allocations timed."),
    HEALTH("slow_allocations", "slow_allocations_total", kCounter, slow_allocations,
           "Timed allocations slower than SLABBY_MAX_ALLOC_LATENCY_NS."),
    HEALTH("max_alloc_latency_ns", "max_alloc_latency_ns", kGauge, max_alloc_latency_ns,
           "SLABBY_MAX_ALLOC_LATENCY_NS (0: no threshold)."),
    HEALTH("last_gc_duration", "last_gc_duration_ns", kGauge, last_gc_duration,
           "Duration of the last purge pass (slabby's garbage collection), ns."),
    HEALTH("log_lines", "log_lines_total", kCounter, log_lines, "Lines SLABBY_LOG wrote."),
    HEALTH("log_suppressed", "log_suppressed_total", kCounter, log_suppressed,
           "Log lines the rate limit dropped."),
};
constexpr Field kHealthRatios[] = {
    HEALTH("fragmentation_score", "fragmentation_score", kGauge, fragmentation_score,
           "0 (none) to 1 (high): 1 - live_bytes / mapped_bytes."),
    HEALTH("memory_pressure", "memory_pressure", kGauge, memory_pressure,
           "0 (low) to 1 (critical): the larger of mapped_bytes / SLABBY_MAX_HEAP and the "
           "system's 1 - MemAvailable / MemTotal."),
    HEALTH("error_rate", "error_rate", kGauge, error_rate,
           "Heap fallbacks / allocations since the previous sample."),
    HEALTH("cache_efficiency", "cache_efficiency", kGauge, cache_efficiency,
           "(pcpu_cache_hits + lock_free_hits) / total_allocations."),
    HEALTH("health_score", "health_score", kGauge, health_score,
           "0 (bad) to 1 (healthy); formula in docs/stats.md."),
};
#undef HEALTH

double ratio(const void* base, const Field& f) {
  return *reinterpret_cast<const double*>(static_cast<const char*>(base) + f.offset);
}

// A ratio in 0..1 with four decimals.
void write_ratio(Writer& w, double v) {
  if (!(v >= 0)) v = 0;
  if (v > 1) v = 1;
  w.fixed(static_cast<uint64_t>(v * 10000 + 0.5), 4);
}

uint64_t field(const void* base, const Field& f) {
  return *reinterpret_cast<const uint64_t*>(static_cast<const char*>(base) + f.offset);
}

void write_json(Writer& w, const slabby_stats& s, const slabby_health& h) {
  w.str("{\"version\":\"" SLABBY_VERSION_STRING "\",\"stats_version\":").u64(s.version);
  w.str(",\"cache_mode\":\"").str(s.cache_mode == SLABBY_CACHE_PER_CPU ? "per-cpu" : "per-thread");
  w.str("\",\"num_shards\":").u64(s.num_shards);
  w.str(",\"background_thread\":").str(s.background_thread ? "true" : "false");
  for (const Field& f : kProcess) w.str(",\"").str(f.json).str("\":").u64(field(&s, f));
  w.str(",\"classes\":[");
  bool first = true;
  for (uint32_t i = 0; i < s.num_classes; ++i) {
    const slabby_class_stats& c = s.classes[i];
    if (!first) w.ch(',');
    first = false;
    w.str("{\"class\":").u64(i + 1).str(",\"block_size\":").u64(c.block_size);
    w.str(",\"slab_bytes\":").u64(c.slab_bytes);
    for (const Field& f : kClass) w.str(",\"").str(f.json).str("\":").u64(field(&c, f));
    w.ch('}');
  }
  w.str("],\"breaker_state\":\"");
  w.str(breaker_state_name(static_cast<BreakerState>(s.breaker_state)));
  w.str("\",\"breaker_enabled\":").str(s.breaker_enabled ? "true" : "false");
  w.str(",\"health\":{");
  for (const Field& f : kHealth) w.str("\"").str(f.json).str("\":").u64(field(&h, f)).ch(',');
  for (const Field& f : kHealthRatios) {
    w.str("\"").str(f.json).str("\":");
    write_ratio(w, ratio(&h, f));
    w.ch(',');
  }
  w.str("\"circuit_breaker_open\":").str(h.circuit_breaker_open ? "true" : "false");
  w.str(",\"recent_trend\":\"").str(trend_name(h.recent_trend)).str("\"},\"config\":{");
  const Config& c = g_rt.config.config;
  for (size_t i = 0; i < num_options(); ++i) {
    char value[300];
    size_t n = format_option_value(c, i, value, sizeof(value));
    w.str(i == 0 ? "\"" : ",\"").str(option(i).name).str("\":\"");
    for (size_t k = 0; k < n; ++k) {  // paths may hold anything
      unsigned char ch = static_cast<unsigned char>(value[k]);
      if (ch == '"' || ch == '\\')
        w.ch('\\').ch(static_cast<char>(ch));
      else if (ch < 0x20)
        w.str("\\u00").ch("0123456789abcdef"[ch >> 4]).ch("0123456789abcdef"[ch & 15]);
      else
        w.ch(static_cast<char>(ch));
    }
    w.ch('"');
  }
  w.str("}}\n");
}

void write_prometheus(Writer& w, const slabby_stats& s, const slabby_health& h) {
  for (const Field& f : kProcess) {
    w.str("# HELP slabby_").str(f.prom).ch(' ').str(f.help).ch('\n');
    w.str("# TYPE slabby_").str(f.prom).str(f.kind == Kind::kCounter ? " counter\n" : " gauge\n");
    w.str("slabby_").str(f.prom).ch(' ').u64(field(&s, f)).ch('\n');
  }
  w.str("# HELP slabby_info Version and caching mode (always 1).\n# TYPE slabby_info gauge\n");
  w.str("slabby_info{version=\"" SLABBY_VERSION_STRING "\",cache_mode=\"");
  w.str(s.cache_mode == SLABBY_CACHE_PER_CPU ? "per-cpu" : "per-thread").str("\"} 1\n");
  w.str("# HELP slabby_breaker_state Circuit breaker: 0 closed, 1 open, 2 half-open.\n");
  w.str("# TYPE slabby_breaker_state gauge\nslabby_breaker_state ").u64(s.breaker_state).ch('\n');
  for (const Field& f : kHealth) {
    w.str("# HELP slabby_").str(f.prom).ch(' ').str(f.help).ch('\n');
    w.str("# TYPE slabby_").str(f.prom).str(f.kind == Kind::kCounter ? " counter\n" : " gauge\n");
    w.str("slabby_").str(f.prom).ch(' ').u64(field(&h, f)).ch('\n');
  }
  for (const Field& f : kHealthRatios) {
    w.str("# HELP slabby_").str(f.prom).ch(' ').str(f.help).ch('\n');
    w.str("# TYPE slabby_").str(f.prom).str(" gauge\n");
    w.str("slabby_").str(f.prom).ch(' ');
    write_ratio(w, ratio(&h, f));
    w.ch('\n');
  }
  w.str("# HELP slabby_circuit_breaker_open 1 while the circuit breaker is open or half-open.\n");
  w.str("# TYPE slabby_circuit_breaker_open gauge\nslabby_circuit_breaker_open ");
  w.u64(h.circuit_breaker_open).ch('\n');
  w.str("# HELP slabby_recent_trend Health score against the previous sample (always 1).\n");
  w.str("# TYPE slabby_recent_trend gauge\nslabby_recent_trend{trend=\"");
  w.str(trend_name(h.recent_trend)).str("\"} 1\n");
  for (const Field& f : kClass) {
    w.str("# HELP slabby_").str(f.prom).ch(' ').str(f.help).ch('\n');
    w.str("# TYPE slabby_").str(f.prom).str(f.kind == Kind::kCounter ? " counter\n" : " gauge\n");
    for (uint32_t i = 0; i < s.num_classes; ++i) {
      const slabby_class_stats& c = s.classes[i];
      w.str("slabby_").str(f.prom).str("{class=\"").u64(i + 1).str("\",block_size=\"");
      w.u64(c.block_size).str("\"} ").u64(field(&c, f)).ch('\n');
    }
  }
}

}  // namespace

namespace {

bool name_is(const char* name, size_t n, const char* json) {
  return strlen(json) == n && memcmp(name, json, n) == 0;
}

bool set(double* out, double v) {
  *out = v;
  return true;
}

}  // namespace

bool stat_by_name(const char* name, double* out) {
  static slabby_stats s;
  static slabby_health h;
  static Mutex mu;
  LockGuard g(mu);
  size_t n = strlen(name);
  static constexpr char kHealthPrefix[] = "health.";
  static constexpr char kClassPrefix[] = "classes.";
  if (strncmp(name, kHealthPrefix, sizeof(kHealthPrefix) - 1) == 0) {
    const char* key = name + sizeof(kHealthPrefix) - 1;
    size_t kn = n - (sizeof(kHealthPrefix) - 1);
    collect_stats(&s);
    collect_health(s, &h);
    for (const Field& f : kHealth)
      if (name_is(key, kn, f.json)) return set(out, static_cast<double>(field(&h, f)));
    for (const Field& f : kHealthRatios)
      if (name_is(key, kn, f.json)) return set(out, ratio(&h, f));
    if (name_is(key, kn, "circuit_breaker_open")) return set(out, h.circuit_breaker_open);
    return false;
  }
  collect_stats(&s);
  if (strncmp(name, kClassPrefix, sizeof(kClassPrefix) - 1) == 0) {
    const char* p = name + sizeof(kClassPrefix) - 1;
    uint64_t cls = 0;
    const char* digits = p;
    while (*p >= '0' && *p <= '9' && cls < 1000) cls = cls * 10 + static_cast<uint64_t>(*p++ - '0');
    if (p == digits || *p != '.' || cls == 0 || cls > s.num_classes) return false;
    const slabby_class_stats& c = s.classes[cls - 1];
    const char* key = p + 1;
    size_t kn = strlen(key);
    if (name_is(key, kn, "block_size")) return set(out, static_cast<double>(c.block_size));
    if (name_is(key, kn, "slab_bytes")) return set(out, static_cast<double>(c.slab_bytes));
    for (const Field& f : kClass)
      if (name_is(key, kn, f.json)) return set(out, static_cast<double>(field(&c, f)));
    return false;
  }
  for (const Field& f : kProcess)
    if (name_is(name, n, f.json)) return set(out, static_cast<double>(field(&s, f)));
  if (name_is(name, n, "stats_version")) return set(out, s.version);
  if (name_is(name, n, "num_shards")) return set(out, s.num_shards);
  if (name_is(name, n, "background_thread")) return set(out, s.background_thread);
  return false;
}

void write_stats(int fd, StatsOutput format) {
  if (format == StatsOutput::kText) return print_report(fd);
  static slabby_stats s;  // 6 KiB: static, not on a possibly small stack
  static slabby_health h;
  static Mutex mu;
  LockGuard g(mu);
  collect_stats(&s);
  collect_health(s, &h);
  Writer w(fd);
  if (format == StatsOutput::kJson)
    write_json(w, s, h);
  else
    write_prometheus(w, s, h);
}

void write_stats_snapshot(int fd, StatsOutput format, const slabby_stats& s,
                          const slabby_health& h) {
  Writer w(fd);
  if (format == StatsOutput::kJson)
    write_json(w, s, h);
  else if (format == StatsOutput::kPrometheus)
    write_prometheus(w, s, h);
}

}  // namespace slabby

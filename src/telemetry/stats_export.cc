// slabby: the stats in machine formats, JSON and the Prometheus text
// exposition format, written without allocating.
//
// One table per level (process, size class) names every exported field once:
// its JSON key (the seeds' AllocatorStats names in snake_case where they
// have one: total_allocations, pcpu_cache_hits, ...), its Prometheus name
// (slabby_ prefix; counters end in _total, gauges do not) and its help text.
// Derived figures are documented in docs/stats.md.
#include <cstddef>

#include "common/lock.h"
#include "common/writer.h"
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
    PROCESS("large_frees", "large_frees_total", kCounter, large_frees,
            "Frees of large spans."),
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

uint64_t field(const void* base, const Field& f) {
  return *reinterpret_cast<const uint64_t*>(static_cast<const char*>(base) + f.offset);
}

void write_json(Writer& w, const slabby_stats& s) {
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
  w.str("]}\n");
}

void write_prometheus(Writer& w, const slabby_stats& s) {
  for (const Field& f : kProcess) {
    w.str("# HELP slabby_").str(f.prom).ch(' ').str(f.help).ch('\n');
    w.str("# TYPE slabby_").str(f.prom).str(f.kind == Kind::kCounter ? " counter\n" : " gauge\n");
    w.str("slabby_").str(f.prom).ch(' ').u64(field(&s, f)).ch('\n');
  }
  w.str("# HELP slabby_info Version and caching mode (always 1).\n# TYPE slabby_info gauge\n");
  w.str("slabby_info{version=\"" SLABBY_VERSION_STRING "\",cache_mode=\"");
  w.str(s.cache_mode == SLABBY_CACHE_PER_CPU ? "per-cpu" : "per-thread").str("\"} 1\n");
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

void write_stats(int fd, StatsOutput format) {
  if (format == StatsOutput::kText) return print_report(fd);
  static slabby_stats s;  // 6 KiB: static, not on a possibly small stack
  static Mutex mu;
  LockGuard g(mu);
  collect_stats(&s);
  Writer w(fd);
  if (format == StatsOutput::kJson) write_json(w, s);
  else write_prometheus(w, s);
}

}  // namespace slabby

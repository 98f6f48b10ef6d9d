/* slabby: public C API of the malloc replacement.
 *
 * Everything here is callable from C and C++, never allocates, and is safe
 * to call from any thread at any time after the first allocation (before it,
 * the figures are simply zero).
 *
 * Versioning: the caller passes sizeof(its struct); slabby fills at most that
 * many bytes and sets `version` and `struct_size` to what it wrote, so a
 * program built against an older header keeps working with a newer library.
 */
#ifndef SLABBY_SLABBY_H
#define SLABBY_SLABBY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLABBY_VERSION_STRING "0.1.0"
/* 2: the circuit breaker's fields and last_purge_ns after classes[].
 * 3: how realloc and calloc of large blocks were served, after guarded_blocks_total.
 * 4: the heap profile's counters, after lost_bytes.
 * 5: the per-CPU caches' capacities, after prof_dumps.
 * 6: the per-thread caches' limits, after cpu_cache_shrinks.
 * 7: huge_slab_bytes, after thread_cache_shrinks.
 * 8: the huge page fault timings, after huge_slab_bytes. */
#define SLABBY_STATS_VERSION 8
/* Upper bound on the number of size classes; the real count is num_classes. */
#define SLABBY_MAX_CLASSES 64

#define SLABBY_CACHE_PER_THREAD 0
#define SLABBY_CACHE_PER_CPU 1

/* Per size class. A "block" is what one malloc returns; a "slab" is the run of
 * pages a size class carves into blocks. */
typedef struct slabby_class_stats {
  uint64_t block_size;      /* bytes per block (the usable size) */
  uint64_t slab_bytes;      /* bytes per slab for this class */
  uint64_t allocations;     /* blocks handed to the program, ever */
  uint64_t frees;           /* blocks given back by the program, ever */
  uint64_t live_blocks;     /* allocations - frees */
  uint64_t live_bytes;      /* live_blocks * block_size */
  uint64_t cached_blocks;   /* free blocks held in thread caches */
  uint64_t slabs;           /* slabs currently owned by the class */
  uint64_t mapped_bytes;    /* slabs * slab_bytes */
  uint64_t resident_bytes;  /* of mapped_bytes, pages resident in RAM */
  uint64_t refills;         /* thread cache refills from the central pool */
  uint64_t flushes;         /* thread cache flushes to the central pool */
  uint64_t fallbacks;       /* requests of this class served by glibc (arena exhausted) */
  /* Tiers: where allocations were served from. */
  uint64_t cache_hits;      /* from the per-CPU or per-thread cache, no refill needed */
  uint64_t lock_free_hits;  /* refills served by a batch from the lock-free transfer stack */
  uint64_t shard_hits;      /* refills served from existing slabs in the sharded lists */
  uint64_t new_slabs;       /* slabs carved from the page heap, ever */
  uint64_t transfer_batches; /* batches waiting on the transfer stack now */
} slabby_class_stats;

typedef struct slabby_stats {
  uint32_t version;     /* SLABBY_STATS_VERSION of the library */
  uint32_t struct_size; /* bytes of this struct the library filled */
  uint32_t num_classes; /* entries used in classes[] */
  uint32_t reserved0;

  /* Process totals (small classes + large spans; fallbacks excluded). */
  uint64_t total_allocations;   /* every successful allocation slabby served */
  uint64_t total_deallocations; /* every free of a slabby block */
  uint64_t current_allocations; /* total_allocations - total_deallocations */
  uint64_t live_bytes;          /* bytes in live blocks (usable sizes) */

  /* Large allocations (above the largest class, 1 MiB): page spans. */
  uint64_t large_allocations;
  uint64_t large_frees;
  uint64_t large_live_bytes;

  /* Fallbacks: requests served by the system allocator instead. */
  uint64_t heap_fallbacks;     /* allocations routed to glibc */
  uint64_t foreign_frees;      /* frees/reallocs of pointers slabby does not own */

  /* Memory. */
  uint64_t arena_reserved_bytes; /* virtual address space reserved */
  uint64_t mapped_bytes;         /* arena bytes in use by spans (slabs + large) */
  uint64_t resident_bytes;       /* arena pages resident in RAM (mincore) */
  uint64_t free_dirty_bytes;     /* free pages kept mapped for reuse */
  uint64_t metadata_bytes;       /* span descriptors, page map, class map */
  uint64_t purged_bytes;         /* bytes returned with MADV_DONTNEED, ever */
  uint64_t madvise_calls;        /* MADV_DONTNEED calls, ever */
  uint64_t retained_bytes;       /* free pages purged but kept reserved for reuse */
  uint64_t purge_passes;         /* purges that returned memory (cap, decay or trim) */
  uint64_t decay_purged_bytes;   /* of purged_bytes, returned because they aged out */
  uint64_t mappings;             /* memory mappings slabby holds */
  uint64_t max_heap_bytes;       /* SLABBY_MAX_HEAP (0: none) */
  uint64_t limit_refusals;       /* span requests refused by the cap (then fallback or ENOMEM) */
  uint32_t background_thread;    /* 1 while the background purger runs */
  uint32_t reserved1;

  uint64_t threads_live; /* threads with an active cache */
  uint64_t threads_exited;

  /* Tiers, summed over classes (the seeds' PCPUCacheHits and LockFreeHits). */
  uint64_t cache_hits;
  uint64_t lock_free_hits;
  uint64_t shard_hits;
  uint64_t new_slabs;
  uint32_t cache_mode; /* SLABBY_CACHE_PER_THREAD or SLABBY_CACHE_PER_CPU */
  uint32_t num_shards; /* central list shards per class */

  slabby_class_stats classes[SLABBY_MAX_CLASSES];

  /* Version 2: the circuit breaker (SLABBY_BREAKER_THRESHOLD, docs/design.md). */
  uint32_t breaker_state;                /* SLABBY_BREAKER_CLOSED, _OPEN or _HALF_OPEN */
  uint32_t breaker_enabled;              /* 1 when SLABBY_BREAKER_THRESHOLD > 0 */
  uint64_t breaker_transitions;          /* state changes, ever */
  uint64_t breaker_opens;                /* of those, into open */
  uint64_t breaker_last_transition_ms;   /* wall-clock (Unix epoch) ms of the last one; 0: none */
  uint64_t breaker_failures;             /* page heap failures seen (OS refusal, arena full, cap) */
  uint64_t breaker_rejections;           /* requests refused while open (served by glibc) */
  uint64_t last_purge_ns;                /* duration of the last purge pass that returned pages */

  /* Version 2: the security modes (docs/security.md). */
  uint64_t security_modes;        /* SLABBY_SECURITY_* bits of the modes in force */
  uint64_t guard_page_violations; /* faults on slabby's guard pages (the seeds' GuardPageViolations) */
  uint64_t guarded_blocks;        /* blocks between guard pages now */
  uint64_t guarded_blocks_total;  /* ... ever */

  /* Version 3: which path served realloc and large calloc (docs/stats.md). */
  uint64_t realloc_grown_in_place;  /* page spans grown into the free pages after them */
  uint64_t realloc_shrunk_in_place; /* page spans that gave back their tail */
  uint64_t realloc_remaps;          /* page spans moved by mremap (pages moved, no bytes copied) */
  uint64_t realloc_remap_failures;  /* mremap refused: copied instead */
  uint64_t realloc_copies;          /* blocks moved by allocating anew and copying */
  uint64_t realloc_copied_bytes;    /* bytes those copies moved */
  uint64_t remapped_blocks;         /* live page spans that are a mapping of their own (moved by mremap) */
  uint64_t calloc_fresh;            /* callocs above 32 KiB served by pages known to be zero (nothing written) */
  uint64_t calloc_memset;           /* ... of blocks with old data: their resident pages written with zeros */
  uint64_t calloc_memset_bytes;     /* bytes those wrote */
  uint64_t lost_bytes;              /* address ranges the OS refused to map again after a move (never reused) */

  /* Version 4: the heap profile (SLABBY_PROF). */
  uint64_t prof_samples;       /* allocations sampled, ever */
  uint64_t prof_live_samples;  /* of them, not freed yet */
  uint64_t prof_dropped;       /* samples not recorded: the profile's tables were full */
  uint64_t prof_dumps;         /* profiles written */

  /* Version 5: per-CPU cache capacities that follow demand (SLABBY_PERCPU_GROW_BYTES). */
  uint64_t cpu_cache_capacity_bytes; /* bytes the CPUs' caches may hold now (capacity x block size) */
  uint64_t cpu_cache_grows;          /* a class's capacity grown on a CPU (its blocks did not fit), ever */
  uint64_t cpu_cache_shrinks;        /* ... shrunk back (it missed nothing for a pass, or its CPU idled), ever */

  /* Version 6: per-thread cache limits that follow demand (the same budget, per thread). */
  uint64_t thread_cache_grows;   /* a class's limit grown in a thread's cache (its blocks did not fit), ever */
  uint64_t thread_cache_shrinks; /* ... lowered back (quiet for a pass, or the cache was flushed), ever */

  /* Version 7: slabs on transparent huge pages (SLABBY_THP=dense, past 16 MiB of slabs). */
  uint64_t huge_slab_bytes; /* arena marked MADV_HUGEPAGE for slabs (whole huge pages), ever */

  /* Version 8: whether huge pages pay for slabs, from first touches timed (SLABBY_THP=dense). */
  uint64_t huge_fault_ns;      /* a new huge page's first write, moving average (0: none timed) */
  uint64_t small_fault_ns;     /* a new small page's first write, median of the first 32 */
  uint64_t huge_slab_declined; /* slabs that took small pages: huge ones faulted slower, ever */
} slabby_stats;

#define SLABBY_SECURITY_ZERO_FREE 1
#define SLABBY_SECURITY_ZERO_ALLOC 2
#define SLABBY_SECURITY_BITGUARD 4
#define SLABBY_SECURITY_GUARD_PAGES 8
#define SLABBY_SECURITY_GUARD_SAMPLE 16
#define SLABBY_SECURITY_QUARANTINE 32
#define SLABBY_SECURITY_LEAK_CHECK 64

#define SLABBY_BREAKER_CLOSED 0
#define SLABBY_BREAKER_OPEN 1
#define SLABBY_BREAKER_HALF_OPEN 2

/* Fills *out (at most `size` bytes of it). Returns 0, or -1 if out is NULL or
 * size is smaller than the fixed header up to `classes`. */
int slabby_get_stats(slabby_stats *out, size_t size);

/* Writes the human-readable per-size-class report (the one SLABBY_STATS=1
 * prints at exit) to the file descriptor. Never allocates. */
void slabby_print_stats(int fd);

#define SLABBY_FORMAT_TEXT 0
#define SLABBY_FORMAT_JSON 1
#define SLABBY_FORMAT_PROMETHEUS 2

/* Writes the stats to the file descriptor as text (the SLABBY_STATS=1
 * report), JSON or the Prometheus text exposition format. Never allocates.
 * Returns 0, or -1 for an unknown format. Field meanings: docs/stats.md. */
int slabby_write_stats(int fd, int format);

#define SLABBY_HEALTH_VERSION 1

#define SLABBY_TREND_STABLE 0
#define SLABBY_TREND_IMPROVING 1
#define SLABBY_TREND_DEGRADING 2

/* The seeds' HealthMetrics, one field each (same names in snake_case), and
 * what they rest on. Ratios are 0.0 to 1.0; formulas: docs/stats.md. Each
 * call is one "sample": error_rate and recent_trend compare it with the
 * previous one (of any caller, the background thread's stats rewrites
 * included). Latency figures are 0 while SLABBY_LATENCY_SAMPLE is 0. */
typedef struct slabby_health {
  uint32_t version;     /* SLABBY_HEALTH_VERSION of the library */
  uint32_t struct_size; /* bytes of this struct the library filled */

  /* Latency of timed allocations (SLABBY_LATENCY_SAMPLE), in ns. */
  uint64_t alloc_latency_p50;
  uint64_t alloc_latency_p95;
  uint64_t alloc_latency_p99;
  uint64_t alloc_latency_max;
  uint64_t latency_samples;      /* allocations timed */
  uint64_t slow_allocations;     /* of those, slower than SLABBY_MAX_ALLOC_LATENCY_NS */
  uint64_t max_alloc_latency_ns; /* SLABBY_MAX_ALLOC_LATENCY_NS (0: no threshold) */

  double fragmentation_score; /* 0 none .. 1 high: 1 - live_bytes / mapped_bytes */
  double memory_pressure;     /* 0 low .. 1 critical: cap use or system memory use */
  double error_rate;          /* recent: heap fallbacks / allocations since the last sample */
  double cache_efficiency;    /* (pcpu_cache_hits + lock_free_hits) / total_allocations */
  double health_score;        /* 0 bad .. 1 healthy */

  uint32_t circuit_breaker_open; /* 1 when the breaker is open or half-open */
  uint32_t recent_trend;         /* SLABBY_TREND_*: health_score against the last sample */
  uint64_t last_gc_duration;     /* ns the last purge pass took (slabby's "GC") */

  uint64_t log_lines;      /* lines SLABBY_LOG wrote */
  uint64_t log_suppressed; /* lines the rate limit dropped */
} slabby_health;

/* Fills *out (at most `size` bytes). Returns 0, or -1 if out is NULL or size
 * is smaller than 8 (version and struct_size). Never allocates. */
int slabby_get_health(slabby_health *out, size_t size);

/* "improving", "stable" or "degrading". */
const char *slabby_trend_name(uint32_t trend);

/* The effective configuration, one "SLABBY_NAME=value" line per variable
 * (defaults included), written into buf (NUL-terminated when size > 0).
 * Returns the length of the whole text, like snprintf. Never allocates. */
size_t slabby_get_config(char *buf, size_t size);

/* ------------------------------------------------------- runtime control --
 * Steering a running process from code (jemalloc's mallctl, tcmalloc's
 * MallocExtension). None of these aborts; errors are return codes. */

#define SLABBY_OK 0
#define SLABBY_ERR_UNKNOWN (-1)   /* no option or stat of that name */
#define SLABBY_ERR_VALUE (-2)     /* a value the option does not accept, or a NULL argument */
#define SLABBY_ERR_FIXED (-3)     /* an option that is set once, at start */
#define SLABBY_ERR_UNAVAILABLE (-4) /* slabby is not serving (init failed), or the heap
                                     * profile cannot start or has not started */

/* Returns free memory to the OS now: this thread's cache, every CPU's cache,
 * the transfer stacks, spare slabs and every free page. Returns the bytes
 * purged. (malloc_trim(0) does the same, but empties the other CPUs' caches
 * at most once per SLABBY_DECAY_MS: a call within that time of the last one
 * that did empties only the calling CPU's.) */
size_t slabby_purge(void);

/* Returns the blocks the calling thread's cache holds to the shared pools
 * (in per-CPU mode: the cache of the CPU the thread runs on). Returns the
 * number of blocks moved. */
size_t slabby_flush_thread_cache(void);

/* Changes a setting of the running process. `name` is the SLABBY_ variable's
 * name (the prefix and case optional: "decay_ms" works), `value` uses its
 * syntax ("2s", "128M", "1"). Changeable at run time: SLABBY_DECAY_MS,
 * SLABBY_RETAIN_MAX, SLABBY_MAX_HEAP, SLABBY_PROF, SLABBY_PROF_SAMPLE,
 * SLABBY_PROF_INTERVAL_MS, SLABBY_LATENCY_SAMPLE, SLABBY_MAX_ALLOC_LATENCY_NS,
 * SLABBY_LOG_LEVEL; every other one is SLABBY_ERR_FIXED. Threads see a
 * change of sampling within 65536 of their allocations.
 * Returns SLABBY_OK or an SLABBY_ERR_* code. */
int slabby_set_option(const char *name, const char *value);

/* One field of the stats by its name in the JSON report: "live_bytes",
 * "health.health_score", "classes.3.live_blocks" (3: the class number in the
 * report's "class" field). Ratios come as fractions, counters as whole
 * numbers. Returns SLABBY_OK or SLABBY_ERR_UNKNOWN / SLABBY_ERR_VALUE. */
int slabby_get_stat(const char *name, double *value);

/* Writes the heap profile (SLABBY_PROF; gperftools' heap-profile text, read by
 * google-pprof and scripts/slabby-prof) to `path`, or when NULL to the next
 * SLABBY_PROF_FILE name. Returns SLABBY_OK, SLABBY_ERR_UNAVAILABLE when
 * profiling never started, or SLABBY_ERR_VALUE when the file cannot be
 * written (one "slabby:" line on stderr says why). */
int slabby_dump_profile(const char *path);

/* "0.1.0" */
const char *slabby_version(void);

/* 1 when the calling process's malloc is slabby (useful to check that the
 * preload took effect), 0 is never returned by the library itself. */
int slabby_is_active(void);

#ifdef __cplusplus
}
#endif

#endif /* SLABBY_SLABBY_H */

// slabby::Pool: a pool of fixed-size slabs (packets, requests, orders) with
// RAII references, batches, timeouts, health and stats. It is the C++ form of
// the seeds' Go "Slabby" API, built on slabby's engine (lock-free tagged
// stacks of slot ids, one per CPU) rather than on malloc.
//
// Guarantees (see docs/pool.md):
// - A reference carries its slot's generation: a stale reference or id can
//   never release, or read through bytes(), a slab that has a new owner.
// - bytes() is exactly slab_size() bytes, slab_size() being the requested size
//   rounded up to Options::cache_line.
// - Allocate / Release / AllocateFast / DeallocateFast never allocate heap
//   memory after Create (heap fallback and debug stacks excepted).
// - Every slot is reachable by every thread: a free slab is never stranded in
//   another thread's cache, so "out of memory" means every slab is in use.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace slabby {

class Pool;

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// Every seed option (WithShards, WithCacheLine, ...), as plain fields.
struct Options {
  // Free-list shards; 0 = one per CPU this process may use.
  uint32_t shards = 0;
  // Slab alignment and size granule, and the spacing of per-shard data
  // against false sharing. A power of two, 16 to 4096.
  uint32_t cache_line = 64;
  // Each thread takes and returns slots on the shard of the CPU it runs on
  // (rseq via sched_getcpu); false: on a shard picked by thread.
  bool per_cpu_cache = true;
  // Zero a slab when it is released (so the next owner sees zeroes).
  bool secure = false;
  // A canary after each slab (before it with guard pages), checked on
  // release: an overflow is reported as DataLoss.
  bool bit_guard = false;
  // A PROT_NONE page after each slab, whose end touches it: a write past the
  // end faults at once (SIGSEGV). Costs a page per slab and one mapping each.
  bool guard_pages = false;
  // Report slabs still allocated when the pool is closed or destroyed.
  bool finalizers = false;
  // Latency sampling, health metrics and (with health_interval) a monitor.
  bool health_checks = false;
  // Circuit breaker: after `breaker_threshold` consecutive failed
  // allocations, allocations fail with Unavailable for `breaker_timeout`;
  // then one trial allocation decides. 0 = off.
  int64_t breaker_threshold = 0;
  absl::Duration breaker_timeout = absl::Seconds(30);
  // When every slab is in use, Allocate returns a heap buffer instead.
  bool heap_fallback = false;
  // Called for corruption, leaks, breaker changes, latency violations and
  // health reports, from the thread that hit the event (or the monitor
  // thread). Messages are formatted on the stack. Must not call back into
  // the pool.
  std::function<void(LogLevel, std::string_view)> logger;
  // Record each allocation's call stack (SlabRef::allocation_stack()).
  bool debug = false;
  // With health_checks: a background thread runs HealthCheck() this often
  // and logs when the score drops. Zero = no thread.
  absl::Duration health_interval = absl::ZeroDuration();
  // Sampled allocations slower than this are counted and logged. Zero = off.
  absl::Duration max_alloc_latency = absl::ZeroDuration();
};

// Seeds' AllocatorStats. Counters are exact when no call is in flight.
struct PoolStats {
  std::string version;
  uint64_t total_slabs = 0;
  uint64_t slab_size = 0;
  uint64_t cache_line_size = 0;
  uint64_t used_slabs = 0;           // slots allocated now
  uint64_t available_slabs = 0;      // total_slabs - used_slabs
  uint64_t current_allocations = 0;  // used_slabs + live heap fallbacks
  uint64_t total_allocations = 0;    // every successful allocation, fallbacks included
  uint64_t total_deallocations = 0;
  uint64_t fast_allocations = 0;  // of which AllocateFast
  uint64_t fast_deallocations = 0;
  uint64_t batch_allocations = 0;  // BatchAllocate calls
  uint64_t batch_deallocations = 0;
  uint64_t allocation_errors = 0;    // out of memory, breaker open, timeouts
  uint64_t deallocation_errors = 0;  // stale, double, invalid, corrupted
  uint64_t timeouts = 0;
  uint64_t breaker_rejections = 0;
  uint64_t corruptions_detected = 0;
  uint64_t leaks_reported = 0;
  uint64_t latency_violations = 0;
  double avg_alloc_time_ns = 0;  // over sampled allocations (health_checks)
  int64_t max_alloc_time_ns = 0;
  double fragmentation_ratio = 0;  // bytes of padding / bytes per slot
  double memory_utilization = 0;   // used_slabs / total_slabs
  bool secure_mode = false;
  bool bit_guard_enabled = false;
  uint64_t heap_fallbacks = 0;
  uint64_t pcpu_cache_hits = 0;        // slots taken from the caller's own shard
  uint64_t lock_free_hits = 0;         // slots taken from another shard
  uint64_t guard_page_violations = 0;  // always 0: a violation kills the process
  uint64_t mapped_bytes = 0;           // the slab region, guard pages included
};

// Seeds' HealthMetrics.
struct HealthMetrics {
  absl::Duration alloc_latency_p50, alloc_latency_p95, alloc_latency_p99;
  double fragmentation_score = 0;  // 0 none .. 1 high
  double memory_pressure = 0;      // used / total
  double error_rate = 0;           // errors / attempts since the last check
  double cache_efficiency = 0;     // own-shard hits / slot allocations
  bool circuit_breaker_open = false;
  double health_score = 1;          // 0 .. 1
  std::string recent_trend;         // "improving", "stable", "degrading"
  absl::Duration last_gc_duration;  // always zero: C++ has no collector
};

// A move-only owning reference to one slab. Destroying it releases the slab
// (errors then go to the logger). Must not outlive its Pool object; after
// Pool::Close it is harmless (bytes() empty, Release() FailedPrecondition).
class SlabRef {
 public:
  SlabRef() = default;
  SlabRef(SlabRef&& o) noexcept { steal(o); }
  SlabRef& operator=(SlabRef&& o) noexcept;
  SlabRef(const SlabRef&) = delete;
  SlabRef& operator=(const SlabRef&) = delete;
  ~SlabRef();

  // The slab, exactly size() bytes; empty when this reference no longer owns
  // it (released, reset, closed, moved from).
  std::span<std::byte> bytes() const;
  size_t size() const;
  // generation << 32 | slot index (DeallocateFast accepts it); heap
  // fallbacks have index 0xffffffff.
  uint64_t id() const { return uint64_t{gen_} << 32 | index_; }
  // Still the owner of its slab.
  bool valid() const;
  // Returns the slab to the pool; the reference is empty afterwards whatever
  // the result. FailedPrecondition when stale, DataLoss on a broken canary.
  absl::Status Release();
  // Where it was allocated (Options::debug), one frame a line; else empty.
  std::string allocation_stack() const;

 private:
  friend class Pool;
  friend class PoolImpl;
  SlabRef(Pool* p, std::byte* d, uint32_t i, uint32_t g) : pool_(p), data_(d), index_(i), gen_(g) {}
  void steal(SlabRef& o) {
    pool_ = o.pool_, data_ = o.data_, index_ = o.index_, gen_ = o.gen_;
    o.pool_ = nullptr, o.data_ = nullptr;
  }
  Pool* pool_ = nullptr;
  std::byte* data_ = nullptr;
  uint32_t index_ = 0;
  uint32_t gen_ = 0;
};

// AllocateFast's result: the bytes and the id DeallocateFast takes.
struct FastSlab {
  std::span<std::byte> bytes;
  uint64_t id = 0;
};

// BatchAllocate's result. Partial results are kept: `refs` holds every slab
// obtained (possibly fewer than asked) and `status` says why it is short
// (OK only when refs.size() == n).
struct BatchAllocation {
  std::vector<SlabRef> refs;
  absl::Status status;
};

class Pool {
 public:
  // slab_size: 1 .. 1 GiB (rounded up to options.cache_line); capacity:
  // 1 .. 2^31 - 1. InvalidArgument otherwise; ResourceExhausted when the
  // memory cannot be mapped.
  static absl::StatusOr<std::unique_ptr<Pool>> Create(size_t slab_size, size_t capacity,
                                                      const Options& options = {});
  virtual ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // ResourceExhausted ("out of memory") when every slab is in use,
  // Unavailable ("circuit breaker open"), FailedPrecondition after Close.
  absl::StatusOr<SlabRef> Allocate();
  // Up to n slabs; see BatchAllocation. n > capacity: InvalidArgument.
  BatchAllocation BatchAllocate(size_t n);
  // Waits (futex, no polling) for a release until `timeout` has passed:
  // DeadlineExceeded ("allocation timeout") then.
  absl::StatusOr<SlabRef> AllocateWithTimeout(absl::Duration timeout);
  // Allocate or abort the process with the error on stderr.
  SlabRef MustAllocate();
  // No SlabRef: the caller returns the id with DeallocateFast. Never falls
  // back to the heap.
  absl::StatusOr<FastSlab> AllocateFast();
  absl::Status DeallocateFast(uint64_t id);
  absl::Status Deallocate(SlabRef ref);
  // Releases all; returns the first error (every reference is still tried).
  absl::Status BatchDeallocate(std::span<SlabRef> refs);
  // Releases every slab in use: every outstanding reference and id becomes
  // stale. Safe against concurrent calls (each slab is taken back once).
  void Reset();
  PoolStats Stats() const;
  HealthMetrics HealthCheck();
  // Unmaps the slabs, stops the monitor, reports leaks (finalizers). Later
  // calls fail with FailedPrecondition ("pool closed"). Must not run
  // concurrently with other calls on this pool. Idempotent.
  absl::Status Close();

  size_t slab_size() const;
  size_t capacity() const;

 private:
  friend class PoolImpl;
  friend class SlabRef;
  Pool() = default;
};

}  // namespace slabby

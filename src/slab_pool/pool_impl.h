// PoolImpl: the object Pool::Create makes. Pool's methods are non-virtual
// and cast `this` to it, so the public header shows no internals and a call
// costs no indirection.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdarg>
#include <mutex>
#include <thread>

#include "slab_pool/health.h"
#include "slab_pool/region.h"
#include "slab_pool/slot_table.h"
#include "slabby/pool.hpp"

namespace slabby {

class PoolImpl final : public Pool {
 public:
  static PoolImpl* of(Pool* p) { return static_cast<PoolImpl*>(p); }
  static const PoolImpl* of(const Pool* p) { return static_cast<const PoolImpl*>(p); }

  PoolImpl() = default;
  ~PoolImpl() override;

  absl::Status init(size_t slab_size, size_t capacity, const Options& o);

  // The engine. take_slot: a free slot marked allocated (gen = its new odd
  // generation), or false when none is free.
  bool take_slot(uint32_t* index, uint32_t* gen, bool fast);
  absl::Status give_back(uint32_t index, uint32_t gen, bool fast);
  absl::StatusOr<SlabRef> allocate(bool allow_fallback);
  absl::Status release_ref(SlabRef& ref);
  absl::Status free_heap(std::byte* p);

  bool owns(uint32_t index, uint32_t gen) const {
    return index < capacity_ && words_[index].load(std::memory_order_acquire) == gen;
  }
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  std::byte* slab(uint32_t i) const { return region_.slab(i); }
  std::string stack_of(uint32_t index, uint32_t gen) const;

  void log(LogLevel level, const char* fmt, ...) const __attribute__((format(printf, 3, 4)));

  PoolStats stats() const;
  HealthMetrics health();
  void reset();
  absl::Status close();
  absl::StatusOr<SlabRef> allocate_with_timeout(absl::Duration timeout);

  size_t slab_size_ = 0;
  size_t requested_size_ = 0;
  uint32_t capacity_ = 0;

 private:
  friend class Pool;
  uint32_t home_shard() const;
  absl::Status out_of_slots();
  void wake_waiters();
  void record_latency(int64_t start_ns);
  void capture_stack(uint32_t index);
  void report_leaks();
  void monitor_loop();
  // Takes a freed slot back: canary check, zeroing, push. `gen` is already
  // advanced; returns DataLoss on a broken canary (the slot is freed anyway).
  absl::Status recycle(uint32_t index, uint32_t shard);

  Options options_;
  slab_pool::Region region_;
  std::atomic<uint32_t>* words_ = nullptr;  // SlotTable: see slot_table.h
  slab_pool::FreeLists::Node* nodes_ = nullptr;
  void* shard_storage_ = nullptr;
  slab_pool::FreeLists lists_;
  std::vector<uint16_t> cpu_shard_;  // CPU id -> home shard
  bool timed_ = false;               // latency sampling on

  // Debug stacks: kFrames return addresses per slot.
  static constexpr int kFrames = 16;
  void** stacks_ = nullptr;
  uint8_t* depths_ = nullptr;

  // AllocateWithTimeout: sleepers wait on wake_seq_ (a futex word); a
  // release bumps it and wakes them only while waiters_ > 0.
  std::atomic<uint32_t> waiters_{0};
  std::atomic<uint32_t> wake_seq_{0};

  std::atomic<bool> closed_{false};
  slab_pool::CircuitBreaker breaker_;
  slab_pool::LatencyHistogram latency_;

  // Rare events: one shared line is fine.
  std::atomic<uint64_t> heap_fallbacks_{0}, heap_frees_{0}, batch_allocs_{0}, batch_frees_{0},
      alloc_errors_{0}, dealloc_errors_{0}, timeouts_{0}, breaker_rejections_{0}, corruptions_{0},
      leaks_{0}, latency_violations_{0};

  // HealthCheck's previous snapshot (error rate window, trend).
  // std::mutex rather than absl::Mutex: Debian's Abseil is not built for
  // ThreadSanitizer, which would then not see this lock.
  std::mutex health_mu_;
  uint64_t last_attempts_ = 0, last_errors_ = 0;
  double last_score_ = 1;
  bool has_last_ = false;

  // The monitor (health_checks with health_interval).
  std::mutex monitor_mu_;
  std::condition_variable monitor_cv_;
  bool monitor_stop_ = false;
  std::thread monitor_;
};

}  // namespace slabby

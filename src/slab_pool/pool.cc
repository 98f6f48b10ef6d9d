// slabby::Pool: construction, the allocate/release engine and the public
// allocation methods. Stats, health, Reset and Close are in lifecycle.cc;
// SlabRef in slab_ref.cc.
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "slab_pool/pool_impl.h"

namespace slabby {

using slab_pool::kHeapIndex;

namespace {

constexpr size_t kMaxSlab = size_t{1} << 30;
constexpr size_t kMaxCapacity = 0x7fffffff;

size_t align_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

// Sampling period of allocation latency (a power of two): two clock reads
// per allocation would cost more than the allocation itself.
constexpr uint32_t kLatencySample = 16;
thread_local uint32_t tls_sample_tick = 0;
thread_local uint32_t tls_thread_slot = 0;  // 0 = not assigned yet
std::atomic<uint32_t> g_thread_slots{0};

}  // namespace

// ---- construction ----------------------------------------------------------

absl::StatusOr<std::unique_ptr<Pool>> Pool::Create(size_t slab_size, size_t capacity,
                                                   const Options& options) {
  if (slab_size == 0 || slab_size > kMaxSlab)
    return absl::InvalidArgumentError(
        absl::StrCat("slabby: invalid slab size ", slab_size, " (1 to ", kMaxSlab, ")"));
  if (capacity == 0 || capacity > kMaxCapacity)
    return absl::InvalidArgumentError(
        absl::StrCat("slabby: invalid capacity ", capacity, " (1 to ", kMaxCapacity, ")"));
  const uint32_t cl = options.cache_line;
  if (cl < 16 || cl > 4096 || (cl & (cl - 1)) != 0)
    return absl::InvalidArgumentError(
        absl::StrCat("slabby: invalid cache line ", cl, " (a power of two, 16 to 4096)"));
  if (options.breaker_threshold < 0 || options.breaker_timeout < absl::ZeroDuration())
    return absl::InvalidArgumentError("slabby: invalid circuit breaker settings");
  if (options.health_interval < absl::ZeroDuration() ||
      options.max_alloc_latency < absl::ZeroDuration())
    return absl::InvalidArgumentError("slabby: invalid health interval or latency bound");
  auto pool = std::make_unique<PoolImpl>();
  absl::Status s = pool->init(slab_size, capacity, options);
  if (!s.ok()) return s;
  return std::unique_ptr<Pool>(std::move(pool));
}

absl::Status PoolImpl::init(size_t slab_size, size_t capacity, const Options& o) {
  options_ = o;
  requested_size_ = slab_size;
  slab_size_ = align_up(slab_size, o.cache_line);
  capacity_ = static_cast<uint32_t>(capacity);
  unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = std::max(1, CPU_COUNT(&set));
  uint32_t shards = o.shards != 0 ? o.shards : cpus;
  shards = std::min<uint32_t>({shards, capacity_, 1024});

  if (absl::Status s = region_.map(slab_size_, capacity_, o.cache_line, o.guard_pages, o.bit_guard);
      !s.ok())
    return s;

  words_ = new std::atomic<uint32_t>[capacity_];
  for (uint32_t i = 0; i < capacity_; ++i) words_[i].store(0, std::memory_order_relaxed);
  nodes_ = static_cast<slab_pool::FreeLists::Node*>(
      std::aligned_alloc(16, size_t{capacity_} * sizeof(slab_pool::FreeLists::Node)));
  // Per-shard data spaced by at least the cache line (and 128 bytes, for the
  // adjacent-line prefetcher, as in slabby's central pools).
  size_t stride = align_up(sizeof(slab_pool::Shard), std::max<size_t>(o.cache_line, 128));
  size_t align = std::max<size_t>(o.cache_line, 128);
  shard_storage_ = std::aligned_alloc(align, stride * shards);
  if (nodes_ == nullptr || shard_storage_ == nullptr)
    return absl::ResourceExhaustedError("slabby: out of memory: pool metadata");
  lists_.init(nodes_, capacity_, shard_storage_, shards, stride);
  // Shard s starts with a contiguous range of slots, pushed high to low so
  // the lowest index comes out first (neighbouring slabs, warm pages).
  for (uint32_t s = 0; s < shards; ++s) {
    uint32_t lo = static_cast<uint32_t>(uint64_t{capacity_} * s / shards);
    uint32_t hi = static_cast<uint32_t>(uint64_t{capacity_} * (s + 1) / shards);
    for (uint32_t i = hi; i-- > lo;) lists_.push(s, i);
  }
  unsigned possible = std::max(cpus, std::thread::hardware_concurrency());
  cpu_shard_.resize(std::max(possible, 1u));
  for (size_t c = 0; c < cpu_shard_.size(); ++c) cpu_shard_[c] = c % shards;

  breaker_.init(o.breaker_threshold, absl::ToInt64Nanoseconds(o.breaker_timeout));
  timed_ = o.health_checks || o.max_alloc_latency > absl::ZeroDuration();
  if (o.debug) {
    stacks_ = new void*[size_t{capacity_} * kFrames]();
    depths_ = new uint8_t[capacity_]();
    capture_stack(0);  // warms up backtrace() (its first call loads libgcc_s)
    depths_[0] = 0;
  }
  if (o.health_checks && o.health_interval > absl::ZeroDuration())
    monitor_ = std::thread([this] { monitor_loop(); });
  return absl::OkStatus();
}

// ---- logging ---------------------------------------------------------------

void PoolImpl::log(LogLevel level, const char* fmt, ...) const {
  if (!options_.logger) return;
  char buf[768];  // no heap: the logger may be called from Release
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  options_.logger(level, std::string_view(buf, std::min<size_t>(n, sizeof buf - 1)));
}

// ---- the engine ------------------------------------------------------------

uint32_t PoolImpl::home_shard() const {
  uint32_t n = lists_.shards();
  if (n == 1) return 0;
  if (options_.per_cpu_cache) {
    int cpu = sched_getcpu();  // glibc reads it from the rseq area: no system call
    if (cpu >= 0 && static_cast<size_t>(cpu) < cpu_shard_.size()) return cpu_shard_[cpu];
    return cpu < 0 ? 0 : static_cast<uint32_t>(cpu) % n;
  }
  if (tls_thread_slot == 0)
    tls_thread_slot = g_thread_slots.fetch_add(1, std::memory_order_relaxed) + 1;
  return tls_thread_slot % n;
}

bool PoolImpl::take_slot(uint32_t* index, uint32_t* gen, bool fast) {
  uint32_t home = home_shard();
  bool stolen;
  if (!lists_.pop(home, index, &stolen)) return false;
  // Ours alone now (slot_table.h): the word is even and nobody else writes it.
  uint32_t g = words_[*index].load(std::memory_order_relaxed) + 1;
  words_[*index].store(g, std::memory_order_release);
  *gen = g;
  slab_pool::ShardCounters& c = lists_.shard(home).counters;
  (stolen ? c.steals : c.home_hits).fetch_add(1, std::memory_order_relaxed);
  if (fast) c.fast_allocs.fetch_add(1, std::memory_order_relaxed);
  if (__builtin_expect(stacks_ != nullptr, 0)) capture_stack(*index);
  return true;
}

absl::Status PoolImpl::recycle(uint32_t index, uint32_t shard) {
  absl::Status status;
  if (options_.bit_guard && !region_.canary_intact(index)) {
    corruptions_.fetch_add(1, std::memory_order_relaxed);
    log(LogLevel::kError, "slabby: memory corruption: canary of slab %u overwritten (overflow)",
        index);
    status = absl::DataLossError("slabby: memory corruption: canary of slab overwritten");
    region_.arm_canary(index);
  }
  if (options_.secure) std::memset(region_.slab(index), 0, slab_size_);
  lists_.push(shard, index);
  lists_.shard(shard).counters.frees.fetch_add(1, std::memory_order_relaxed);
  // Pairs with the fence in allocate_with_timeout: either the sleeper sees
  // the slot we pushed, or we see it counted in waiters_.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (__builtin_expect(waiters_.load(std::memory_order_relaxed) != 0, 0)) wake_waiters();
  return status;
}

absl::Status PoolImpl::give_back(uint32_t index, uint32_t gen, bool fast) {
  if (__builtin_expect(closed(), 0)) return absl::FailedPreconditionError("slabby: pool closed");
  if (index >= capacity_ || !slab_pool::is_allocated(gen)) {
    dealloc_errors_.fetch_add(1, std::memory_order_relaxed);
    return absl::FailedPreconditionError("slabby: invalid reference");
  }
  uint32_t expected = gen;
  if (!words_[index].compare_exchange_strong(expected, gen + 1, std::memory_order_acq_rel,
                                             std::memory_order_relaxed)) {
    dealloc_errors_.fetch_add(1, std::memory_order_relaxed);
    if (expected == gen + 1) return absl::FailedPreconditionError("slabby: double deallocation");
    return absl::FailedPreconditionError(
        "slabby: invalid reference (stale: the slab was released and reused)");
  }
  uint32_t shard = home_shard();
  if (fast) lists_.shard(shard).counters.fast_frees.fetch_add(1, std::memory_order_relaxed);
  return recycle(index, shard);
}

absl::Status PoolImpl::out_of_slots() {
  alloc_errors_.fetch_add(1, std::memory_order_relaxed);
  if (breaker_.enabled() && breaker_.on_failure() == slab_pool::CircuitBreaker::Change::kOpened)
    log(LogLevel::kWarning, "slabby: circuit breaker open after %lld failed allocations",
        static_cast<long long>(options_.breaker_threshold));
  return absl::ResourceExhaustedError("slabby: out of memory: every slab is in use");
}

void PoolImpl::record_latency(int64_t start_ns) {
  int64_t ns = slab_pool::now_ns() - start_ns;
  latency_.record(ns);
  int64_t bound = absl::ToInt64Nanoseconds(options_.max_alloc_latency);
  if (bound > 0 && ns > bound) {
    uint64_t n = latency_violations_.fetch_add(1, std::memory_order_relaxed);
    if ((n & (n + 1)) == 0)  // the 1st, 2nd, 4th, 8th ...: a slow pool does not flood the log
      log(LogLevel::kWarning,
          "slabby: allocation took %lld ns, above the %lld ns bound (%llu so far)",
          static_cast<long long>(ns), static_cast<long long>(bound),
          static_cast<unsigned long long>(n + 1));
  }
}

absl::StatusOr<SlabRef> PoolImpl::allocate(bool allow_fallback) {
  if (__builtin_expect(closed(), 0)) return absl::FailedPreconditionError("slabby: pool closed");
  if (breaker_.enabled() && !breaker_.admit()) {
    breaker_rejections_.fetch_add(1, std::memory_order_relaxed);
    alloc_errors_.fetch_add(1, std::memory_order_relaxed);
    return absl::UnavailableError("slabby: circuit breaker open");
  }
  int64_t start = 0;
  if (timed_ && (++tls_sample_tick & (kLatencySample - 1)) == 0) start = slab_pool::now_ns();
  uint32_t index, gen;
  if (__builtin_expect(take_slot(&index, &gen, false), 1)) {
    if (breaker_.enabled() && breaker_.on_success() == slab_pool::CircuitBreaker::Change::kClosed)
      log(LogLevel::kInfo, "slabby: circuit breaker closed");
    if (start != 0) record_latency(start);
    return SlabRef(this, region_.slab(index), index, gen);
  }
  if (allow_fallback && options_.heap_fallback) {
    // Every slab is in use: a heap buffer of the same size and alignment.
    void* p = std::aligned_alloc(options_.cache_line, slab_size_);
    if (p != nullptr) {
      // A secure pool's next owner sees zeroes, heap buffers included
      // (malloc's memory may hold anything; pool_fuzz found it).
      if (options_.secure) std::memset(p, 0, slab_size_);
      heap_fallbacks_.fetch_add(1, std::memory_order_relaxed);
      log(LogLevel::kDebug, "slabby: heap fallback (every slab is in use)");
      return SlabRef(this, static_cast<std::byte*>(p), kHeapIndex, 1);
    }
  }
  return out_of_slots();
}

absl::Status PoolImpl::free_heap(std::byte* p) {
  if (options_.secure) std::memset(p, 0, slab_size_);
  std::free(p);
  heap_frees_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status PoolImpl::release_ref(SlabRef& ref) {
  if (ref.pool_ == nullptr) return absl::FailedPreconditionError("slabby: invalid reference");
  if (ref.pool_ != this) {
    dealloc_errors_.fetch_add(1, std::memory_order_relaxed);
    return absl::FailedPreconditionError("slabby: invalid reference (another pool's slab)");
  }
  std::byte* data = ref.data_;
  uint32_t index = ref.index_, gen = ref.gen_;
  ref.pool_ = nullptr;
  ref.data_ = nullptr;
  if (index == kHeapIndex) return free_heap(data);  // heap memory: freed even after Close
  return give_back(index, gen, false);
}

// ---- AllocateWithTimeout: futex sleep, no polling --------------------------

namespace {
long futex(std::atomic<uint32_t>* word, int op, uint32_t val, const timespec* ts) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op, val, ts, nullptr, 0);
}
}  // namespace

void PoolImpl::wake_waiters() {
  wake_seq_.fetch_add(1, std::memory_order_release);
  // All of them: a woken sleeper whose deadline has passed must not swallow
  // the only wake-up while another could still use the slab.
  futex(&wake_seq_, FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr);
}

absl::StatusOr<SlabRef> PoolImpl::allocate_with_timeout(absl::Duration timeout) {
  const int64_t deadline =
      slab_pool::now_ns() + std::max<int64_t>(0, absl::ToInt64Nanoseconds(timeout));
  if (closed()) return absl::FailedPreconditionError("slabby: pool closed");
  if (breaker_.enabled() && !breaker_.admit()) {
    breaker_rejections_.fetch_add(1, std::memory_order_relaxed);
    alloc_errors_.fetch_add(1, std::memory_order_relaxed);
    return absl::UnavailableError("slabby: circuit breaker open");
  }
  uint32_t index, gen;
  for (;;) {
    if (take_slot(&index, &gen, false)) break;
    // Register, then look again: a release either pushed before our second
    // look (we see its slot, or its wake_seq_ bump moved `seq`), or saw us in
    // waiters_ and bumps wake_seq_ after we read it (the wait returns at once).
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    uint32_t seq = wake_seq_.load(std::memory_order_acquire);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    bool got = take_slot(&index, &gen, false);
    int64_t left = deadline - slab_pool::now_ns();
    if (!got && left > 0 && !closed()) {
      timespec ts{static_cast<time_t>(left / 1000000000), static_cast<long>(left % 1000000000)};
      futex(&wake_seq_, FUTEX_WAIT_PRIVATE, seq, &ts);
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    if (got) break;
    if (closed()) return absl::FailedPreconditionError("slabby: pool closed");
    if (left <= 0) {
      timeouts_.fetch_add(1, std::memory_order_relaxed);
      out_of_slots().IgnoreError();  // counts the error and the breaker failure
      return absl::DeadlineExceededError(absl::StrCat("slabby: allocation timeout after ",
                                                      absl::FormatDuration(timeout),
                                                      " (every slab in use)"));
    }
  }
  if (breaker_.enabled() && breaker_.on_success() == slab_pool::CircuitBreaker::Change::kClosed)
    log(LogLevel::kInfo, "slabby: circuit breaker closed");
  return SlabRef(this, region_.slab(index), index, gen);
}

// ---- Pool's public methods ---------------------------------------------------

Pool::~Pool() = default;

absl::StatusOr<SlabRef> Pool::Allocate() { return PoolImpl::of(this)->allocate(true); }

BatchAllocation Pool::BatchAllocate(size_t n) {
  PoolImpl* self = PoolImpl::of(this);
  BatchAllocation out;
  if (n > self->capacity_) {
    out.status = absl::InvalidArgumentError(
        absl::StrCat("slabby: batch of ", n, " exceeds the capacity ", self->capacity_));
    return out;
  }
  out.refs.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    absl::StatusOr<SlabRef> r = self->allocate(true);
    if (!r.ok()) {
      out.status = r.status();
      break;
    }
    out.refs.push_back(*std::move(r));
  }
  self->batch_allocs_.fetch_add(1, std::memory_order_relaxed);
  return out;
}

absl::StatusOr<SlabRef> Pool::AllocateWithTimeout(absl::Duration timeout) {
  return PoolImpl::of(this)->allocate_with_timeout(timeout);
}

SlabRef Pool::MustAllocate() {
  absl::StatusOr<SlabRef> r = Allocate();
  if (!r.ok()) {
    std::string m = absl::StrCat("slabby: MustAllocate failed: ", r.status().ToString(), "\n");
    fwrite(m.data(), 1, m.size(), stderr);
    abort();
  }
  return *std::move(r);
}

absl::StatusOr<FastSlab> Pool::AllocateFast() {
  PoolImpl* self = PoolImpl::of(this);
  if (__builtin_expect(self->closed(), 0))
    return absl::FailedPreconditionError("slabby: pool closed");
  if (self->breaker_.enabled() && !self->breaker_.admit()) {
    self->breaker_rejections_.fetch_add(1, std::memory_order_relaxed);
    self->alloc_errors_.fetch_add(1, std::memory_order_relaxed);
    return absl::UnavailableError("slabby: circuit breaker open");
  }
  uint32_t index, gen;
  if (__builtin_expect(!self->take_slot(&index, &gen, true), 0)) return self->out_of_slots();
  if (self->breaker_.enabled()) self->breaker_.on_success();
  return FastSlab{std::span<std::byte>(self->slab(index), self->slab_size_),
                  uint64_t{gen} << 32 | index};
}

absl::Status Pool::DeallocateFast(uint64_t id) {
  return PoolImpl::of(this)->give_back(static_cast<uint32_t>(id), static_cast<uint32_t>(id >> 32),
                                       true);
}

absl::Status Pool::Deallocate(SlabRef ref) { return PoolImpl::of(this)->release_ref(ref); }

absl::Status Pool::BatchDeallocate(std::span<SlabRef> refs) {
  PoolImpl* self = PoolImpl::of(this);
  absl::Status first;
  for (SlabRef& r : refs) {
    absl::Status s = self->release_ref(r);
    if (first.ok() && !s.ok()) first = s;
  }
  self->batch_frees_.fetch_add(1, std::memory_order_relaxed);
  return first;
}

size_t Pool::slab_size() const { return PoolImpl::of(this)->slab_size_; }
size_t Pool::capacity() const { return PoolImpl::of(this)->capacity_; }

}  // namespace slabby

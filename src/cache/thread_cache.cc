#include "cache/thread_cache.h"

#include <algorithm>
#include <cerrno>

#include "cache/percpu_cache.h"
#include "central/central_pool.h"

namespace slabby {

__thread ThreadCache tl_cache __attribute__((tls_model("initial-exec")));
constinit SmallDivert g_small_divert = {};
constinit ThreadRegistry g_threads;

void* uncached_alloc(unsigned cls, size_t n) noexcept {
  if (SLABBY_UNLIKELY(g_small_divert.alloc != nullptr)) return g_small_divert.alloc(cls, n);
  CentralPool& pool = g_central_pools[cls];
  BlockChain c = pool.take(1, current_shard(pool.num_shards()));
  if (c.count == 0) return g_cache_upcalls.exhausted(class_size(cls));
  if (c.count > 1) pool.give(*static_cast<void**>(c.head), c.count - 1);  // a whole batch came
  g_threads.uncached_allocs[cls].fetch_add(1, std::memory_order_relaxed);
  return c.head;
}

void uncached_free(void* p, unsigned cls) noexcept {
  if (SLABBY_UNLIKELY(g_small_divert.free != nullptr)) return g_small_divert.free(p, cls);
  *static_cast<void**>(p) = nullptr;
  g_central_pools[cls].give(p, 1);
  g_threads.uncached_frees[cls].fetch_add(1, std::memory_order_relaxed);
}

namespace {

// Gives every bin's blocks back to the central pools and leaves the bins
// empty and full for good (limit 0): every later call of the thread misses.
void close_bins(ThreadCache& tc) {
  for (unsigned c = 1; c < kNumClasses; ++c) {
    Bin& b = tc.bins[c];
    if (bin_count(b) > 0) g_central_pools[c].give(b.head, bin_count(b));
    b.head = nullptr;
    b.space = 0;
    b.limit = 0;
    tc.demand[c] = BinDemand{};
  }
  g_threads.bins_grown.fetch_sub(tc.grown_bytes, std::memory_order_relaxed);
  g_threads.bins_medium_grown.fetch_sub(tc.medium_grown, std::memory_order_relaxed);
  tc.grown_bytes = 0;
  tc.medium_grown = 0;
}

}  // namespace

uint64_t cache_program_threads() {
  uint64_t live = __atomic_load_n(&g_threads.live, __ATOMIC_RELAXED);
  uint64_t internal = __atomic_load_n(&g_threads.internal, __ATOMIC_RELAXED);
  return live > internal ? live - internal : 1;
}

bool cache_threads_due() { return cache_program_threads() >= g_threads.percpu_threads; }

bool cache_percpu_due(const ThreadCache& tc) {
  return tc.rseq_ok && !tc.percpu_ok && g_small_divert.alloc == nullptr && cache_threads_due();
}

void cache_mark_internal() { __atomic_add_fetch(&g_threads.internal, 1, __ATOMIC_RELAXED); }

bool cache_move_to_percpu() {
  ThreadCache& tc = tl_cache;
  if (tc.state != kCacheActive || !tc.rseq_ok || g_small_divert.alloc != nullptr) return false;
  if (tc.percpu_ok) return true;
  // From here every call misses its bin into the per-CPU path.
  close_bins(tc);
  tc.percpu_ok = 1;
  return true;
}

namespace {

SLABBY_NOINLINE void* refill_and_alloc(unsigned cls, size_t n) noexcept {
  ThreadCache& tc = tl_cache;
  if (tc.percpu_ok) return percpu_alloc(cls);
  if (SLABBY_UNLIKELY(tc.state != kCacheActive)) {
    if (tc.state == kCacheDead) return uncached_alloc(cls, n);
    g_cache_upcalls.thread_init();
    if (tc.state != kCacheActive) return uncached_alloc(cls, n);
    if (tc.percpu_ok) return percpu_alloc(cls);
    // Init may have set a divert.
    if (g_small_divert.alloc != nullptr) return g_small_divert.alloc(cls, n);
  }
  if (SLABBY_UNLIKELY(cache_percpu_due(tc)) && cache_move_to_percpu()) return percpu_alloc(cls);
  Bin& b = tc.bins[cls];
  if (b.head != nullptr) {  // re-entered while initialising: the bin may be filled
    void* p = b.head;
    b.head = *static_cast<void**>(p);
    b.space++;
    tc.allocs[cls]++;
    return p;
  }
  if (SLABBY_UNLIKELY(bins_decay_due(tc))) bins_decay(tc);
  // A medium class kept in the CPU's cache (limit 0) until it misses often
  // enough here to grow a bin (bin_grow_by).
  if (!bin_note_miss(tc, cls, kBinMissEmpty) && b.limit == 0 && cache_medium_on_cpu(tc, cls))
    return percpu_alloc(cls);
  CentralPool& pool = g_central_pools[cls];
  BlockChain c = pool.take(bin_next_fill(b.fill, b.limit, pool.batch_size()),
                           current_shard(pool.num_shards()));
  if (c.count == 0) return g_cache_upcalls.exhausted(class_size(cls));  // arena exhausted
  void* p = c.head;
  void* rest = *static_cast<void**>(p);
  uint32_t kept = c.count - 1;
  if (kept > b.limit) {  // a transfer batch larger than this bin (its limit was lowered)
    pool.give(rest, kept);
    rest = nullptr;
    kept = 0;
  }
  b.head = rest;
  b.space = static_cast<int32_t>(b.limit - kept);
  tc.allocs[cls]++;
  g_cache_upcalls.slow_path_done();
  return p;
}

SLABBY_NOINLINE void flush_and_free(void* p, unsigned cls) noexcept {
  ThreadCache& tc = tl_cache;
  if (tc.percpu_ok) return percpu_free(p, cls);
  if (SLABBY_UNLIKELY(tc.state != kCacheActive)) {
    if (tc.state == kCacheDead) return uncached_free(p, cls);
    g_cache_upcalls.thread_init();
    if (tc.state != kCacheActive) return uncached_free(p, cls);
    if (tc.percpu_ok) return percpu_free(p, cls);
    if (g_small_divert.free != nullptr) return g_small_divert.free(p, cls);
  }
  if (SLABBY_UNLIKELY(cache_percpu_due(tc)) && cache_move_to_percpu()) return percpu_free(p, cls);
  Bin& b = tc.bins[cls];
  // A medium class kept in the CPU's cache (limit 0) until it misses often
  // enough here to grow a bin (bin_grow_by); grown, the block goes in it.
  if (b.limit == 0 && cache_medium_on_cpu(tc, cls)) {
    if (SLABBY_UNLIKELY(bins_decay_due(tc))) bins_decay(tc);
    if (!bin_note_miss(tc, cls, kBinMissFull)) return percpu_free(p, cls);
  }
  if (b.limit == 0) {  // caching disabled (SLABBY_THREAD_CACHE_BYTES=0)
    tc.frees[cls]++;
    *static_cast<void**>(p) = nullptr;
    g_central_pools[cls].give(p, 1);
    return;
  }
  if (SLABBY_UNLIKELY(bins_decay_due(tc))) bins_decay(tc);
  if (b.space <= 0 && !bin_note_miss(tc, cls, kBinMissFull)) {
    // Flush one batch (the top `n` blocks of the bin).
    uint32_t held = bin_count(b), batch = g_central_pools[cls].batch_size();
    bin_give_top(b, cls, batch < held ? batch : held);
    // (No slow_path_done from a free: thread_cache.h CacheUpcalls.)
  }
  *static_cast<void**>(p) = b.head;
  b.head = p;
  b.space--;
  tc.frees[cls]++;
}

}  // namespace

void bin_give_top(Bin& b, unsigned cls, uint32_t n) {
  void* blocks[kMaxBatch];
  void* q = b.head;
  for (uint32_t i = 0; i < n; ++i) {
    blocks[i] = q;
    q = *static_cast<void**>(q);
  }
  b.head = q;
  b.space += static_cast<int32_t>(n);
  g_central_pools[cls].give_blocks(blocks, n);
}

uint32_t first_block_batch(unsigned cls) {
  uint32_t n = static_cast<uint32_t>(4 * kCacheLine / class_size(cls)) + 1;
  return n < kMaxBatch ? n : kMaxBatch;
}

uint32_t arrange_first_block(void** blocks, uint32_t n, size_t size, bool* own_line) {
  // By address: a block's line mates are its neighbours, size bytes apart
  // (a slab starts on a page, so no line holds blocks of two slabs).
  std::sort(blocks, blocks + n);
  uint32_t pick = 0;
  *own_line = false;
  for (uint32_t i = 0; i < n && !*own_line; ++i) {
    uintptr_t p = reinterpret_cast<uintptr_t>(blocks[i]);
    uintptr_t lo = p / kCacheLine * kCacheLine;
    uintptr_t hi = (p + size - 1) / kCacheLine * kCacheLine + kCacheLine;
    bool whole = true;
    uint32_t j = i;
    for (uintptr_t b = p; whole && b > lo;) {  // the blocks below p on its first line
      b -= size;
      whole = j > 0 && reinterpret_cast<uintptr_t>(blocks[--j]) == b;
    }
    j = i;
    for (uintptr_t b = p + size; whole && b < hi; b += size)  // above p, to its last line's end
      whole = j + 1 < n && reinterpret_cast<uintptr_t>(blocks[++j]) == b;
    if (whole) {
      pick = i;
      *own_line = true;
    }
  }
  std::swap(blocks[0], blocks[pick]);
  uintptr_t p = reinterpret_cast<uintptr_t>(blocks[0]);
  uintptr_t lo = p / kCacheLine, hi = (p + size - 1) / kCacheLine;
  uint32_t mates = 0;
  for (uint32_t i = 1; i < n; ++i) {
    uintptr_t b = reinterpret_cast<uintptr_t>(blocks[i]);
    if (b / kCacheLine <= hi && (b + size - 1) / kCacheLine >= lo)
      std::swap(blocks[i], blocks[1 + mates++]);
  }
  return mates;
}

void* cache_alloc_first(unsigned cls, size_t n) noexcept {
  ThreadCache& tc = tl_cache;
  if (tc.percpu_ok) return percpu_alloc_first(cls);
  if (g_small_divert.alloc_first != nullptr) return g_small_divert.alloc_first(cls, n);
  if (tc.state != kCacheActive || g_small_divert.alloc != nullptr || cache_percpu_due(tc))
    return cache_refill_and_alloc(cls, n);
  Bin& b = tc.bins[cls];
  CentralPool& pool = g_central_pools[cls];
  size_t size = class_size(cls);
  uint32_t want = first_block_batch(cls);
  void* blocks[kMaxBatch];
  // As percpu_alloc_first: the bin's top blocks, else a few of the pool's.
  // (The thread is bound: its bin holds limit - space blocks.)
  uint32_t got = 0;
  while (got < want && b.head != nullptr) {
    blocks[got++] = b.head;
    b.head = *static_cast<void**>(b.head);
  }
  b.space += static_cast<int32_t>(got);
  bool own = false;
  if (got > 0) arrange_first_block(blocks, got, size, &own);
  if (!own) {
    for (uint32_t i = 0; i < got; ++i) {  // back as they were
      *static_cast<void**>(blocks[got - 1 - i]) = b.head;
      b.head = blocks[got - 1 - i];
    }
    b.space -= static_cast<int32_t>(got);
    got = pool.take_blocks(blocks, want, current_shard(pool.num_shards()));
    if (got == 0) return cache_refill_and_alloc(cls, n);  // the pool is out: the usual way
    arrange_first_block(blocks, got, size, &own);
  }
  // The rest into the bin as far as it has room, the block's line mates
  // first (deepest); what does not fit goes back to the pool.
  void** rest = blocks + 1;
  uint32_t keep = got - 1;
  uint32_t room = b.space > 0 ? static_cast<uint32_t>(b.space) : 0;
  if (keep > room) keep = room;
  for (uint32_t i = 0; i < keep; ++i) {
    *static_cast<void**>(rest[i]) = b.head;
    b.head = rest[i];
  }
  b.space -= static_cast<int32_t>(keep);
  if (keep < got - 1) pool.give_blocks(rest + keep, got - 1 - keep);
  tc.allocs[cls]++;
  g_cache_upcalls.slow_path_done();
  return blocks[0];
}

// A divert keeps every bin at limit 0, so every call lands here: it is
// tested first, in a frame of its own (a tail jump), and takes the calling
// thread's first call too (the divert initialises the thread).
void* cache_refill_and_alloc(unsigned cls, size_t n) noexcept {
  if (SLABBY_UNLIKELY(g_small_divert.alloc != nullptr)) return g_small_divert.alloc(cls, n);
  return refill_and_alloc(cls, n);
}

void cache_flush_and_free(void* p, unsigned cls) noexcept {
  if (SLABBY_UNLIKELY(g_small_divert.free != nullptr)) return g_small_divert.free(p, cls);
  return flush_and_free(p, cls);
}

void cache_teardown(ThreadCache* tc) {
  if (tc->state != kCacheActive) return;
  if (g_small_divert.thread_exit != nullptr) g_small_divert.thread_exit();
  tc->percpu_ok = 0;  // from now on every call goes to the slow path, uncached
  tc->rseq_ok = 0;
  close_bins(*tc);
  LockGuard g(g_threads.mu);
  for (unsigned c = 1; c < kNumClasses; ++c) {
    g_threads.retired_allocs[c] += tc->allocs[c];
    g_threads.retired_frees[c] += tc->frees[c];
    g_threads.retired_percpu_net[c] += tc->percpu_net[c];
    tc->allocs[c] = tc->frees[c] = 0;
    tc->percpu_net[c] = 0;
  }
  g_threads.retired_realloc_copies += tc->realloc_copies;
  g_threads.retired_realloc_copied_bytes += tc->realloc_copied_bytes;
  tc->realloc_copies = tc->realloc_copied_bytes = 0;
  if (tc->prev) tc->prev->next = tc->next; else g_threads.list = tc->next;
  if (tc->next) tc->next->prev = tc->prev;
  tc->next = tc->prev = nullptr;
  __atomic_store_n(&g_threads.live, g_threads.live - 1, __ATOMIC_RELAXED);
  g_threads.exited++;
  tc->state = kCacheDead;
}

void cache_forget_other_threads() {
  // Runs in a forked child, single-threaded, with the registry lock freshly
  // reset. Other threads' cached blocks are lost to the child (a fork can
  // interrupt their lock-free fast path mid-update, so walking their bins is
  // not safe); their counters are kept.
  ThreadCache* self = tl_cache.state == kCacheActive ? &tl_cache : nullptr;
  // Forked from the only thread: nothing to forget, and no page to write
  // (each is a copy-on-write fault in the child).
  if (g_threads.list == self && (self == nullptr || self->next == nullptr) &&
      __atomic_load_n(&g_threads.live, __ATOMIC_RELAXED) == (self ? 1u : 0u))
    return;
  for (ThreadCache* t = g_threads.list; t != nullptr; t = t->next) {
    if (t == self) continue;
    for (unsigned c = 1; c < kNumClasses; ++c) {
      g_threads.retired_allocs[c] += t->allocs[c];
      g_threads.retired_frees[c] += t->frees[c];
      g_threads.retired_percpu_net[c] += t->percpu_net[c];
    }
    g_threads.retired_realloc_copies += t->realloc_copies;
    g_threads.retired_realloc_copied_bytes += t->realloc_copied_bytes;
  }
  g_threads.list = self;
  if (self) self->next = self->prev = nullptr;
  g_threads.bins_grown.store(self ? self->grown_bytes : 0, std::memory_order_relaxed);
  g_threads.bins_medium_grown.store(self ? self->medium_grown : 0, std::memory_order_relaxed);
  __atomic_store_n(&g_threads.live, self ? 1 : 0, __ATOMIC_RELAXED);
  __atomic_store_n(&g_threads.internal, 0, __ATOMIC_RELAXED);
}

uint64_t cache_flush_all() noexcept {
  ThreadCache& tc = tl_cache;
  if (tc.state != kCacheActive) return 0;
  if (g_small_divert.flush != nullptr) return g_small_divert.flush();
  if (tc.percpu_ok) return 0;
  uint64_t moved = 0;
  for (unsigned c = 1; c < kNumClasses; ++c) {
    Bin& b = tc.bins[c];
    uint32_t n = bin_count(b);
    if (n == 0) continue;
    g_central_pools[c].give(b.head, n);
    b.head = nullptr;
    b.space = b.limit;
    moved += n;
  }
  bins_reset(tc);  // empty bins: only the limits change
  return moved;
}

}  // namespace slabby

// slabby: small blocks on the checked paths: the general pair, the thread
// bins, and blocks from and to the central pools (secure/checks.h has the
// block format, secure/checked_block.h its helpers, secure/checked_cache.h
// the per-thread state; the lean pair is in checked_lean.cc).
#include <sys/types.h>

#include <cerrno>
#include <cstring>

#include "frontend/allocator.h"
#include "runtime/background.h"
#include "runtime/runtime.h"
#include "secure/checked_block.h"
#include "secure/checked_cache.h"
#include "secure/checks.h"
#include "secure/leak_check.h"
#include "secure/report.h"

namespace slabby {

__thread CheckedCache tl_checked __attribute__((tls_model("initial-exec")));

using namespace checked;

namespace {


// Reads a word about to be written, as one read-modify-write instruction on
// x86-64 (xadd of 0): a page never touched yet then takes one write fault,
// where a plain load took a read fault (the shared zero page) and the store
// a second one (checked modes faulted twice as many pages as the default
// on a growing heap: fragmentation, 200,000 minor faults against 104,000).
SLABBY_INLINE uint64_t load_for_store(uint64_t& w) {
#if SLABBY_ASM_X86_64
  uint64_t v = 0;
  asm volatile("xaddq %0, %1" : "+r"(v), "+m"(w));
  return v;
#else
  return w;
#endif
}

// A block fresh from the central pool: those the program freed before keep
// their tag (and zeros, checked here); the others are marked never used.
void format_from_pool(uintptr_t p, unsigned cls) {
  if (!g_checks.tags) return;
  size_t size = class_size(cls);
  uint64_t& tag = state_word(p, cls);
  if (load_for_store(tag) == freed_tag(p)) {
    // The transfer stack links batches through the second word.
    if (size > 16) words(p)[1] = 0;
    if (g_checks.zero_free) {
      ssize_t bad = first_nonzero(p, 16, body_end(cls));
      if (bad >= 0) write_after_free(p, cls, bad, "malloc");
    }
    return;
  }
  if (g_checks.zero_free) {
    if (SLABBY_UNLIKELY(size > kPagewiseBody))
      zero_fresh_body(p, size);  // a medium block: its pages given back
    else
      zero_body(p, size);
  }
  tag = fresh_tag(p);
}

// Never-used blocks one refill may carve. Every block a checked refill
// takes is written (its tag, its first word), so fresh ones cost their
// memory at once, where the default's cached pointers cost none until the
// program uses them: 8 KiB of them per refill (at least one), so classes up
// to 64 bytes keep whole batches and a 4 KiB class takes two at a time.
// (Whole 32 KiB batches cost the thread benchmarks' small heaps 15-30% more
// peak RSS than the default's.)
SLABBY_INLINE uint32_t fresh_per_refill(unsigned cls) {
  uint32_t n = static_cast<uint32_t>((8u << 10) / class_size(cls));
  return n > 0 ? n : 1;
}

// Fills the empty bin: 4 blocks, then 8, ... up to half its limit and one
// transfer batch, by the default bins' slow start (cache/thread_cache.h
// bin_next_fill): every block a checked refill takes is written (its tag),
// so a short-lived thread, or one using a class a few times, touches few
// (one block, taken at once, when the class caches nothing). The limit is set
// first if it was still 0, so space stays at least 0 between calls: the
// inline free's undo of a full bin (frontend/hardened_fast.h) stores 0, and
// a negative space there would lose blocks from the count.
// The blocks come as an array (CentralPool::take_blocks), so each is written
// once, its tag and its encoded link, not first linked by the pool and read
// back.
bool refill(CheckedBin& b, unsigned cls) {
  CentralPool& pool = g_central_pools[cls];
  if (b.limit == 0) checked_bin_set_limit(b, bin_base(tl_cache, cls));
  uint32_t limit = b.limit;
  uint32_t n = bin_next_fill(b.fill, limit, pool.batch_size());
  void* blocks[kMaxBatch];
  uint32_t got =
      pool.take_blocks(blocks, n, current_shard(pool.num_shards()), fresh_per_refill(cls));
  if (got == 0) return false;
  // A whole transfer batch may come: what the bin has no room for goes back
  // (one block always stays, for the caller to pop at once).
  uint32_t keep = got < limit ? got : (limit > 0 ? limit : 1);
  for (uint32_t i = 0; i < keep; ++i) {
    uintptr_t p = reinterpret_cast<uintptr_t>(blocks[i]);
    format_from_pool(p, cls);
    push(b, p);
  }
  if (keep < got) pool.give_blocks(blocks + keep, got - keep);
  maybe_start_background();  // a refill, holding no lock (runtime/background.h)
  return true;
}

// Gives the bin's top n blocks back to the central pool, a transfer batch at
// a time, as arrays: each link is read (and checked) once, and no block is
// written (the pool keeps arrays, or links a block itself as it takes it).
void flush(CheckedBin& b, unsigned cls, uint32_t n) {
  CentralPool& pool = g_central_pools[cls];
  uint32_t batch = pool.batch_size();
  void* blocks[kMaxBatch];
  while (n > 0) {
    uint32_t k = n < batch ? n : batch;
    for (uint32_t i = 0; i < k; ++i) blocks[i] = reinterpret_cast<void*>(pop(b, cls));
    pool.give_blocks(blocks, k);
    n -= k;
  }
}

// Gives the bin's blocks above `keep` back.
void flush_above(CheckedBin& b, unsigned cls, uint32_t keep) {
  uint32_t count = checked_bin_count(b);
  if (count > keep) flush(b, cls, count - keep);
}

// The bins' capacities follow demand by the default bins' rule, on the
// thread's own demand and budget (cache/thread_cache.h bin_grow_by; the
// thread's default bins are unused under a divert). A miss of class cls
// (kBinMissEmpty: a refill; kBinMissFull: a flush) may double its limit.
void bin_missed(ThreadCache& tc, CheckedBin& b, unsigned cls, BinMiss kind) {
  uint32_t add = bin_grow_by(tc, cls, kind, b.limit);
  if (add > 0) checked_bin_set_limit(b, b.limit + add);
}

// Once per decay epoch, from a slow path: classes grown above their base
// that missed nothing since the last one give back half of what they grew.
SLABBY_NOINLINE void decay_bins(ThreadCache& tc) {
  CheckedCache& k = tl_checked;
  for (unsigned c = 1; c < kNumClasses && tc.grown_bytes != 0; ++c) {
    CheckedBin& b = k.bins[c];
    uint32_t target = bin_decay_target(tc, c, b.limit);
    if (target >= b.limit) continue;
    flush_above(b, c, target);
    bin_shrunk(tc, c, b.limit, target);
    checked_bin_set_limit(b, target);
  }
  bins_decay_done(tc);
}

// A block the pool hands out on its way into a CPU cache, formatted as in a
// bin. (It comes as a pointer in a batch, not through a link to check.)
void admit(void* block, unsigned cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
  format_from_pool(p, cls);
  mark_cached(p);
}


// A freed block (tagged) into the CPU cache: false when the thread cannot
// use one now.
SLABBY_INLINE bool release_to_cpu(uintptr_t p, unsigned cls) {
  mark_cached(p);
  void* b = reinterpret_cast<void*>(p);
  return percpu_push(cls, b) || percpu_flush_and_push(b, cls);
}

// One block from the CPU cache (refilled from the pool when empty), or 0
// when the thread cannot use one now or the pool has none.
SLABBY_INLINE uintptr_t take_from_cpu(unsigned cls) {
  void* b = percpu_pop(cls);
  if (b == nullptr) b = percpu_refill_admitting(cls, admit, fresh_per_refill(cls));
  uintptr_t p = reinterpret_cast<uintptr_t>(b);
  if (p != 0) verify_first_word(p, cls);
  return p;
}

// Whether class cls's blocks go through the calling thread's CPU cache, not
// its bin: every class once the thread has moved there, and the medium
// classes of any thread that can run the critical sections, as in the
// default caches (cache/thread_cache.h cache_medium_on_cpu): a bin keeping
// one block of each medium class it frees held up to 6 MiB a thread (a C++
// program's eight threads on their bins peaked 1.35 x the default's RSS).
SLABBY_INLINE bool on_cpu_cache(const ThreadCache& tc, unsigned cls) {
  return tl_checked.on_cpu || cache_medium_on_cpu(tc, cls);
}

// A thread on its bins moves to the CPU caches once the process has the
// threads for them (checked_cache.h), as the default caches' threads do:
// its bins go to the central pools, and from now on its blocks are cached
// per CPU. Called from the slow paths of an active thread.
// (The bins keep their bases: they serve only when the CPU's cache cannot.)
SLABBY_INLINE void move_to_cpu_if_due(const ThreadCache& tc) {
  CheckedCache& k = tl_checked;
  if (SLABBY_UNLIKELY(!k.on_cpu && tc.rseq_ok && cache_threads_due())) {
    checked_thread_flush();
    k.on_cpu = 1;
  }
}

// A freed block back to the CPU's or the thread's cache (or, without one,
// the pool).
SLABBY_INLINE void release(uintptr_t p, unsigned cls) {
  ThreadCache& tc = tl_cache;
  if (tc.state == kCacheActive) move_to_cpu_if_due(tc);
  if (tc.state == kCacheActive && on_cpu_cache(tc, cls) && release_to_cpu(p, cls)) return;
  if (SLABBY_UNLIKELY(tc.state != kCacheActive || g_rt.cache_limit[cls] == 0)) {
    words(p)[0] = 0;
    g_central_pools[cls].give(reinterpret_cast<void*>(p), 1);
    return;
  }
  CheckedBin& b = tl_checked.bins[cls];
  // From the first release on, the fast free (checked_lean.cc, the hardened
  // library's inline one) pushes until the bin is full.
  if (b.limit == 0) checked_bin_set_limit(b, bin_base(tc, cls));
  if (b.space <= 0) {
    if (SLABBY_UNLIKELY(bins_decay_due(tc))) decay_bins(tc);
    bin_missed(tc, b, cls, kBinMissFull);
    if (b.space <= 0) {
      uint32_t n = g_central_pools[cls].batch_size(), count = checked_bin_count(b);
      flush(b, cls, n < count ? n : count);
    }
  }
  push(b, p);
}


// Allocation from exactly class cls (its usable size already covers the
// request and the canary).
SLABBY_INLINE void* alloc_exact(unsigned cls) {
  ThreadCache& tc = tl_cache;
  uintptr_t p;
  if (SLABBY_LIKELY(tc.state == kCacheActive)) {
    move_to_cpu_if_due(tc);
    p = on_cpu_cache(tc, cls) ? take_from_cpu(cls) : 0;
    if (p == 0) {
      CheckedBin& b = tl_checked.bins[cls];
      if (b.head == 0) {
        if (SLABBY_UNLIKELY(bins_decay_due(tc))) decay_bins(tc);
        bin_missed(tc, b, cls, kBinMissEmpty);
        if (!refill(b, cls)) return fallback_alloc(usable_of(cls), 0);
      }
      p = pop(b, cls);
    }
    verify_free(p, cls, "malloc");
    tc.allocs[cls]++;
  } else {
    CentralPool& pool = g_central_pools[cls];
    BlockChain c = pool.take(1, current_shard(pool.num_shards()));
    if (c.count == 0) return fallback_alloc(usable_of(cls), 0);
    if (c.count > 1) pool.give(*static_cast<void**>(c.head), c.count - 1);
    p = reinterpret_cast<uintptr_t>(c.head);
    format_from_pool(p, cls);
    g_threads.uncached_allocs[cls].fetch_add(1, std::memory_order_relaxed);
  }
  return hand_out(p, cls);
}

// The class a request of n bytes takes in class cls (the one the fast path
// chose, size_class_of(n)): with the bit guard, the class's slack must hold
// the canary, else the next class that does (0: none, a large block).
SLABBY_INLINE unsigned class_with_canary(unsigned cls, size_t n) {
  if (!g_checks.bitguard || class_size(cls) - n >= kCanaryBytes) return cls;
  return static_cast<unsigned>(class_with_canary_of(n));
}

}  // namespace

void* checked_alloc(unsigned cls, size_t n) noexcept {
  // The divert takes a thread's first call (cache/thread_cache.h).
  if (SLABBY_UNLIKELY(tl_cache.state == kCacheUninit)) thread_init();
  // Medium requests stay on spans in the checked modes (frontend/allocator.cc);
  // one can only reach here as a thread's first call, before init chose them.
  if (SLABBY_UNLIKELY(is_medium_class(cls))) return checked_alloc_large(class_size(cls), 0);
  CheckedCache& k = tl_checked;
  if (g_checks.guard_sample != 0 && tl_cache.state == kCacheActive) {
    if (k.guard_countdown == 0) k.guard_countdown = g_checks.guard_sample;
    if (--k.guard_countdown == 0) return checked_alloc_span(class_size(cls), 0);
  }
  unsigned c = class_with_canary(cls, n);
  if (c == 0) return checked_alloc_large(n, 0);
  void* p = alloc_exact(c);
  if (SLABBY_UNLIKELY(g_checks.leak_check) && p != nullptr) leak_note_alloc(p, usable_of(c));
  return p;
}

// As the default caches do (cache/thread_cache.cc cache_alloc_first): a new
// thread's first call is often the free of a block another thread allocated
// and handed to it, whose line mates are other threads' blocks; handed back
// to it, every write it makes fights theirs for the line. On the bins and
// on the CPU caches (percpu_alloc_first_admitting), in the modes without
// per-call extras (the lean pair's: the hardened library, SLABBY_SECURE,
// SLABBY_BITGUARD); else as checked_alloc.
void* checked_alloc_first(unsigned cls, size_t n) noexcept {
  ThreadCache& tc = tl_cache;
  if (SLABBY_UNLIKELY(tc.state == kCacheUninit)) thread_init();
  if (tc.state != kCacheActive || is_medium_class(cls) || g_checks.extras)
    return g_small_divert.alloc(cls, n);
  unsigned c = class_with_canary(cls, n);
  if (c == 0) return g_small_divert.alloc(cls, n);
  move_to_cpu_if_due(tc);
  if (tl_checked.on_cpu) {
    void* block = percpu_alloc_first_admitting(c, admit, fresh_per_refill(c));
    if (block == nullptr) return g_small_divert.alloc(cls, n);  // the usual way
    uintptr_t p = reinterpret_cast<uintptr_t>(block);
    verify_first_word(p, c);
    verify_free(p, c, "malloc");
    tc.allocs[c]++;
    return hand_out(p, c);
  }
  CheckedBin& b = tl_checked.bins[c];
  CentralPool& pool = g_central_pools[c];
  size_t size = class_size(c);
  uint32_t want = first_block_batch(c);
  void* blocks[kMaxBatch];
  // The bin's top blocks, else a few of the pool's.
  uint32_t got = 0;
  while (got < want && b.head != 0) blocks[got++] = reinterpret_cast<void*>(pop(b, c));
  bool own = false;
  if (got > 0) arrange_first_block(blocks, got, size, &own);
  if (!own) {
    for (uint32_t i = 0; i < got; ++i) push(b, reinterpret_cast<uintptr_t>(blocks[i]));
    got = pool.take_blocks(blocks, want, current_shard(pool.num_shards()), fresh_per_refill(c));
    if (got == 0) return g_small_divert.alloc(cls, n);  // the pool is out: the usual way
    for (uint32_t i = 0; i < got; ++i) format_from_pool(reinterpret_cast<uintptr_t>(blocks[i]), c);
    arrange_first_block(blocks, got, size, &own);
  }
  // The rest into the bin as far as it has room, the block's line mates
  // first (deepest); what does not fit goes back to the pool.
  if (b.limit == 0) checked_bin_set_limit(b, bin_base(tc, c));
  uint32_t keep = 0;
  while (1 + keep < got && b.space > 0) push(b, reinterpret_cast<uintptr_t>(blocks[1 + keep++]));
  if (1 + keep < got) pool.give_blocks(blocks + 1 + keep, got - 1 - keep);
  uintptr_t p = reinterpret_cast<uintptr_t>(blocks[0]);
  verify_free(p, c, "malloc");
  tc.allocs[c]++;
  return hand_out(p, c);
}

void* checked::alloc_in_class(unsigned cls) noexcept { return alloc_exact(cls); }

void* checked_alloc_class(unsigned cls) noexcept {
  void* p = alloc_exact(cls);
  if (SLABBY_UNLIKELY(g_checks.leak_check) && p != nullptr) leak_note_alloc(p, usable_of(cls));
  return p;
}

void checked_validate_small(uintptr_t p, unsigned cls, const char* verb) noexcept {
  validate_small(p, cls, verb, g_checks.bitguard);
}

// The rest of a free once the block is validated and tagged (zeroed).
void checked::free_tagged(uintptr_t p, unsigned cls) noexcept {
  size_t size = class_size(cls);
  ThreadCache& tc = tl_cache;
  if (SLABBY_UNLIKELY(tc.state == kCacheUninit)) thread_init();  // the divert's first call
  if (tc.state == kCacheActive)
    tc.frees[cls]++;
  else
    g_threads.uncached_frees[cls].fetch_add(1, std::memory_order_relaxed);
  if (g_checks.quarantine != 0 && tc.state == kCacheActive) return quarantine_push(p, size);
  release(p, cls);
}

void checked_free(void* ptr, unsigned cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  if (SLABBY_UNLIKELY(is_medium_class(cls)))
    checked_medium_release(p, cls);  // validated, its canary checked and cleared
  else
    validate_small(p, cls, "free", g_checks.bitguard);
  if (SLABBY_UNLIKELY(g_checks.leak_check)) leak_note_free(ptr);
  if (g_checks.tags) {
    if (g_checks.zero_free) zero_body_of(p, cls);
    state_word(p, cls) = freed_tag(p);
  }
  free_tagged(p, cls);
}

void checked_verify_free_small(uintptr_t p, unsigned cls, const char* found_by) noexcept {
  verify_free(p, cls, found_by);
}

void checked_release_small(uintptr_t p, unsigned cls) noexcept { release(p, cls); }

uint64_t checked_thread_flush() noexcept {
  ThreadCache& tc = tl_cache;
  uint64_t moved = 0;
  for (unsigned c = 1; c < kNumClasses; ++c) {
    CheckedBin& b = tl_checked.bins[c];
    moved += checked_bin_count(b);
    flush_above(b, c, 0);
    uint32_t base = bin_base(tc, c);
    if (b.limit > base) {
      bin_shrunk(tc, c, b.limit, base);
      checked_bin_set_limit(b, base);
    }
  }
  return moved;
}

void checked_thread_teardown() noexcept {
  quarantine_drain();
  for (unsigned c = 1; c < kNumClasses; ++c) {
    CheckedBin& b = tl_checked.bins[c];
    if (checked_bin_count(b) > 0) flush(b, c, checked_bin_count(b));
    checked_bin_set_limit(b, 0);  // later frees of this thread take the slow path, uncached
  }
  tl_checked.on_cpu = 0;  // the hardened library's inline paths: to the empty bins
}

}  // namespace slabby

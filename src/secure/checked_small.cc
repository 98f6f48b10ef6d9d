// slabby: small blocks on the checked paths (see secure/checks.h for the
// block format and secure/checked_cache.h for the per-thread state).
#include <sys/types.h>

#include <cerrno>
#include <cstring>

#include "frontend/allocator.h"
#include "runtime/runtime.h"
#include "secure/checked_cache.h"
#include "secure/checks.h"
#include "secure/leak_check.h"
#include "secure/report.h"

namespace slabby {

__thread CheckedCache tl_checked __attribute__((tls_model("initial-exec")));

namespace {

SLABBY_INLINE uint64_t* words(uintptr_t p) { return reinterpret_cast<uint64_t*>(p); }
SLABBY_INLINE uint64_t& tag_word(uintptr_t p, size_t size) { return words(p)[size / 8 - 1]; }
SLABBY_INLINE size_t usable_of(unsigned cls) {
  return class_size(cls) - (g_checks.bitguard ? kCanaryBytes : 0);
}

// Offset of the first non-zero byte in [from, to) of the block, or -1.
SLABBY_COLD ssize_t locate_nonzero(uintptr_t p, size_t from, size_t to) {
  for (size_t i = from; i < to; i += 8) {
    uint64_t w = words(p)[i / 8];
    if (w != 0) return static_cast<ssize_t>(i + __builtin_ctzll(w) / 8);
  }
  return -1;
}

// Two words at a time (SSE2 / NEON through GCC's vector extension). Block
// bodies are [8, size - 8) of a class size that is a multiple of 16 from 32
// on: whole 16-byte pairs, 8-byte aligned.
typedef uint64_t Pair __attribute__((vector_size(16), aligned(8)));
// Keeps GCC from turning the short loops below into memset or `rep stos`,
// whose start-up costs more than the few stores of a small block.
#define SLABBY_NOT_A_MEMSET(q) asm("" : "+r"(q))

SLABBY_INLINE ssize_t first_nonzero(uintptr_t p, size_t from, size_t to) {
  if (to - from < 64) {
    uint64_t any = 0;
    for (size_t i = from / 8; i < to / 8; ++i) any |= words(p)[i];
    if (SLABBY_LIKELY(any == 0)) return -1;
  } else {
    // Large bodies: 64 bytes a step into four accumulators (independent
    // loads), then whole pairs, then a tail word if odd.
    Pair any = {0, 0}, any1 = {0, 0}, any2 = {0, 0}, any3 = {0, 0};
    uintptr_t q = p + from;
    for (; q + 64 <= p + to; q += 64) {
      const Pair* v = reinterpret_cast<const Pair*>(q);
      any |= v[0];
      any1 |= v[1];
      any2 |= v[2];
      any3 |= v[3];
      SLABBY_NOT_A_MEMSET(q);
    }
    any |= any1 | any2 | any3;
    for (; q + 16 <= p + to; q += 16) {
      any |= *reinterpret_cast<const Pair*>(q);
      SLABBY_NOT_A_MEMSET(q);
    }
    uint64_t tail = q < p + to ? *reinterpret_cast<const uint64_t*>(q) : 0;
    if (SLABBY_LIKELY((any[0] | any[1] | tail) == 0)) return -1;
  }
  return locate_nonzero(p, from, to);
}

// Zeroes bytes [8, size - 8) of a freed block: the link word and the tag
// word are written apart. Up to 128 bytes by 16-byte stores, memset above.
SLABBY_INLINE void zero_body(uintptr_t p, size_t size) {
  if (size <= 16) return;
  if (size <= 128 && size % 16 == 0) {
    for (uintptr_t q = p + 8; q < p + size - 8; q += 16) {
      *reinterpret_cast<Pair*>(q) = Pair{0, 0};
      SLABBY_NOT_A_MEMSET(q);
    }
    return;
  }
  memset(reinterpret_cast<void*>(p + 8), 0, size - 16);
}

[[noreturn]] SLABBY_COLD void write_after_free(uintptr_t p, unsigned cls, ssize_t byte,
                                               const char* found_by) {
  Report r;
  r.str("write after free of ").ptr(p).where(cls).str(": byte ").u64(static_cast<uint64_t>(byte));
  r.str(" changed after it was freed (found by ").str(found_by).str(")");
  r.abort_now();
}

// A free-list link must be null or point into a slab of the same class:
// anything else means the free block holding it was overwritten. A link
// overwritten without the key decodes to a random address, which this
// rejects with near certainty; a block that passes is checked again by its
// tag when it is popped (checked_verify_free_small).
[[noreturn]] SLABBY_COLD void corrupted_link(uintptr_t block, uintptr_t next, unsigned cls) {
  Report r;
  r.str("corrupted free list").where(cls).str(": the free block ").ptr(block).str(" links to ");
  r.ptr(next).str(", not a block of its class (a write after free)");
  r.abort_now();
}

SLABBY_INLINE void check_link(uintptr_t block, uintptr_t next, unsigned cls) {
  if (next == 0) return;
  const PageHeap& h = g_rt.heap;
  if (SLABBY_LIKELY(h.owns(reinterpret_cast<void*>(next)) &&
                    h.class_of(reinterpret_cast<void*>(next)) == cls && next % kMinAlign == 0))
    return;
  corrupted_link(block, next, cls);
}

SLABBY_INLINE void push(CheckedBin& b, uintptr_t p) {
  words(p)[0] = encode_link(p, b.head);
  b.head = p;
  b.count++;
}

SLABBY_INLINE uintptr_t pop(CheckedBin& b, unsigned cls) {
  uintptr_t p = b.head;
  uintptr_t next = encode_link(p, words(p)[0]);
  check_link(p, next, cls);
  b.head = next;
  b.count--;
  return p;
}

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
  uint64_t& tag = tag_word(p, size);
  if (load_for_store(tag) == freed_tag(p)) {
    // The transfer stack links batches through the second word.
    if (size > 16) words(p)[1] = 0;
    if (g_checks.zero_free) {
      ssize_t bad = first_nonzero(p, 16, size - 8);
      if (bad >= 0) write_after_free(p, cls, bad, "malloc");
    }
    return;
  }
  if (g_checks.zero_free) zero_body(p, size);
  tag = fresh_tag(p);
}

bool refill(CheckedBin& b, unsigned cls) {
  CentralPool& pool = g_rt.pools[cls];
  uint32_t limit = g_rt.cache_limit[cls];
  uint32_t n = limit / 2 > 0 ? limit / 2 : 1;
  if (n > pool.batch_size()) n = pool.batch_size();
  BlockChain c = pool.take(n, current_shard(pool.num_shards()));
  if (c.count == 0) return false;
  uintptr_t p = reinterpret_cast<uintptr_t>(c.head);
  for (uint32_t i = 0; i < c.count; ++i) {
    uintptr_t next = words(p)[0];  // plain in the central pool
    if (i + 1 < c.count) check_link(p, next, cls);
    format_from_pool(p, cls);
    push(b, p);
    p = next;
  }
  return true;
}

// Gives n blocks of the bin back to the central pool, as a plain chain.
void flush(CheckedBin& b, unsigned cls, uint32_t n) {
  uintptr_t head = 0;
  for (uint32_t i = 0; i < n; ++i) {
    uintptr_t p = pop(b, cls);
    words(p)[0] = head;
    head = p;
  }
  g_rt.pools[cls].give(reinterpret_cast<void*>(head), n);
}

// Checks a block taken from a bin or the quarantine is still as freed.
SLABBY_INLINE void verify_free(uintptr_t p, unsigned cls, const char* found_by) {
  if (!g_checks.tags) return;
  size_t size = class_size(cls);
  uint64_t tag = tag_word(p, size);
  if (tag == freed_tag(p)) {
    if (g_checks.zero_free) {
      ssize_t bad = first_nonzero(p, 8, size - 8);
      if (bad >= 0) write_after_free(p, cls, bad, found_by);
    }
    return;
  }
  if (tag == fresh_tag(p)) return;
  // The tag itself was overwritten: name the first byte that differs.
  uint64_t diff = tag ^ freed_tag(p);
  write_after_free(p, cls, static_cast<ssize_t>(size - 8 + __builtin_ctzll(diff) / 8), found_by);
}

// In a CPU cache a free block's first word holds the encoded end-of-list
// link: no list runs through the slots, but a write after free over that
// word is then found, and named, like one over a bin's link.
SLABBY_INLINE void mark_cached(uintptr_t p) { words(p)[0] = encode_link(p, 0); }

// A block the pool hands out on its way into a CPU cache, formatted as in a
// bin. (It comes as a pointer in a batch, not through a link to check.)
void admit(void* block, unsigned cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
  format_from_pool(p, cls);
  mark_cached(p);
}

// A block from a CPU cache: its first word must still be the end-of-list
// link (the rest is verify_free's).
SLABBY_INLINE void verify_first_word(uintptr_t p, unsigned cls) {
  uint64_t w = words(p)[0];
  if (SLABBY_UNLIKELY(w != encode_link(p, 0))) corrupted_link(p, encode_link(p, w), cls);
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
  if (b == nullptr) b = percpu_refill_admitting(cls, admit);
  uintptr_t p = reinterpret_cast<uintptr_t>(b);
  if (p != 0) verify_first_word(p, cls);
  return p;
}

// A freed block back to the CPU's or the thread's cache (or, without one,
// the pool).
SLABBY_INLINE void release(uintptr_t p, unsigned cls) {
  ThreadCache& tc = tl_cache;
  if (tc.state == kCacheActive && tc.rseq_ok && release_to_cpu(p, cls)) return;
  uint32_t limit = g_rt.cache_limit[cls];
  if (SLABBY_UNLIKELY(tc.state != kCacheActive || limit == 0)) {
    words(p)[0] = 0;
    g_rt.pools[cls].give(reinterpret_cast<void*>(p), 1);
    return;
  }
  CheckedBin& b = tl_checked.bins[cls];
  b.limit = limit;  // from now on the fast free (below) pushes until the bin is full
  if (b.count >= limit) {
    uint32_t n = g_rt.pools[cls].batch_size();
    flush(b, cls, n < b.count ? n : b.count);
  }
  push(b, p);
}

// A free block becomes the program's.
SLABBY_INLINE void* hand_out(uintptr_t p, unsigned cls) {
  size_t size = class_size(cls);
  words(p)[0] = 0;
  if (g_checks.tags) tag_word(p, size) = g_checks.bitguard ? live_canary(p) : 0;
  if (g_checks.zero_alloc) memset(reinterpret_cast<void*>(p), 0, usable_of(cls));
  return reinterpret_cast<void*>(p);
}

// Allocation from exactly class cls (its usable size already covers the
// request and the canary).
SLABBY_INLINE void* alloc_exact(unsigned cls) {
  ThreadCache& tc = tl_cache;
  uintptr_t p;
  if (SLABBY_LIKELY(tc.state == kCacheActive)) {
    p = tc.rseq_ok ? take_from_cpu(cls) : 0;
    if (p == 0) {
      CheckedBin& b = tl_checked.bins[cls];
      if (b.head == 0 && !refill(b, cls)) return fallback_alloc(usable_of(cls), 0);
      p = pop(b, cls);
    }
    verify_free(p, cls, "malloc");
    tc.allocs[cls]++;
  } else {
    CentralPool& pool = g_rt.pools[cls];
    BlockChain c = pool.take(1, current_shard(pool.num_shards()));
    if (c.count == 0) return fallback_alloc(usable_of(cls), 0);
    if (c.count > 1) pool.give(*static_cast<void**>(c.head), c.count - 1);
    p = reinterpret_cast<uintptr_t>(c.head);
    format_from_pool(p, cls);
    g_rt.uncached_allocs[cls].fetch_add(1, std::memory_order_relaxed);
  }
  return hand_out(p, cls);
}

// The class a request of n bytes takes in class cls (the one the fast path
// chose, size_class_of(n)): with the bit guard, the class's slack must hold
// the canary, else the next class that does (0: none, a large block).
SLABBY_INLINE unsigned class_with_canary(unsigned cls, size_t n) {
  if (!g_checks.bitguard || class_size(cls) - n >= kCanaryBytes) return cls;
  return n + kCanaryBytes > kMaxSmallSize ? 0 : static_cast<unsigned>(size_class_of(n + kCanaryBytes));
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
    if (--k.guard_countdown == 0) return checked_alloc_large(class_size(cls), 0);
  }
  unsigned c = class_with_canary(cls, n);
  if (c == 0) return checked_alloc_large(n, 0);
  void* p = alloc_exact(c);
  if (SLABBY_UNLIKELY(g_checks.leak_check) && p != nullptr) leak_note_alloc(p, usable_of(c));
  return p;
}

void* checked_alloc_class(unsigned cls) noexcept {
  void* p = alloc_exact(cls);
  if (SLABBY_UNLIKELY(g_checks.leak_check) && p != nullptr) leak_note_alloc(p, usable_of(cls));
  return p;
}

namespace {

// The report for a block that failed checked_validate_small's quick tests:
// works out which bug it is, names it, aborts.
[[noreturn]] SLABBY_COLD void report_invalid_small(uintptr_t p, unsigned cls, const char* verb) {
  size_t size = class_size(cls);
  Span* s = g_rt.heap.span_of(reinterpret_cast<void*>(p));
  uintptr_t off = p - s->start;
  uintptr_t into = off % size;
  uint32_t index = static_cast<uint32_t>(off / size);
  uint32_t carved = __atomic_load_n(&s->carved, __ATOMIC_RELAXED);
  uint64_t tag = tag_word(p, size);
  Report r;
  if (into != 0) {
    r.str(verb).str(p % kMinAlign != 0 ? " of unaligned pointer " : " of interior pointer ");
    r.ptr(p).str(": ").u64(into).str(" bytes into the block at ").ptr(p - into).where(cls);
  } else if (g_checks.tags && tag == freed_tag(p)) {
    if (verb[0] == 'f')
      r.str("double free of ").ptr(p).where(cls);
    else
      r.str(verb).str(" of freed pointer ").ptr(p).where(cls);
  } else if (index >= blocks_per_slab(cls) || index >= carved ||
             (g_checks.tags && tag == fresh_tag(p))) {
    r.str(verb).str(" of ").ptr(p).str(", a block never handed out").where(cls);
  } else {
    uint64_t diff = tag ^ live_canary(p);
    r.str("heap overflow past the ").u64(size - kCanaryBytes).str(" usable bytes of ").ptr(p);
    r.where(cls).str(": canary byte ").u64(__builtin_ctzll(diff) / 8).str(" changed (found by ");
    r.str(verb).str(")");
  }
  r.abort_now();
}

// bitguard: g_checks.bitguard, or the constant the caller was built for.
SLABBY_INLINE void validate_small(uintptr_t p, unsigned cls, const char* verb, bool bitguard) {
  size_t size = class_size(cls);
  if (bitguard) {
    // A live block is one whose canary word holds its own address under the
    // key. For an interior or unaligned pointer the word read is some other
    // data, which matches with negligible odds; freed and never-used blocks
    // hold tags. So one compare decides, and the cold report works out which
    // bug it was.
    // (An interior pointer in a slab's last block would read past the slab:
    // the class map says whether that word is in a slab of the class.)
    if (SLABBY_UNLIKELY(g_rt.heap.class_of(reinterpret_cast<void*>(p + size - 8)) != cls ||
                        tag_word(p, size) != live_canary(p)))
      report_invalid_small(p, cls, verb);
    return;
  }
  Span* s = g_rt.heap.span_of(reinterpret_cast<void*>(p));
  uintptr_t off = p - s->start;
  // One division: the block's index and the remainder. Slabs hold whole
  // blocks, so an index past the last block also fails the carved test.
  uintptr_t index = off / size;
  bool ok = off == index * size && index < __atomic_load_n(&s->carved, __ATOMIC_RELAXED);
  if (g_checks.tags) {
    uint64_t tag = tag_word(p, size);
    ok = ok && tag != freed_tag(p) && tag != fresh_tag(p);
  }
  if (SLABBY_UNLIKELY(!ok)) report_invalid_small(p, cls, verb);
}

}  // namespace

void checked_validate_small(uintptr_t p, unsigned cls, const char* verb) noexcept {
  validate_small(p, cls, verb, g_checks.bitguard);
}

namespace {

// The rest of a free once the block is validated and tagged (zeroed).
SLABBY_NOINLINE void free_tagged(uintptr_t p, unsigned cls) noexcept {
  size_t size = class_size(cls);
  ThreadCache& tc = tl_cache;
  if (SLABBY_UNLIKELY(tc.state == kCacheUninit)) thread_init();  // the divert's first call
  if (tc.state == kCacheActive)
    tc.frees[cls]++;
  else
    g_rt.uncached_frees[cls].fetch_add(1, std::memory_order_relaxed);
  if (g_checks.quarantine != 0 && tc.state == kCacheActive) return quarantine_push(p, size);
  release(p, cls);
}

}  // namespace

void checked_free(void* ptr, unsigned cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  validate_small(p, cls, "free", g_checks.bitguard);
  if (SLABBY_UNLIKELY(g_checks.leak_check)) leak_note_free(ptr);
  if (g_checks.tags) {
    size_t size = class_size(cls);
    if (g_checks.zero_free) zero_body(p, size);
    tag_word(p, size) = freed_tag(p);
  }
  free_tagged(p, cls);
}

void checked_verify_free_small(uintptr_t p, unsigned cls, const char* found_by) noexcept {
  verify_free(p, cls, found_by);
}

void checked_release_small(uintptr_t p, unsigned cls) noexcept { release(p, cls); }

namespace {

// The lean pair: the modes most programs would run in production
// (SLABBY_SECURE: zeroing and the bit guard, or either alone), with none of
// the per-call extras (zero on alloc, guard sampling, leak tracing,
// quarantine). The modes are template arguments, so each variant is
// straight-line code with no flag loads; one critical section on the CPU's
// cache (or the thread's bin, for a thread without rseq) is the whole hit
// path, and anything else (an empty or full bin, a thread not active, a
// request too big for a small class with its canary) goes to the general
// path above.

// Modes with per-call extras (zero on allocation, guard sampling, leak
// tracing, quarantine) take the general pair; the others the lean one.
SLABBY_INLINE bool has_extras(const Checks& k) {
  return k.zero_alloc || k.guard_sample != 0 || k.leak_check || k.quarantine != 0;
}

// The lean pair's sections. Under a divert the CPU regions count nothing
// (cache/percpu_cache.h percpu_fast_counts), so the plain sections do; the
// hardened library's inline paths hit the same caches and are counted by
// the regions, so its slow paths count what their sections move, as the
// default's do.
SLABBY_INLINE void* lean_pop(unsigned cls) {
  if constexpr (kHardenedBuild) return percpu_pop(cls);
  return percpu_pop_section(cls);
}
SLABBY_INLINE bool lean_push(unsigned cls, void* p) {
  if constexpr (kHardenedBuild) return percpu_push(cls, p);
  return percpu_push_section(cls, p);
}

// A block taken from a cache becomes the program's: as verify_free and
// hand_out, for these modes.
template <bool kBitguard, bool kZero>
SLABBY_INLINE void* lean_hand_out(uintptr_t p, unsigned cls, size_t size) noexcept {
  uint64_t tag = tag_word(p, size);
  if (SLABBY_LIKELY(tag == freed_tag(p))) {
    if (kZero) {
      ssize_t bad = first_nonzero(p, 8, size - 8);
      if (SLABBY_UNLIKELY(bad >= 0)) write_after_free(p, cls, bad, "malloc");
    }
  } else if (SLABBY_UNLIKELY(tag != fresh_tag(p))) {
    verify_free(p, cls, "malloc");  // reports the overwritten tag
  }
  tl_cache.allocs[cls]++;
  words(p)[0] = 0;
  tag_word(p, size) = kBitguard ? live_canary(p) : 0;
  return reinterpret_cast<void*>(p);
}

// A thread without rseq: its bin. Out of line, so the per-CPU path keeps
// its few registers.
template <bool kBitguard, bool kZero>
SLABBY_NOINLINE void* lean_alloc_from_bin(unsigned cls, size_t n, size_t size) noexcept {
  CheckedBin& b = tl_checked.bins[cls];
  uintptr_t p = b.head;
  if (SLABBY_UNLIKELY(p == 0)) return checked_alloc(cls, n);
  uintptr_t next = encode_link(p, words(p)[0]);
  check_link(p, next, cls);
  b.head = next;
  b.count--;
  return lean_hand_out<kBitguard, kZero>(p, cls, size);
}

template <bool kBitguard, bool kZero>
void* lean_alloc(unsigned cls, size_t n) noexcept {
  size_t size = class_size(cls);
  if (kBitguard && size - n < kCanaryBytes) {  // the canary needs the next class
    if (SLABBY_UNLIKELY(n + kCanaryBytes > kMaxSmallSize)) return checked_alloc(cls, n);
    cls = static_cast<unsigned>(size_class_of(n + kCanaryBytes));
    size = class_size(cls);
  }
  if (SLABBY_UNLIKELY(!tl_cache.rseq_ok)) return lean_alloc_from_bin<kBitguard, kZero>(cls, n, size);
  uintptr_t p = reinterpret_cast<uintptr_t>(lean_pop(cls));  // counted below
  if (SLABBY_UNLIKELY(p == 0)) return checked_alloc(cls, n);
  verify_first_word(p, cls);
  return lean_hand_out<kBitguard, kZero>(p, cls, size);
}

// A freed block (validated, tagged) of a thread without rseq: its bin.
SLABBY_NOINLINE void lean_free_to_bin(uintptr_t p, unsigned cls) noexcept {
  CheckedBin& b = tl_checked.bins[cls];
  if (SLABBY_UNLIKELY(b.count >= b.limit)) return free_tagged(p, cls);
  tl_cache.frees[cls]++;
  push(b, p);
}

template <bool kBitguard, bool kZero>
void lean_free(void* ptr, unsigned cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  size_t size = class_size(cls);
  validate_small(p, cls, "free", kBitguard);
  if (kZero) zero_body(p, size);
  tag_word(p, size) = freed_tag(p);
  if (SLABBY_UNLIKELY(!tl_cache.rseq_ok)) return lean_free_to_bin(p, cls);
  mark_cached(p);
  if (SLABBY_UNLIKELY(!lean_push(cls, ptr))) return free_tagged(p, cls);  // counted below
  tl_cache.frees[cls]++;
}

// In the hardened library the inline paths check the lean modes' blocks
// themselves (frontend/hardened_fast.h) and so may use the CPU caches.
template <bool kBitguard, bool kZero>
constexpr SmallDivert kLean = {lean_alloc<kBitguard, kZero>, lean_free<kBitguard, kZero>,
                               checked_thread_teardown, kHardenedBuild && kBitguard};

}  // namespace

SmallDivert checked_small_divert() noexcept {
  const Checks& k = g_checks;
  bool extras = has_extras(k);
  if (!extras && k.bitguard && k.zero_free) return kLean<true, true>;
  if (!extras && k.bitguard) return kLean<true, false>;
  if (!extras && k.zero_free) return kLean<false, true>;
  return {checked_alloc, checked_free, checked_thread_teardown, false};
}

void checked_free_validated(void* ptr, unsigned cls) noexcept {
  if (SLABBY_UNLIKELY(g_checks.leak_check)) leak_note_free(ptr);
  free_tagged(reinterpret_cast<uintptr_t>(ptr), cls);
}

void checked_free_hardened(void* ptr, unsigned cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  size_t size = class_size(cls);
  // SLABBY_SECURE's lean pair, the block otherwise plainly live: zeroed,
  // tagged and pushed here, as lean_free does.
  if (g_checks.zero_free && !has_extras(g_checks) &&
      g_rt.heap.class_of(reinterpret_cast<void*>(p + size - 8)) == cls &&
      tag_word(p, size) == live_canary(p)) {
    zero_body(p, size);
    tag_word(p, size) = freed_tag(p);
    mark_cached(p);
    if (SLABBY_LIKELY(tl_cache.rseq_ok && percpu_push(cls, ptr))) {
      tl_cache.frees[cls]++;
      return;
    }
    return free_tagged(p, cls);
  }
  checked_free(ptr, cls);
}

void* checked_hand_out_cached(void* block, unsigned cls) noexcept {
  uintptr_t p = reinterpret_cast<uintptr_t>(block);
  verify_first_word(p, cls);
  verify_free(p, cls, "malloc");
  return hand_out(p, cls);
}

void checked_thread_teardown() noexcept {
  quarantine_drain();
  for (unsigned c = 1; c < kNumClasses; ++c) {
    CheckedBin& b = tl_checked.bins[c];
    if (b.count > 0) flush(b, c, b.count);
    b.limit = 0;  // later frees of this thread take the slow path, uncached
  }
}

}  // namespace slabby

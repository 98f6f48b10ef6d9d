// slabby: the per-thread cache in front of the central pools.
//
// It lives directly in initial-exec TLS, zero-initialised, so a thread's
// first malloc finds every bin empty (head == nullptr) and its first free
// finds every bin full (space == limit == 0): both land in the slow path,
// which initialises. The fast paths never ask "initialized?".
//
// Invariants (touched only by the owning thread, except that stats readers
// read the counters and fork/exit handlers run when the owner cannot run):
// - bins[c] holds limit - space free blocks of class c, linked through their
//   first word from `head` (null-terminated); 0 <= space <= limit between
//   calls.
// - bins[0] is never used: class 0 means "not a small block", so its limit
//   stays 0 and free() of such a pointer always reaches the slow path.
// - A thread that can run the critical sections (rseq_ok) keeps no medium
//   block in its bins (their limit is 0): both fast paths miss, and its slow
//   paths take and give medium blocks through its CPU's cache, so what the
//   caches hold of them (one block of each medium class, 6.3 MiB) is
//   bounded by the CPUs, not by the threads on their bins.
// - A thread on the per-CPU caches (percpu_ok) holds nothing in its bins
//   (limit 0). A thread starts on its bins and moves there at most once
//   (cache_move_to_percpu, below), never back; one whose rseq area does not
//   work stays on its bins. allocs/frees count the blocks its bins and slow
//   paths served; the CPU caches' inline hits are counted in their regions
//   (cache/percpu_cache.h: percpu_fast_counts).
// - state kDead: the thread's TSD teardown ran; bins are empty with limit 0
//   forever, so every later malloc/free of the thread goes straight to the
//   central pools (glibc frees after our destructor; nothing is resurrected).
#pragma once

#include <atomic>
#include <cstdint>

#include "common/fork_locks.h"
#include "common/lock.h"
#include "common/prof_thread.h"
#include "common/size_class.h"

namespace slabby {

// One list, a stack: a block freed and asked for again comes back hot. Two
// lists (malloc's and free's, as mimalloc's local free list) took the
// malloc+free loop's chain through memory away (0.70 x its time) but cost
// the replay of python's trace 1.10 x: docs/benchmarks.md, "Two lists per
// bin".
struct Bin {
  void* head;
  int32_t space;  // room left: limit - blocks held. The fast free is
                  // "if (--space >= 0) push", one instruction and a branch;
                  // a miss undoes the decrement before anything else.
  uint16_t limit;
  uint16_t fill;    // blocks the next refill takes: starts small, doubles up to
                    // limit / 2, so a thread using a class once touches little
};

// A bin's latest refill or flush, and whether it had one since the last
// decay (cache/bin_sizing.cc). Touched only by the owning thread.
enum BinMiss : uint8_t { kBinMissNone = 0, kBinMissEmpty = 1, kBinMissFull = 2 };
struct BinDemand {
  uint8_t last;    // BinMiss of the latest refill (empty) or flush (full)
  uint8_t missed;  // refills and flushes since the last decay (at most 255)
};

enum CacheState : uint32_t { kCacheUninit = 0, kCacheActive = 1, kCacheDead = 2 };

struct ThreadCache {
  Bin bins[kNumClasses];
  // Blocks of each class this thread was handed and freed, ever, by its bins
  // and the slow paths (and a divert); the inline paths' hits on a CPU's
  // cache are counted by that CPU's region instead. Arrays of 8-byte
  // counters, apart from the bins, so a fast path counts with one
  // instruction (frontend/allocator.h count_alloc).
  uint64_t allocs[kNumClasses];
  uint64_t frees[kNumClasses];
  // Blocks this thread's slow-path sections moved into the CPU caches minus
  // those they took out, per class (cache/percpu_cache.h: percpu_pop and
  // the others). The inline paths' hits are counted in the CPU regions
  // instead, so a thread's blocks are counted by allocs/frees plus those.
  int64_t percpu_net[kNumClasses];
  // Capacities that follow demand (cache/bin_sizing.cc): each class's
  // latest miss, the bytes of limit above the bases over the small classes
  // (at most g_threads.bin_grow_bytes) and over the medium ones (within the
  // process's medium budget), and the decay epoch last acted on.
  BinDemand demand[kNumClasses];
  uint32_t grown_bytes;
  uint32_t medium_grown;
  uint32_t decay_seen;
  // What idle medium classes grew, given back as the heap grows
  // (cache/medium_reclaim.cc): this thread's medium misses (in its bins and
  // its CPU's cache), their count at its last look, the page heap's clean
  // pages taken then (low 32 bits), the classes it found idle then (bit
  // cls - kNumSmallClasses) and each medium class's allocs then (low 32 bits).
  uint32_t medium_misses;
  uint32_t medium_looked;
  uint32_t medium_heap_seen;
  uint32_t medium_idle;
  uint32_t medium_allocs_seen[kNumMediumClasses];
  uint32_t state;
  uint32_t percpu_ok;  // this thread's fast paths use the per-CPU caches
  uint32_t rseq_ok;    // this thread may run the critical sections (its rseq area works);
                       // without percpu_ok when a divert owns the small blocks
  uint32_t base_shift;  // its small classes' bases are g_threads.bin_base >> this (bins_start)
  // Allocations left before the next sampling decision (frontend/allocator.cc:
  // a latency sample, SLABBY_LATENCY_SAMPLE, or a heap-profile candidate,
  // SLABBY_PROF); below zero: decide on this one. Starts at 0, so a thread's
  // first allocation takes the sampling path, which sets it.
  int32_t sample_countdown;
  int32_t sample_armed;   // the allocations the countdown was last set for
  int32_t latency_left;   // allocations to the next timed one
  int32_t prof_left;      // allocations to the next heap-profile candidate
  ProfThread prof;
  ThreadCache* next;  // registry of live caches (for stats and fork)
  ThreadCache* prev;
  // realloc moves that copied the block (frontend/resize.cc), and the bytes.
  uint64_t realloc_copies;
  uint64_t realloc_copied_bytes;
};

// Class cls's blocks go through the calling thread's CPU cache, not its bin
// (whose limit is then 0): a medium class, on a thread that can run the
// critical sections (the invariant above).
inline bool cache_medium_on_cpu(const ThreadCache& tc, unsigned cls) {
  return tc.rseq_ok && is_medium_class(cls);
}

// Blocks a bin holds.
inline uint32_t bin_count(const Bin& b) { return static_cast<uint32_t>(b.limit - b.space); }
// Blocks the next refill of a bin with this limit takes, advancing its
// `fill` (Bin::fill, CheckedBin::fill; 0: none yet): slow start (4, 8, 16,
// ...) up to half the limit and one transfer batch, so a thread alternating
// around the limit does not bounce single blocks, and a class used once does
// not carve (and touch) a whole batch. Not more than a batch: a grown bin
// filled by up to half its limit (1024 blocks) at a time took in, with a
// burst a few blocks larger than it holds, a refill's worth more than the
// burst needed, and sent it back batch by batch as the burst was freed: 16
// refills and flushes a round where one of each moves the excess
// (docs/benchmarks.md, "Refills of one batch, bins of up to 8192 blocks").
// The default bins and the checked bins (secure/checked_small.cc) share it.
inline uint32_t bin_next_fill(uint16_t& fill, uint32_t limit, uint32_t batch) {
  uint32_t cap = limit < 2 ? 1 : limit / 2;
  if (cap > batch) cap = batch;
  uint32_t n = fill == 0 ? 4 : fill;
  if (n > cap) n = cap;
  fill = static_cast<uint16_t>(n * 2 > cap ? cap : n * 2);
  return n;
}
// Changes a bin's limit, keeping its blocks (tests and thread init).
inline void bin_set_limit(Bin& b, uint32_t limit) {
  b.space += static_cast<int32_t>(limit) - b.limit;
  b.limit = static_cast<uint16_t>(limit);
}
// Gives the bin's top n blocks (n at most its count and the pool's batch
// size) to class cls's central pool, read off the chain into an array in
// one walk: a whole transfer batch goes to the stack with no second walk
// and no write to its blocks. A flush, and a grown bin shrinking.
void bin_give_top(Bin& b, unsigned cls, uint32_t n);

// The symbol is named plainly (slabby_tl_cache) so the fast paths' assembly
// can load its TLS offset (frontend/allocator.h: tl_cache_offset).
extern __thread ThreadCache tl_cache __asm__("slabby_tl_cache")
    __attribute__((tls_model("initial-exec")));

// The live threads' caches, and the counts of those that exited.
// Constant-initialised; runtime/init.cc sets percpu_threads and binds each
// thread (thread_init), cache_teardown unbinds it. Lock order: mu after the
// per-CPU regions' locks, before any central pool's (runtime/init.cc, fork).
struct ThreadRegistry {
  Mutex& mu = g_fork_locks.threads;
  ThreadCache* list = nullptr;  // under mu
  uint64_t live = 0;            // written under mu; read racily (atomic builtins)
  // Live threads from which threads use the per-CPU caches (SLABBY_PERCPU_THREADS).
  uint64_t percpu_threads = 1;
  // Of the live threads, slabby's own (the background thread), which do not
  // count towards percpu_threads: it sleeps, and counting it would move a
  // program's threads onto the CPU caches one thread early. Atomic builtins;
  // 0 again in a forked child (its threads are not there).
  uint64_t internal = 0;
  // Each class's bin limit at a thread's start (SLABBY_THREAD_CACHE_BYTES
  // worth), how far one thread's bins may grow above them together
  // (SLABBY_PERCPU_GROW_BYTES) while the threads do not outnumber the CPUs
  // the process may use, and those CPUs: set once at init (bins_init; the
  // shares of bins_start and bins_grow_budget). decay_epoch
  // advances once per background pass (cache_decay_tick); a thread's slow
  // path that sees it move decays the thread's grown bins (bins_decay).
  uint16_t bin_base[kNumClasses] = {};
  size_t bin_grow_bytes = 0;
  uint64_t cpus = 1;
  // The live threads' ThreadCache::grown_bytes, summed: each thread adds
  // what its bins grow and takes off what they shrink (bin_grow_by,
  // bin_shrunk), and all of it when its bins close (at its exit, or its
  // move to the CPU caches); a forked child keeps only its own thread's.
  // Read by bins_grow_budget. Relaxed atomics: a racing growth may take a
  // few KiB past the budget, which the next decays give back.
  std::atomic<uint64_t> bins_grown{0};
  // The medium classes' budget (SLABBY_MEDIUM_GROW_BYTES), shared with the
  // CPU caches' medium classes (cache/percpu_sizing.cc), and the live
  // threads' ThreadCache::medium_grown, summed as bins_grown is.
  size_t medium_grow_bytes = 0;
  std::atomic<uint64_t> bins_medium_grown{0};
  uint32_t decay_epoch = 0;  // atomic builtins
  std::atomic<uint64_t> bin_grows{0};
  std::atomic<uint64_t> bin_shrinks{0};
  uint64_t exited = 0;  // under mu
  // Counters of threads that exited (merged at teardown, under mu) and of
  // operations of threads without a cache (kCacheDead).
  uint64_t retired_allocs[kNumClasses] = {};
  uint64_t retired_frees[kNumClasses] = {};
  int64_t retired_percpu_net[kNumClasses] = {};  // ThreadCache::percpu_net of exited threads
  uint64_t retired_realloc_copies = 0;           // ThreadCache::realloc_copies of exited threads
  uint64_t retired_realloc_copied_bytes = 0;
  std::atomic<uint64_t> uncached_allocs[kNumClasses] = {};
  std::atomic<uint64_t> uncached_frees[kNumClasses] = {};
};
extern constinit ThreadRegistry g_threads __attribute__((visibility("hidden")));

// Per-thread or per-CPU, per thread. Its own bins are the faster cache (no
// critical section); the per-CPU caches bound the memory cached by the
// CPUs rather than the threads. A thread moves to the per-CPU caches, once
// and for good, when the process has g_threads.percpu_threads live threads
// (SLABBY_PERCPU_THREADS: by default four per CPU, plus two): at its
// init, or later in a slow path (a bin empty or full).
// True when the calling thread should move now: it can run the critical
// sections, no divert owns the small blocks, and enough threads live.
bool cache_percpu_due(const ThreadCache& tc);
// The process has the live threads from which threads use the per-CPU
// caches (the thread count half of cache_percpu_due). A divert with caches
// of its own (the checked paths) moves its threads by the same rule.
bool cache_threads_due();
// The process's live threads, slabby's own not counted: what
// SLABBY_PERCPU_THREADS and the bins' shares count. Both counters are read
// racily, so never below 1 (a reader that sees the background thread's
// `internal` but not yet its `live` gets no wrapped count).
uint64_t cache_program_threads();
// The calling thread is slabby's own (the background thread): it no longer
// counts towards SLABBY_PERCPU_THREADS. Once, after its thread_init.
void cache_mark_internal();
// Moves the calling thread to the per-CPU caches: its bins go to the central
// pools and keep limit 0 from now on. false (nothing done) when it cannot
// (not active, no rseq area, or a divert is set).
bool cache_move_to_percpu();

// Slow paths, out of line (cold). n: the bytes asked for (at most
// class_size(cls)); only a divert (below) reads it.
void* cache_refill_and_alloc(unsigned cls, size_t n) noexcept;  // nullptr + ENOMEM when out of memory
void cache_flush_and_free(void* p, unsigned cls) noexcept;
// A thread's first allocation of a small block (frontend: alloc_sampled).
// Not the block on top of its cache (the CPU's, or its bin): a new thread's
// first call is often the free of a block another thread allocated and
// handed to it (a worker freeing the job it was given), and that block's
// neighbours on its cache line are other threads' blocks. Handed back to
// the new thread, every write it makes to the block would fight theirs for
// the line (passive false sharing: Hoard's cache-scratch took about 3 x
// jemalloc's time with 4 threads on 2 CPUs; docs/benchmarks.md, "A new
// thread's first block"). So its first block is one on a line of its own
// among the cache's top blocks, else among a few of the pool's, and the
// others go (back) into the cache (arrange_first_block). Only the first:
// a thread that later frees a block it was handed still gets it back, as
// under jemalloc; only blocks going back to their owner (issue 16) would
// end that. Any mode the caches do not serve (a divert, a thread not yet
// bound): as cache_refill_and_alloc.
void* cache_alloc_first(unsigned cls, size_t n) noexcept;
// Arranges blocks[0, n) (n >= 1 free blocks of `size` bytes, off the top
// of a cache or from the pool) for a thread's first allocation: blocks[0]
// becomes a block whose cache lines hold only blocks among them when there
// is one (*own_line then; else any), and the blocks sharing its lines follow
// it. Returns how many do: the caches keep those (pushed first, deepest),
// since handed to a thread on another CPU they would share the line again.
uint32_t arrange_first_block(void** blocks, uint32_t n, size_t size, bool* own_line);
// How many blocks to look at for it: four lines' worth and one.
uint32_t first_block_batch(unsigned cls);

// One block straight from / to the central pool, counted apart (threads
// after their teardown, and per-CPU threads when their CPU has no cache).
void* uncached_alloc(unsigned cls, size_t n) noexcept;
void uncached_free(void* p, unsigned cls) noexcept;

// What the caches hand up to the layers above them, which decide: set by
// runtime/cache_upcalls.cc and constant-initialised (valid before init), so
// cache/ includes nothing of frontend/ or runtime/.
struct CacheUpcalls {
  // The central pools are out of memory (the arena is exhausted): a block of
  // `bytes` from elsewhere (glibc, counted as a heap fallback), or nullptr.
  void* (*exhausted)(size_t bytes) noexcept;
  // A pointer whose page has no small class (class 0) reached a cache's free.
  void (*not_small)(void* p) noexcept;
  // An allocation's slow path is done and holds no lock (the background
  // thread may start). Never called from a free: glibc frees a thread's TLS
  // while it holds its stack-cache lock, which pthread_create takes, and a
  // free that started the background thread there deadlocked (a join in
  // lifecycle.many_threads_rss, about one run in 300 under load; 2026-12-07).
  void (*slow_path_done)() noexcept;
  // The calling thread's cache is not bound yet (its first slow path):
  // initialise slabby if needed and bind it (runtime.h thread_init).
  void (*thread_init)() noexcept;
};
extern const CacheUpcalls g_cache_upcalls;

// Another owner for every small block, chosen once at init (the checked
// paths of secure/, set by runtime/init.cc before any thread caches a block).
// While `alloc` is set every bin has limit 0 and no thread's percpu_ok is
// set, so the inline fast paths always miss into the slow paths above, which
// hand the call over with one test, before anything else: the divert also
// initialises a thread (runtime.h thread_init) on its first call, and may
// use the per-CPU caches itself (rseq_ok, and percpu_cache.h's
// percpu_refill_admitting / percpu_flush_and_push). The default fast paths
// never look at it.
// With `fast` (the hardened library, whose inline paths check blocks
// themselves: frontend/hardened_fast.h) the inline paths use the CPU caches
// under a divert too, and count their hits as without one (percpu_cache.h).
struct SmallDivert {
  void* (*alloc)(unsigned cls, size_t n) noexcept;  // n <= class_size(cls)
  void (*free)(void* p, unsigned cls) noexcept;
  void (*thread_exit)() noexcept;  // the thread's own blocks go back (its teardown)
  // The thread's own cached blocks go back, the thread staying active
  // (cache_flush_all: malloc_trim, slabby_thread_flush); returns how many.
  uint64_t (*flush)() noexcept;
  // The thread's first small allocation (cache_alloc_first): a block on a
  // line of its own, as the caches' own rule picks; nullptr: `alloc`.
  void* (*alloc_first)(unsigned cls, size_t n) noexcept;
  bool fast;
};
extern constinit SmallDivert g_small_divert;

// Bin capacities that follow demand (cache/bin_sizing.cc), as the per-CPU
// caches' (cache/percpu_sizing.cc). A class whose bin runs empty and then
// full (or full, then empty) holds a burst that does not fit: its limit
// doubles, up to 8192 blocks, while the thread's grown bytes stay within
// its growth budget (bins_grow_budget). One that only runs empty or only
// full (either end of a producer/consumer pair) never grows. Each
// background pass advances the decay epoch; the thread's next slow path
// then halves what a class grew if it missed nothing since the last one,
// or whatever it missed while its grown bytes are above its budget (the
// budget fell: more threads started). An idle thread keeps what it grew
// until its next slow path (at most the budget it had).
//
// Shares. The per-CPU caches bound what is cached by the CPUs; bins, by
// the threads. The bins of all threads together may grow by
// SLABBY_PERCPU_GROW_BYTES x cpus (what the CPUs' caches may), and one
// thread's by SLABBY_PERCPU_GROW_BYTES (one CPU's). While the live threads
// on bins outnumber the CPUs, each is sure of a share, SLABBY_PERCPU_GROW_
// BYTES x cpus / threads, and may grow past it into what the other threads
// have not grown (g_threads.bins_grown): idle threads (a main thread
// waiting in join, a pool's parked workers) leave theirs to the busy ones.
// A thread that grew past its share while the others' grew too, so that
// together they are past the CPUs' budget, is over its budget by that much:
// its next decays shrink it, classes that keep missing included, down to
// its share at most. Read at every growth and decay, so it follows threads
// starting, growing and exiting;
// and a thread starting when the process already has four threads per CPU
// gets half of each small class's base (not less than 4 blocks), kept for
// its life (they can be that many only up to SLABBY_PERCPU_THREADS, or
// without rseq).
// Half and no less: a base cut to cpus / threads (2/9 for a C++ program's
// nine threads on two CPUs) cost it the bins' whole gain
// (docs/benchmarks.md, "Bins for more threads").
// Medium classes grow within the process's medium budget instead
// (SLABBY_MEDIUM_GROW_BYTES: every thread's bins and every CPU's cache
// together), with no shares, and only once they miss often
// (kMediumMissesToGrow, cache/budget_bytes.h). A thread that can run the
// critical sections keeps a medium class in its CPU's cache (base 0) until
// the class grows a bin here; one that cannot (no rseq, SLABBY_PERCPU=0)
// starts each medium class at one block.
// Sets the bases (each class's limit at a thread's start), the budgets and
// the CPUs the shares divide.
void bins_init(const uint32_t* base_limit, size_t grow_bytes, size_t medium_grow_bytes,
               uint64_t cpus);
// Sets the calling thread's bin limits at its start: each class's base
// (its share of it, above), or 0 for every class when `cached` is false (a
// check mode's divert owns the blocks) and for the medium classes of a
// thread that keeps them in its CPU's cache (cache_medium_on_cpu).
void bins_start(ThreadCache& tc, bool cached);
// Class cls's base on this thread: the floor its decay and resets go down to.
uint32_t bin_base(const ThreadCache& tc, unsigned cls);
// How far thread tc's bins may grow above their bases now, its grown bytes
// included (the shares above).
size_t bins_grow_budget(const ThreadCache& tc);
// Notes a refill (kBinMissEmpty) or flush (kBinMissFull) of class cls on
// the calling thread's bins; true when the bin grew (space rose).
bool bin_note_miss(ThreadCache& tc, unsigned cls, BinMiss kind);
// The same rule for bins kept elsewhere on the thread's behalf (a divert's:
// the checked bins, secure/checked_cache.h), on the thread's demand and
// budget: notes the miss of class cls, whose bin's limit is `limit` now, and
// returns the blocks to add to it (even; 0: none), already counted.
uint32_t bin_grow_by(ThreadCache& tc, unsigned cls, BinMiss kind, uint32_t limit);
// ... and their decay: the limit class cls's bin (limit now) should shrink
// to this epoch (`limit` itself when it should not); bin_shrunk counts a
// shrink done, and bins_decay_done ends the pass (as bins_decay does).
uint32_t bin_decay_target(const ThreadCache& tc, unsigned cls, uint32_t limit);
void bin_shrunk(ThreadCache& tc, unsigned cls, uint32_t from, uint32_t to);
void bins_decay_done(ThreadCache& tc);
// The decay, from the owning thread's slow path, once per epoch: classes
// grown above their base that missed nothing since the last one give back
// half of what they grew (blocks above the new limit go to the pools).
void bins_decay(ThreadCache& tc);
// Every grown class back to its base (blocks above it to the pools).
void bins_reset(ThreadCache& tc);
// Idle medium caches given back as the heap grows (cache/medium_reclaim.cc).
// Every kMediumMissesPerLook medium misses the thread takes a look: which
// medium classes it and its CPU's cache used since the last; and when the
// page heap handed out clean pages since (the heap grew), the classes nobody
// used since the look before the last either, but cls (the one missing
// now), give back what they grew: their blocks above their base go to the
// pools, their pages to the page heap.
// region: the calling thread's CPU's, or nullptr (then found if any).
inline constexpr uint32_t kMediumMissesPerLook = 16;
void medium_look(ThreadCache& tc, char* region, unsigned cls);
inline void medium_note_miss(ThreadCache& tc, char* region, unsigned cls) {
  if (++tc.medium_misses - tc.medium_looked >= kMediumMissesPerLook) medium_look(tc, region, cls);
}
// The look's part on the bins: the medium classes but `except` grown above
// their base whose bit (cls - kNumSmallClasses) in `idle` is set go back to
// their base (bin_sizing.cc).
void bins_reclaim_idle_medium(ThreadCache& tc, unsigned except, uint32_t idle);
// One background pass done: advances the decay epoch.
inline void cache_decay_tick() { __atomic_add_fetch(&g_threads.decay_epoch, 1, __ATOMIC_RELAXED); }
inline bool bins_decay_due(const ThreadCache& tc) {
  return tc.decay_seen != __atomic_load_n(&g_threads.decay_epoch, __ATOMIC_RELAXED);
}

// The calling thread's cached blocks back to the pools (per-thread mode,
// or a divert's own bins; a per-CPU thread's bins hold none), its grown
// bins back to their bases. Returns blocks moved.
uint64_t cache_flush_all() noexcept;

// Called from the pthread key destructor: returns everything to the pools.
void cache_teardown(ThreadCache* tc);

// Fork child: drops the caches of threads that do not exist in the child.
void cache_forget_other_threads();

}  // namespace slabby

#include "cache/percpu_cache.h"

#include <sched.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "cache/percpu_region.h"
#include "cache/thread_cache.h"
#include "central/central_pool.h"
#include "common/fork_locks.h"
#include "common/lock.h"
#include "os/os.h"

// glibc >= 2.35 exports where its per-thread rseq area is (declared in
// <sys/rseq.h>); weak, so slabby still loads on an older glibc (and then
// registers its own area).
#pragma weak __rseq_offset
#pragma weak __rseq_size

namespace slabby {

PerCpuState g_percpu;
bool g_percpu_mode = false;
RegionLayout g_region_layout;

namespace {

// slabby's own rseq area, used only where glibc registered none. The
// initialiser marks it unregistered (cpu_id -1), so a thread that has not
// registered yet always misses on the fast path.
__thread struct rseq tl_rseq_area __attribute__((tls_model("initial-exec"))) = {
    0, static_cast<uint32_t>(RSEQ_CPU_ID_UNINITIALIZED), 0, 0};

enum RseqSource { kRseqNone, kRseqGlibc, kRseqOwn };
RseqSource g_source = kRseqNone;
const char* g_why_not = "not initialised";  // why the per-CPU caches are off

// A header of zeros (every class empty and full): the region of every CPU
// until first use.
alignas(64) const unsigned char kSentinel[kRegionHeaderBytes] = {};

}  // namespace

constinit FastRegionTable g_fast_regions{kSentinel};

namespace {

// Thread pointer to slabby's own area: where the fast sections look when no
// area of this thread is registered.
long own_area_offset() {
  return reinterpret_cast<char*>(&tl_rseq_area) - static_cast<char*>(__builtin_thread_pointer());
}

Mutex& g_region_mu = g_fork_locks.regions;
// Misses (refills and flushes) per CPU, counted in the slow paths only; the
// background drainer compares them between passes to find idle CPUs.
std::atomic<uint64_t> g_cpu_misses[kMaxCpus];
uint64_t g_cpu_misses_seen[kMaxCpus];

bool register_own_area() {
  int saved = errno;
  long r = syscall(SYS_rseq, &tl_rseq_area, sizeof(tl_rseq_area), 0, RSEQ_SIG);
  errno = saved;
  return r == 0;
}

// The calling CPU's region, created on first use.
char* ensure_region(int cpu) {
  char* r = __atomic_load_n(&g_percpu.regions[cpu], __ATOMIC_ACQUIRE);
  if (r != reinterpret_cast<const char*>(kSentinel)) return r;
  LockGuard g(g_region_mu);
  r = g_percpu.regions[cpu];
  if (r != reinterpret_cast<const char*>(kSentinel)) return r;
  char* mem = static_cast<char*>(os::map_rw(g_region_layout.bytes));
  if (mem == nullptr) return nullptr;
  auto* hdr = region_ranges(mem);
  uint64_t* cursors = region_cursors(mem);
  for (unsigned c = 0; c < kNumClasses; ++c) {
    hdr[c] = g_region_layout.base[c];
    cursors[c] = g_region_layout.base[c].begin;  // empty, nothing pushed yet
  }
  __atomic_store_n(&g_percpu.regions[cpu], mem, __ATOMIC_RELEASE);
  // A divert keeps the fast paths off the CPU caches (its blocks are checked
  // on the way in and out), unless they check the blocks themselves.
  if (g_small_divert.alloc == nullptr || g_small_divert.fast)
    __atomic_store_n(&g_fast_regions.at[2 + cpu], mem, __ATOMIC_RELEASE);
  return mem;
}

// Sets class cls's pad (percpu_region.h) on its first miss on this CPU, not
// when the region is mapped: the pads of 60 classes sit on most of the
// region's pages, and writing them all at once made every CPU's region
// resident (0.1-0.2 MiB more peak RSS in small programs). Until then
// the pad reads 0 and a pop that empties the class prefetches address 0: a
// slow prefetch, not a fault, and only for the pops before the class's first
// refill or flush on this CPU. Any thread on any CPU may write it: the value
// is the same.
void arm_pad(char* region, unsigned cls) {
  uint64_t* pad = &region_slots(region)[region_ranges(region)[cls].begin - 1];
  uint64_t want = reinterpret_cast<uint64_t>(region);
  if (__atomic_load_n(pad, __ATOMIC_RELAXED) != want) __atomic_store_n(pad, want, __ATOMIC_RELAXED);
}

// A refill's or a flush's miss of class cls on this CPU: its pad set, and
// the miss counted for the class's capacity (percpu_sizing.cc). True when
// the class grew.
bool note_miss(char* region, unsigned cls, MissKind kind) {
  arm_pad(region, cls);
  return sizing_note_miss(region, cls, kind);
}

}  // namespace

// Pointers only: the blocks are not touched.
uint32_t percpu_pop_to_pool(unsigned cls, uint32_t max) {
  CentralPool& pool = g_central_pools[cls];
  void* blocks[kMaxBatch];
  uint32_t moved = 0;
  while (moved < max) {
    uint32_t want = max - moved < pool.batch_size() ? max - moved : pool.batch_size();
    uint32_t n = percpu_pop_n(cls, blocks, want);
    pool.give_blocks(blocks, n);  // ignores n == 0
    moved += n;
    if (n < want) break;
  }
  return moved;
}

namespace {

// True when this thread can use the per-CPU caches right now; sets *cpu.
bool usable_cpu(int* cpu) {
  ThreadCache& tc = tl_cache;
  if (tc.state != kCacheActive) g_cache_upcalls.thread_init();
  if (tc.state != kCacheActive || !tc.rseq_ok) return false;
  *cpu = percpu_current_cpu();
  return *cpu >= 0 && *cpu < static_cast<int>(kMaxCpus);
}

}  // namespace

char* percpu_region_here() {
  ThreadCache& tc = tl_cache;
  if (!g_percpu_mode || tc.state != kCacheActive || !tc.rseq_ok) return nullptr;
  int cpu = percpu_current_cpu();
  if (cpu < 0 || cpu >= static_cast<int>(kMaxCpus)) return nullptr;
  char* r = __atomic_load_n(&g_percpu.regions[cpu], __ATOMIC_ACQUIRE);
  return r == reinterpret_cast<const char*>(kSentinel) ? nullptr : r;
}

int percpu_current_cpu() {
  auto* area = reinterpret_cast<const volatile struct rseq*>(
      static_cast<char*>(__builtin_thread_pointer()) + g_percpu.rseq_offset);
  return static_cast<int32_t>(area->cpu_id);
}

void percpu_init(bool wanted, const uint32_t* cache_limit, size_t grow_bytes,
                 size_t medium_grow_bytes) {
  for (unsigned i = 0; i < kMaxCpus; ++i)
    g_percpu.regions[i] = const_cast<char*>(reinterpret_cast<const char*>(kSentinel));
  for (const void*& r : g_fast_regions.at) r = kSentinel;
  // Until an area is chosen below (and for good when none is): slabby's own,
  // never registered then, so its cpu_id -1 sends every fast section to the
  // sentinel.
  g_percpu.rseq_offset = own_area_offset();
  if (!wanted) {
    g_why_not = "SLABBY_PERCPU=0";
    return;
  }
  if constexpr (!kHaveRseqSections) {
    // The sections are x86-64 assembly (percpu_cache.h): on other targets
    // and in SLABBY_PORTABLE builds every thread uses its own cache.
    g_why_not = "no rseq critical sections in this build";
    return;
  }
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer cannot see the ordering the critical sections give (they
  // are assembly), so it would report every block passed between threads
  // through a CPU cache. Its builds test the per-thread caches.
  g_why_not = "ThreadSanitizer build";
  return;
#endif
  // The sections index the region table by cpu_id without a bounds check:
  // every possible CPU must have a slot.
  unsigned possible = os::possible_cpus();
  if (possible == 0 || possible > kMaxCpus) {
    g_why_not = "CPU count unknown or above 1024";
    return;
  }
  if (&__rseq_size != nullptr && &__rseq_offset != nullptr && __rseq_size > 0) {
    g_source = kRseqGlibc;
    g_percpu.rseq_offset = __rseq_offset;
  } else if (register_own_area()) {
    g_source = kRseqOwn;
  } else {
    // No rseq here (old kernel, valgrind, qemu's user-mode emulation,
    // seccomp): per-thread caches.
    g_why_not = "no rseq on this system";
    return;
  }
  if (!sizing_plan(cache_limit, grow_bytes, medium_grow_bytes, &g_region_layout)) {
    // The base capacities alone do not fit 16-bit slot indices: stay per-thread.
    g_why_not = "caches too large for 16-bit slot indices";
    return;
  }
  g_percpu_mode = true;
}

bool percpu_thread_init() {
  if (g_source == kRseqOwn && static_cast<int32_t>(tl_rseq_area.cpu_id) < 0) {
    if (!register_own_area()) return false;
  }
  return g_source != kRseqNone && percpu_current_cpu() >= 0;
}

void* percpu_alloc(unsigned cls) noexcept {
  void* p = percpu_pop(cls);
  if (SLABBY_LIKELY(p != nullptr)) {
    tl_cache.allocs[cls]++;
    return p;
  }
  return percpu_refill_and_alloc(cls);
}

void percpu_free(void* p, unsigned cls) noexcept {
  // Class 0 (a large block or a stray pointer) has an empty-and-full range:
  // the push misses and the slow path sorts it out.
  if (SLABBY_LIKELY(percpu_push(cls, p))) {
    tl_cache.frees[cls]++;
    return;
  }
  return percpu_flush_and_free(p, cls);
}

namespace {

// The calling CPU's cache of class cls was empty: takes one batch from the
// pool, pushes all but its first block into the cache and returns that one
// (nullptr when the pool has none). The batch comes as pointers: a block is
// not read here, so blocks freed on another CPU cost this one no cache miss
// until the program touches them. With `admit`, each block is admitted
// before it enters the cache (percpu_cache.h).
void* refill_from_pool(unsigned cls, int cpu, BlockAdmit admit, uint32_t max_fresh = kMaxBatch) {
  CentralPool& pool = g_central_pools[cls];
  void* blocks[kMaxBatch];
  uint32_t n = pool.take_blocks(blocks, pool.batch_size(),
                                static_cast<unsigned>(cpu) % pool.num_shards(), max_fresh);
  if (n == 0) return nullptr;
  if (admit != nullptr) {
    for (uint32_t i = 0; i < n; ++i) admit(blocks[i], cls);
  }
  // One critical section; what does not fit (the cache filled meanwhile, or
  // the thread migrated to a CPU whose cache is full) goes back.
  uint32_t pushed = n > 1 ? percpu_push_n(cls, blocks + 1, n - 1) : 0;
  if (pushed < n - 1) pool.give_blocks(blocks + 1 + pushed, n - 1 - pushed);
  g_cache_upcalls.slow_path_done();
  return blocks[0];
}

}  // namespace

void* percpu_refill_and_alloc(unsigned cls) noexcept {
  int cpu;
  char* region;
  // Without a usable CPU cache (its region could not be mapped): one block
  // straight from the pool. Never back to the thread's bins: their limit is
  // 0 for a per-CPU thread, and that path would come back here.
  if (!usable_cpu(&cpu) || (region = ensure_region(cpu)) == nullptr)
    return uncached_alloc(cls, class_size(cls));
  g_cpu_misses[cpu].fetch_add(1, std::memory_order_relaxed);
  void* p = percpu_pop(cls);  // another thread refilled it
  if (p == nullptr) {
    note_miss(region, cls, kMissEmpty);
    p = refill_from_pool(cls, cpu, nullptr);
  }
  if (p == nullptr) return g_cache_upcalls.exhausted(class_size(cls));  // arena exhausted
  tl_cache.allocs[cls]++;
  return p;
}

namespace {

// percpu_alloc_first's work on the calling thread's CPU (its region mapped):
// the block, not counted in the thread's allocs; each block from the pool
// admitted first when admit is set (a divert's). nullptr when the pool is out.
void* alloc_first_on(int cpu, unsigned cls, BlockAdmit admit, uint32_t max_fresh) noexcept {
  CentralPool& pool = g_central_pools[cls];
  size_t size = class_size(cls);
  uint32_t want = first_block_batch(cls);
  void* blocks[kMaxBatch];
  // The cache's top blocks: one whose lines hold only blocks among them is
  // on no line another thread uses. Else a few of the pool's.
  uint32_t n = percpu_pop_n(cls, blocks, want);
  bool own = false;
  uint32_t mates = n > 0 ? arrange_first_block(blocks, n, size, &own) : 0;
  if (!own) {
    uint32_t back = n > 0 ? percpu_push_n(cls, blocks, n) : 0;
    if (back < n) pool.give_blocks(blocks + back, n - back);
    n = pool.take_blocks(blocks, want, static_cast<unsigned>(cpu) % pool.num_shards(), max_fresh);
    if (n == 0) return nullptr;
    if (admit != nullptr)
      for (uint32_t i = 0; i < n; ++i) admit(blocks[i], cls);
    mates = arrange_first_block(blocks, n, size, &own);
  }
  // The rest back into the cache, the block's line mates first (deepest);
  // what does not fit goes to the pool, but never a mate while the cache
  // can make room for it from its top.
  void** rest = blocks + 1;
  uint32_t pushed = n > 1 ? percpu_push_n(cls, rest, n - 1) : 0;
  if (pushed < mates) {
    percpu_pop_to_pool(cls, mates - pushed);
    pushed += percpu_push_n(cls, rest + pushed, mates - pushed);
  }
  if (pushed < n - 1) pool.give_blocks(rest + pushed, n - 1 - pushed);
  g_cache_upcalls.slow_path_done();
  return blocks[0];
}

}  // namespace

void* percpu_alloc_first(unsigned cls) noexcept {
  int cpu;
  if (!usable_cpu(&cpu) || ensure_region(cpu) == nullptr) return percpu_alloc(cls);
  void* p = alloc_first_on(cpu, cls, nullptr, kMaxBatch);
  if (p == nullptr) return percpu_alloc(cls);  // the pool is out: the usual way
  tl_cache.allocs[cls]++;
  return p;
}

void* percpu_alloc_first_admitting(unsigned cls, BlockAdmit admit, uint32_t max_fresh) noexcept {
  int cpu;
  if (!usable_cpu(&cpu) || ensure_region(cpu) == nullptr) return nullptr;
  return alloc_first_on(cpu, cls, admit, max_fresh);
}

void percpu_flush_and_free(void* p, unsigned cls) noexcept {
  if (cls == 0) return g_cache_upcalls.not_small(p);
  if (!percpu_flush_and_push(p, cls)) return uncached_free(p, cls);
  tl_cache.frees[cls]++;
}

void* percpu_refill_admitting(unsigned cls, BlockAdmit admit, uint32_t max_fresh) noexcept {
  int cpu;
  char* region;
  if (!usable_cpu(&cpu) || (region = ensure_region(cpu)) == nullptr) return nullptr;
  g_cpu_misses[cpu].fetch_add(1, std::memory_order_relaxed);
  if (void* p = percpu_pop(cls)) return p;  // another thread refilled it (admitted then)
  note_miss(region, cls, kMissEmpty);
  return refill_from_pool(cls, cpu, admit, max_fresh);
}

bool percpu_flush_and_push(void* p, unsigned cls) noexcept {
  int cpu;
  char* region;
  if (!usable_cpu(&cpu) || (region = ensure_region(cpu)) == nullptr) return false;
  g_cpu_misses[cpu].fetch_add(1, std::memory_order_relaxed);
  if (percpu_push(cls, p)) return true;  // the region was just created
  // Full: room if the class grew, else move one batch out, then push.
  if (note_miss(region, cls, kMissFull) && percpu_push(cls, p)) return true;
  CentralPool& pool = g_central_pools[cls];
  percpu_pop_to_pool(cls, pool.batch_size());
  if (!percpu_push(cls, p)) {
    *static_cast<void**>(p) = nullptr;
    pool.give(p, 1);
  }
  return true;  // (no slow_path_done from a free: thread_cache.h CacheUpcalls)
}

uint64_t percpu_drain_idle(bool all) {
  if (!g_percpu_mode || !tl_cache.rseq_ok) return 0;
  cpu_set_t saved;
  if (sched_getaffinity(0, sizeof(saved), &saved) != 0) return 0;
  uint64_t drained = 0;
  for (int cpu = 0; cpu < static_cast<int>(kMaxCpus); ++cpu) {
    char* r = __atomic_load_n(&g_percpu.regions[cpu], __ATOMIC_ACQUIRE);
    if (r == reinterpret_cast<const char*>(kSentinel)) continue;
    uint64_t misses = g_cpu_misses[cpu].load(std::memory_order_relaxed);
    bool idle = misses == g_cpu_misses_seen[cpu];
    g_cpu_misses_seen[cpu] = misses;
    if (!idle && !all && !sizing_grown(r)) {
      // (Reads and relaxed stores of the other CPU's region: no need to run there.)
      sizing_hint_exact(r);
      sizing_period_seen(r);
      continue;
    }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof(one), &one) != 0) continue;  // not ours to run on
    // The pops and capacity changes are critical sections on whatever CPU
    // this thread is on; if the kernel moved it anyway, they act on that
    // CPU instead: still safe (every region has the same layout).
    if (idle || all) {
      for (unsigned c = 1; c < kNumClasses; ++c) drained += percpu_pop_to_pool(c, ~uint32_t{0});
    }
    drained += sizing_decay(r, idle || all);
  }
  sched_setaffinity(0, sizeof(saved), &saved);
  // The medium classes' process-wide budget, exact again (reads only).
  uint64_t medium = 0;
  for (unsigned cpu = 0; cpu < kMaxCpus; ++cpu) {
    char* r = __atomic_load_n(&g_percpu.regions[cpu], __ATOMIC_ACQUIRE);
    if (r != reinterpret_cast<const char*>(kSentinel)) medium += sizing_medium_grown(r);
  }
  sizing_medium_hint_exact(medium);
  return drained;
}

uint64_t percpu_drain_current() {
  int cpu;
  if (!usable_cpu(&cpu)) return 0;
  uint64_t drained = 0;
  // Each pop is a critical section on the CPU the thread is on at that
  // moment: a migration midway drains part of the next CPU's cache instead.
  for (unsigned c = 1; c < kNumClasses; ++c) drained += percpu_pop_to_pool(c, ~uint32_t{0});
  return drained;
}

void percpu_fork_prepare() { g_region_mu.lock(); }
void percpu_fork_parent() { g_region_mu.unlock(); }
void percpu_fork_child() { g_region_mu.reset_after_fork(); }

namespace {

// Over every CPU's region: the blocks cached per class, added to cached, and
// with pushes, the inline free's pushes (one load per class: cur and the
// count from the same moment).
void sum_regions(uint64_t* cached, uint64_t* pushes) {
  for (unsigned cpu = 0; cpu < kMaxCpus; ++cpu) {
    char* r = __atomic_load_n(&g_percpu.regions[cpu], __ATOMIC_ACQUIRE);
    if (r == reinterpret_cast<const char*>(kSentinel)) continue;
    const SlotRange* hdr = region_ranges(r);
    const uint64_t* cursors = region_cursors(r);
    for (unsigned c = 1; c < kNumClasses; ++c) {
      uint64_t w = __atomic_load_n(&cursors[c], __ATOMIC_RELAXED);
      cached[c] += static_cast<uint16_t>(w) - hdr[c].begin;
      if (pushes != nullptr) pushes[c] += w >> kCursorCountShift;
    }
  }
}

}  // namespace

void percpu_cached_blocks(uint64_t* per_class) {
  if (g_percpu_mode) sum_regions(per_class, nullptr);
}

void percpu_fast_counts(const int64_t* slow_net, uint64_t* cached, uint64_t* pops,
                        uint64_t* pushes) {
  if (!g_percpu_mode) return;
  // With a divert the inline sections never hit (the fast table stays all
  // sentinel), and the divert counts each block in the thread's allocs and
  // frees itself: only the cached blocks. A fast divert's hits are the
  // inline paths', counted as without one.
  if (g_small_divert.alloc != nullptr && !g_small_divert.fast) return sum_regions(cached, nullptr);
  uint64_t here[kNumClasses] = {};
  sum_regions(here, pushes);
  // Blocks into the caches (fast pushes + slow_net) = blocks out (fast pops)
  // + blocks cached.
  for (unsigned c = 1; c < kNumClasses; ++c) {
    cached[c] += here[c];
    int64_t p = static_cast<int64_t>(pushes[c]) + slow_net[c] - static_cast<int64_t>(here[c]);
    pops[c] = p > 0 ? static_cast<uint64_t>(p) : 0;
  }
}

uint32_t percpu_capacity(int cpu, unsigned cls) {
  if (!g_percpu_mode || cpu < 0 || cpu >= static_cast<int>(kMaxCpus)) return 0;
  char* r = __atomic_load_n(&g_percpu.regions[cpu], __ATOMIC_ACQUIRE);
  if (r == reinterpret_cast<const char*>(kSentinel)) return 0;
  return sizing_capacity(r, cls);
}

uint32_t percpu_max_capacity(unsigned cls) {
  if (!g_percpu_mode) return 0;
  return static_cast<uint32_t>(g_region_layout.max_end[cls] - g_region_layout.base[cls].begin);
}

uint64_t percpu_capacity_bytes() {
  if (!g_percpu_mode) return 0;
  uint64_t total = 0;
  for (unsigned cpu = 0; cpu < kMaxCpus; ++cpu) {
    char* r = __atomic_load_n(&g_percpu.regions[cpu], __ATOMIC_ACQUIRE);
    if (r == reinterpret_cast<const char*>(kSentinel)) continue;
    for (unsigned c = 1; c < kNumClasses; ++c)
      total += uint64_t{sizing_capacity(r, c)} * class_size(c);
  }
  return total;
}

const char* percpu_rseq_source() {
  return g_source == kRseqGlibc ? "glibc" : g_source == kRseqOwn ? "own" : "none";
}

const char* percpu_off_reason() { return g_percpu_mode ? "" : g_why_not; }

}  // namespace slabby

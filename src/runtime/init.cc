// slabby: process lifecycle: lazy initialisation on the first call, thread
// start and exit, fork, and the report at exit.
#include <fcntl.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

#include "cache/budget_bytes.h"
#include "cache/percpu_cache.h"
#include "common/writer.h"
#include "frontend/allocator.h"
#include "os/os.h"
#include "runtime/background.h"
#include "runtime/heap_events.h"
#include "runtime/runtime.h"
#include "secure/checks.h"
#include "secure/leak_check.h"
#include "telemetry/heap_profile.h"
#include "telemetry/stats.h"

extern char** environ;

namespace slabby {

constinit Runtime g_rt;

namespace {

void stderr_sink(void*, const char* line, size_t len) { os::write_stderr(line, len); }

// The SLABBY_ entries of the initial environment, read from /proc when
// malloc runs before libc has set `environ` (possible under LD_PRELOAD: ld.so
// may allocate before libc's initialiser). Static storage: no allocation.
char** environment_from_proc() {
  static char buf[32 * 1024];
  static char* entries[128];
  int fd =
      static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/environ", O_RDONLY | O_CLOEXEC));
  if (fd < 0) return nullptr;
  size_t len = 0;
  while (len < sizeof(buf) - 1) {
    ssize_t r = syscall(SYS_read, fd, buf + len, sizeof(buf) - 1 - len);
    if (r <= 0) break;
    len += static_cast<size_t>(r);
  }
  syscall(SYS_close, fd);
  buf[len] = '\0';
  size_t n = 0;
  for (size_t i = 0; i < len && n < sizeof(entries) / sizeof(entries[0]) - 1;) {
    char* e = buf + i;
    size_t el = strlen(e);
    if (strncmp(e, "SLABBY_", 7) == 0) entries[n++] = e;
    i += el + 1;
  }
  entries[n] = nullptr;
  return entries;
}

char** find_environment() {
  // Setuid/setgid programs ignore SLABBY_* (as ld.so ignores LD_ variables):
  // the environment belongs to a less trusted user.
  if (getauxval(AT_SECURE) != 0) return nullptr;
  if (environ != nullptr) return environ;
  return environment_from_proc();
}

void compute_cache_limits(const Config& c) {
  for (unsigned cls = 1; cls < kNumClasses; ++cls) {
    size_t n = c.thread_cache_bytes / class_size(cls);
    if (c.thread_cache_bytes == 0) {
      n = 0;
    } else if (is_medium_class(cls)) {
      // Medium blocks (40 KiB to 1 MiB): as many as the byte budget holds,
      // at least one, so a block freed and asked for again on this CPU (or
      // thread) never reaches a lock. Worst case every medium class holds
      // one: 6.3 MiB per CPU, drained when the CPU idles. (Keeping those
      // above 256 KiB on their transfer stacks only, one bound for the
      // process, made two threads' 64 KiB-1 MiB loop 12 times slower: the
      // stacks' cache lines bounce between the CPUs.)
      if (n < 1) n = 1;
    } else {
      if (n < 4) n = 4;
      // Even, so a flush of half the bin is exactly one transfer batch.
      n &= ~size_t{1};
    }
    if (n > 256) n = 256;
    g_rt.cache_limit[cls] = static_cast<uint32_t>(n);
  }
}

// Shards and the transfer stacks' bounds for every class. The shards live
// in one metadata mapping, each `cache_line` bytes apart from the next; their
// locks before them, a row per shard index holding that shard's lock of
// every class, rows `cache_line` apart (central/central_pool.h: what fork
// writes).
bool init_pools(const Config& c) {
  unsigned shards = c.shards != 0 ? static_cast<unsigned>(c.shards) : os::usable_cpus();
  if (shards > kMaxShards) shards = kMaxShards;
  if (shards == 0) shards = 1;
  size_t stride = round_up(sizeof(Shard), c.cache_line);
  size_t lock_row = round_up(sizeof(Mutex) * kNumClasses, c.cache_line);
  size_t lock_bytes = round_up(lock_row * shards, c.cache_line);
  char* mem = static_cast<char*>(
      os::map_rw(round_up(lock_bytes + stride * shards * kNumClasses, kPageSize)));
  if (mem == nullptr) return false;
  Mutex* locks = reinterpret_cast<Mutex*>(mem);
  for (size_t i = 0; i < lock_bytes / sizeof(Mutex); ++i) new (&locks[i]) Mutex();
  mem += lock_bytes;
  g_rt.num_shards = shards;
  uint32_t class_batch[kNumClasses] = {}, class_max_batches[kNumClasses] = {};
  size_t descriptor_bytes = 0;
  for (unsigned cls = 1; cls < kNumClasses; ++cls) {
    uint32_t batch = g_rt.cache_limit[cls] / 2;
    // Transfer stacks hold at most about 256 KiB of each class (at least
    // two batches of a small class, one block of a medium one).
    size_t batch_bytes = size_t{batch == 0 ? 1 : batch} * class_size(cls);
    uint32_t max_batches = static_cast<uint32_t>((256 << 10) / batch_bytes);
    // Medium blocks above 256 KiB get no transfer stack: the per-CPU caches
    // hold one of each, and a block flushed past them goes back to the page
    // heap, whose pages any size can reuse (a stacked 1 MiB block serves
    // only its class: a threaded C++ program held 15 MiB more that way).
    uint32_t min_batches = is_medium_class(cls) ? 1 : 2;
    if (max_batches < min_batches) max_batches = min_batches;
    if (class_size(cls) > kMaxStackedMedium) max_batches = 0;
    class_batch[cls] = batch == 0 ? 1 : batch;
    class_max_batches[cls] = max_batches;
    descriptor_bytes += round_up(BatchStack::bytes_for(class_batch[cls], max_batches), 64);
  }
  // The transfer stacks' descriptors: one mapping, a 64-byte-aligned slice
  // per class, its pages touched only as batches are first stacked.
  char* descriptors = static_cast<char*>(os::map_rw(round_up(descriptor_bytes, kPageSize)));
  if (descriptors == nullptr) return false;
  // The checked modes' format must not outlive a slab (central_pool.h).
  SlabScrub scrub = g_checks.zero_free ? SlabScrub::kZero
                    : g_checks.tags    ? SlabScrub::kClearTags
                                       : SlabScrub::kNone;
  for (unsigned cls = 1; cls < kNumClasses; ++cls) {
    // (A medium block's body is zeroed at its free and its first formatting,
    // and its tag is its slab's, which the page heap resets.)
    SlabScrub own = scrub;
    if (is_medium_class(cls) && scrub != SlabScrub::kNone)
      own = scrub == SlabScrub::kZero ? SlabScrub::kZeroEdges : SlabScrub::kNone;
    size_t bytes = BatchStack::bytes_for(class_batch[cls], class_max_batches[cls]);
    g_central_pools[cls].init(cls, &g_rt.heap, mem + stride * shards * cls, shards, stride,
                              locks + cls, lock_row / sizeof(Mutex), class_batch[cls],
                              class_max_batches[cls], bytes == 0 ? nullptr : descriptors, own);
    descriptors += round_up(bytes, 64);
  }
  return true;
}

// A high descriptor, so the program's own open() calls still get the lowest
// free numbers they expect.
int duplicate_stderr() {
  int saved = errno;
  int fd = fcntl(2, F_DUPFD_CLOEXEC, 1000);
  if (fd < 0) fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
  errno = saved;
  return fd < 0 ? 2 : fd;
}

void thread_exit(void* arg) { cache_teardown(static_cast<ThreadCache*>(arg)); }

// fork: every lock, in the one fixed order (per-CPU regions, registry, pools
// by class and shard, page heap), so the child inherits none held by a
// thread that does not exist.
void fork_prepare() {
  heap_profile_fork_prepare();
  leak_fork_prepare();
  percpu_fork_prepare();
  g_threads.mu.lock();
  for (unsigned c = 1; c < kNumClasses; ++c) g_central_pools[c].lock_all();
  g_rt.heap.lock();
}
void fork_parent() {
  g_rt.heap.unlock();
  for (unsigned c = kNumClasses - 1; c >= 1; --c) g_central_pools[c].unlock_all();
  g_threads.mu.unlock();
  percpu_fork_parent();
  leak_fork_parent();
  heap_profile_fork_parent();
}
void fork_child() {
  heap_profile_fork_child();
  leak_fork_child();
  percpu_fork_child();
  g_rt.heap.reset_lock_after_fork();
  os::residency_fork_child();
  for (unsigned c = 1; c < kNumClasses; ++c) g_central_pools[c].reset_locks_after_fork();
  g_threads.mu.reset_after_fork();
  cache_forget_other_threads();
  // The parent's purger thread does not exist here; start one when needed.
  // Until it runs, every free enforces SLABBY_RETAIN_MAX at once again.
  // (Written only when it differs: each page written here is a fault in the
  // child, and a process that forks from one thread has nothing to undo.)
  if (g_background.load(std::memory_order_relaxed) != kBgNone)
    g_background.store(kBgNone, std::memory_order_relaxed);
  if (g_rt.heap.retain_grace_ms() != 0) g_rt.heap.set_retain_grace_ms(0);
}

void start_heap_profile(const Config& c) {
  ProfSettings p;
  p.active = c.prof;
  p.sample_bytes = c.prof_sample;
  p.file = c.prof_file;
  p.interval_ms = c.prof_interval_ms;
  p.signal = static_cast<int>(c.prof_signal);
  p.dump_at_exit = c.prof;
  heap_profile_start(p);
  // Allocations during init (pthread_atfork's) armed this thread's countdown
  // before profiling was on.
  sampling_restart_this_thread();
}

// slabby's pages (kPageSize, fixed at build time) must hold whole system
// pages: with smaller ones, its madvise, mprotect and mremap calls would hit
// its neighbours' memory. Such a build (4 KiB pages on an aarch64 kernel with
// 16 or 64 KiB ones) says so in one line, always, and leaves everything to
// glibc. Larger slabby pages work on any system with smaller ones.
bool page_size_supported() {
  size_t system_page = os::system_page_size();
  if (system_page <= kPageSize && kPageSize % system_page == 0) return true;
  Writer w(2);
  w.str("slabby: this system's pages are ").u64(system_page).str(" bytes, larger than the ");
  w.u64(kPageSize).str(" this slabby was built for (SLABBY_PAGE_SIZE); ");
  w.str("glibc malloc serves every allocation\n");
  return false;
}

void print_verbose_banner() {
  Writer w(2);
  w.str("slabby: ").str("slabby " SLABBY_VERSION_STRING " active in pid ").u64(getpid());
  if (g_percpu_mode) {
    w.str(": per-CPU caches");
    if (g_threads.percpu_threads > 1)
      w.str(" from ").u64(g_threads.percpu_threads).str(" live threads");
    w.str(" (rseq area: ").str(percpu_rseq_source()).str(")");
  } else {
    w.str(": per-thread caches (").str(percpu_off_reason()).str(")");
  }
  w.str(", ").u64(g_rt.num_shards).str(" shards, arena ").bytes(g_rt.heap.size());
  w.str(" reserved at ");
  w.hex(g_rt.heap.base()).ch('\n');
  w.flush();
  describe_config(g_rt.config, stderr_sink, nullptr);
}

}  // namespace

bool init_slow() {
  {
    LockGuard g(g_rt.init_mu);
    int state = g_rt.init_state.load(std::memory_order_acquire);
    if (state != kInitNone) return state == kInitReady;

    g_rt.config = parse_config(find_environment(), stderr_sink, nullptr);
    const Config& cfg = g_rt.config.config;
    if (g_rt.config.problems > 0 && cfg.strict) {
      Writer w(2);
      w.str("slabby: SLABBY_STRICT=1: aborting on ");
      w.str(g_rt.config.first_problem, g_rt.config.first_problem_len).ch('\n');
      w.flush();
      os::fatal("slabby: invalid configuration");
    }
    // A failure here leaves every allocation to glibc (counted as heap
    // fallbacks); it is said once, whatever SLABBY_VERBOSE, since the
    // stats, checks and profile the user asked for will not come.
    if (!page_size_supported()) {
      g_rt.init_state.store(kInitFailed, std::memory_order_release);
      return false;
    }
    if (!g_rt.heap.init(cfg.arena_size, cfg.retain_max)) {
      int err = os::last_map_errno();
      Writer w(2);
      w.str("slabby: cannot reserve the heap's address space (tried SLABBY_ARENA_SIZE=");
      w.bytes(cfg.arena_size).str(" down to 256 MiB: ").errno_text(err);
      w.str("; is ulimit -v set?); glibc malloc serves every allocation\n");
      g_rt.init_state.store(kInitFailed, std::memory_order_release);
      return false;
    }
    g_rt.heap.set_decay_ms(cfg.decay_ms);
    g_rt.heap.set_max_heap(cfg.max_heap);
    g_rt.heap.set_thp(static_cast<os::Thp>(cfg.thp));
    g_rt.heap.set_thp_timed(cfg.thp_timed);
    telemetry_init(cfg);
    install_heap_events(g_rt.heap);
    compute_cache_limits(cfg);
    checks_init(cfg);
    // Growth budgets count a checked block as the program's request (the
    // canary moves full-class requests up one): before the caches are sized.
    budget_block_bytes_init(g_checks.bitguard);
    percpu_init(cfg.percpu, g_rt.cache_limit, cfg.percpu_grow_bytes, cfg.medium_grow_bytes);
    // By default the main thread and four threads per CPU keep their bins
    // (their shares: cache/thread_cache.h); one more moves them all to the
    // CPU caches. Measured in docs/benchmarks.md, "Bins for more threads".
    uint64_t cpus = os::usable_cpus();
    g_threads.percpu_threads = cfg.percpu_threads != 0 ? cfg.percpu_threads : 4 * cpus + 2;
    bins_init(g_rt.cache_limit, cfg.percpu_grow_bytes, cfg.medium_grow_bytes, cpus);
    if (!init_pools(cfg)) {
      int err = os::last_map_errno();
      Writer w(2);
      w.str("slabby: cannot map the size classes' shards and transfer stacks: ").errno_text(err);
      w.str("; glibc malloc serves every allocation\n");
      g_rt.init_state.store(kInitFailed, std::memory_order_release);
      return false;
    }
    // Small blocks go to the checked paths: the slow paths hand them over.
    if (g_checks.small) g_small_divert = checked_small_divert();
    if (pthread_key_create(&g_rt.thread_key, thread_exit) != 0) g_rt.thread_key = 0;
    // Anything that may write at exit (a report, or a line saying a file
    // cannot be written) gets its own stderr: programs close fd 2 in their
    // atexit handlers.
    if (cfg.stats != StatsFormat::kOff || g_checks.leak_check || cfg.prof)
      g_rt.report_fd = duplicate_stderr();
    g_rt.init_state.store(kInitReady, std::memory_order_release);
  }
  // After the lock: these may allocate, and the allocator is ready for it.
  pthread_atfork(fork_prepare, fork_parent, fork_child);
  if (g_checks.leak_check) leak_check_start();
  start_heap_profile(g_rt.config.config);
  if (g_rt.config.config.verbose) print_verbose_banner();
  return true;
}

void thread_init() noexcept {
  if (!ensure_init()) return;
  ThreadCache& tc = tl_cache;
  if (tc.state != kCacheUninit) return;
  tc.rseq_ok = g_percpu_mode && percpu_thread_init();
  // Checked mode: limit 0, so every call misses into the checked paths.
  bins_start(tc, !g_checks.small);
  tc.state = kCacheActive;
  {
    LockGuard g(g_threads.mu);
    tc.prev = nullptr;
    tc.next = g_threads.list;
    if (tc.next) tc.next->prev = &tc;
    g_threads.list = &tc;
    __atomic_store_n(&g_threads.live, g_threads.live + 1, __ATOMIC_RELAXED);
  }
  // On the per-CPU caches from the start once the process has
  // SLABBY_PERCPU_THREADS live threads; until then on its own bins, and it
  // moves later from a slow path (cache/thread_cache.h: cache_percpu_due).
  // With a divert (the checked paths) the fast paths stay on the empty bins
  // and miss into it; the divert runs the critical sections itself.
  if (cache_percpu_due(tc)) cache_move_to_percpu();
  // Arranges cache_teardown at thread exit. May allocate (glibc's second
  // level of keys): the cache is already active for that.
  pthread_setspecific(g_rt.thread_key, &tc);
}

// Runs from _dl_fini, after every atexit handler and the destructors of the
// libraries loaded after slabby, so the report sees their frees. Nothing is
// torn down: later frees (other destructors) keep working.
__attribute__((destructor)) static void report_at_exit() {
  if (g_rt.init_state.load(std::memory_order_acquire) != kInitReady) return;
  write_configured_report();
  if (g_checks.leak_check) leak_report(g_rt.report_fd);
  heap_profile_at_exit();
}

void write_configured_report() {
  const Config& c = g_rt.config.config;
  if (c.stats == StatsFormat::kOff) return;
  auto format = static_cast<StatsOutput>(static_cast<int>(c.stats) - 1);
  if (c.stats_file[0] == '\0') return write_stats(g_rt.report_fd, format);
  // SLABBY_STATS_FILE, %p expanded. Written to PATH.tmp and renamed, so a
  // reader (a metrics scraper) never sees a half-written file.
  static char path[300], tmp[310];
  static Mutex mu;
  LockGuard g(mu);
  size_t n = expand_pid_pattern(c.stats_file, path, sizeof(path));
  memcpy(tmp, path, n);
  memcpy(tmp + n, ".tmp", 5);
  int saved = errno;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    // Once: a server rewriting the file every interval says it only once.
    static bool told = false;
    if (!told) report_file_error("write SLABBY_STATS_FILE", tmp, errno, g_rt.report_fd);
    told = true;
  } else {
    write_stats(fd, format);
    if (close(fd) != 0 || rename(tmp, path) != 0)
      report_file_error("write SLABBY_STATS_FILE", path, errno, g_rt.report_fd);
  }
  errno = saved;
}

}  // namespace slabby

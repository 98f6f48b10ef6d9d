#include "os/os.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/base.h"
#include "os/os_internal.h"

namespace slabby::os {

namespace {
std::atomic<uint64_t> g_madvise_calls{0};
std::atomic<uint64_t> g_huge_marks{0};
std::atomic<uint64_t> g_purged_bytes{0};
std::atomic<uint64_t> g_mappings{0};
std::atomic<int> g_last_map_errno{0};
}  // namespace

void note_madvise() { g_madvise_calls.fetch_add(1, std::memory_order_relaxed); }

size_t system_page_size() {
  // Cached: the checked paths ask at every medium block's free.
  static std::atomic<size_t> cached{0};
  size_t page = cached.load(std::memory_order_relaxed);
  if (SLABBY_LIKELY(page != 0)) return page;
  page = static_cast<size_t>(getpagesize());
  cached.store(page, std::memory_order_relaxed);
  return page;
}

size_t mincore_page_size() {
  static std::atomic<size_t> cached{0};
  size_t reported = cached.load(std::memory_order_relaxed);
  if (reported != 0) return reported;
  ErrnoKeeper keep;
  const size_t page = system_page_size();
  reported = page;
  // One page, resident, asked about: the bytes written tell the granularity.
  // Linux writes only 0 or 1 (bit 0), never the 0xff left in the others.
  void* probe = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (probe != MAP_FAILED) {
    static_cast<volatile char*>(probe)[0] = 1;
    unsigned char vec[256];
    memset(vec, 0xff, sizeof vec);
    if (mincore(probe, page, vec) == 0) {
      size_t n = 0;
      while (n < sizeof vec && vec[n] != 0xff) ++n;
      if (n >= 1 && n < sizeof vec && page % n == 0) reported = page / n;
    }
    munmap(probe, page);
  }
  cached.store(reported, std::memory_order_relaxed);
  return reported;
}

size_t huge_page_size() {
  ErrnoKeeper keep;
  size_t page = system_page_size();
  // A PMD maps as many pages as a page holds 8-byte entries.
  size_t derived = page * (page / 8);
  int fd = open("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return derived;
  char buf[32];
  ssize_t len = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  size_t v = 0;
  for (ssize_t i = 0; i < len && buf[i] >= '0' && buf[i] <= '9'; ++i)
    v = v * 10 + static_cast<size_t>(buf[i] - '0');
  return v >= page && (v & (v - 1)) == 0 ? v : derived;
}

void* reserve(size_t bytes, size_t align, bool readable) {
  ErrnoKeeper keep;
  size_t span = bytes + align;
  int prot = readable ? PROT_READ : PROT_NONE;
  void* raw = mmap(nullptr, span, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    g_last_map_errno.store(errno, std::memory_order_relaxed);
    return nullptr;
  }
  uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = round_up(start, align);
  if (aligned > start) munmap(raw, aligned - start);
  uintptr_t end = start + span;
  if (end > aligned + bytes) munmap(reinterpret_cast<void*>(aligned + bytes), end - aligned - bytes);
  g_mappings.fetch_add(1, std::memory_order_relaxed);
  return reinterpret_cast<void*>(aligned);
}

void release(void* p, size_t bytes) {
  ErrnoKeeper keep;
  if (munmap(p, bytes) == 0) g_mappings.fetch_sub(1, std::memory_order_relaxed);
}

bool commit(void* p, size_t bytes) {
  ErrnoKeeper keep;
  return mprotect(p, bytes, PROT_READ | PROT_WRITE) == 0;
}

void purge(void* p, size_t bytes) {
  ErrnoKeeper keep;
  // MADV_DONTNEED rather than MADV_FREE: the pages leave RSS at once, which
  // is what users watching RSS expect (USER-EXPECTATIONS item 13).
  madvise(p, bytes, MADV_DONTNEED);
  g_madvise_calls.fetch_add(1, std::memory_order_relaxed);
  g_purged_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

bool move_pages(void* from, size_t bytes, void* to, size_t new_bytes) {
  ErrnoKeeper keep;
  void* r = mremap(from, bytes, new_bytes, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  return r == to;
}

bool map_fresh(void* p, size_t bytes) {
  ErrnoKeeper keep;
  void* r = mmap(p, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  return r == p;
}

void* map_rw(size_t bytes) {
  ErrnoKeeper keep;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    g_last_map_errno.store(errno, std::memory_order_relaxed);
    return nullptr;
  }
  g_mappings.fetch_add(1, std::memory_order_relaxed);
  return p;
}

int last_map_errno() { return g_last_map_errno.load(std::memory_order_relaxed); }

unsigned usable_cpus() {
  ErrnoKeeper keep;
  unsigned n = 1;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
    n = static_cast<unsigned>(CPU_COUNT(&set));
  // "max 100000" (no quota) or "QUOTA PERIOD" in microseconds.
  int fd = open("/sys/fs/cgroup/cpu.max", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[64];
    ssize_t len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (len > 0 && buf[0] >= '0' && buf[0] <= '9') {
      buf[len] = '\0';
      uint64_t quota = 0, period = 0;
      char* p = buf;
      while (*p >= '0' && *p <= '9') quota = quota * 10 + static_cast<uint64_t>(*p++ - '0');
      while (*p == ' ') ++p;
      while (*p >= '0' && *p <= '9') period = period * 10 + static_cast<uint64_t>(*p++ - '0');
      if (period > 0) {
        uint64_t cpus = (quota + period - 1) / period;
        if (cpus >= 1 && cpus < n) n = static_cast<unsigned>(cpus);
      }
    }
  }
  return n;
}

unsigned possible_cpus() {
  ErrnoKeeper keep;
  int fd = open("/sys/devices/system/cpu/possible", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[256];
  ssize_t len = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (len <= 0) return 0;
  // A list of ranges such as "0-63" or "0,2-5": the highest number counts.
  unsigned highest = 0, cur = 0;
  bool digits = false;
  for (ssize_t i = 0; i < len; ++i) {
    if (buf[i] >= '0' && buf[i] <= '9') {
      cur = cur * 10 + static_cast<unsigned>(buf[i] - '0');
      digits = true;
    } else {
      if (digits && cur > highest) highest = cur;
      cur = 0;
      digits = false;
    }
  }
  if (digits && cur > highest) highest = cur;
  return highest + 1;
}

uint64_t now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

uint64_t time_first_write(void* p, bool thread_cpu) {
  const clockid_t clock = thread_cpu ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
  struct timespec a, b;
  clock_gettime(clock, &a);
  __atomic_store_n(static_cast<uint64_t*>(p), uint64_t{0}, __ATOMIC_RELAXED);
  clock_gettime(clock, &b);
  int64_t ns = (static_cast<int64_t>(b.tv_sec) - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
  return ns > 0 ? static_cast<uint64_t>(ns) : 0;
}

uint64_t mappings() { return g_mappings.load(std::memory_order_relaxed); }

void set_thp(void* p, size_t bytes, Thp mode) {
  ErrnoKeeper keep;
  // kMadvise leaves the system's setting alone.
  if (mode == Thp::kNever || mode == Thp::kLarge || mode == Thp::kDense)
    madvise(p, bytes, MADV_NOHUGEPAGE);
  if (mode == Thp::kAlways) madvise(p, bytes, MADV_HUGEPAGE);
}

void mark_huge(void* p, size_t bytes, bool huge) {
  ErrnoKeeper keep;
  madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  g_huge_marks.fetch_add(1, std::memory_order_relaxed);
}

uint64_t huge_marks() { return g_huge_marks.load(std::memory_order_relaxed); }

uint64_t madvise_calls() { return g_madvise_calls.load(std::memory_order_relaxed); }
uint64_t purged_bytes() { return g_purged_bytes.load(std::memory_order_relaxed); }

void write_stderr(const char* s, size_t n) {
  ErrnoKeeper keep;
  while (n > 0) {
    ssize_t w = ::write(2, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void fatal(const char* msg) {
  write_stderr(msg, strlen(msg));
  write_stderr("\n", 1);
  // glibc's abort() (since 2.27) takes no stdio locks and allocates nothing;
  // it raises SIGABRT even when the program blocked or caught it.
  abort();
}

}  // namespace slabby::os

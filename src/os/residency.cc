// slabby: which pages of a range hold data, asked of the kernel without
// faulting any in, and the zeroing and zero checks built on the answer
// (os.h: zero_pages, zero_resident, find_nonzero, resident_bytes; and
// zero_by_discarding, which shares zero_resident's partial pages).
//
// Every page of the arena is in one of three states: present (it holds
// data, or the zero page after a read), swapped out (it holds data, on disk),
// or neither (never touched, or purged: it reads as zero). Zeroing writes the
// present pages and discards the swapped ones (MADV_DONTNEED); a zero check
// reads both; the rest is left alone, so nothing the program never touched
// is faulted in.
//
// Two sources of the answer (PageQuery below chooses between them):
// - /proc/self/pagemap: a word per page with both bits ("present", "swapped").
//   The file stays open, and is checked once a query: getpid() (a child of
//   fork, _Fork or clone holds its parent's file, which describes the
//   parent's pages: it opens its own, no atfork handler needed) and fstat()
//   (a program may close descriptors it did not open, as daemons do, and the
//   number may then name another file: its device and inode must be those
//   opened). Its descriptor is moved to 100 or above, out of the low numbers
//   programs manage themselves. It is used once it answers a probe correctly
//   (a mapping of its own, touched in a pattern): an emulator's or an old
//   kernel's file that does not is not used.
// - mincore: only "resident", and a page swapped out reads as not resident.
//   So swap is looked for (sysinfo, before and after mincore: a page swapped
//   out while it looked needs a swapon and a swapoff inside the window), and
//   with swap configured pagemap is asked which pages not resident are
//   swapped. Without pagemap a page not resident may then hold data:
//   zeroing discards it (MADV_DONTNEED), a zero check skips it (it may miss
//   a write after free to a page swapped out since; reading every such page
//   mapped the zero page under each, which the next zeroing then wrote: with
//   any swap configured, blocks of 1-8 MiB used at their start ended up
//   resident whole, 1.17 GB of peak RSS against 10 MB).
//
// Whoever (re)opens the file does so under a lock that nothing waits for: a
// thread that finds it taken asks mincore this once.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "common/lock.h"
#include "os/os.h"
#include "os/os_internal.h"

namespace slabby::os {

namespace {

// A page's state, a byte. The values are pagemap's two top bits (present,
// swapped: a word shifted right by 62), so that its words convert by a
// shift; what each caller does with a page is a test of one value.
using PageState = uint8_t;
constexpr PageState kZero = 0;          // never touched or purged: reads as zero
constexpr PageState kSwapped = 1;       // swapped out: holds data
constexpr PageState kPresent = 2;       // (3: present and swapped, read as present)
constexpr PageState kMaybeSwapped = 4;  // not resident, swap configured, no pagemap

bool holds_data(PageState s) { return (s & 3) != 0; }  // a zero check reads it
bool write_it(PageState s) { return (s & 2) != 0; }    // zeroing writes it
bool discard_it(PageState s) { return s == kSwapped || s == kMaybeSwapped; }  // or discards it

// The first index from i (< n) whose state is not kZero, or n: zero states
// skipped eight at a time (most pages of a big block used at its start).
size_t skip_zero(const PageState* s, size_t i, size_t n) {
  while (i + 8 <= n) {
    uint64_t eight;
    memcpy(&eight, s + i, sizeof eight);
    if (eight != 0) return i + static_cast<size_t>(__builtin_ctzll(eight)) / 8;
    i += 8;
  }
  while (i < n && s[i] == kZero) ++i;
  return i;
}

// Pages asked about at a time: a byte of state each on the stack (free's path
// runs this, also on threads with small stacks), 4 MiB of 4 KiB pages.
constexpr size_t kBatch = 1024;
constexpr uint64_t kPmPresent = uint64_t{1} << 63;
constexpr uint64_t kPmSwapped = uint64_t{1} << 62;
static_assert(kPmPresent >> 62 == kPresent && kPmSwapped >> 62 == kSwapped);
constexpr int kPagemapMinFd = 100;

// Published by reopen_pagemap in the order ino, dev, pid, fd, and read in the
// opposite order: a thread that reads this process's pid reads the device
// and inode of a file opened by this process (or a later one), so a file
// that passes both checks is a pagemap file this process opened.
struct PagemapFile {
  std::atomic<int> fd{-1};
  std::atomic<pid_t> pid{0};
  std::atomic<uint64_t> dev{0}, ino{0};
  std::atomic<bool> unusable{false};
  Mutex mu;  // reopening; try_lock only
};
PagemapFile g_pm;
std::atomic<int> g_forced{-1};  // a Residency the tests chose, or -1

bool same_file(int fd, uint64_t dev, uint64_t ino) {
  struct stat st;
  return fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_dev) == dev &&
         static_cast<uint64_t>(st.st_ino) == ino;
}

// The open file is ours and describes this process's pages.
int valid_pagemap_fd() {
  int fd = g_pm.fd.load(std::memory_order_acquire);
  if (fd < 0) return -1;
  pid_t pid = g_pm.pid.load(std::memory_order_acquire);
  uint64_t dev = g_pm.dev.load(std::memory_order_relaxed);
  uint64_t ino = g_pm.ino.load(std::memory_order_relaxed);
  if (pid != getpid() || !same_file(fd, dev, ino)) return -1;
  return fd;
}

// Touched in a pattern, a mapping of its own must read back as that pattern.
bool pagemap_answers(int fd, size_t unit) {
  constexpr size_t kProbe = 8;
  constexpr bool kTouched[kProbe] = {true, false, true, true, false, false, true, false};
  void* m =
      mmap(nullptr, kProbe * unit, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return false;
  char* p = static_cast<char*>(m);
  for (size_t i = 0; i < kProbe; ++i)
    if (kTouched[i]) static_cast<volatile char*>(p)[i * unit] = 1;
  uint64_t words[kProbe];
  off_t at = static_cast<off_t>(reinterpret_cast<uintptr_t>(p) / unit * sizeof(uint64_t));
  bool ok = pread(fd, words, sizeof words, at) == static_cast<ssize_t>(sizeof words);
  for (size_t i = 0; ok && i < kProbe; ++i)
    ok = static_cast<bool>(words[i] & kPmPresent) == kTouched[i] && !(words[i] & kPmSwapped);
  munmap(m, kProbe * unit);
  return ok;
}

[[gnu::cold, gnu::noinline]] int reopen_pagemap(size_t unit) {
  if (g_pm.unusable.load(std::memory_order_relaxed) || !g_pm.mu.try_lock()) return -1;
  int fd = valid_pagemap_fd();  // another thread's, opened meanwhile
  if (fd >= 0 || g_pm.unusable.load(std::memory_order_relaxed)) {
    g_pm.mu.unlock();
    return fd;
  }
  // The old file, ours still (inherited by a child), is closed once replaced;
  // a number the program closed and reused is not.
  int old = g_pm.fd.load(std::memory_order_relaxed);
  bool ours = old >= 0 && same_file(old, g_pm.dev.load(std::memory_order_relaxed),
                                    g_pm.ino.load(std::memory_order_relaxed));
  // The system call itself: a library interposing open() (a sandbox, a
  // tracer) may allocate, and this runs inside free.
  fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (fd < 0) {
    // No /proc, or a kernel that refuses the file: mincore from now on. Out
    // of descriptors: this time only.
    if (errno != EMFILE && errno != ENFILE && errno != EINTR && errno != ENOMEM)
      g_pm.unusable.store(true, std::memory_order_relaxed);
    g_pm.mu.unlock();
    return -1;
  }
  int high = fcntl(fd, F_DUPFD_CLOEXEC, kPagemapMinFd);
  if (high >= 0) {
    close(fd);
    fd = high;
  }
  struct stat st;
  if (!pagemap_answers(fd, unit) || fstat(fd, &st) != 0) {
    close(fd);
    g_pm.unusable.store(true, std::memory_order_relaxed);
    g_pm.mu.unlock();
    return -1;
  }
  g_pm.ino.store(static_cast<uint64_t>(st.st_ino), std::memory_order_relaxed);
  g_pm.dev.store(static_cast<uint64_t>(st.st_dev), std::memory_order_relaxed);
  g_pm.pid.store(getpid(), std::memory_order_release);
  g_pm.fd.store(fd, std::memory_order_release);
  if (ours) close(old);
  g_pm.mu.unlock();
  return fd;
}

// This process's pagemap file, opened if need be; -1 where it cannot be used.
int pagemap_fd(size_t unit) {
  if (g_pm.unusable.load(std::memory_order_relaxed)) return -1;
  int fd = valid_pagemap_fd();
  return fd >= 0 ? fd : reopen_pagemap(unit);
}

bool swap_configured() {
  struct sysinfo si;
  return sysinfo(&si) != 0 || si.totalswap != 0;
}

// The states of a range's pages, a batch at a time, for one zeroing or zero
// check. The source is chosen for the range: pagemap costs about 1 us a MiB
// however sparse (a word per page), mincore 0.1 us a MiB where no page table
// exists and 1.6-1.9 where one does, plus two sysinfo calls (0.23 us each):
// measured on this project's 2-vCPU VM, Linux 6.18 (docs/security.md). So
// pagemap answers ranges of up to kPagemapMost pages (a 1 MiB block, freed
// and checked: 2.3 us a walk with mincore, 1.4 with pagemap), mincore larger
// ones (a block of 8 MiB used at its start: 4.5 us against 8.4), and pagemap
// then only tells swapped pages from pages never touched when swap is
// configured. The pagemap file is checked once a query.
class PageQuery {
 public:
  PageQuery(size_t unit, size_t bytes)
      : unit_(unit), forced_(g_forced.load(std::memory_order_relaxed)) {
    mincore_only_ = forced_ == static_cast<int>(Residency::kMincore) ||
                    forced_ == static_cast<int>(Residency::kMincoreSwap);
    mincore_first_ = mincore_only_ || bytes / unit > kPagemapMost;
  }

  // The states of `pages` (at most kBatch) pages from `first` (a multiple
  // of the unit).
  void fill(uintptr_t first, size_t pages, PageState* out) {
    if (!mincore_first_ && pagemap_fill(first, pages, out)) return;
    bool swap = forced_ == static_cast<int>(Residency::kMincoreSwap) || swap_configured();
    if (!mincore_fill(first, pages, out)) return;
    swap = swap || swap_configured();
    if (swap && !mincore_only_) {
      if (pagemap_fill(first, pages, out)) return;
      // It may have written part of out over mincore's answer: ask again.
      if (!mincore_fill(first, pages, out)) return;
    }
    const PageState absent = swap ? kMaybeSwapped : kZero;
    for (size_t i = 0; i < pages; ++i) out[i] = (out[i] & 1) ? kPresent : absent;
  }

 private:
  static constexpr size_t kPagemapMost = 512;
  static constexpr size_t kWords = 256;  // a pread's (2 KiB on the stack)

  // mincore's answer in out, a byte a page (bit 0: resident), which fill
  // reads in place. False when it fails, every page then kPresent (unknown:
  // as if).
  bool mincore_fill(uintptr_t first, size_t pages, PageState* out) {
    if (mincore(reinterpret_cast<void*>(first), pages * unit_, out) == 0) return true;
    for (size_t i = 0; i < pages; ++i) out[i] = kPresent;
    return false;
  }

  bool pagemap_fill(uintptr_t first, size_t pages, PageState* out) {
    if (fd_ == kUnknown) fd_ = pagemap_fd(unit_);
    if (fd_ < 0) return false;
    uint64_t words[kWords];
    for (size_t done = 0; done < pages;) {
      size_t n = pages - done < kWords ? pages - done : kWords;
      const ssize_t want = static_cast<ssize_t>(n * sizeof(uint64_t));
      off_t at = static_cast<off_t>((first / unit_ + done) * sizeof(uint64_t));
      if (pread(fd_, words, static_cast<size_t>(want), at) != want) return false;
      for (size_t i = 0; i < n; ++i) out[done + i] = static_cast<PageState>(words[i] >> 62);
      done += n;
    }
    return true;
  }

  static constexpr int kUnknown = -2;
  size_t unit_;
  int forced_;
  bool mincore_only_;   // the tests chose mincore
  bool mincore_first_;  // a range too big for pagemap to pay
  int fd_ = kUnknown;
};

// The first non-zero byte of [p, p + bytes) (bytes a multiple of 8), or
// SIZE_MAX. A cache line at a time, then the word and byte inside it.
size_t first_nonzero(const char* p, size_t bytes) {
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  size_t n = bytes / 8, i = 0;
  for (; i + 8 <= n; i += 8)
    if ((w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) != 0)
      break;
  for (; i < n; ++i)
    if (w[i] != 0) return i * 8 + static_cast<size_t>(__builtin_ctzll(w[i])) / 8;
  return SIZE_MAX;
}

}  // namespace

// The kernel's pages (mincore_page_size: the host's under qemu with a page
// size of its own) may be smaller than slabby's: the loops below step by those.
size_t zero_pages(void* p, size_t bytes) {
  ErrnoKeeper keep;
  const size_t unit = mincore_page_size();
  PageState state[kBatch];
  PageQuery query(unit, bytes);
  char* cur = static_cast<char*>(p);
  size_t written = 0;
  while (bytes > 0) {
    size_t pages = bytes / unit < kBatch ? bytes / unit : kBatch;
    if (pages == 0) break;  // a partial page at the end: not a whole page
    query.fill(reinterpret_cast<uintptr_t>(cur), pages, state);
    for (size_t i = skip_zero(state, 0, pages); i < pages; i = skip_zero(state, i, pages)) {
      // Runs of pages to write, or to discard.
      bool write = write_it(state[i]);
      size_t j = i + 1;
      while (j < pages && write_it(state[j]) == write && discard_it(state[j]) == !write) ++j;
      char* run = cur + i * unit;
      size_t len = (j - i) * unit;
      if (write) {
        memset(run, 0, len);
        written += len;
      } else {
        madvise(run, len, MADV_DONTNEED);
        note_madvise();
      }
      i = j;
    }
    cur += pages * unit;
    bytes -= pages * unit;
  }
  return written;
}

namespace {

// [p, p + bytes) made zero: the partial pages at either end written, the
// whole pages between (if any; else the whole range is written) handed to
// whole(start, length), which returns the bytes it wrote. Returns the bytes
// written.
template <typename Whole>
size_t zero_ends_and(void* p, size_t bytes, size_t page, Whole whole) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + bytes;
  const uintptr_t lo = (begin + page - 1) & ~(page - 1), hi = end & ~(page - 1);
  if (lo >= hi) {
    memset(p, 0, bytes);
    return bytes;
  }
  memset(p, 0, lo - begin);
  size_t written = lo - begin + whole(reinterpret_cast<void*>(lo), hi - lo);
  memset(reinterpret_cast<void*>(hi), 0, end - hi);
  return written + (end - hi);
}

}  // namespace

size_t zero_resident(void* p, size_t bytes) {
  return zero_ends_and(p, bytes, mincore_page_size(),
                       [](void* run, size_t len) { return zero_pages(run, len); });
}

void zero_by_discarding(void* p, size_t bytes, size_t page) {
  zero_ends_and(p, bytes, page, [](void* run, size_t len) {
    purge(run, len);
    return size_t{0};
  });
}

size_t find_nonzero(const void* p, size_t bytes) {
  ErrnoKeeper keep;
  const size_t unit = mincore_page_size();
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + bytes;
  PageState state[kBatch];
  PageQuery query(unit, bytes);
  for (uintptr_t page = begin & ~(unit - 1); page < end;) {
    size_t pages = (end - page + unit - 1) / unit;
    if (pages > kBatch) pages = kBatch;
    query.fill(page, pages, state);
    for (size_t i = skip_zero(state, 0, pages); i < pages; i = skip_zero(state, i + 1, pages)) {
      if (!holds_data(state[i])) continue;
      uintptr_t at = page + i * unit;
      uintptr_t lo = at < begin ? begin : at;
      uintptr_t hi = at + unit > end ? end : at + unit;
      size_t off = first_nonzero(reinterpret_cast<const char*>(lo), hi - lo);
      if (off != SIZE_MAX) return lo - begin + off;
    }
    page += pages * unit;
  }
  return SIZE_MAX;
}

size_t resident_bytes(const void* p, size_t bytes) {
  ErrnoKeeper keep;
  const size_t page = mincore_page_size();
  // Small: free's path calls this (SLABBY_THP=dense, a huge page at a time:
  // one call for 2 MiB of 4 KiB pages), also on threads with 16 KiB stacks,
  // where 4 KiB here overflowed the hardened library's free.
  unsigned char vec[512];
  size_t total = 0;
  const char* cur = static_cast<const char*>(p);
  while (bytes > 0) {
    size_t chunk = bytes < sizeof(vec) * page ? bytes : sizeof(vec) * page;
    if (mincore(const_cast<char*>(cur), chunk, vec) == 0) {
      size_t pages = (chunk + page - 1) / page;
      for (size_t i = 0; i < pages; ++i) total += (vec[i] & 1) ? page : 0;
    }
    cur += chunk;
    bytes -= chunk;
  }
  return total;
}

Residency residency_source() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Residency>(forced);
  ErrnoKeeper keep;
  return pagemap_fd(mincore_page_size()) >= 0 ? Residency::kPagemap : Residency::kMincore;
}

void force_residency_for_tests(int source) { g_forced.store(source, std::memory_order_relaxed); }

void residency_fork_child() { g_pm.mu.reset_after_fork(); }

}  // namespace slabby::os

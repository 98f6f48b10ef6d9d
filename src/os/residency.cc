// slabby: which pages of a range hold data, asked of the kernel without
// faulting any in, and the zeroing and zero checks built on the answer
// (os.h: zero_pages, zero_resident, find_nonzero, resident_bytes).
//
// Every page of the arena is in one of three states: present (it holds
// data, or the zero page after a read), swapped out (it holds data, on disk),
// or neither (never touched, or purged: it reads as zero). Zeroing writes the
// present pages and discards the swapped ones (MADV_DONTNEED); a zero check
// reads both; the rest is left alone, so nothing the program never touched
// is faulted in.
//
// Two sources of the answer:
// - /proc/self/pagemap: a word per page with both bits ("present", "swapped").
//   One pread a batch. The file stays open, and is checked at every use:
//   getpid() (a child of fork, _Fork or clone holds its parent's file, which
//   describes the parent's pages: it opens its own, no atfork handler
//   needed) and fstat() (a program may close descriptors it did not open, as
//   daemons do, and the number may then name another file: its device and
//   inode must be those opened). Its descriptor is moved to 100 or above, out
//   of the low numbers programs manage themselves. Opened once it answers a
//   probe correctly (a mapping of its own, touched in a pattern): an
//   emulator's or an old kernel's file that does not is not used.
// - mincore, where the file cannot be used: it says only "resident", and a
//   page swapped out reads as not resident. With swap configured (sysinfo,
//   before and after mincore: a page swapped out while it looked needs a
//   swapon and a swapoff inside the window) a page not resident may hold
//   data: zeroing discards it (MADV_DONTNEED), a zero check skips it (it may
//   miss a write after free to a page swapped out since; reading every such
//   page mapped the zero page under each, which the next zeroing then wrote:
//   a block of 8 MiB used at its start ended up resident whole).
//
// Whoever (re)opens the file does so under a lock that nothing waits for: a
// thread that finds it taken asks mincore this once.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "common/lock.h"
#include "os/os.h"
#include "os/os_internal.h"

namespace slabby::os {

namespace {

enum class PageState : uint8_t { kZero, kPresent, kSwapped, kMaybeSwapped };

// Pages asked about at a time (2 KiB of pagemap words on the stack, which
// free's path runs on, also on threads with small stacks).
constexpr size_t kBatch = 256;
constexpr uint64_t kPmPresent = uint64_t{1} << 63;
constexpr uint64_t kPmSwapped = uint64_t{1} << 62;
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
  fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
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

bool swap_configured() {
  struct sysinfo si;
  return sysinfo(&si) != 0 || si.totalswap != 0;
}

// The states of `pages` (at most kBatch) pages of `unit` bytes from `first`
// (a multiple of unit).
void page_states(uintptr_t first, size_t pages, size_t unit, PageState* out) {
  const int forced = g_forced.load(std::memory_order_relaxed);
  int fd = -1;
  if ((forced < 0 || forced == static_cast<int>(Residency::kPagemap)) &&
      !g_pm.unusable.load(std::memory_order_relaxed)) {
    fd = valid_pagemap_fd();
    if (fd < 0) fd = reopen_pagemap(unit);
  }
  if (fd >= 0) {
    uint64_t words[kBatch];
    const ssize_t want = static_cast<ssize_t>(pages * sizeof(uint64_t));
    if (pread(fd, words, static_cast<size_t>(want), static_cast<off_t>(first / unit * 8)) == want) {
      for (size_t i = 0; i < pages; ++i)
        out[i] = (words[i] & kPmPresent)   ? PageState::kPresent
                 : (words[i] & kPmSwapped) ? PageState::kSwapped
                                           : PageState::kZero;
      return;
    }
  }
  unsigned char vec[kBatch];
  bool swap = forced == static_cast<int>(Residency::kMincoreSwap) || swap_configured();
  if (mincore(reinterpret_cast<void*>(first), pages * unit, vec) != 0) {
    for (size_t i = 0; i < pages; ++i) out[i] = PageState::kPresent;  // unknown: as if
    return;
  }
  swap = swap || swap_configured();
  const PageState absent = swap ? PageState::kMaybeSwapped : PageState::kZero;
  for (size_t i = 0; i < pages; ++i) out[i] = (vec[i] & 1) ? PageState::kPresent : absent;
}

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
  char* cur = static_cast<char*>(p);
  size_t written = 0;
  while (bytes > 0) {
    size_t pages = bytes / unit < kBatch ? bytes / unit : kBatch;
    if (pages == 0) break;  // a partial page at the end: not a whole page
    page_states(reinterpret_cast<uintptr_t>(cur), pages, unit, state);
    for (size_t i = 0; i < pages;) {
      // Runs of pages to write, to discard, or to leave.
      bool write = state[i] == PageState::kPresent;
      bool discard = state[i] == PageState::kSwapped || state[i] == PageState::kMaybeSwapped;
      size_t j = i + 1;
      while (j < pages && (state[j] == PageState::kPresent) == write &&
             (state[j] == PageState::kSwapped || state[j] == PageState::kMaybeSwapped) == discard)
        ++j;
      char* run = cur + i * unit;
      size_t len = (j - i) * unit;
      if (write) {
        memset(run, 0, len);
        written += len;
      } else if (discard) {
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

size_t zero_resident(void* p, size_t bytes) {
  const size_t page = mincore_page_size();
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + bytes;
  const uintptr_t lo = (begin + page - 1) & ~(page - 1), hi = end & ~(page - 1);
  if (lo >= hi) {
    memset(p, 0, bytes);
    return bytes;
  }
  memset(p, 0, lo - begin);
  size_t written = lo - begin + zero_pages(reinterpret_cast<void*>(lo), hi - lo);
  memset(reinterpret_cast<void*>(hi), 0, end - hi);
  return written + (end - hi);
}

size_t find_nonzero(const void* p, size_t bytes) {
  ErrnoKeeper keep;
  const size_t unit = mincore_page_size();
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + bytes;
  PageState state[kBatch];
  for (uintptr_t page = begin & ~(unit - 1); page < end;) {
    size_t pages = (end - page + unit - 1) / unit;
    if (pages > kBatch) pages = kBatch;
    page_states(page, pages, unit, state);
    for (size_t i = 0; i < pages; ++i, page += unit) {
      if (state[i] != PageState::kPresent && state[i] != PageState::kSwapped) continue;
      uintptr_t lo = page < begin ? begin : page;
      uintptr_t hi = page + unit > end ? end : page + unit;
      size_t off = first_nonzero(reinterpret_cast<const char*>(lo), hi - lo);
      if (off != SIZE_MAX) return lo - begin + off;
    }
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
  int fd = valid_pagemap_fd();
  if (fd < 0 && !g_pm.unusable.load(std::memory_order_relaxed))
    fd = reopen_pagemap(mincore_page_size());
  return fd >= 0 ? Residency::kPagemap : Residency::kMincore;
}

void force_residency_for_tests(int source) { g_forced.store(source, std::memory_order_relaxed); }

void residency_fork_child() { g_pm.mu.reset_after_fork(); }

}  // namespace slabby::os

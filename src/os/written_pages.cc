// slabby: which pages were written since slabby last zeroed them, kept by
// the kernel (userfaultfd's asynchronous write protection, Linux 6.7+), for
// the zeroing and zero checks of the checked modes (os/residency.cc).
//
// The heap's address space is registered with a userfaultfd in write-protect
// mode, asynchronous: a write to a protected page is never reported to
// slabby, the kernel just unprotects the page, and /proc/self/pagemap's
// PAGEMAP_SCAN reports it "written" from then on. zero_pages protects the
// pages it has just zeroed, so a page not "written" at the next zeroing or
// zero check still reads zero: only the written ones are zeroed and read,
// not every page that holds data. A page never protected (fresh, or in a
// range registered late) reads as written: the answer may say too much,
// never too little.
//
// Where the answer is not the kernel's own (no userfaultfd, a kernel before
// 6.7, a seccomp filter, qemu's user mode), tracking stays off and the
// queries use pagemap's present bits or mincore, as before. Its limits:
// - a range the kernel stops tracking (moved by mremap, mapped afresh, or
//   in a forked child, whose mappings lose their registration) fails the
//   scan (PM_SCAN_CHECK_WPASYNC: EPERM) and the query falls back; the heap
//   registers a range it maps afresh or moves again (track_writes);
// - a child of fork must never use its parent's userfaultfd (its ioctls
//   act on the parent's memory): every use checks the process id first;
// - a program that closes descriptors it did not open closes the
//   userfaultfd, which unregisters everything (the scans then fail as
//   above); the number is checked to be still ours (device and inode)
//   before each registration.
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "os/os.h"
#include "os/os_internal.h"

// Debian 12's headers (Linux 6.1) lack the asynchronous mode; the values
// are the kernel's ABI.
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

namespace slabby::os {

namespace {

constexpr int kMinFd = 100;  // as the pagemap file's: out of the low numbers

struct Tracker {
  std::atomic<int> fd{-1};
  std::atomic<pid_t> pid{0};  // the process that created fd (and may use it)
  uint64_t dev = 0, ino = 0;
};
Tracker g_track;

bool still_ours(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_dev) == g_track.dev &&
         static_cast<uint64_t>(st.st_ino) == g_track.ino;
}

bool register_range(int fd, void* p, size_t bytes) {
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<uintptr_t>(p);
  reg.range.len = bytes;
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  return ioctl(fd, UFFDIO_REGISTER, &reg) == 0;
}

// A mapping of its own, registered, protected, one page written: the scan
// must name that page and no other.
bool tracking_answers(int fd, size_t unit) {
  constexpr size_t kPages = 4;
  void* m =
      mmap(nullptr, kPages * unit, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return false;
  char* p = static_cast<char*>(m);
  bool ok = register_range(fd, p, kPages * unit);
  if (ok) {
    static_cast<volatile char*>(p)[0] = 1;  // a page written before the protection
    ok = protect_written(p, kPages * unit);
  }
  if (ok) {
    static_cast<volatile char*>(p)[2 * unit + 5] = 1;
    uint8_t states[kPages];
    ok = written_states(reinterpret_cast<uintptr_t>(p), kPages, unit, states) && states[0] == 0 &&
         states[1] == 0 && states[2] == 2 && states[3] == 0;
  }
  munmap(m, kPages * unit);  // unregisters it
  return ok;
}

}  // namespace

bool start_write_tracking() {
  ErrnoKeeper keep;
  if (g_track.fd.load(std::memory_order_relaxed) >= 0) return true;
  // The system call itself (glibc 2.36 has no wrapper). User-mode faults
  // only: allowed unprivileged whatever vm.unprivileged_userfaultfd says.
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY));
  if (fd < 0) return false;
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
  struct stat st;
  if (ioctl(fd, UFFDIO_API, &api) != 0 || (api.features & UFFD_FEATURE_WP_ASYNC) == 0 ||
      fstat(fd, &st) != 0) {
    close(fd);
    return false;
  }
  int high = fcntl(fd, F_DUPFD_CLOEXEC, kMinFd);
  if (high >= 0) {
    close(fd);
    fd = high;
  }
  g_track.dev = static_cast<uint64_t>(st.st_dev);
  g_track.ino = static_cast<uint64_t>(st.st_ino);
  g_track.pid.store(getpid(), std::memory_order_relaxed);
  g_track.fd.store(fd, std::memory_order_release);
  if (!tracking_answers(fd, mincore_page_size())) {
    stop_write_tracking();
    return false;
  }
  return true;
}

void stop_write_tracking() {
  ErrnoKeeper keep;
  int fd = g_track.fd.exchange(-1, std::memory_order_acq_rel);
  // Closing it unregisters every range; in a child the descriptor is a copy
  // of the parent's, and closing it there leaves the parent's alone.
  if (fd >= 0 && still_ours(fd)) close(fd);
  g_track.pid.store(0, std::memory_order_relaxed);
}

bool writes_tracked_here() {
  return g_track.fd.load(std::memory_order_acquire) >= 0 &&
         g_track.pid.load(std::memory_order_relaxed) == getpid();
}

bool track_writes(void* p, size_t bytes) {
  if (!writes_tracked_here()) return false;
  ErrnoKeeper keep;
  int fd = g_track.fd.load(std::memory_order_acquire);
  return still_ours(fd) && register_range(fd, p, bytes);
}

}  // namespace slabby::os

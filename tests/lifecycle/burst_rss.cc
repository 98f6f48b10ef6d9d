// The footprint test of the seeds' complaint: a program allocates 1.1 GiB of
// small objects across two threads, frees them all (each thread frees the
// other's), then idles. Measured on this machine (DESIGN.md section 4): RSS
// stays at 1117 MiB under glibc, 314 under jemalloc, 1156 under mimalloc.
//
// slabby must give nearly all of it back:
// - after idling 3 s (decay 1 s): RSS within 48 MiB of where it started
//   (96 MiB with SLABBY_BACKGROUND=0, where SLABBY_RETAIN_MAX bounds it);
// - after a second burst, malloc_trim(0) at once: within 32 MiB.
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "lifecycle_check.h"
#include "slabby/slabby.h"

namespace {

constexpr size_t kTotal = size_t{1100} << 20;  // 1.1 GiB across both threads

// Each of two threads allocates half of the total in blocks of 64..1024
// bytes, touching every byte.
std::vector<void*> allocate_half(unsigned seed) {
  std::vector<void*> v;
  size_t bytes = 0;
  while (bytes < kTotal / 2) {
    seed = seed * 1103515245u + 12345u;
    size_t n = 64 + (seed >> 8) % 961;
    void* p = malloc(n);
    memset(p, 0x77, n);
    v.push_back(p);
    bytes += n;
  }
  return v;
}

void burst() {
  std::vector<void*> a, b;
  std::thread ta([&] { a = allocate_half(1); });
  std::thread tb([&] { b = allocate_half(2); });
  ta.join();
  tb.join();
  // Cross-thread frees: each thread frees what the other allocated.
  std::thread fa([&] { for (void* p : b) free(p); });
  std::thread fb([&] { for (void* p : a) free(p); });
  fa.join();
  fb.join();
}

}  // namespace

int main() {
  const long kMiB = 1 << 20;
  std::thread([] { free(malloc(100)); }).join();
  long start = lc_rss_bytes();

  burst();
  long peak_after_free = lc_rss_bytes();
  sleep(3);
  long idle = lc_rss_bytes();
  slabby_stats st;
  slabby_get_stats(&st, sizeof st);
  printf("RSS start %ld MiB; after the burst was freed %ld MiB; after 3 s idle %ld MiB (+%ld)\n",
         start / kMiB, peak_after_free / kMiB, idle / kMiB, (idle - start) / kMiB);
  printf("purged %llu MiB in %llu madvise calls, background thread %u, mappings %llu\n",
         static_cast<unsigned long long>(st.purged_bytes / kMiB),
         static_cast<unsigned long long>(st.madvise_calls), st.background_thread,
         static_cast<unsigned long long>(st.mappings));
  printf("spans in use %llu MiB, free pages kept %llu MiB, arena resident %llu MiB\n",
         static_cast<unsigned long long>(st.mapped_bytes / kMiB),
         static_cast<unsigned long long>(st.free_dirty_bytes / kMiB),
         static_cast<unsigned long long>(st.resident_bytes / kMiB));
  // Run twice by ctest: as shipped, and with SLABBY_BACKGROUND=0, where no
  // purger thread may exist and only frees drive the decay (so pages freed
  // in the last second stay, up to SLABBY_RETAIN_MAX = 64 MiB).
  const char* bg = getenv("SLABBY_BACKGROUND");
  bool background = bg == nullptr || strcmp(bg, "0") != 0;
  LC_CHECK(st.background_thread == (background ? 1u : 0u), "background thread: %u",
           st.background_thread);
  // BURST_RSS_SLACK_MIB: added to every bound where the RSS is not only the
  // program's (ctest sets it under emulation: qemu's own memory grows too).
  const char* slack_env = getenv("BURST_RSS_SLACK_MIB");
  const long slack = slack_env != nullptr ? atol(slack_env) * kMiB : 0;
  // Without the purger the free pages kept sit anywhere between half of
  // SLABBY_RETAIN_MAX and all of it (each purge goes down to half), beside
  // the slabs the caches still hold (11 MiB here) and the metadata: 82 MiB
  // was seen on a quiet machine, so the bound is 64 + 32 MiB, and the page
  // heap's own bound is checked exactly.
  long idle_bound = (background ? 48 * kMiB : 96 * kMiB) + slack;
  LC_CHECK(st.free_dirty_bytes <= uint64_t{64} << 20, "free pages kept: %llu MiB",
           static_cast<unsigned long long>(st.free_dirty_bytes / kMiB));
  LC_CHECK(idle - start <= idle_bound, "RSS after idling is %ld MiB above the start",
           (idle - start) / kMiB);

  burst();
  long before_trim = lc_rss_bytes();
  malloc_trim(0);
  long trimmed = lc_rss_bytes();
  printf("second burst freed: %ld MiB; after malloc_trim(0) %ld MiB (+%ld)\n", before_trim / kMiB,
         trimmed / kMiB, (trimmed - start) / kMiB);
  LC_CHECK(trimmed - start <= 32 * kMiB + slack, "RSS after malloc_trim is %ld MiB above the start",
           (trimmed - start) / kMiB);
  LC_CHECK(st.mappings < 64, "mappings: %llu", static_cast<unsigned long long>(st.mappings));

  // A forked child has no purger thread (threads do not survive fork): it
  // must start its own when its free pages pile up, and give them back.
  fflush(stdout);  // the child must not print the parent's buffered lines again
  pid_t pid = fork();
  LC_CHECK(pid >= 0, "fork failed");
  if (pid == 0) {
    std::vector<void*> v;
    for (int i = 0; i < 100; ++i) {
      void* p = malloc(1 << 20);
      memset(p, 3, 1 << 20);
      v.push_back(p);
    }
    long child_peak = lc_rss_bytes();
    for (void* p : v) free(p);
    sleep(2);
    slabby_stats cs;
    slabby_get_stats(&cs, sizeof cs);
    long child_idle = lc_rss_bytes();
    printf("child: peak %ld MiB, after 2 s idle %ld MiB, purger %u\n", child_peak / kMiB,
           child_idle / kMiB, cs.background_thread);
    fflush(stdout);
    if (background) {
      LC_CHECK(cs.background_thread == 1, "the child started no purger");
      LC_CHECK(child_idle <= child_peak - 64 * kMiB, "the child kept its free pages");
    } else {
      LC_CHECK(cs.background_thread == 0, "a purger started with SLABBY_BACKGROUND=0");
    }
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  LC_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed: status %d", status);
  return 0;
}

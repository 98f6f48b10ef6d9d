/* slabby bench tool: what pages cost on this machine, the figures behind
 * two choices in src/ (docs/benchmarks.md, "Large blocks"):
 *
 *   page_costs calloc   zeroing a dirty (resident) block: memset, or
 *                       MADV_DONTNEED and let the pages fault back in as
 *                       zero; each then the program writing every byte, one
 *                       byte per page, or nothing. Medians in microseconds.
 *   page_costs remap    moving a block to a bigger one: memcpy into resident
 *                       pages, memcpy into fresh pages (they fault), or
 *                       mremap(MREMAP_FIXED) plus mapping the old range
 *                       afresh, as src/heap/span_resize.cc does.
 *   page_costs touch    first writes: 400 MiB written 64 KiB at a time on
 *                       fresh pages, 4 KiB ones, 4 KiB ones populated ahead
 *                       of the writes (MADV_POPULATE_WRITE), and huge pages;
 *                       seconds, user and system time, and minor faults of
 *                       each (src/heap/huge_slabs.cc).
 *   page_costs faults [SECONDS]
 *                       one fault per 2 MiB: 64 huge pages faulted by one
 *                       write each, then 64 x 512 small pages; again after
 *                       SECONDS idle (default 5), as memory freed long ago
 *                       may cost more than memory freed just now (a VM
 *                       whose free memory is reported to its host);
 *                       per-2 MiB medians, minimum and maximum in
 *                       microseconds (src/heap/fault_judge.h).
 *
 * Both run on one private anonymous mapping with 4 KiB pages
 * (MADV_NOHUGEPAGE; "calloc thp" asks for huge pages instead). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "tool_timing.h"

/* In microseconds. */
static double median(double* v, int n) { return tool_median(v, n) * 1e6; }

static char* arena(size_t bytes, int thp) {
  char* p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(2);
  }
  madvise(p, bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  return p;
}

static void calloc_costs(int thp) {
  size_t max = (size_t)64 << 20;
  char* p = arena(max, thp);
  printf("zeroing a resident block (us, median)%s\n", thp ? ", huge pages" : "");
  printf("%10s %12s %12s %12s %12s %12s %12s\n", "bytes", "memset+all", "purge+all", "memset+page",
         "purge+page", "memset", "purge");
  for (size_t n = (size_t)64 << 10; n <= max; n *= 2) {
    int reps = n <= ((size_t)1 << 20) ? 101 : n <= ((size_t)8 << 20) ? 31 : 11;
    double r[6], t[101];
    for (int mode = 0; mode < 6; mode++) {
      for (int i = 0; i < reps; i++) {
        memset(p, 2, n); /* the last user's data, resident */
        double t0 = tool_now();
        if (mode % 2 == 0)
          memset(p, 0, n);
        else
          madvise(p, n, MADV_DONTNEED);
        if (mode < 2)
          memset(p, 5, n); /* the program writes all of it */
        else if (mode < 4)
          for (size_t o = 0; o < n; o += 4096) p[o] = 3; /* ... or touches every page */
        t[i] = tool_now() - t0;
      }
      r[mode] = median(t, reps);
    }
    printf("%10zu %12.1f %12.1f %12.1f %12.1f %12.1f %12.1f\n", n, r[0], r[1], r[2], r[3], r[4],
           r[5]);
  }
}

static void remap_costs(void) {
  size_t total = (size_t)1 << 30;
  char* base = arena(total, 0);
  char *src = base, *dst = base + ((size_t)256 << 20);
  printf("moving a block to one twice its size (us, median)\n");
  printf("%10s %16s %16s %16s\n", "bytes", "copy->resident", "copy->fresh", "remap+refill");
  for (size_t n = (size_t)16 << 10; n <= ((size_t)16 << 20); n *= 2) {
    double t[3][21];
    for (int i = 0; i < 21; i++) {
      memset(src, 1, n);
      memset(dst, 2, 2 * n);
      double t0 = tool_now();
      memcpy(dst, src, n);
      t[0][i] = tool_now() - t0;
      madvise(dst, 2 * n, MADV_DONTNEED);
      t0 = tool_now();
      memcpy(dst, src, n);
      t[1][i] = tool_now() - t0;
      madvise(dst, 2 * n, MADV_DONTNEED);
      t0 = tool_now();
      mremap(src, n, 2 * n, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
      mmap(src, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
           -1, 0);
      madvise(src, n, MADV_NOHUGEPAGE);
      t[2][i] = tool_now() - t0;
      /* back where it was, so every round starts alike */
      mremap(dst, n, n, MREMAP_MAYMOVE | MREMAP_FIXED, src);
      mmap(dst, 2 * n, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
      madvise(dst, 2 * n, MADV_NOHUGEPAGE);
    }
    printf("%10zu %16.1f %16.1f %16.1f\n", n, median(t[0], 21), median(t[1], 21),
           median(t[2], 21));
  }
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static double cpu_seconds(struct timeval tv) { return tv.tv_sec + tv.tv_usec / 1e6; }

static void touch_costs(void) {
  const size_t total = (size_t)400 << 20, step = (size_t)64 << 10, huge = (size_t)2 << 20;
  const char* names[] = {"4 KiB pages", "4 KiB, populated first", "huge pages"};
  printf("%-24s %10s %10s %10s %12s\n", "first writes of 400 MiB", "seconds", "user", "system",
         "minor faults");
  for (int mode = 0; mode < 3; mode++) {
    char* map = arena(total + huge, mode == 2);
    char* p = (char*)(((unsigned long)map + huge - 1) & ~(huge - 1));
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = tool_now();
    for (size_t off = 0; off < total; off += step) {
      if (mode == 1) madvise(p + off, step, MADV_POPULATE_WRITE);
      memset(p + off, 1, step);
    }
    double t = tool_now() - t0;
    getrusage(RUSAGE_SELF, &r1);
    printf("%-24s %10.3f %10.3f %10.3f %12ld\n", names[mode], t,
           cpu_seconds(r1.ru_utime) - cpu_seconds(r0.ru_utime),
           cpu_seconds(r1.ru_stime) - cpu_seconds(r0.ru_stime), r1.ru_minflt - r0.ru_minflt);
    munmap(map, total + huge);
  }
}

static void fault_pass(const char* when, int huge_pages) {
  enum { kHuge = 64 };
  const size_t huge = (size_t)2 << 20;
  char* map = arena((kHuge + 1) * huge, huge_pages);
  char* p = (char*)(((unsigned long)map + huge - 1) & ~(huge - 1));
  double t[kHuge], lo = 1e9, hi = 0;
  for (int i = 0; i < kHuge; i++) {
    char* h = p + (size_t)i * huge;
    double t0 = tool_now();
    if (huge_pages)
      h[0] = 1;
    else
      for (size_t o = 0; o < huge; o += 4096) h[o] = 1;
    t[i] = (tool_now() - t0) * 1e6;
    if (t[i] < lo) lo = t[i];
    if (t[i] > hi) hi = t[i];
  }
  printf("%-12s %-22s %10.0f %10.0f %10.0f\n", when, huge_pages ? "1 huge page" : "512 small pages",
         tool_median(t, kHuge), lo, hi);
  munmap(map, (kHuge + 1) * huge);
}

static void fault_costs(int idle_seconds) {
  printf("%-12s %-22s %10s %10s %10s\n", "after", "per 2 MiB (us)", "median", "min", "max");
  fault_pass("start", 1);
  fault_pass("start", 0);
  fault_pass("a free", 1); /* the 128 MiB the passes above just gave back */
  fault_pass("a free", 0);
  struct timespec idle = {idle_seconds, 0};
  nanosleep(&idle, NULL);
  fault_pass("idle", 1);
  nanosleep(&idle, NULL);
  fault_pass("idle", 0);
}

int main(int argc, char** argv) {
  if (argc < 2 || (strcmp(argv[1], "calloc") != 0 && strcmp(argv[1], "remap") != 0 &&
                   strcmp(argv[1], "touch") != 0 && strcmp(argv[1], "faults") != 0)) {
    fprintf(stderr, "usage: %s calloc [thp] | remap | touch | faults [SECONDS]\n", argv[0]);
    return 2;
  }
  if (strcmp(argv[1], "calloc") == 0)
    calloc_costs(argc > 2 && strcmp(argv[2], "thp") == 0);
  else if (strcmp(argv[1], "touch") == 0)
    touch_costs();
  else if (strcmp(argv[1], "faults") == 0)
    fault_costs(argc > 2 ? atoi(argv[2]) : 5);
  else
    remap_costs();
  return 0;
}

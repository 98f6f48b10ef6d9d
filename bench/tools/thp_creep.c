/* slabby bench tool: does memory given back stay given back? A program puts
 * MIB MiB into 64-byte blocks, frees every other run of 512 of them (whole
 * slabs, inside partly used huge pages), calls malloc_trim(0), then idles,
 * printing its RSS and AnonHugePages every 10 seconds. khugepaged collapses
 * any huge page marked MADV_HUGEPAGE that still holds a page, faulting the
 * purged ones back in: an allocator that leaves split huge pages marked sees
 * its RSS creep back toward the peak (src/heap/huge_slabs.cc).
 *
 *   thp_creep [MIB [SECONDS]]     (defaults: 192, 120) */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void show(const char* when) {
  FILE* f = fopen("/proc/self/smaps_rollup", "r");
  if (f == NULL) {
    perror("/proc/self/smaps_rollup");
    exit(2);
  }
  char line[256];
  long rss = 0, anon_huge = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    sscanf(line, "Rss: %ld kB", &rss);
    sscanf(line, "AnonHugePages: %ld kB", &anon_huge);
  }
  fclose(f);
  printf("%-8s rss %5ld MiB  AnonHugePages %5ld MiB\n", when, rss >> 10, anon_huge >> 10);
  fflush(stdout);
}

int main(int argc, char** argv) {
  size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 192;
  int secs = argc > 2 ? atoi(argv[2]) : 120;
  size_t n = (mib << 20) / 64;
  /* The pointers live outside the allocator. */
  void** v = mmap(NULL, n * sizeof(void*), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                  -1, 0);
  if (v == MAP_FAILED) return 2;
  for (size_t i = 0; i < n; i++) {
    v[i] = malloc(64);
    memset(v[i], 1, 64);
  }
  show("full");
  for (size_t i = 0; i < n; i++)
    if ((i / 512) % 2) free(v[i]);
  malloc_trim(0);
  show("trimmed");
  for (int t = 10; t <= secs; t += 10) {
    sleep(10);
    char when[16];
    snprintf(when, sizeof when, "+%ds", t);
    show(when);
  }
  return 0;
}

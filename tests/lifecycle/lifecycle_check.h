// Helpers shared by the lifecycle programs. Each program exits 0 on success; on failure it
// prints the reason to stderr and exits non-zero (with _exit, so no further allocator work).
#ifndef SLABBY_TESTS_LIFECYCLE_CHECK_H
#define SLABBY_TESTS_LIFECYCLE_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "slabby/slabby.h"

// Resident set size of this process, in bytes: VmRSS of /proc/self/status,
// which is in KiB whatever the page size (under qemu-aarch64 -p 65536 the
// kernel's statm counts the host's 4 KiB pages, not the 64 KiB ones that
// sysconf reports).
static inline long lc_rss_bytes(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  if (f == NULL) _exit(3);
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  fclose(f);
  if (kib < 0) _exit(3);
  return kib * 1024;
}

#define LC_CHECK(cond, ...)                                                         \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fflush(stdout); /* what the test printed first, before _exit drops it */      \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);      \
      fprintf(stderr, __VA_ARGS__);                                                 \
      fputc('\n', stderr);                                                          \
      fflush(stderr);                                                               \
      _exit(1);                                                                     \
    }                                                                               \
  } while (0)

// A byte pattern tied to a seed, to fill blocks and check them later.
static inline uint8_t lc_pat(uint64_t seed, size_t i) {
  return (uint8_t)((i * 131u) ^ (i >> 8) ^ (seed * 0x9Du) ^ (seed >> 5));
}

static inline void lc_fill(void* p, size_t n, uint64_t seed) {
  uint8_t* b = (uint8_t*)p;
  for (size_t i = 0; i < n; i++) b[i] = lc_pat(seed, i);
}

// 1 when the first n bytes still hold the pattern.
static inline int lc_intact(const void* p, size_t n, uint64_t seed) {
  const uint8_t* b = (const uint8_t*)p;
  for (size_t i = 0; i < n; i++) {
    if (b[i] != lc_pat(seed, i)) return 0;
  }
  return 1;
}

static inline slabby_stats lc_stats(void) {
  slabby_stats s;
  memset(&s, 0, sizeof(s));
  LC_CHECK(slabby_get_stats(&s, sizeof(s)) == 0, "slabby_get_stats failed");
  return s;
}

static inline void lc_require_slabby(const char* prog) {
  LC_CHECK(slabby_is_active() == 1, "%s: the process is not running on slabby", prog);
}

#endif  // SLABBY_TESTS_LIFECYCLE_CHECK_H

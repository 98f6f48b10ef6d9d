/* slabby bench: big callocs (zeroed arrays, hash tables, bitmaps).
 *
 *   calloc_large MIN_MIB MAX_MIB ITERATIONS TOUCH [SEED]
 *
 * Each iteration callocs a block of a random size in [MIN_MIB, MAX_MIB]
 * MiB (any byte count), checks that it reads zero at one byte per 64 KiB
 * (at an offset in the 64 KiB that changes with every iteration) and at its
 * last byte, then writes to it and frees it. TOUCH says how much is
 * written: `all` (every byte, memset to a non-zero byte), `sparse` (one
 * byte per 64 KiB, at another offset that changes) or `none`. The zero
 * check is part of the workload: it catches an allocator that reuses a
 * block written before without zeroing it; the reads fault in the pages
 * sampled, as a program reading a zeroed table would. An allocator that
 * zeroes memory the kernel already gave zeroed, or that gets fresh pages
 * for every call, pays for it here. Prints its own time. Exits non-zero if
 * a block did not read zero. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { kSpan = 65536 };

static uint32_t next_rand(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s MIN_MIB MAX_MIB ITERATIONS all|sparse|none [SEED]\n", argv[0]);
    return 2;
  }
  size_t min_size = (size_t)atol(argv[1]) << 20;
  size_t max_size = (size_t)atol(argv[2]) << 20;
  long iterations = atol(argv[3]);
  const char* touch = argv[4];
  uint32_t seed = argc > 5 ? (uint32_t)atol(argv[5]) : 362436069u;
  int all = strcmp(touch, "all") == 0, sparse = strcmp(touch, "sparse") == 0;
  if (!all && !sparse && strcmp(touch, "none") != 0) {
    fprintf(stderr, "TOUCH is all, sparse or none\n");
    return 2;
  }
  if (min_size == 0 || max_size < min_size || iterations < 1) return 2;

  long bad = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < iterations; i++) {
    size_t size = min_size + next_rand(&seed) % (max_size - min_size + 1);
    unsigned char* p = calloc(size, 1);
    if (p == NULL) {
      fprintf(stderr, "calloc(%zu) failed\n", size);
      return 2;
    }
    size_t check_at = next_rand(&seed) % kSpan, write_at = next_rand(&seed) % kSpan;
    for (size_t at = check_at; at < size; at += kSpan)
      if (p[at] != 0) bad++;
    if (p[size - 1] != 0) bad++;
    unsigned char byte = (unsigned char)(1 + i % 251);
    if (all) {
      memset(p, byte, size);
    } else if (sparse) {
      for (size_t at = write_at; at < size; at += kSpan) p[at] = byte;
      p[size - 1] = byte;
    }
    free(p);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("seconds: %.6f\ncallocs: %ld\n", secs, iterations);
  if (bad) fprintf(stderr, "calloc_large: %ld bytes not zero\n", bad);
  return bad ? 1 : 0;
}

/* slabby bench: buffers resized to each message's size (a connection's read
 * buffer, a serializer's output), up and down at random.
 *
 *   realloc_resize BUFFERS MIN_KIB MAX_KIB ITERATIONS [SEED]
 *
 * BUFFERS buffers, taken in turn; each iteration reallocs the next one to a
 * random size in [MIN_KIB, MAX_KIB] KiB (4 KiB steps), checks the bytes it
 * kept (a marker at its start and at the end of what was kept) and writes
 * the marker at its new end. An allocator that copies the buffer whenever
 * its size class changes pays half the average size per call. Prints its
 * own time; exits non-zero if a buffer's bytes changed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { kMaxBuffers = 256 };

static uint32_t next_rand(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s BUFFERS MIN_KIB MAX_KIB ITERATIONS [SEED]\n", argv[0]);
    return 2;
  }
  int buffers = atoi(argv[1]);
  size_t min_steps = (size_t)atol(argv[2]) / 4;
  size_t max_steps = (size_t)atol(argv[3]) / 4;
  long iterations = atol(argv[4]);
  uint32_t seed = argc > 5 ? (uint32_t)atol(argv[5]) : 2463534242u;
  if (buffers < 1 || buffers > kMaxBuffers || min_steps < 1 || max_steps < min_steps ||
      iterations < 1)
    return 2;
  unsigned char* buf[kMaxBuffers] = {0};
  size_t size[kMaxBuffers] = {0};
  long bad = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < iterations; i++) {
    int k = (int)(i % buffers);
    size_t n = (min_steps + next_rand(&seed) % (max_steps - min_steps + 1)) * 4096;
    unsigned char* p = realloc(buf[k], n);
    if (p == NULL) {
      fprintf(stderr, "realloc(%zu) failed\n", n);
      return 2;
    }
    unsigned char mark = (unsigned char)(1 + k);
    if (size[k] != 0) {
      size_t kept = size[k] < n ? size[k] : n;
      if (p[0] != mark || (kept == size[k] && p[kept - 1] != mark)) bad++;
    }
    p[0] = mark;
    p[n - 1] = mark;
    buf[k] = p;
    size[k] = n;
  }
  for (int k = 0; k < buffers; k++) free(buf[k]);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("seconds: %.6f\n", secs);
  if (bad) fprintf(stderr, "realloc_resize: %ld buffers disturbed\n", bad);
  return bad ? 1 : 0;
}

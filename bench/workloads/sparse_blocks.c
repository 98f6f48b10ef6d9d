/* slabby bench: big blocks of which the program uses only the start (a
 * server's per-connection buffers sized for the worst message, a table
 * allocated for its largest case, a bump arena per request).
 *
 *   sparse_blocks LIVE MIN_KIB MAX_KIB TOUCH_KIB ITERATIONS [SEED]
 *
 * Keeps LIVE blocks; each iteration frees a random one and mallocs a block
 * of a random size in [MIN_KIB, MAX_KIB] KiB (4 KiB steps) in its place,
 * writing its first TOUCH_KIB KiB (memset) and checking the first byte of
 * the block it frees. What the program touches is LIVE x TOUCH_KIB; an
 * allocator whose pages come back resident (huge pages, or the pages the
 * block's previous occupants touched) holds far more. TOUCH_KIB 0 writes
 * each block whole (buffers of varied sizes, each filled: what an allocator
 * keeps cached besides the live blocks is all resident). Prints its own
 * time; exits non-zero if a block's first byte changed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint32_t next_rand(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s LIVE MIN_KIB MAX_KIB TOUCH_KIB ITERATIONS [SEED]\n", argv[0]);
    return 2;
  }
  long live = atol(argv[1]);
  size_t min_steps = (size_t)atol(argv[2]) / 4, max_steps = (size_t)atol(argv[3]) / 4;
  size_t touch = (size_t)atol(argv[4]) << 10;
  long iterations = atol(argv[5]);
  uint32_t seed = argc > 6 ? (uint32_t)atol(argv[6]) : 2463534242u;
  if (live < 1 || min_steps < 1 || max_steps < min_steps || touch > min_steps * 4096 ||
      iterations < 1)
    return 2;
  unsigned char** block = calloc((size_t)live, sizeof *block);
  unsigned char* mark = calloc((size_t)live, 1);
  if (block == NULL || mark == NULL) return 2;
  long bad = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < iterations; i++) {
    long j = (long)(next_rand(&seed) % (uint32_t)live);
    if (block[j] != NULL && block[j][0] != mark[j]) bad++;
    free(block[j]);
    size_t n = (min_steps + next_rand(&seed) % (max_steps - min_steps + 1)) * 4096;
    block[j] = malloc(n);
    if (block[j] == NULL) {
      fprintf(stderr, "malloc(%zu) failed\n", n);
      return 2;
    }
    mark[j] = (unsigned char)(i | 1);
    memset(block[j], mark[j], touch != 0 ? touch : n);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  for (long j = 0; j < live; j++) {
    if (block[j] != NULL && block[j][0] != mark[j]) bad++;
    free(block[j]);
  }
  free(block);
  free(mark);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("seconds: %.6f\n", secs);
  if (bad) fprintf(stderr, "sparse_blocks: %ld blocks disturbed\n", bad);
  return bad ? 1 : 0;
}

/* slabby bench: big blocks requested into a heap riddled with free gaps
 * (a cache of big objects half evicted, then buffers of other sizes).
 *
 *   large_gaps BLOCKS GAP_KIB MIN_KIB MAX_KIB ITERATIONS [SEED]
 *
 * Allocates BLOCKS blocks of GAP_KIB KiB (a byte written in each) and frees
 * every other one: BLOCKS / 2 free gaps between live blocks. Then each
 * iteration mallocs a buffer of a random size in [MIN_KIB, MAX_KIB] KiB
 * (4 KiB steps), writes its first and last bytes, checks them and frees it.
 * Run where the allocator returns freed memory at once (slabby
 * SLABBY_RETAIN_MAX=0, jemalloc's decays 0): every gap is then returned
 * memory, and an allocator that looks for a fit by walking its free spans
 * walks all the gaps at every request. Prints its own time (the iterations
 * only); exits non-zero if a live block or a buffer's bytes changed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint32_t next_rand(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s BLOCKS GAP_KIB MIN_KIB MAX_KIB ITERATIONS [SEED]\n", argv[0]);
    return 2;
  }
  long blocks = atol(argv[1]);
  size_t gap = (size_t)atol(argv[2]) << 10;
  size_t min_steps = (size_t)atol(argv[3]) / 4, max_steps = (size_t)atol(argv[4]) / 4;
  long iterations = atol(argv[5]);
  uint32_t seed = argc > 6 ? (uint32_t)atol(argv[6]) : 2463534242u;
  if (blocks < 2 || gap == 0 || min_steps < 1 || max_steps < min_steps || iterations < 1) return 2;
  unsigned char** block = malloc((size_t)blocks * sizeof *block);
  if (block == NULL) return 2;
  for (long i = 0; i < blocks; i++) {
    block[i] = malloc(gap);
    if (block[i] == NULL) {
      fprintf(stderr, "malloc(%zu) failed\n", gap);
      return 2;
    }
    block[i][0] = (unsigned char)(i | 1);
  }
  for (long i = 0; i < blocks; i += 2) free(block[i]);
  long bad = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < iterations; i++) {
    size_t n = (min_steps + next_rand(&seed) % (max_steps - min_steps + 1)) * 4096;
    unsigned char* volatile p = malloc(n);
    if (p == NULL) {
      fprintf(stderr, "malloc(%zu) failed\n", n);
      return 2;
    }
    unsigned char mark = (unsigned char)(i | 1);
    p[0] = mark;
    p[n - 1] = mark;
    if (p[0] != mark || p[n - 1] != mark) bad++;
    free(p);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  for (long i = 1; i < blocks; i += 2) {
    if (block[i][0] != (unsigned char)(i | 1)) bad++;
    free(block[i]);
  }
  free(block);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("seconds: %.6f\n", secs);
  if (bad) fprintf(stderr, "large_gaps: %ld blocks disturbed\n", bad);
  return bad ? 1 : 0;
}

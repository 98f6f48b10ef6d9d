/* slabby: the fast-path workloads counted with callgrind (deterministic
 * instruction counts, not time). Run as: fastpath_loops MODE N
 *   pair16     N x { p = malloc(16); free(p); }
 *   pair16-spread  the same, N / 16 times each with 0, 1, ..., 15 more
 *              16-byte blocks held live, so the loop's one block sits at
 *              16 different addresses
 *   batch100   N x { 100 x malloc(16); then free all 100 }   (per op: /100)
 *   mixed      N x { malloc of a size in 8..1024 (fixed sequence); free }
 *   realloc    N x { calloc(1, 16); realloc up to 4 KiB by doubling; free }
 * scripts/fastpath-instructions runs it with two values of N and divides the
 * difference, so start-up and exit costs cancel out.
 * Built with -fno-builtin so the compiler cannot remove the calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void* volatile sink;

#ifdef SLABBY_TLS_PAD
/* scripts/bench-placements builds this file with a thread-local block of
 * SLABBY_TLS_PAD bytes: the executable's TLS sits next to the thread
 * pointer, so every preloaded library's (the allocator's thread cache among
 * them) moves that far, and where its hot fields fall against the loop's
 * blocks and stacks (4 KiB aliasing) changes the loops' time by 30% or more
 * for the same library (docs/benchmarks.md, "The bins' addressing"). */
__thread char tls_pad[SLABBY_TLS_PAD + 8] = {1};
#endif

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s pair16|pair16-spread|batch100|mixed|realloc N\n", argv[0]);
    return 2;
  }
#ifdef SLABBY_TLS_PAD
  sink = tls_pad;
#endif
  const char* mode = argv[1];
  long n = atol(argv[2]);
  if (strcmp(mode, "pair16") == 0) {
    for (long i = 0; i < n; i++) {
      void* p = malloc(16);
      sink = p;
      free(p);
    }
  } else if (strcmp(mode, "pair16-spread") == 0) {
    /* pair16's time depends on where its one block sits, by 20-35% for
     * the same allocator here (2026-12-05, docs/benchmarks.md: 4 KiB
     * aliasing with the allocator's hot thread-local fields is the likely
     * cause), so one run of it draws one address. This one averages over
     * sixteen: round r holds r more blocks first, so the loop's block is
     * another one each round. */
    void* held[15];
    for (int r = 0; r < 16; r++) {
      for (int j = 0; j < r; j++) held[j] = malloc(16);
      for (long i = 0; i < n / 16; i++) {
        void* p = malloc(16);
        sink = p;
        free(p);
      }
      for (int j = 0; j < r; j++) free(held[j]);
    }
  } else if (strcmp(mode, "batch100") == 0) {
    void* ptrs[100];
    for (long i = 0; i < n; i++) {
      for (int j = 0; j < 100; j++) ptrs[j] = malloc(16);
      sink = ptrs[7];
      for (int j = 0; j < 100; j++) free(ptrs[j]);
    }
  } else if (strcmp(mode, "mixed") == 0) {
    /* A fixed pseudo-random sequence of 256 sizes, precomputed so the
     * generator costs nothing inside the loop. */
    size_t sizes[256];
    unsigned x = 12345;
    for (int j = 0; j < 256; j++) {
      x = x * 1103515245u + 12345u;
      sizes[j] = 8 + (x >> 8) % 1017;
    }
    for (long i = 0; i < n; i++) {
      void* p = malloc(sizes[i & 255]);
      sink = p;
      free(p);
    }
  } else if (strcmp(mode, "realloc") == 0) {
    for (long i = 0; i < n; i++) {
      char* p = calloc(1, 16);
      for (size_t sz = 32; sz <= 4096; sz *= 2) p = realloc(p, sz);
      sink = p;
      free(p);
    }
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  return 0;
}

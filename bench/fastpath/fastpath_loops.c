/* slabby: the fast-path workloads counted with callgrind (deterministic
 * instruction counts, not time). Run as: fastpath_loops MODE N
 *   pair16     N x { p = malloc(16); free(p); }
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

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s pair16|batch100|mixed|realloc N\n", argv[0]);
    return 2;
  }
  const char* mode = argv[1];
  long n = atol(argv[2]);
  if (strcmp(mode, "pair16") == 0) {
    for (long i = 0; i < n; i++) {
      void* p = malloc(16);
      sink = p;
      free(p);
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

/* slabby bench: a phased workload for an RSS timeline.
 *   grow:   allocate 600 MiB of 64..1024-byte objects (touching them)
 *   shrink: free the first 90% allocated (the newest 10% stay live, as when
 *           a burst of requests ends and recent state remains)
 *   idle:   sleep 3 s
 *   grow:   allocate 300 MiB again
 *   idle:   sleep 2 s, then free everything and exit
 * Prints the phase names with timestamps on stdout, so the harness can mark
 * them on the chart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void** grow(size_t bytes, size_t* count, unsigned* seed) {
  size_t cap = bytes / 64 + 1, n = 0, total = 0;
  void** v = malloc(cap * sizeof(void*));
  while (total < bytes && n < cap) {
    *seed = *seed * 1103515245u + 12345u;
    size_t sz = 64 + (*seed >> 8) % 961;
    v[n] = malloc(sz);
    memset(v[n], 0x42, sz);
    total += sz;
    n++;
  }
  *count = n;
  return v;
}

int main(void) {
  double t0 = now();
  unsigned seed = 1;
  size_t n1, n2;
  printf("%.2f grow\n", now() - t0);
  fflush(stdout);
  void** a = grow((size_t)600 << 20, &n1, &seed);
  printf("%.2f shrink\n", now() - t0);
  fflush(stdout);
  for (size_t i = 0; i < n1 / 10 * 9; i++) {
    free(a[i]);
    a[i] = NULL;
  }
  printf("%.2f idle\n", now() - t0);
  fflush(stdout);
  sleep(3);
  printf("%.2f grow\n", now() - t0);
  fflush(stdout);
  void** b = grow((size_t)300 << 20, &n2, &seed);
  printf("%.2f idle\n", now() - t0);
  fflush(stdout);
  sleep(2);
  for (size_t i = 0; i < n1; i++) free(a[i]);
  for (size_t i = 0; i < n2; i++) free(b[i]);
  free(a);
  free(b);
  return 0;
}

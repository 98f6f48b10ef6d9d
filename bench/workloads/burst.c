/* slabby bench: bursts of live blocks. Each thread allocates a burst of
 * LIVE blocks, then frees them all, round after round: thousands of live
 * blocks per size class, more than a cache of fixed size holds, so a cache
 * that cannot grow sends most of each burst through the central tiers and
 * back.
 *
 *   burst THREADS ROUNDS LIVE [ORDER]
 *
 * The blocks cycle through four sizes (32, 64, 128 and 256 bytes), so each
 * of four classes holds LIVE / 4 of them at the peak. Every block has its
 * first and last byte written when allocated and checked before it is
 * freed. ORDER is `fifo` (default: freed in allocation order, as a queue
 * of requests completes), `lifo` (reverse order) or `drift`: the burst
 * grows by two allocations to one free of a random live block, to LIVE,
 * then shrinks by two frees to one allocation, to none (a program building
 * a structure while it drops some of it: three operations a block each
 * way, so a cache sees the burst but not straight across). Prints its own
 * time. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const size_t kSizes[4] = {32, 64, 128, 256};

static long g_rounds, g_live;
static int g_lifo, g_drift;
static atomic_long g_bad;

static uint32_t next_rand(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

/* blocks[0..*n) live; sizes[k] is blocks[k]'s index into kSizes. */
static void drift_alloc(unsigned char** blocks, unsigned char* sizes, long* n, long* made,
                        unsigned char tag) {
  unsigned char k = (unsigned char)(*made & 3);
  unsigned char* p = malloc(kSizes[k]);
  p[0] = tag;
  p[kSizes[k] - 1] = (unsigned char)(tag + k);
  blocks[*n] = p;
  sizes[*n] = k;
  ++*n;
  ++*made;
}

static long drift_free(unsigned char** blocks, unsigned char* sizes, long* n, uint32_t* seed,
                       unsigned char tag) {
  long i = (long)(next_rand(seed) % (uint32_t)*n);
  unsigned char* p = blocks[i];
  long bad = p[0] != tag || p[kSizes[sizes[i]] - 1] != (unsigned char)(tag + sizes[i]);
  free(p);
  --*n;
  blocks[i] = blocks[*n];
  sizes[i] = sizes[*n];
  return bad;
}

static long drift_rounds(unsigned char** blocks, unsigned char tag) {
  unsigned char* sizes = malloc((size_t)g_live);
  if (sizes == NULL) return 1;
  uint32_t seed = 2463534242u + tag;
  long bad = 0, n = 0, made = 0;
  for (long r = 0; r < g_rounds; r++) {
    while (n < g_live) {
      drift_alloc(blocks, sizes, &n, &made, tag);
      if (n < g_live) drift_alloc(blocks, sizes, &n, &made, tag);
      if (n < g_live) bad += drift_free(blocks, sizes, &n, &seed, tag);
    }
    while (n > 0) {
      bad += drift_free(blocks, sizes, &n, &seed, tag);
      if (n > 0) bad += drift_free(blocks, sizes, &n, &seed, tag);
      if (n > 0) drift_alloc(blocks, sizes, &n, &made, tag);
    }
  }
  free(sizes);
  return bad;
}

static void* worker(void* arg) {
  unsigned char tag = (unsigned char)(uintptr_t)arg;
  unsigned char** blocks = malloc(sizeof(*blocks) * (size_t)g_live);
  if (blocks == NULL) {
    atomic_fetch_add(&g_bad, 1);
    return NULL;
  }
  long bad = g_drift ? drift_rounds(blocks, tag) : 0;
  for (long r = 0; !g_drift && r < g_rounds; r++) {
    for (long i = 0; i < g_live; i++) {
      size_t n = kSizes[i & 3];
      unsigned char* p = malloc(n);
      p[0] = tag;
      p[n - 1] = (unsigned char)i;
      blocks[i] = p;
    }
    for (long k = 0; k < g_live; k++) {
      long i = g_lifo ? g_live - 1 - k : k;
      unsigned char* p = blocks[i];
      if (p[0] != tag || p[kSizes[i & 3] - 1] != (unsigned char)i) bad++;
      free(p);
    }
  }
  free(blocks);
  atomic_fetch_add(&g_bad, bad);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    fprintf(stderr, "usage: %s THREADS ROUNDS LIVE [fifo|lifo|drift]\n", argv[0]);
    return 2;
  }
  int threads = atoi(argv[1]);
  g_rounds = atol(argv[2]);
  g_live = atol(argv[3]);
  g_lifo = argc == 5 && strcmp(argv[4], "lifo") == 0;
  g_drift = argc == 5 && strcmp(argv[4], "drift") == 0;
  if (threads < 1 || threads > 256 || g_rounds < 1 || g_live < 1 ||
      (argc == 5 && !g_lifo && !g_drift && strcmp(argv[4], "fifo") != 0)) {
    fprintf(stderr, "burst: bad arguments\n");
    return 2;
  }
  pthread_t tids[256];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int t = 0; t < threads; t++)
    if (pthread_create(&tids[t], NULL, worker, (void*)(uintptr_t)(t + 1)) != 0) {
      fprintf(stderr, "burst: pthread_create failed\n");
      return 1;
    }
  for (int t = 0; t < threads; t++) pthread_join(tids[t], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  long bad = atomic_load(&g_bad);
  printf("seconds: %.4f\n", s);
  printf("ops: %ld\n", (g_drift ? 6L : 2L) * threads * g_rounds * g_live);
  if (bad != 0) {
    fprintf(stderr, "burst: %ld blocks corrupted\n", bad);
    return 1;
  }
  return 0;
}

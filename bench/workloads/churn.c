/* slabby bench: thread churn. Short-lived threads, generation after
 * generation, each leaving blocks behind for the next.
 *
 *   churn GENERATIONS THREADS OPS [SEED]
 *
 * Each generation starts THREADS threads. Thread i first frees the 32 blocks
 * that thread i of the previous generation left in slot i (remote frees of
 * a dead thread's blocks), then churns a working set of 32 blocks of
 * 16..1024 bytes for OPS operations, leaves its working set in slot i and
 * exits. The generation is joined before the next starts. This measures the
 * cost of a thread's first allocation, of its exit (caches flushed) and of
 * freeing blocks whose thread is gone. Prints its own time. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { kSet = 32 };

struct slot {
  unsigned char* blocks[kSet];
  uint32_t seed;
};

static long g_ops;
static atomic_int g_bad;

static uint32_t next_rand(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static unsigned char* make(uint32_t* seed) {
  size_t n = 16 + next_rand(seed) % 1009;
  unsigned char* p = malloc(n);
  uint16_t n16 = (uint16_t)n;
  memcpy(p, &n16, sizeof(n16)); /* the size, and its low byte at the end */
  p[n - 1] = (unsigned char)n;
  return p;
}

static void drop(unsigned char* p) {
  if (p == NULL) return;
  uint16_t n;
  memcpy(&n, p, sizeof(n));
  if (n < 16 || n > 1024 || p[n - 1] != (unsigned char)n) atomic_fetch_add(&g_bad, 1);
  free(p);
}

static void* worker(void* arg) {
  struct slot* s = arg;
  for (int i = 0; i < kSet; i++) {
    drop(s->blocks[i]);
    s->blocks[i] = make(&s->seed);
  }
  for (long i = 0; i < g_ops; i++) {
    unsigned k = next_rand(&s->seed) % kSet;
    drop(s->blocks[k]);
    s->blocks[k] = make(&s->seed);
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s GENERATIONS THREADS OPS [SEED]\n", argv[0]);
    return 2;
  }
  int generations = atoi(argv[1]);
  int threads = atoi(argv[2]);
  g_ops = atol(argv[3]);
  uint32_t seed = argc > 4 ? (uint32_t)atol(argv[4]) : 521288629u;
  if (generations < 1 || threads < 1 || threads > 1024) return 2;

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  struct slot* slots = calloc((size_t)threads, sizeof(struct slot));
  for (int i = 0; i < threads; i++) slots[i].seed = seed + 15485863u * (uint32_t)i;
  pthread_t th[1024];
  for (int g = 0; g < generations; g++) {
    for (int i = 0; i < threads; i++)
      if (pthread_create(&th[i], NULL, worker, &slots[i]) != 0) return 2;
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  }
  for (int i = 0; i < threads; i++)
    for (int k = 0; k < kSet; k++) drop(slots[i].blocks[k]);
  free(slots);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("seconds: %.6f\nthreads_started: %ld\n", secs, (long)generations * threads);
  return atomic_load(&g_bad) ? 1 : 0;
}

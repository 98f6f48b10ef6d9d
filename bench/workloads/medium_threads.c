/* slabby bench: medium blocks (tens of KiB to a MiB) from several threads
 * at once (per-request buffers of a threaded server).
 *
 *   medium_threads THREADS ITERATIONS MIN_KIB MAX_KIB [SEED [LIVE]]
 *
 * Each of THREADS threads, ITERATIONS times, mallocs a block of a random
 * size in [MIN_KIB, MAX_KIB] KiB (any byte count), writes its first and
 * last bytes, reads them back and frees it. Only two pages of each block
 * are touched, so the cost is the allocator's: its locks, and whether it
 * maps and unmaps memory for every block. With LIVE > 1 each thread keeps
 * LIVE blocks and each iteration frees one of them at random (its bytes
 * checked) for the new one: how many of a size are live then wanders, the
 * pattern of a server's buffers in flight, which a cache of one block per
 * size does not hold. Prints its own time. Exits non-zero if a block's
 * bytes did not read back. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long g_iterations;
static size_t g_min, g_max;
static int g_live = 1;
enum { kMaxLive = 4096 };
static atomic_long g_bad;

static uint32_t next_rand(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

struct live_block {
  volatile unsigned char* p;
  size_t size;
  unsigned char first, last;
};

static long drop(struct live_block* b) {
  long bad = 0;
  if (b->p != NULL && (b->p[0] != b->first || b->p[b->size - 1] != b->last)) bad = 1;
  free((void*)b->p);
  b->p = NULL;
  return bad;
}

static void* worker(void* arg) {
  uint32_t seed = (uint32_t)(uintptr_t)arg;
  long bad = 0;
  struct live_block* live = calloc((size_t)g_live, sizeof(*live));
  if (live == NULL) exit(2);
  for (long i = 0; i < g_iterations; i++) {
    struct live_block* b = &live[g_live > 1 ? next_rand(&seed) % (uint32_t)g_live : 0];
    bad += drop(b);
    size_t size = g_min + next_rand(&seed) % (g_max - g_min + 1);
    volatile unsigned char* p = malloc(size);
    if (p == NULL) {
      fprintf(stderr, "malloc(%zu) failed\n", size);
      exit(2);
    }
    unsigned char first = (unsigned char)seed, last = (unsigned char)(seed >> 8);
    p[0] = first;
    p[size - 1] = last;
    if (p[0] != first || p[size - 1] != last) bad++;
    *b = (struct live_block){p, size, first, last};
    if (g_live == 1) bad += drop(b);
  }
  for (int k = 0; k < g_live; k++) bad += drop(&live[k]);
  free(live);
  atomic_fetch_add(&g_bad, bad);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s THREADS ITERATIONS MIN_KIB MAX_KIB [SEED [LIVE]]\n", argv[0]);
    return 2;
  }
  int threads = atoi(argv[1]);
  g_iterations = atol(argv[2]);
  g_min = (size_t)atol(argv[3]) << 10;
  g_max = (size_t)atol(argv[4]) << 10;
  uint32_t seed = argc > 5 ? (uint32_t)atol(argv[5]) : 123459876u;
  g_live = argc > 6 ? atoi(argv[6]) : 1;
  if (threads < 1 || threads > 1024 || g_iterations < 1 || g_min < 1 || g_max < g_min ||
      g_live < 1 || g_live > kMaxLive)
    return 2;

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pthread_t th[1024];
  for (int i = 0; i < threads; i++)
    if (pthread_create(&th[i], NULL, worker, (void*)(uintptr_t)(seed + 2654435761u * (uint32_t)i)) != 0)
      return 2;
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  long ops = (long)threads * g_iterations;
  printf("seconds: %.6f\nops: %ld\nops_per_second: %.0f\n", secs, ops, ops / secs);
  long bad = atomic_load(&g_bad);
  if (bad) fprintf(stderr, "medium_threads: %ld blocks disturbed\n", bad);
  return bad ? 1 : 0;
}

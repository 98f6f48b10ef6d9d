/* slabby bench: a larson-style server (Larson and Krishnan, "Memory
 * allocation for long-running server applications", ISMM 1998).
 *
 *   larson THREADS GENERATIONS OPS BLOCKS MIN MAX [SEED]
 *
 * The main thread fills THREADS arrays of BLOCKS blocks of MIN..MAX bytes.
 * Each array is worked by a chain of GENERATIONS threads: a thread replaces
 * OPS random blocks of its array (free one, malloc another), then starts its
 * successor, hands it the array and exits. So most frees hit blocks that a
 * thread which has since exited allocated, as in a server whose worker
 * threads come and go. Prints its own time and throughput. Exits non-zero if
 * a block's contents were disturbed. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct chain {
  void** blocks;
  int generation;
  uint32_t seed;
};

static int g_generations, g_blocks;
static long g_ops;
static size_t g_min, g_span;
static atomic_int g_bad;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_done_cond = PTHREAD_COND_INITIALIZER;
static int g_done;

static uint32_t next_rand(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static void* fill(size_t n) {
  unsigned char* p = malloc(n);
  p[0] = (unsigned char)n;
  p[n - 1] = (unsigned char)n;
  return p;
}

static void check_and_free(void* v, size_t n) {
  unsigned char* p = v;
  if (p[0] != (unsigned char)n || p[n - 1] != (unsigned char)n) atomic_fetch_add(&g_bad, 1);
  free(p);
}

/* A block's size is kept in a parallel array in the chain's block array:
 * blocks[i] is the pointer, blocks[g_blocks + i] the size. */
static void* worker(void* arg) {
  struct chain* c = arg;
  for (long i = 0; i < g_ops; i++) {
    unsigned k = next_rand(&c->seed) % (unsigned)g_blocks;
    check_and_free(c->blocks[k], (size_t)(uintptr_t)c->blocks[g_blocks + k]);
    size_t n = g_min + next_rand(&c->seed) % g_span;
    c->blocks[k] = fill(n);
    c->blocks[g_blocks + k] = (void*)(uintptr_t)n;
  }
  if (++c->generation < g_generations) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, worker, c) != 0) abort();
    pthread_attr_destroy(&attr);
    return NULL;
  }
  pthread_mutex_lock(&g_lock);
  g_done++;
  pthread_cond_signal(&g_done_cond);
  pthread_mutex_unlock(&g_lock);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: %s THREADS GENERATIONS OPS BLOCKS MIN MAX [SEED]\n", argv[0]);
    return 2;
  }
  int threads = atoi(argv[1]);
  g_generations = atoi(argv[2]);
  g_ops = atol(argv[3]);
  g_blocks = atoi(argv[4]);
  g_min = (size_t)atol(argv[5]);
  g_span = (size_t)atol(argv[6]) - g_min + 1;
  uint32_t seed = argc > 7 ? (uint32_t)atol(argv[7]) : 12345u;
  if (threads < 1 || g_generations < 1 || g_blocks < 1 || g_min < 2 || g_span < 1) return 2;

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  struct chain* chains = calloc((size_t)threads, sizeof(struct chain));
  for (int t = 0; t < threads; t++) {
    chains[t].seed = seed + 7919u * (uint32_t)t + 1;
    chains[t].blocks = calloc(2 * (size_t)g_blocks, sizeof(void*));
    for (int i = 0; i < g_blocks; i++) {
      size_t n = g_min + next_rand(&chains[t].seed) % g_span;
      chains[t].blocks[i] = fill(n);
      chains[t].blocks[g_blocks + i] = (void*)(uintptr_t)n;
    }
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  for (int t = 0; t < threads; t++) {
    pthread_t th;
    if (pthread_create(&th, &attr, worker, &chains[t]) != 0) return 2;
  }
  pthread_mutex_lock(&g_lock);
  while (g_done < threads) pthread_cond_wait(&g_done_cond, &g_lock);
  pthread_mutex_unlock(&g_lock);
  for (int t = 0; t < threads; t++) {
    for (int i = 0; i < g_blocks; i++)
      check_and_free(chains[t].blocks[i], (size_t)(uintptr_t)chains[t].blocks[g_blocks + i]);
    free(chains[t].blocks);
  }
  free(chains);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  long ops = (long)threads * g_generations * g_ops;
  printf("seconds: %.6f\nops: %ld\nops_per_second: %.0f\n", secs, ops, ops / secs);
  return atomic_load(&g_bad) ? 1 : 0;
}

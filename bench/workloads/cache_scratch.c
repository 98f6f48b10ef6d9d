/* slabby bench: passive false sharing, after Hoard's cache-scratch
 * (Berger et al., ASPLOS 2000).
 *
 *   cache_scratch THREADS ITERATIONS OBJSIZE REPETITIONS [WARM]
 *
 * The main thread allocates THREADS small objects back to back and hands
 * one to each thread. Each thread frees it, then ITERATIONS times: mallocs
 * OBJSIZE bytes, writes every byte REPETITIONS times, frees it. An allocator
 * that gives a thread the block another thread freed, or that carves
 * neighbouring blocks of one cache line out for different threads, makes
 * the threads' writes fight over cache lines. Prints its own time.
 *
 * WARM=1: each thread mallocs and frees one block of its own before it
 * frees the one it was given. jemalloc sends a thread's very first call,
 * when it is a free, past its thread cache to the block's arena, so in
 * the plain form its threads never get the main thread's blocks back;
 * warm, they do, as under every allocator that caches remote frees. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long g_iterations, g_repetitions;
static size_t g_size;
static int g_warm;

static void* worker(void* arg) {
  if (g_warm) {
    void* volatile own = malloc(g_size); /* volatile: kept by the compiler */
    free(own);
  }
  free(arg);
  for (long i = 0; i < g_iterations; i++) {
    volatile char* p = malloc(g_size);
    for (long r = 0; r < g_repetitions; r++)
      for (size_t b = 0; b < g_size; b++) p[b] = (char)(p[b] + 1);
    free((void*)p);
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    fprintf(stderr, "usage: %s THREADS ITERATIONS OBJSIZE REPETITIONS [WARM]\n", argv[0]);
    return 2;
  }
  int threads = atoi(argv[1]);
  g_iterations = atol(argv[2]);
  g_size = (size_t)atol(argv[3]);
  g_repetitions = atol(argv[4]);
  g_warm = argc == 6 ? atoi(argv[5]) : 0;
  if (threads < 1 || threads > 1024 || g_size < 1) return 2;

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pthread_t th[1024];
  void* objs[1024];
  for (int i = 0; i < threads; i++) objs[i] = malloc(g_size);
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, worker, objs[i]);
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("seconds: %.6f\nops: %ld\n", secs, (long)threads * g_iterations);
  return 0;
}

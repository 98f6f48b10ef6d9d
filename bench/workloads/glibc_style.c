/* Two workloads in the manner of glibc's malloc benchmarks (benchtests/),
 * written for slabby's comparison (issue 16):
 *
 *   simple ITERS
 *     one thread; for each size in {16, 64, 256, 1024} and each batch in
 *     {1, 25, 100, 400}: ITERS / batch rounds of "malloc batch blocks, touch
 *     each, free them in the order allocated". Single-thread fast paths with
 *     a growing number of live blocks per class.
 *   thread THREADS ITERS
 *     each thread owns a working set of 1024 slots and, ITERS times, frees a
 *     random slot and allocates a new block there of a random size (8 to
 *     4096 bytes, smaller sizes far more likely), writing its first byte.
 *     Frees are local: every block is freed by the thread that allocated it.
 *
 * Prints the elapsed seconds of the timed part. Built with -fno-builtin. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void* volatile sink;

static void run_simple(long iters) {
  static const size_t sizes[] = {16, 64, 256, 1024};
  static const int batches[] = {1, 25, 100, 400};
  void* blocks[400];
  for (unsigned s = 0; s < sizeof sizes / sizeof sizes[0]; ++s) {
    for (unsigned b = 0; b < sizeof batches / sizeof batches[0]; ++b) {
      int batch = batches[b];
      for (long r = 0; r < iters / batch; ++r) {
        for (int i = 0; i < batch; ++i) {
          blocks[i] = malloc(sizes[s]);
          *(char*)blocks[i] = (char)i;
        }
        sink = blocks[batch - 1];
        for (int i = 0; i < batch; ++i) free(blocks[i]);
      }
    }
  }
}

struct thread_arg {
  long iters;
  uint64_t seed;
};

/* 8..4096 bytes: a random power-of-two range picked with falling odds,
 * then a uniform size inside it. */
static size_t random_size(uint64_t* x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  uint64_t r = *x;
  unsigned range = 0;
  while (range < 9 && (r & 1)) {  /* range k with probability 2^-(k+1) */
    ++range;
    r >>= 1;
  }
  size_t lo = (size_t)8 << range, hi = lo * 2;
  return lo + (size_t)((r >> 8) % (hi - lo));
}

static void* run_thread(void* p) {
  struct thread_arg* a = p;
  enum { kSlots = 1024 };
  void** slots = calloc(kSlots, sizeof(void*));
  uint64_t x = a->seed;
  for (long i = 0; i < a->iters; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    unsigned at = (unsigned)(x >> 20) % kSlots;
    free(slots[at]);
    slots[at] = malloc(random_size(&x));
    *(char*)slots[at] = (char)i;
  }
  for (unsigned i = 0; i < kSlots; ++i) free(slots[i]);
  free(slots);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "simple") == 0) {
    double t0 = now();
    run_simple(atol(argv[2]));
    printf("seconds %.3f\n", now() - t0);
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "thread") == 0) {
    int n = atoi(argv[2]);
    long iters = atol(argv[3]);
    if (n < 1 || n > 256) return 2;
    pthread_t tid[256];
    struct thread_arg args[256];
    double t0 = now();
    for (int i = 0; i < n; ++i) {
      args[i].iters = iters;
      args[i].seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
      pthread_create(&tid[i], NULL, run_thread, &args[i]);
    }
    for (int i = 0; i < n; ++i) pthread_join(tid[i], NULL);
    printf("seconds %.3f\n", now() - t0);
    return 0;
  }
  fprintf(stderr, "usage: %s simple ITERS | thread THREADS ITERS\n", argv[0]);
  return 2;
}

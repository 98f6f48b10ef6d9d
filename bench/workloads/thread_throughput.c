/* slabby bench: allocation throughput with T threads.
 *
 *   thread_throughput local  T TOTAL_OPS   each thread churns its own working
 *                                          set of 64 blocks (16..512 bytes)
 *   thread_throughput remote T TOTAL_OPS   thread i allocates, thread i+1
 *                                          frees (every free is remote),
 *                                          through a ring per pair
 *
 * TOTAL_OPS is split among the threads, so the wall time (measured by the
 * harness) is inverse throughput. Exits non-zero if a block's contents
 * were disturbed. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kRing = 1024 };

struct ring {
  _Atomic uint64_t head; /* written by the producer */
  char pad1[56];
  _Atomic uint64_t tail; /* written by the consumer */
  char pad2[56];
  void* slots[kRing];
};

static long g_ops_per_thread;
static int g_threads;
static struct ring* g_rings;
static atomic_int g_bad;

static uint32_t next_rand(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static void* local_worker(void* arg) {
  uint32_t seed = 2463534242u + (uint32_t)(uintptr_t)arg;
  void* set[64] = {0};
  size_t sizes[64] = {0};
  for (long i = 0; i < g_ops_per_thread; i++) {
    unsigned k = next_rand(&seed) & 63;
    if (set[k]) {
      if (((unsigned char*)set[k])[0] != (unsigned char)sizes[k]) atomic_fetch_add(&g_bad, 1);
      free(set[k]);
    }
    sizes[k] = 16 + next_rand(&seed) % 497;
    set[k] = malloc(sizes[k]);
    ((unsigned char*)set[k])[0] = (unsigned char)sizes[k];
  }
  for (int k = 0; k < 64; k++) free(set[k]);
  return NULL;
}

/* Thread i produces into ring i and consumes ring i-1. */
static void* remote_worker(void* arg) {
  int id = (int)(intptr_t)arg;
  struct ring* out = &g_rings[id];
  struct ring* in = &g_rings[(id + g_threads - 1) % g_threads];
  uint32_t seed = 88172645u + (uint32_t)id;
  long produced = 0, consumed = 0;
  while (produced < g_ops_per_thread || consumed < g_ops_per_thread) {
    long progress = produced + consumed;
    /* Produce a few. */
    for (int b = 0; b < 16 && produced < g_ops_per_thread; b++) {
      uint64_t h = atomic_load_explicit(&out->head, memory_order_relaxed);
      if (h - atomic_load_explicit(&out->tail, memory_order_acquire) >= kRing) break;
      uint16_t n = (uint16_t)(16 + next_rand(&seed) % 497);
      unsigned char* p = malloc(n);
      memcpy(p, &n, sizeof(n)); /* the size, and its low byte at the end */
      p[n - 1] = (unsigned char)n;
      out->slots[h % kRing] = p;
      atomic_store_explicit(&out->head, h + 1, memory_order_release);
      produced++;
    }
    /* Consume what is there. */
    for (int b = 0; b < 16 && consumed < g_ops_per_thread; b++) {
      uint64_t t = atomic_load_explicit(&in->tail, memory_order_relaxed);
      if (t == atomic_load_explicit(&in->head, memory_order_acquire)) break;
      unsigned char* p = in->slots[t % kRing];
      uint16_t n;
      memcpy(&n, p, sizeof(n));
      if (n < 16 || n > 512 || p[n - 1] != (unsigned char)n) atomic_fetch_add(&g_bad, 1);
      free(p);
      atomic_store_explicit(&in->tail, t + 1, memory_order_release);
      consumed++;
    }
    /* Blocked on a partner that is not running (more threads than cores):
     * let it run instead of spinning out the time slice. */
    if (produced + consumed == progress) sched_yield();
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s local|remote THREADS TOTAL_OPS\n", argv[0]);
    return 2;
  }
  int remote = strcmp(argv[1], "remote") == 0;
  g_threads = atoi(argv[2]);
  g_ops_per_thread = atol(argv[3]) / g_threads;
  if (g_threads < 1 || g_threads > 1024) return 2;
  pthread_t* th = calloc((size_t)g_threads, sizeof(pthread_t));
  if (remote) {
    if (posix_memalign((void**)&g_rings, 64, sizeof(struct ring) * (size_t)g_threads) != 0)
      return 2;
    memset(g_rings, 0, sizeof(struct ring) * (size_t)g_threads);
  }
  for (int i = 0; i < g_threads; i++)
    pthread_create(&th[i], NULL, remote ? remote_worker : local_worker, (void*)(intptr_t)i);
  for (int i = 0; i < g_threads; i++) pthread_join(th[i], NULL);
  free(th);
  if (remote) free(g_rings);
  return atomic_load(&g_bad) ? 1 : 0;
}

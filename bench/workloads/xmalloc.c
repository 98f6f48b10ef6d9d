/* slabby bench: an xmalloc-style producer/consumer test (after Lever and
 * Boreham's xmalloc-test): every free is remote.
 *
 *   xmalloc PAIRS TOTAL_BLOCKS [BATCH] [SEED]
 *
 * PAIRS producer threads malloc blocks of 8..1024 bytes in batches of BATCH
 * (default 64) and queue each batch, itself a malloc'd array; PAIRS consumer
 * threads take batches off the queue, check and free every block and the
 * array. At most 64 batches wait in the queue, so memory stays bounded.
 * Prints its own time and throughput. Exits non-zero if a block's contents
 * were disturbed. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { kQueueMax = 64 };

struct batch {
  struct batch* next;
  int n;
  unsigned char* blocks[];
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t g_not_full = PTHREAD_COND_INITIALIZER;
static struct batch *g_head, *g_tail;
static int g_queued, g_producers_left;
static long g_batches_per_producer;
static int g_batch;
static long g_bad;

static uint32_t next_rand(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static void* producer(void* arg) {
  uint32_t seed = (uint32_t)(uintptr_t)arg;
  for (long b = 0; b < g_batches_per_producer; b++) {
    struct batch* batch = malloc(sizeof(struct batch) + (size_t)g_batch * sizeof(void*));
    batch->next = NULL;
    batch->n = g_batch;
    for (int i = 0; i < g_batch; i++) {
      uint16_t n = (uint16_t)(8 + next_rand(&seed) % 1017);
      unsigned char* p = malloc(n);
      memcpy(p, &n, sizeof(n));
      p[n - 1] = (unsigned char)n;
      batch->blocks[i] = p;
    }
    pthread_mutex_lock(&g_lock);
    while (g_queued >= kQueueMax) pthread_cond_wait(&g_not_full, &g_lock);
    if (g_tail)
      g_tail->next = batch;
    else
      g_head = batch;
    g_tail = batch;
    g_queued++;
    pthread_cond_signal(&g_not_empty);
    pthread_mutex_unlock(&g_lock);
  }
  pthread_mutex_lock(&g_lock);
  g_producers_left--;
  pthread_cond_broadcast(&g_not_empty);
  pthread_mutex_unlock(&g_lock);
  return NULL;
}

static void* consumer(void* arg) {
  (void)arg;
  long bad = 0;
  for (;;) {
    pthread_mutex_lock(&g_lock);
    while (g_head == NULL && g_producers_left > 0) pthread_cond_wait(&g_not_empty, &g_lock);
    struct batch* batch = g_head;
    if (batch) {
      g_head = batch->next;
      if (g_head == NULL) g_tail = NULL;
      g_queued--;
      pthread_cond_signal(&g_not_full);
    }
    pthread_mutex_unlock(&g_lock);
    if (batch == NULL) break;
    for (int i = 0; i < batch->n; i++) {
      unsigned char* p = batch->blocks[i];
      uint16_t n;
      memcpy(&n, p, sizeof(n));
      if (n < 8 || n > 1024 || p[n - 1] != (unsigned char)n) bad++;
      free(p);
    }
    free(batch);
  }
  pthread_mutex_lock(&g_lock);
  g_bad += bad;
  pthread_mutex_unlock(&g_lock);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s PAIRS TOTAL_BLOCKS [BATCH] [SEED]\n", argv[0]);
    return 2;
  }
  int pairs = atoi(argv[1]);
  long total = atol(argv[2]);
  g_batch = argc > 3 ? atoi(argv[3]) : 64;
  uint32_t seed = argc > 4 ? (uint32_t)atol(argv[4]) : 2463534242u;
  if (pairs < 1 || pairs > 512 || g_batch < 1 || total < 1) return 2;
  g_batches_per_producer = total / pairs / g_batch;
  g_producers_left = pairs;

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pthread_t th[1024];
  for (int i = 0; i < pairs; i++) {
    pthread_create(&th[2 * i], NULL, producer, (void*)(uintptr_t)(seed + 104729u * (uint32_t)i));
    pthread_create(&th[2 * i + 1], NULL, consumer, NULL);
  }
  for (int i = 0; i < 2 * pairs; i++) pthread_join(th[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  long ops = (long)pairs * g_batches_per_producer * g_batch;
  printf("seconds: %.6f\nops: %ld\nops_per_second: %.0f\n", secs, ops, ops / secs);
  return g_bad ? 1 : 0;
}

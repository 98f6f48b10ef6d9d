/* slabby bench: per-request arenas on big chunks (a server's request arena,
 * a parser's or a compiler's bump allocator, a runtime's huge-page-aligned
 * heap chunk): each iteration takes one chunk, uses its first part and
 * frees it.
 *
 *   arena_chunks THREADS CHUNK_KIB ALIGN_KIB USED_KIB ITERATIONS
 *
 * Each thread mallocs a CHUNK_KIB chunk (posix_memalign to ALIGN_KIB when
 * that is not 0), writes its first USED_KIB with memset, checks the first
 * and last byte written and frees it, ITERATIONS times. Little of each
 * chunk is touched, so an allocator that does system calls per big block
 * (a madvise, a munmap and mmap, a fault of fresh pages) pays for them in
 * full. Prints its own time; exits non-zero if a chunk's bytes changed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t g_chunk, g_align, g_used;
static long g_iterations;

static void* run(void* arg) {
  long bad = 0;
  unsigned char tag = (unsigned char)(1 + (size_t)arg);
  for (long i = 0; i < g_iterations; i++) {
    unsigned char* p = NULL;
    if (g_align != 0) {
      if (posix_memalign((void**)&p, g_align, g_chunk) != 0) p = NULL;
    } else {
      p = malloc(g_chunk);
    }
    if (p == NULL) {
      fprintf(stderr, "arena_chunks: allocation of %zu bytes failed\n", g_chunk);
      exit(2);
    }
    if (g_align != 0 && (size_t)p % g_align != 0) bad++;
    unsigned char byte = (unsigned char)(tag + i);
    memset(p, byte, g_used);
    if (p[0] != byte || p[g_used - 1] != byte) bad++;
    free(p);
  }
  return (void*)bad;
}

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s THREADS CHUNK_KIB ALIGN_KIB USED_KIB ITERATIONS\n", argv[0]);
    return 2;
  }
  int threads = atoi(argv[1]);
  g_chunk = (size_t)atol(argv[2]) << 10;
  g_align = (size_t)atol(argv[3]) << 10;
  g_used = (size_t)atol(argv[4]) << 10;
  g_iterations = atol(argv[5]);
  if (threads < 1 || threads > 64 || g_chunk == 0 || g_used == 0 || g_used > g_chunk ||
      (g_align & (g_align - 1)) != 0 || g_iterations < 1)
    return 2;
  pthread_t t[64];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int k = 0; k < threads; k++) pthread_create(&t[k], NULL, run, (void*)(size_t)k);
  long bad = 0;
  for (int k = 0; k < threads; k++) {
    void* r;
    pthread_join(t[k], &r);
    bad += (long)r;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("seconds: %.6f\n", secs);
  if (bad) fprintf(stderr, "arena_chunks: %ld chunks misaligned or disturbed\n", bad);
  return bad ? 1 : 0;
}

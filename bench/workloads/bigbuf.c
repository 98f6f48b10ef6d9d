/* slabby bench: allocate, fill, free of big buffers (an image decoder, a
 * compressor's window, a request body read whole).
 *
 *   bigbuf MIN_MIB MAX_MIB LIVE ITERATIONS [SEED]
 *
 * A ring of LIVE buffers (LIVE 1 is the plain malloc-fill-free loop). Each
 * iteration mallocs a buffer of a random size in [MIN_MIB, MAX_MIB] MiB, in
 * steps of 4 KiB, fills all of it with memset (a byte from the iteration
 * number), then checks the first, middle and last bytes of the buffer it
 * replaces in the ring and frees that one; so LIVE + 1 buffers are live at
 * the peak. An allocator that returns every big block to the kernel on
 * free, or faults in fresh pages for every buffer, pays for it here.
 * Prints its own time. Exits non-zero if a buffer's contents were
 * disturbed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { kMaxLive = 1024 };

struct slot {
  unsigned char* p;
  size_t size;
  unsigned char byte;
};

static uint32_t next_rand(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static int check(const struct slot* s) {
  return s->p[0] == s->byte && s->p[s->size / 2] == s->byte && s->p[s->size - 1] == s->byte;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s MIN_MIB MAX_MIB LIVE ITERATIONS [SEED]\n", argv[0]);
    return 2;
  }
  size_t min_pages = ((size_t)atol(argv[1]) << 20) / 4096;
  size_t max_pages = ((size_t)atol(argv[2]) << 20) / 4096;
  int live = atoi(argv[3]);
  long iterations = atol(argv[4]);
  uint32_t seed = argc > 5 ? (uint32_t)atol(argv[5]) : 2654435769u;
  if (min_pages < 1 || max_pages < min_pages || live < 1 || live > kMaxLive || iterations < 1)
    return 2;

  struct slot ring[kMaxLive];
  memset(ring, 0, sizeof(ring));
  long bad = 0;
  size_t bytes = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < iterations; i++) {
    size_t size = (min_pages + next_rand(&seed) % (max_pages - min_pages + 1)) * 4096;
    unsigned char byte = (unsigned char)(1 + i % 251);
    unsigned char* p = malloc(size);
    if (p == NULL) {
      fprintf(stderr, "malloc(%zu) failed\n", size);
      return 2;
    }
    memset(p, byte, size);
    bytes += size;
    struct slot* s = &ring[i % live];
    if (s->p) {
      if (!check(s)) bad++;
      free(s->p);
    }
    s->p = p;
    s->size = size;
    s->byte = byte;
  }
  for (int k = 0; k < live; k++) {
    if (ring[k].p) {
      if (!check(&ring[k])) bad++;
      free(ring[k].p);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("seconds: %.6f\nmib_filled: %.0f\n", secs, bytes / 1048576.0);
  if (bad) fprintf(stderr, "bigbuf: %ld buffers disturbed\n", bad);
  return bad ? 1 : 0;
}

/* slabby bench: fragmentation. Phases of growth and release, each phase in
 * its own size range, with scattered survivors; reports the final RSS (the
 * harness measures the peak).
 *
 *   fragmentation PHASES MIB_PER_PHASE KEEP_PERCENT [SEED]
 *
 * Phase p allocates MIB_PER_PHASE MiB of blocks in the range
 * [16 << (p % 7), 32 << (p % 7)) bytes (16..2048 bytes over seven phases),
 * writes them, then frees all but a random KEEP_PERCENT of them, so every
 * page keeps a few live blocks of a size the next phases do not ask for.
 * At the end half of all survivors are freed at random and the process
 * reads its own RSS. The pointer arrays are mmap'd, outside the allocator.
 * Prints its own time, the bytes still live and the final RSS. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static uint32_t next_rand(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static void* map(size_t bytes) {
  void* p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) abort();
  return p;
}

static long rss_bytes(void) {
  long pages = 0, resident = 0;
  FILE* f = fopen("/proc/self/statm", "r");
  if (f == NULL) return -1;
  if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
  fclose(f);
  return resident * sysconf(_SC_PAGESIZE);
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s PHASES MIB_PER_PHASE KEEP_PERCENT [SEED]\n", argv[0]);
    return 2;
  }
  int phases = atoi(argv[1]);
  size_t phase_bytes = (size_t)atol(argv[2]) << 20;
  unsigned keep = (unsigned)atoi(argv[3]);
  uint32_t seed = argc > 4 ? (uint32_t)atol(argv[4]) : 88172645u;
  if (phases < 1 || phase_bytes == 0 || keep > 100) return 2;

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  size_t max_blocks = phase_bytes / 16 + 1;
  void** phase = map(max_blocks * sizeof(void*));
  uint32_t* phase_sizes = map(max_blocks * sizeof(uint32_t));
  void** survivors = map((size_t)phases * max_blocks * sizeof(void*));
  uint32_t* survivor_sizes = map((size_t)phases * max_blocks * sizeof(uint32_t));
  size_t n_survivors = 0, live = 0;
  for (int p = 0; p < phases; p++) {
    size_t lo = (size_t)16 << (p % 7);
    size_t n = 0;
    for (size_t bytes = 0; bytes < phase_bytes; n++) {
      size_t size = lo + next_rand(&seed) % lo;
      phase[n] = malloc(size);
      phase_sizes[n] = (uint32_t)size;
      memset(phase[n], p, size);
      bytes += size;
    }
    for (size_t i = 0; i < n; i++) {
      if (next_rand(&seed) % 100 < keep) {
        survivors[n_survivors] = phase[i];
        survivor_sizes[n_survivors++] = phase_sizes[i];
      } else {
        free(phase[i]);
      }
    }
  }
  for (size_t i = 0; i < n_survivors; i++) {
    if (next_rand(&seed) & 1) {
      free(survivors[i]);
      survivors[i] = NULL;
    } else {
      live += survivor_sizes[i];
    }
  }
  long final_rss = rss_bytes();
  clock_gettime(CLOCK_MONOTONIC, &t1);
  for (size_t i = 0; i < n_survivors; i++) free(survivors[i]);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("seconds: %.6f\nlive_bytes: %zu\nfinal_rss_bytes: %ld\n", secs, live, final_rss);
  return 0;
}

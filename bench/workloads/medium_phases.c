/* slabby bench: medium blocks in phases, each phase one size.
 *
 *   medium_phases PHASES ROUNDS COUNT [FIRST_KIB]
 *
 * Phase k (k = 0 .. PHASES-1) uses blocks of FIRST_KIB * 2^k KiB (48 KiB by
 * default: 48, 96, 192, 384, 768 KiB for five phases). Each of its ROUNDS
 * allocates COUNT blocks, writes every page of each, and frees them all, so
 * a cache that grows with demand holds the phase's blocks between rounds.
 * When the phase ends its blocks are never asked for again: whatever a cache
 * still holds of them is memory the next phase cannot use, and shows in the
 * peak RSS (the worst pattern for caches of medium blocks that follow
 * demand; a page heap hands freed pages to any size). Prints its own time.
 * Exits non-zero if a block's bytes did not read back before its free. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s PHASES ROUNDS COUNT [FIRST_KIB]\n", argv[0]);
    return 2;
  }
  int phases = atoi(argv[1]), rounds = atoi(argv[2]);
  long count = atol(argv[3]);
  size_t first = (size_t)(argc > 4 ? atol(argv[4]) : 48) << 10;
  if (phases < 1 || phases > 16 || rounds < 1 || count < 1 || first == 0) return 2;
  long bad = 0;
  void** v = malloc((size_t)count * sizeof(void*));
  if (v == NULL) return 2;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int k = 0; k < phases; k++) {
    size_t size = first << k;
    for (int r = 0; r < rounds; r++) {
      for (long i = 0; i < count; i++) {
        v[i] = malloc(size);
        if (v[i] == NULL) {
          fprintf(stderr, "malloc(%zu) failed\n", size);
          return 2;
        }
        for (size_t off = 0; off < size; off += 4096) ((volatile char*)v[i])[off] = (char)r;
      }
      for (long i = 0; i < count; i++) {
        for (size_t off = 0; off < size; off += 4096)
          if (((volatile char*)v[i])[off] != (char)r) bad++;
        free(v[i]);
      }
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("seconds: %.6f\nops: %ld\n", secs, (long)phases * rounds * count);
  free(v);
  if (bad) fprintf(stderr, "medium_phases: %ld pages disturbed\n", bad);
  return bad ? 1 : 0;
}

/* slabby bench: C++ vector-style growth, without realloc.
 *
 *   vector_doubling FINAL_MIB ROUNDS [SEED]
 *
 * Each round a buffer starts at 16 bytes and is filled with 64-bit words,
 * one append at a time; when it is full, a buffer twice its size is
 * malloc'd, the contents memcpy'd over and the old buffer freed, as
 * std::vector does. Word k is k * golden ^ key (a key per round from the
 * seed), every word appended is written. At FINAL_MIB MiB every word is
 * checked and the buffer freed. The first and last words are also checked
 * after every copy. The blocks asked for run from 16 bytes to FINAL_MIB
 * MiB, each freed block half the size of the next. Prints its own time.
 * Exits non-zero if the contents were disturbed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const uint64_t kGolden = 0x9E3779B97F4A7C15ull;

static uint32_t next_rand(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s FINAL_MIB ROUNDS [SEED]\n", argv[0]);
    return 2;
  }
  size_t final_words = ((size_t)atol(argv[1]) << 20) / sizeof(uint64_t);
  int rounds = atoi(argv[2]);
  uint32_t seed = argc > 3 ? (uint32_t)atol(argv[3]) : 1597334677u;
  if (final_words == 0 || rounds < 1) return 2;

  long bad = 0, grows = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int r = 0; r < rounds; r++) {
    uint64_t key = ((uint64_t)next_rand(&seed) << 32) | next_rand(&seed);
    size_t cap = 16 / sizeof(uint64_t), n = 0;
    uint64_t* v = malloc(cap * sizeof(uint64_t));
    if (v == NULL) return 2;
    while (n < final_words) {
      if (n == cap) {
        uint64_t* bigger = malloc(2 * cap * sizeof(uint64_t));
        if (bigger == NULL) {
          fprintf(stderr, "malloc(%zu) failed\n", 2 * cap * sizeof(uint64_t));
          return 2;
        }
        memcpy(bigger, v, n * sizeof(uint64_t));
        free(v);
        v = bigger;
        cap *= 2;
        grows++;
        if (v[0] != key || v[n - 1] != (((uint64_t)(n - 1) * kGolden) ^ key)) bad++;
      }
      v[n] = ((uint64_t)n * kGolden) ^ key;
      n++;
    }
    for (size_t k = 0; k < n; k++)
      if (v[k] != (((uint64_t)k * kGolden) ^ key)) bad++;
    free(v);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("seconds: %.6f\ngrows: %ld\n", secs, grows);
  if (bad) fprintf(stderr, "vector_doubling: %ld words disturbed\n", bad);
  return bad ? 1 : 0;
}

// The heap profile's accuracy test program (run by run_prof_test.py under
// LD_PRELOAD with SLABBY_PROF=1). Two sites allocate blocks of the same
// spread of sizes (16 B to 3 MiB), site_a 70% of the bytes and site_b 30%,
// interleaved at random and all kept live; site_churn allocates and frees at
// once. Then:
//   dump 1 (live: site_a 70%, site_b 30%; site_churn absent)
//   site_a's blocks freed
//   dump 2 (live: site_b only; allocated since start: all three)
// Prints the bytes each site asked for, for the driver to compare, and the
// variance of the profile's estimate of them, from the sampling rule that
// telemetry/heap_profile.h documents (argv[4]: SLABBY_PROF_SAMPLE in bytes):
// a small block (up to 32 KiB) of s bytes is taken with probability
// p = min(1, 128 s / SAMPLE) / 128 and stands for s / p bytes, variance
// s^2 (1 - p) / p; a larger one counts down to sample points SAMPLE bytes
// apart on average, variance at most s * SAMPLE (the Poisson bound).
// Blocks of 512 B to 32 KiB are the estimate's noise at SAMPLE = 64 KiB: one
// call in 128 at most, each standing for up to 4 MiB.
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slabby/slabby.h"

#define MAX_BLOCKS 400000

static void* a_blocks[MAX_BLOCKS];
static void* b_blocks[MAX_BLOCKS];
static size_t na, nb;
static double sample_bytes = 65536;
static double var_a, var_b, var_churn;

static double estimate_variance(size_t n) {
  double s = (double)n;
  if (n > 32768) return s * sample_bytes;
  double p = 128.0 * s / sample_bytes;
  p = (p > 1.0 ? 1.0 : p) / 128.0;
  return s * s * (1.0 - p) / p;
}
static uint64_t rng = 88172645463325252ULL;

static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

// Sizes: mostly small, some medium, a few large, as programs do.
static size_t pick_size(void) {
  uint64_t r = next() % 1000;
  if (r < 700) return 16 + next() % 1024;           // small
  if (r < 950) return 1024 + next() % (31 * 1024);  // up to 32 KiB
  if (r < 998) return 40960 + next() % (900 * 1024);  // medium classes
  return (1u << 20) + next() % (2u << 20);           // page spans
}

__attribute__((noinline)) size_t site_a(void) {
  size_t n = pick_size();
  char* p = malloc(n);
  memset(p, 1, n < 64 ? n : 64);
  a_blocks[na++] = p;
  var_a += estimate_variance(n);
  return n;
}

__attribute__((noinline)) size_t site_b(void) {
  size_t n = pick_size();
  char* p = malloc(n);
  memset(p, 2, n < 64 ? n : 64);
  b_blocks[nb++] = p;
  var_b += estimate_variance(n);
  return n;
}

__attribute__((noinline)) size_t site_churn(void) {
  size_t n = pick_size();
  char* volatile p = malloc(n);
  p[0] = 3;
  free(p);
  var_churn += estimate_variance(n);
  return n;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: prof_program DUMP1 DUMP2 [total-MiB [sample-bytes]]\n");
    return 2;
  }
  if (argc > 4) sample_bytes = (double)strtoull(argv[4], NULL, 10);
  uint64_t target = (argc > 3 ? strtoull(argv[3], NULL, 10) : 160) << 20;
  uint64_t a = 0, b = 0, c = 0;
  while (a + b < target && na < MAX_BLOCKS && nb < MAX_BLOCKS) {
    uint64_t r = next() % 10;
    if (r < 7)
      a += site_a();
    else
      b += site_b();
    if (next() % 2 == 0) c += site_churn();
  }
  if (slabby_dump_profile(argv[1]) != SLABBY_OK) {
    fprintf(stderr, "prof_program: slabby_dump_profile(%s) failed\n", argv[1]);
    return 1;
  }
  for (size_t i = 0; i < na; ++i) free(a_blocks[i]);
  if (slabby_dump_profile(argv[2]) != SLABBY_OK) {
    fprintf(stderr, "prof_program: slabby_dump_profile(%s) failed\n", argv[2]);
    return 1;
  }
  printf("site_a %llu\nsite_b %llu\nsite_churn %llu\n", (unsigned long long)a,
         (unsigned long long)b, (unsigned long long)c);
  printf("var_a %.0f\nvar_b %.0f\nvar_churn %.0f\n", var_a, var_b, var_churn);
  // A dump on the signal SLABBY_PROF_SIGNAL names (the driver sets 12).
  raise(SIGUSR2);
  for (size_t i = 0; i < nb; ++i) free(b_blocks[i]);
  return 0;
}

/* slabby bench tool: what zeroing freed blocks costs on this machine, the
 * figures behind SLABBY_SECURE's cost (docs/security.md, "What SLABBY_SECURE
 * costs, and why it stays").
 *
 *   zero_costs [BLOCK_BYTES...]     (default: 64 512 4096)
 *
 * A program that frees blocks it barely touched (larson writes two bytes of
 * each 8..1000-byte block; glibc's thread benchmark none of its 8..4096)
 * leaves their other cache lines in memory. Each operation here picks a
 * random block of a 64 MiB pool (far above the caches), touches its first
 * byte as such a program would, then:
 *   touch       nothing more: what the default mode does with the block
 *   zero        memset of the whole block (SLABBY_ZERO=free's clearing)
 *   zero+check  that memset, and reading back every byte of the block
 *               zeroed 64 operations before, as the check on reuse does
 *               when a cache hands a block out again soon (its lines are
 *               still in the cache: the cheap case)
 *   x86-64 only:
 *   rep-stosb   the clearing by `rep stosb` instead of memset
 *   clzero      CPUs with CLZERO: the lines zeroed without being read
 *               first; weakly ordered, so not usable as is (docs/security.md)
 *   clzero+sfence  the same, made visible before the block moves on
 * Prints nanoseconds per operation, the median of 5 runs of 2 M operations. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tool_timing.h"
#if defined(__x86_64__)
#include <cpuid.h>
#endif

enum { kPoolBytes = 64 << 20, kOps = 2000000, kRuns = 5 };
enum mode { kTouch, kZero, kZeroCheck, kRepStosb, kClzero, kClzeroFence };
static const char* const kNames[] = {"touch",     "zero",   "zero+check",
                                     "rep-stosb", "clzero", "clzero+sfence"};


static int have_clzero(void) {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(0x80000008, &a, &b, &c, &d)) return 0;
  return (b & 1) != 0;
#else
  return 0;
#endif
}

static volatile uint64_t g_sink;

static double run(unsigned char* pool, size_t block, enum mode m) {
  size_t n = kPoolBytes / block;
  uint32_t s = 12345;
  uint64_t acc = 0;
  unsigned char* ring[64];
  for (int k = 0; k < 64; k++) ring[k] = pool + (size_t)k * block;
  memset(pool, 0, 64 * block);
  double t0 = tool_now();
  for (long i = 0; i < kOps; i++) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    unsigned char* p = pool + (size_t)(s % n) * block;
    acc += p[0];
    p[0] = 1;
    if (m == kZero || m == kZeroCheck) {
      memset(p, 0, block);
      __asm__ volatile("" ::"r"(p) : "memory");
    }
    if (m == kZeroCheck) {
      const unsigned char* q = ring[i % 64];
      uint64_t any = 0;
      for (size_t o = 0; o < block; o += 8) any |= *(const uint64_t*)(q + o);
      acc += any;
      ring[i % 64] = p;
    }
#if defined(__x86_64__)
    if (m == kRepStosb) {
      void* d = p;
      size_t c = block;
      __asm__ volatile("rep stosb" : "+D"(d), "+c"(c) : "a"(0) : "memory");
    }
    if (m == kClzero || m == kClzeroFence)
      for (size_t o = 0; o < block; o += 64) __asm__ volatile("clzero" ::"a"(p + o) : "memory");
    if (m == kClzeroFence) __asm__ volatile("sfence" ::: "memory");
#endif
  }
  double dt = tool_now() - t0;
  g_sink += acc;
  return dt * 1e9 / kOps;
}

int main(int argc, char** argv) {
  size_t sizes[16] = {64, 512, 4096};
  int n_sizes = 3;
  if (argc > 1) {
    n_sizes = 0;
    for (int i = 1; i < argc && n_sizes < 16; i++) {
      long v = atol(argv[i]);
      if (v < 64 || v % 64 != 0 || v > (1 << 20)) {
        fprintf(stderr, "zero_costs: block size %s: a multiple of 64 from 64 to 1048576\n",
                argv[i]);
        return 2;
      }
      sizes[n_sizes++] = (size_t)v;
    }
  }
  unsigned char* pool = aligned_alloc(4096, kPoolBytes);
  if (pool == NULL) return 1;
  memset(pool, 7, kPoolBytes);
#if defined(__x86_64__)
  int modes = have_clzero() ? 6 : 4;
#else
  int modes = 3;
#endif
  printf("%-8s", "bytes");
  for (int m = 0; m < modes; m++) printf(" %13s", kNames[m]);
  printf("   (ns per operation, median of %d)\n", kRuns);
  for (int i = 0; i < n_sizes; i++) {
    printf("%-8zu", sizes[i]);
    for (int m = 0; m < modes; m++) {
      double t[kRuns];
      for (int r = 0; r < kRuns; r++) t[r] = run(pool, sizes[i], (enum mode)m);
      printf(" %13.1f", tool_median(t, kRuns));
    }
    printf("\n");
  }
  return 0;
}

/* slabby bench tool: why the per-CPU caches keep two stacks per class
 * (docs/benchmarks.md, "Two stacks per class").
 *
 *   stack_chain [ROUNDS]      (default 5)
 *
 * Emulates the memory accesses of the per-CPU fast paths (no rseq: the
 * sections' arming store and cpu_id load are plain TLS accesses here), a
 * malloc(16)+free pair and a pair over sizes 8..1024 (bench/fastpath's
 * pair16 and mixed), with a class's cache kept as
 *   one        one stack: the free pushes the slot and cursor that the
 *              next malloc pops (slabby until 2026-12-02);
 *   two        an alloc stack that malloc pops and a free stack that free
 *              pushes, each with its own cursor word, the free stack moved
 *              onto the alloc stack when that one is empty.
 * In both the free finds the class of the block through a class map
 * indexed by the block's address, as slabby's does. Prints nanoseconds per
 * pair, the median of ROUNDS runs of 50 M pairs each. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "percpu_emulation.h"

static uint8_t g_size_class[1025];
static void* volatile g_sink;

enum { kClasses = 17, kPages = 64 };

static void sub1(uint64_t* w) {
#if defined(__x86_64__)
  __asm__ volatile("subq $1, (%0)" ::"r"(w) : "memory");
#else
  *(volatile uint64_t*)w -= 1;
#endif
}

/* One stack: cursor word per class (cur, push count above it). */
__attribute__((noinline)) static void* one_malloc(size_t size) {
  uintptr_t cls = g_size_class[size];
  char* r = arm();
  uint64_t* cur = (uint64_t*)(r + kCursors + cls * 8);
  uint16_t c = *(volatile uint16_t*)cur;
  if (c == *(uint16_t*)(r + kRanges + cls * 8)) abort();
  void* p = ((void**)r)[c - 1];
  sub1(cur);
  return p;
}
__attribute__((noinline)) static void one_free(void* p) {
  uintptr_t cls = g_class_map[((uintptr_t)p - g_base) >> 12];
  char* r = arm();
  uint64_t* cur = (uint64_t*)(r + kCursors + cls * 8);
  uint64_t w = *(volatile uint64_t*)cur;
  if ((uint16_t)w == *(uint16_t*)(r + kRanges + cls * 8 + 2)) abort();
  ((void**)r)[(uint16_t)w] = p;
  *(volatile uint64_t*)cur = w + 0x10001;
}

/* Two stacks: a pair of words per class, {acur, fcur}. */
__attribute__((noinline)) static void* two_move_over(uintptr_t cls, char* r) {
  uint64_t* pair = (uint64_t*)(r + kCursors + cls * 16);
  uint16_t a = (uint16_t)pair[0], f = (uint16_t)pair[1];
  uint16_t e = *(uint16_t*)(r + kRanges + cls * 8 + 2);
  uint16_t k = e - f, gap = f - a;
  if (k == 0) abort();
  void** slot = (void**)r;
  if (k <= gap) {
    for (uint16_t i = 0; i < k; ++i) slot[a + i] = slot[e - 1 - i];
  } else {
    memcpy(slot + a, slot + a + k, (size_t)gap * 8);
  }
  pair[1] = e;
  pair[0] = a + k - 1;
  return slot[a + k - 1];
}
__attribute__((noinline)) static void* two_malloc(size_t size) {
  uintptr_t cls = g_size_class[size];
  char* r = arm();
  uint64_t* pair = (uint64_t*)(r + kCursors + cls * 16);
  uint16_t a = *(volatile uint16_t*)pair;
  if (__builtin_expect(a == *(uint16_t*)(r + kRanges + cls * 8), 0)) return two_move_over(cls, r);
  void* p = ((void**)r)[a - 1];
  sub1(pair);
  return p;
}
__attribute__((noinline)) static void two_free(void* p) {
  uintptr_t cls = g_class_map[((uintptr_t)p - g_base) >> 12];
  char* r = arm();
  uint64_t* pair = (uint64_t*)(r + kCursors + cls * 16);
  uint16_t f = *(volatile uint16_t*)(pair + 1);
  if (f == *(volatile uint16_t*)pair) abort();
  ((void**)r)[f - 1] = p;
  sub1(pair + 1);
}

static char* g_region;

/* Classes 1..16 of 64-byte blocks, each in a page of its own; 200 slots
 * per class, 50 blocks cached on the alloc stack. */
static void setup(int two) {
  memset(g_region, 0, 4 << 20);
  for (int c = 1; c < kClasses; ++c) {
    uint16_t begin = (uint16_t)(512 + c * 256), end = begin + 200;
    ((uint16_t*)(g_region + kRanges + c * 8))[0] = begin;
    ((uint16_t*)(g_region + kRanges + c * 8))[1] = end;
    for (int i = 0; i < 50; ++i) ((void**)g_region)[begin + i] = g_region + (kPages + c) * 4096 + i * 64;
    if (two) {
      ((uint64_t*)(g_region + kCursors + c * 16))[0] = begin + 50;
      ((uint64_t*)(g_region + kCursors + c * 16))[1] = end;
    } else {
      *(uint64_t*)(g_region + kCursors + c * 8) = begin + 50;
    }
  }
}

static double run(int two, const size_t* sizes) {
  setup(two);
  const long n = 50000000;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (two) {
    for (long i = 0; i < n; i++) {
      void* p = two_malloc(sizes[i & 255]);
      g_sink = p;
      two_free(p);
    }
  } else {
    for (long i = 0; i < n; i++) {
      void* p = one_malloc(sizes[i & 255]);
      g_sink = p;
      one_free(p);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n;
}

int main(int argc, char** argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5;
  if (rounds < 1 || rounds > 101) rounds = 5;
  g_region = aligned_alloc(4096, 4 << 20);
  g_base = (uintptr_t)g_region;
  g_table[0] = g_region;
  for (int c = 1; c < kClasses; ++c) g_class_map[kPages + c] = (uint8_t)c;
  for (int s = 0; s <= 1024; s++) g_size_class[s] = (uint8_t)(s <= 16 ? 1 : (s + 63) / 64);
  size_t pair16[256], mixed[256];
  unsigned x = 12345;
  for (int j = 0; j < 256; j++) {
    x = x * 1103515245u + 12345u;
    pair16[j] = 16;
    mixed[j] = 8 + (x >> 8) % 1017;
  }
  printf("pattern   one stack   two stacks   (ns per malloc+free pair, median of %d)\n", rounds);
  const char* names[2] = {"pair16", "mixed"};
  const size_t* patterns[2] = {pair16, mixed};
  for (int w = 0; w < 2; ++w) {
    double t[2][101];
    for (int i = 0; i < rounds; ++i) /* interleaved */
      for (int two = 0; two < 2; ++two) t[two][i] = run(two, patterns[w]);
    qsort(t[0], (size_t)rounds, sizeof(double), cmp);
    qsort(t[1], (size_t)rounds, sizeof(double), cmp);
    printf("%-8s %10.2f %12.2f\n", names[w], t[0][rounds / 2], t[1][rounds / 2]);
  }
  free(g_region);
  return 0;
}

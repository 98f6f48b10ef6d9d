/* slabby bench tool: why a run of frees of different classes is slower
 * through the per-CPU caches than through a linked free list
 * (docs/benchmarks.md, "A run of frees: the slot store's late address").
 *
 *   push_chain [ROUNDS]      (default 5)
 *
 * Emulates the memory accesses of the per-CPU push (no rseq: the section's
 * arming store and cpu_id load are plain TLS accesses here), a run of 400
 * frees after each other, as a program frees a structure, with the blocks'
 * classes
 *   same       all one class;
 *   two        two classes, alternating;
 *   sixteen    sixteen classes, at random;
 * and the push written three ways:
 *   array      slabby's: the class's cursor word is loaded, the block is
 *              stored in the slot it names, the cursor word is stored back;
 *   fixed      the same, but the block stored in one word per class (not a
 *              cache: it isolates the slot store's address, which in the
 *              array comes from the cursor load);
 *   list       a linked list: the block's first word takes the old head, the
 *              head word takes the block (both addresses known at once).
 * In all three the class comes from a class map indexed by the block's
 * address, as slabby's free finds it. Prints nanoseconds per free, the
 * median of ROUNDS runs of 40 M frees each.
 *
 * Then whole bursts, array against list: 400 mallocs in the run's class
 * order (each block's first byte written), then 400 frees in the same
 * order, 100,000 times; nanoseconds per malloc or free, median of ROUNDS. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "percpu_emulation.h"

enum { kFixed = 0x400, kClasses = 17, kPages = 64, kRun = 400 };

__attribute__((noinline)) static void array_free(void* p) {
  uintptr_t cls = g_class_map[((uintptr_t)p - g_base) >> 12];
  char* r = arm();
  uint64_t* cur = (uint64_t*)(r + kCursors + cls * 8);
  uint64_t w = *(volatile uint64_t*)cur;
  if ((uint16_t)w == *(volatile uint16_t*)(r + kRanges + cls * 8 + 2)) abort();
  ((void* volatile*)r)[(uint16_t)w] = p;
  *(volatile uint64_t*)cur = w + 0x10001;
}

__attribute__((noinline)) static void fixed_free(void* p) {
  uintptr_t cls = g_class_map[((uintptr_t)p - g_base) >> 12];
  char* r = arm();
  uint64_t* cur = (uint64_t*)(r + kCursors + cls * 8);
  uint64_t w = *(volatile uint64_t*)cur;
  if ((uint16_t)w == *(volatile uint16_t*)(r + kRanges + cls * 8 + 2)) abort();
  *(void* volatile*)(r + kFixed + cls * 8) = p;
  *(volatile uint64_t*)cur = w + 0x10001;
}

__attribute__((noinline)) static void list_free(void* p) {
  uintptr_t cls = g_class_map[((uintptr_t)p - g_base) >> 12];
  char* r = arm();
  uint64_t* head = (uint64_t*)(r + kCursors + cls * 8);
  uint64_t h = *(volatile uint64_t*)head;
  if (h == 1) abort();  /* never: keeps the test the others make */
  *(volatile uint64_t*)p = h;
  *(volatile uint64_t*)head = (uintptr_t)p;
}

/* The pops that go with them, for whole bursts: slabby's (the slot under
 * the cursor, the next block prefetched) and the list's (the head, its first
 * word the new head, that block prefetched). */
__attribute__((noinline)) static void* array_malloc(uintptr_t cls) {
  char* r = arm();
  uint64_t* cur = (uint64_t*)(r + kCursors + cls * 8);
  uint16_t c = *(volatile uint16_t*)cur;
  if (c == *(volatile uint16_t*)(r + kRanges + cls * 8)) abort();
  void* p = ((void* volatile*)r)[c - 1];
  __builtin_prefetch(((void* volatile*)r)[c - 2], 1, 3);
  *(volatile uint64_t*)cur -= 1;
  return p;
}

__attribute__((noinline)) static void* list_malloc(uintptr_t cls) {
  char* r = arm();
  uint64_t* head = (uint64_t*)(r + kCursors + cls * 8);
  uint64_t h = *(volatile uint64_t*)head;
  if (h == 0) abort();
  uint64_t next = *(volatile uint64_t*)h;
  __builtin_prefetch((void*)next, 1, 3);
  *(volatile uint64_t*)head = next;
  return (void*)h;
}

static char* g_region;
static char* g_heap;

/* Class c's blocks: 64 bytes each, block i at heap page kPages + 8c + i / 64
 * (a class map entry per page). */
static void reset(int kind) {
  for (int c = 1; c < kClasses; ++c) {
    uint16_t begin = (uint16_t)(0x100 + c * 512), end = begin + 500;
    ((uint16_t*)(g_region + kRanges + c * 8))[0] = begin;
    ((uint16_t*)(g_region + kRanges + c * 8))[1] = end;
    *(uint64_t*)(g_region + kCursors + c * 8) = kind == 2 ? 0 : begin;
    ((void**)g_region)[begin - 1] = g_region; /* the pad a pop emptying the class prefetches */
  }
}

static double run(int kind, void* const* blocks) {
  void (*f)(void*) = kind == 0 ? array_free : kind == 1 ? fixed_free : list_free;
  const long runs = 100000;
  double ns = 0;
  for (long k = 0; k < runs; k++) {
    reset(kind);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < kRun; i++) f(blocks[i]);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ns += (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
  }
  return ns / (runs * (double)kRun);
}

/* Whole bursts (kind 0: array, 2: list): the run's blocks are cached first;
 * then each round pops kRun blocks in the run's class order, writes each
 * one's first byte (the program's use) and frees them in the same order. */
static double burst(int kind, void* const* blocks, const uint8_t* cls) {
  reset(kind);
  void (*f)(void*) = kind == 0 ? array_free : list_free;
  void* (*m)(uintptr_t) = kind == 0 ? array_malloc : list_malloc;
  for (int i = kRun - 1; i >= 0; i--) f(blocks[i]);
  const long rounds = 100000;
  static void* got[kRun];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long k = 0; k < rounds; k++) {
    for (int i = 0; i < kRun; i++) {
      got[i] = m(cls[i]);
      *(volatile char*)got[i] = 1;
    }
    for (int i = 0; i < kRun; i++) f(got[i]);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / (rounds * 2.0 * kRun);
}

int main(int argc, char** argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5;
  if (rounds < 1 || rounds > 101) rounds = 5;
  size_t heap_bytes = (size_t)(kPages + 8 * kClasses) << 12;
  g_region = aligned_alloc(4096, 128 << 10);
  g_heap = aligned_alloc(4096, heap_bytes);
  if (g_region == NULL || g_heap == NULL) return 1;
  memset(g_region, 0, 128 << 10);
  memset(g_heap, 0, heap_bytes);
  g_base = (uintptr_t)g_heap;
  g_table[0] = g_region;
  for (int c = 1; c < kClasses; ++c)
    for (int j = 0; j < 8; ++j) g_class_map[kPages + 8 * c + j] = (uint8_t)c;
  static void* blocks[3][kRun];
  static uint8_t classes[3][kRun];
  int used[3][kClasses] = {{0}};
  unsigned x = 12345;
  for (int i = 0; i < kRun; i++) {
    x = x * 1103515245u + 12345u;
    int cls[3] = {1, 1 + (i & 1), 1 + (int)((x >> 8) % 16)};
    for (int w = 0; w < 3; w++) {
      int n = used[w][cls[w]]++;
      classes[w][i] = (uint8_t)cls[w];
      blocks[w][i] = g_heap + (size_t)(kPages + 8 * cls[w]) * 4096 + (size_t)n * 64;
    }
  }
  printf("classes   array   fixed    list   (ns per free, runs of %d frees, median of %d)\n", kRun,
         rounds);
  const char* names[3] = {"same", "two", "sixteen"};
  for (int w = 0; w < 3; ++w) {
    double t[3][101];
    for (int i = 0; i < rounds; ++i) /* interleaved */
      for (int kind = 0; kind < 3; ++kind) t[kind][i] = run(kind, blocks[w]);
    for (int kind = 0; kind < 3; ++kind) qsort(t[kind], (size_t)rounds, sizeof(double), cmp);
    printf("%-8s %7.2f %7.2f %7.2f\n", names[w], t[0][rounds / 2], t[1][rounds / 2],
           t[2][rounds / 2]);
  }
  printf("bursts    array    list   (ns per malloc or free, %d pops then %d pushes)\n", kRun, kRun);
  for (int w = 0; w < 3; ++w) {
    double t[2][101];
    for (int i = 0; i < rounds; ++i)
      for (int kind = 0; kind < 2; ++kind) t[kind][i] = burst(kind * 2, blocks[w], classes[w]);
    for (int kind = 0; kind < 2; ++kind) qsort(t[kind], (size_t)rounds, sizeof(double), cmp);
    printf("%-8s %7.2f %7.2f\n", names[w], t[0][rounds / 2], t[1][rounds / 2]);
  }
  free(g_heap);
  free(g_region);
  return 0;
}

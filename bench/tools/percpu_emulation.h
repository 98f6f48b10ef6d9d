/* slabby bench tools: what stack_chain.c and push_chain.c share to emulate
 * the per-CPU fast paths' memory accesses without rseq: the rseq area (the
 * section's arming store and cpu_id load become plain TLS accesses), the
 * region table, the class map indexed by a block's page, and the region
 * header's offsets (ranges, then cursor words, as in slabby's region). */
#ifndef SLABBY_BENCH_PERCPU_EMULATION_H
#define SLABBY_BENCH_PERCPU_EMULATION_H

#include <stdint.h>

struct area {
  uint32_t cpu_id_start;
  int32_t cpu_id;
  uint64_t rseq_cs;
};
static __thread struct area tl_area __attribute__((tls_model("initial-exec"), aligned(32)));
static char* g_table[4];
static uint8_t g_class_map[1 << 16];
static uintptr_t g_base;

enum { kRanges = 0, kCursors = 0x200 };

/* The section's start: arm it, read the CPU, find its region. */
static char* arm(void) {
  __asm__ volatile("" ::: "memory");
  tl_area.rseq_cs = (uintptr_t)&tl_area;
  return g_table[tl_area.cpu_id];
}

/* qsort's order for the medians. */
static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

#endif

/* slabby bench tools: the clock and the median, shared by the one-file
 * tools in this folder (page_costs.c, zero_costs.c). */
#ifndef SLABBY_BENCH_TOOL_TIMING_H
#define SLABBY_BENCH_TOOL_TIMING_H

#include <stdlib.h>
#include <time.h>

/* Seconds of CLOCK_MONOTONIC. */
static inline double tool_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static inline int tool_cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

/* The median of v[0, n) (sorts v). */
static inline double tool_median(double* v, int n) {
  qsort(v, (size_t)n, sizeof(double), tool_cmp_double);
  return v[n / 2];
}

#endif

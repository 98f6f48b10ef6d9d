// Leaks from one named site, then lingers (argv[1] ms) so periodic heap
// profile dumps can happen: run_prof_test.py symbolizes its leak report
// (SLABBY_LEAK_CHECK) and counts its SLABBY_PROF_INTERVAL_MS dumps.
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void* kept[200];

__attribute__((noinline)) void leaky_site(int i) {
  kept[i] = malloc(1000 + (size_t)i);
  memset(kept[i], 1, 16);
}

int main(int argc, char** argv) {
  for (int i = 0; i < 200; ++i) leaky_site(i);
  // Some churn so the slow paths (which start the background thread) run.
  for (int i = 0; i < 100000; ++i) free(malloc(64 + (size_t)(i % 4096)));
  long ms = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
  return 0;
}

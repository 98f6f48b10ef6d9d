// A new thread's first allocation is not the block on top of its cache (cache/thread_cache.h
// cache_alloc_first). The pattern of Hoard's cache-scratch: the main thread allocates one small
// block per worker, back to back (neighbours on a cache line), and hands one to each worker,
// whose first call frees it. Were the worker's first malloc of that size to return the block it
// just freed, the workers would write to blocks sharing a line, from different CPUs.
//
// Everything runs on one CPU (sched_setaffinity), so the CPU's cache is the same for every
// thread and the block a worker frees is on top of it: the old behaviour handed that block back,
// every time. Each worker keeps its first block; the main thread then checks that no worker's
// first block shares a 64-byte line with another worker's or with a block the main thread still
// held at the time, and that the usual order holds right after: a worker that frees its second
// block gets it back from its next malloc.
// Run under the default (each thread on its bins up to the main thread and four per CPU, then
// on the CPU's cache), with SLABBY_PERCPU_THREADS=1 (every thread on the CPU's cache) and with
// SLABBY_PERCPU=0 (every thread on its bins).
//
// Raw pthreads: std::thread allocates and frees its state around the user function.
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>

#include "lifecycle_check.h"

namespace {

constexpr int kWorkers = 6;
constexpr size_t kSize = 8;  // cache-scratch's object size

struct Arg {
  void* handed;  // allocated by the main thread, freed by the worker first
  void* first;   // the worker's first block, kept
  void* second;  // its second, freed at once
  void* again;   // the next block of the size, after that free
};

void* Worker(void* p) {
  Arg* a = static_cast<Arg*>(p);
  free(a->handed);
  a->first = malloc(kSize);
  a->second = malloc(kSize);
  free(a->second);
  a->again = malloc(kSize);  // the block just freed, on top of the cache, as usual
  free(a->again);
  return nullptr;
}

uintptr_t Line(const void* p) { return reinterpret_cast<uintptr_t>(p) / 64; }

}  // namespace

int main() {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
  // Threads inherit the mask. Without it (a restricted container) the test still runs: a worker
  // that moved between its free and its malloc would see another CPU's cache, which only
  // loosens the check on the block it freed.
  bool pinned = sched_setaffinity(0, sizeof one, &one) == 0;

  Arg args[kWorkers];
  for (Arg& a : args) {
    a.handed = malloc(kSize);
    LC_CHECK(a.handed != nullptr, "malloc(%zu) failed", kSize);
  }
  for (Arg& a : args) {
    pthread_t t;
    LC_CHECK(pthread_create(&t, nullptr, Worker, &a) == 0, "pthread_create failed");
    LC_CHECK(pthread_join(t, nullptr) == 0, "pthread_join failed");
  }
  for (int i = 0; i < kWorkers; i++) {
    LC_CHECK(args[i].first != nullptr, "worker %d: malloc failed", i);
    // The blocks still live when worker i allocated: the other workers' first blocks (all kept)
    // and the blocks the main thread had not yet handed out (worker j > i frees its own later).
    for (int j = 0; j < kWorkers; j++) {
      if (j != i)
        LC_CHECK(Line(args[i].first) != Line(args[j].first),
                 "workers %d and %d got first blocks on one cache line (%p, %p)", i, j,
                 args[i].first, args[j].first);
      if (j > i)
        LC_CHECK(Line(args[i].first) != Line(args[j].handed),
                 "worker %d's first block %p shares a cache line with %p, which the main thread "
                 "still held for worker %d (worker %d had just freed %p, next to it)",
                 i, args[i].first, args[j].handed, j, i, args[i].handed);
    }
    LC_CHECK(args[i].again == args[i].second || !pinned,
             "worker %d: after it freed its block %p, the next malloc returned %p, not that block",
             i, args[i].second, args[i].again);
  }
  // The first blocks were not freed by the workers: freed here, by another thread, as any block.
  for (Arg& a : args) free(a.first);
  return 0;
}

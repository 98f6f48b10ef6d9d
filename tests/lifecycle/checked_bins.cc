// The checked bins (secure/checked_cache.h) through the whole allocator, in a
// checked mode of libslabby_malloc.so or in the hardened library (ctest sets
// the mode and SLABBY_PERCPU_THREADS=3): a thread starts on its bins, whose
// limits grow with bursts, and moves to the CPU caches once three threads
// live, its bins going back to the central pools first. Every block is
// filled and read back whole, here and in three more threads freeing each
// other's blocks across the move.
//
// The first phase is the pattern that lost blocks from a bin's count in the
// hardened library's first version: a class's first allocation fills its bin
// before any free has set the bin's limit, then frees run it full (the
// inline free's undo of a full bin) and a later move empties it by its
// count (a crash there).
#include <pthread.h>
#include <stdlib.h>

#include <atomic>
#include <vector>

#include "lifecycle_check.h"

namespace {

constexpr size_t kSizes[] = {16, 24, 200, 1000, 3000};
constexpr unsigned char kFreed = 0;

struct Block {
  unsigned char* p;
  size_t n;
  unsigned char fill;
};

Block make(size_t n, unsigned char fill) {
  auto* p = static_cast<unsigned char*>(malloc(n));
  LC_CHECK(p != nullptr, "malloc(%zu) failed", n);
  memset(p, fill, n);
  return {p, n, fill};
}

void check_and_free(Block& b) {
  for (size_t i = 0; i < b.n; ++i)
    LC_CHECK(b.p[i] == b.fill, "block %p byte %zu is %u, not %u", static_cast<void*>(b.p), i,
             b.p[i], b.fill);
  free(b.p);
  b.fill = kFreed;
}

// Bursts of each size, larger than a bin's first limit: the bins run empty
// and full in turn, and grow.
void bursts(unsigned seed, int rounds) {
  std::vector<Block> v;
  for (int r = 0; r < rounds; ++r)
    for (size_t n : kSizes) {
      unsigned count = 64 + (seed * 37 + static_cast<unsigned>(r) * 101) % 700;
      for (unsigned i = 0; i < count; ++i)
        v.push_back(make(n, static_cast<unsigned char>(1 + (seed + i) % 250)));
      for (Block& b : v) check_and_free(b);
      v.clear();
    }
}

// Blocks handed between the threads (each frees what another allocated):
// a slot holds a block's address and, in its top byte, its size's index.
constexpr unsigned kThreads = 3;
constexpr unsigned kSlots = 512;
constexpr unsigned kNumSizes = sizeof kSizes / sizeof kSizes[0];
std::atomic<uint64_t> g_slots[kSlots];
std::atomic<unsigned> g_ready{0};
std::atomic<bool> g_go{false};

void free_slot(uint64_t v, unsigned slot) {
  if (v == 0) return;
  Block b{reinterpret_cast<unsigned char*>(v & ((uint64_t{1} << 56) - 1)), kSizes[v >> 56],
          static_cast<unsigned char>(slot + 1)};
  check_and_free(b);
}

void* worker(void* arg) {
  unsigned seed = static_cast<unsigned>(reinterpret_cast<uintptr_t>(arg));
  free(malloc(8));  // this thread's first call: it lives now
  g_ready.fetch_add(1);
  while (!g_go.load()) sched_yield();
  unsigned x = seed * 2654435761u + 1;
  for (int i = 0; i < 200000; ++i) {
    x = x * 1103515245u + 12345u;
    unsigned slot = (x >> 8) % kSlots, size = (x >> 20) % kNumSizes;
    Block b = make(kSizes[size], static_cast<unsigned char>(slot + 1));
    uint64_t v = (uint64_t{size} << 56) | reinterpret_cast<uintptr_t>(b.p);
    free_slot(g_slots[slot].exchange(v), slot);
    if (i % 5000 == 0) bursts(seed + static_cast<unsigned>(i), 1);
  }
  return nullptr;
}

}  // namespace

int main() {
  // Phase 1: one thread, on its bins.
  bursts(1, 4);
  // Phase 2: three more threads; with SLABBY_PERCPU_THREADS=3 every thread
  // moves to the CPU caches at its next slow path (where rseq works).
  pthread_t t[kThreads];
  for (unsigned i = 0; i < kThreads; ++i)
    LC_CHECK(pthread_create(&t[i], nullptr, worker, reinterpret_cast<void*>(uintptr_t{i + 7})) == 0,
             "pthread_create");
  while (g_ready.load() < kThreads) sched_yield();
  bursts(2, 2);  // the main thread's move, with its grown bins full
  g_go.store(true);
  bursts(3, 4);
  for (pthread_t& th : t) LC_CHECK(pthread_join(th, nullptr) == 0, "pthread_join");
  for (unsigned s = 0; s < kSlots; ++s) free_slot(g_slots[s].exchange(0), s);
  bursts(4, 2);
  printf("checked_bins: ok\n");
  return 0;
}

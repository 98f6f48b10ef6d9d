// Threads on the smallest stack glibc allows (PTHREAD_STACK_MIN, 16 KiB on
// x86-64, 128 KiB on aarch64) make every kind of call: a thread's first call
// (its cache bound), refills and flushes of many blocks, large blocks,
// realloc growth and shrinking, aligned and zeroed blocks, frees of blocks
// other threads allocated, and the thread's exit (its cache returned).
// Programs size thread stacks to their own frames; whatever slabby puts on
// the stack on its slow paths (batches of pointers, the heap profile's and
// the leak check's stack traces) must fit beside them. An overflow is a
// SIGSEGV (glibc puts a guard page below each stack). Run in each mode by
// tests/lifecycle/CMakeLists.txt.
//
// The margin, measured with a frame of N more bytes at the top of Work
// (x86-64, 16 KiB stacks, 512-byte steps, 6 runs each, 2026-12-05): glibc's
// malloc runs with 7.5 KiB more and fails at 8; slabby, the default or the
// hardened library, runs with 3.5 KiB more, fails at 4 in one run of the
// twelve and at 4.5 always, its initial-exec TLS (3.6 KiB, carved from every thread's
// stack block, as jemalloc's 2.6 KiB is) being nearly all the difference.
// The deepest frames at 4.5 are the pool's refill under a checked realloc
// and, on the first call of each symbol, the dynamic linker's lazy binding
// in this program (_dl_runtime_resolve_xsavec saves the vector registers).
// With the heap profile or the leak check on slabby runs with 3.5 and fails
// at 4 (backtrace() and its unwinder, measured 2026-12-02). So a change that
// puts about 4 KiB more on a slow path's stack fails here.
//
// The preloaded libraries run a build of this program that is not linked
// with slabby (small_stacks_preloaded), as a user's program is: linked with
// libslabby_malloc and the hardened library preloaded, a thread carries
// both libraries' TLS (7.3 KiB) and has nothing to spare (with 256 bytes
// more it fails one run in two); that is what made the earlier hardened
// variant fail with a few bytes more of TLS a class (2026-12-05).
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle_check.h"

namespace {

constexpr int kThreads = 8;
constexpr int kKeep = 96;  // the thread's own frame stays small: 768 bytes of pointers

void* g_handoff[kThreads];  // a block from each thread, freed by the next

void* Work(void* arg) {
  uintptr_t id = reinterpret_cast<uintptr_t>(arg);
  void* keep[kKeep];
  uint32_t seed = static_cast<uint32_t>(id) * 2654435761u + 1;
  for (int round = 0; round < 30; ++round) {
    for (int i = 0; i < kKeep; ++i) {
      seed = seed * 1103515245u + 12345u;
      size_t n = (seed >> 8) % (i % 8 == 0 ? 300000 : 2000) + 1;
      keep[i] = malloc(n);
      LC_CHECK(keep[i] != nullptr, "malloc(%zu)", n);
      memset(keep[i], static_cast<int>(i), n < 256 ? n : 256);
    }
    for (int i = 0; i < kKeep; i += 3) {
      seed = seed * 1103515245u + 12345u;
      size_t n = (seed >> 8) % 3000000 + 1;
      void* q = realloc(keep[i], n);
      LC_CHECK(q != nullptr, "realloc to %zu", n);
      keep[i] = q;
    }
    for (int i = 0; i < kKeep; ++i) free(keep[i]);
    void* a = aligned_alloc(65536, 200000);
    void* c = calloc(1000, 100);
    LC_CHECK(a != nullptr && c != nullptr, "aligned_alloc or calloc");
    LC_CHECK(static_cast<char*>(c)[99999] == 0, "calloc's block not zeroed");
    free(a);
    free(c);
    // A block for the next thread; the previous thread's freed here.
    void* mine = malloc(48);
    void* theirs = __atomic_exchange_n(&g_handoff[(id + 1) % kThreads], mine, __ATOMIC_ACQ_REL);
    free(theirs);
  }
  return nullptr;
}

}  // namespace

int main() {
  // Linked or preloaded, the process must run on slabby (a preload that
  // failed would leave it on glibc's malloc, with a margin of its own).
  auto active = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "slabby_is_active"));
  LC_CHECK(active != nullptr && active() == 1, "the process is not running on slabby");
  size_t stack = PTHREAD_STACK_MIN;
  for (int generation = 0; generation < 3; ++generation) {
    pthread_t t[kThreads];
    for (int i = 0; i < kThreads; ++i) {
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      LC_CHECK(pthread_attr_setstacksize(&attr, stack) == 0, "stack size %zu refused", stack);
      LC_CHECK(pthread_create(&t[i], &attr, Work, reinterpret_cast<void*>(uintptr_t(i))) == 0,
               "pthread_create with a %zu-byte stack", stack);
      pthread_attr_destroy(&attr);
    }
    for (int i = 0; i < kThreads; ++i) pthread_join(t[i], nullptr);
  }
  for (void*& p : g_handoff) free(p);
  printf("24 threads on %zu-byte stacks: every call made, no overflow\n", stack);
  return 0;
}

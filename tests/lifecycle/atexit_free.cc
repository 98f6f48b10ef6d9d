// Allocator calls during process exit, in the order exit() runs them:
//   1. the main thread's thread_local destructors (free a block made in main);
//   2. atexit handlers and static destructors, last registered first: they free blocks made in
//      main (small, large, aligned), and malloc new ones, one of which outlives them;
//   3. ELF destructors (_dl_fini): this program's destructor frees the block an atexit handler
//      made, after the handlers, before or after slabby's own destructor.
// Meanwhile a detached thread keeps allocating and freeing until the process is gone.
// A static object constructed before main allocates (possibly the first allocation of all) and
// its destructor, the last of step 2, checks that every handler ran.
#include <pthread.h>
#include <stdlib.h>

#include <atomic>
#include <new>

#include "lifecycle_check.h"

namespace {

struct Block {
  void* p = nullptr;
  size_t n = 0;
  uint64_t seed = 0;
};

Block Make(size_t n, uint64_t seed) {
  Block b{malloc(n), n, seed};
  LC_CHECK(b.p != nullptr, "malloc(%zu)", n);
  lc_fill(b.p, n, seed);
  return b;
}

void Release(Block* b, const char* where) {
  LC_CHECK(b->p != nullptr, "%s: block missing", where);
  LC_CHECK(lc_intact(b->p, b->n, b->seed), "%s: block of %zu bytes damaged", where, b->n);
  free(b->p);
  b->p = nullptr;
}

Block g_small, g_large, g_aligned, g_made_in_handler, g_for_tls, g_for_local_static;
std::atomic<int> g_handlers_run{0};
bool g_tls_dtor_ran = false;
bool g_local_static_dtor_ran = false;

// Constructed before main, destroyed after every atexit handler registered in main.
struct EarlyStatic {
  Block b;
  EarlyStatic() { b = Make(777, 42); }
  ~EarlyStatic() {
    Release(&b, "static destructor");
    Block extra = Make(3000, 43);
    Release(&extra, "static destructor");
    LC_CHECK(g_handlers_run.load() == 3, "only %d of 3 atexit handlers ran before the static "
             "destructor", g_handlers_run.load());
    LC_CHECK(g_tls_dtor_ran, "thread_local destructor did not run");
    LC_CHECK(g_local_static_dtor_ran, "function-local static destructor did not run");
    LC_CHECK(g_made_in_handler.p != nullptr, "handler block missing");
    fputs("atexit_free: ok (handlers and static destructors done)\n", stdout);
    fflush(stdout);
  }
};
EarlyStatic g_early;

struct LocalStatic {
  ~LocalStatic() {
    Release(&g_for_local_static, "function-local static destructor");
    g_local_static_dtor_ran = true;
  }
};

struct TlsObject {
  ~TlsObject() {
    Release(&g_for_tls, "thread_local destructor");
    Block b = Make(64, 9);
    Release(&b, "thread_local destructor");
    g_tls_dtor_ran = true;
  }
};
thread_local TlsObject t_obj;

// Registered last: runs first.
void HandlerFreeSmallAndLarge() {
  Release(&g_small, "atexit handler 1");
  Release(&g_large, "atexit handler 1");
  g_made_in_handler = Make(5000, 77);  // freed by the ELF destructor
  g_handlers_run++;
}

void HandlerFreeAligned() {
  LC_CHECK(reinterpret_cast<uintptr_t>(g_aligned.p) % 4096 == 0, "aligned block moved");
  Release(&g_aligned, "atexit handler 2");
  // Plenty of allocation inside a handler.
  void* ps[100];
  for (int i = 0; i < 100; i++) {
    ps[i] = malloc(16 + i * 100);
    LC_CHECK(ps[i] != nullptr, "malloc in atexit handler");
  }
  for (int i = 0; i < 100; i++) free(ps[i]);
  void* r = realloc(nullptr, 100);
  r = realloc(r, 1 << 20);
  LC_CHECK(r != nullptr, "realloc in atexit handler");
  free(r);
  g_handlers_run++;
}

// Registered first: runs last of the handlers.
void HandlerCheckOrder() {
  LC_CHECK(g_small.p == nullptr && g_large.p == nullptr && g_aligned.p == nullptr,
           "handlers ran out of order");
  LC_CHECK(g_local_static_dtor_ran, "function-local static destroyed out of order");
  char* s = new char[50];
  delete[] s;
  g_handlers_run++;
}

__attribute__((destructor)) void ElfDestructor() {
  Release(&g_made_in_handler, "ELF destructor");
  void* p = malloc(200);
  LC_CHECK(p != nullptr, "malloc in ELF destructor");
  free(p);
}

void* Background(void*) {
  // Runs until the process exits under it.
  for (uint64_t i = 0;; i++) {
    size_t n = i % 100 == 0 ? 100000 : 8 + i % 900;
    void* p = malloc(n);
    if (p == nullptr) {
      fputs("atexit_free: malloc failed in background thread\n", stderr);
      _exit(3);
    }
    static_cast<char*>(p)[n - 1] = 1;
    free(p);
  }
  return nullptr;
}

}  // namespace

int main() {
  lc_require_slabby("atexit_free");
  LC_CHECK(atexit(HandlerCheckOrder) == 0, "atexit");
  g_small = Make(100, 1);
  g_large = Make(3 << 20, 2);
  g_aligned.n = 1000;
  g_aligned.seed = 3;
  g_aligned.p = aligned_alloc(4096, 4096);
  LC_CHECK(g_aligned.p != nullptr, "aligned_alloc");
  lc_fill(g_aligned.p, g_aligned.n, g_aligned.seed);
  g_for_tls = Make(250, 4);
  g_for_local_static = Make(12345, 5);
  static LocalStatic local_static;  // destroyed between the handlers registered around it
  (void)local_static;
  LC_CHECK(atexit(HandlerFreeAligned) == 0, "atexit");
  LC_CHECK(atexit(HandlerFreeSmallAndLarge) == 0, "atexit");
  TlsObject* volatile tls = &t_obj;  // odr-use: constructs it and registers its destructor
  (void)tls;

  pthread_t t;
  LC_CHECK(pthread_create(&t, nullptr, Background, nullptr) == 0, "pthread_create");
  pthread_detach(t);
  usleep(20000);
  return 0;
}

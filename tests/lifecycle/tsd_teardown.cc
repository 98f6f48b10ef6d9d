// Allocator calls during thread teardown, after slabby may already have torn down the thread's
// cache:
//   - pthread keys created AFTER the first malloc (so their destructors run after any key slabby
//     created at init), whose destructors check and free their value, malloc and free, and
//     re-arm the key once (glibc then runs a second destructor round);
//   - a key whose value is not heap memory, so the thread's only allocator calls happen inside
//     its destructor;
//   - a thread_local object whose destructor frees a block and mallocs/frees more.
// glibc runs thread_local destructors first, then key destructors in key order, up to
// PTHREAD_DESTRUCTOR_ITERATIONS rounds.
#include <pthread.h>
#include <stdlib.h>

#include <atomic>

#include "lifecycle_check.h"

namespace {

constexpr int kThreads = 400;
constexpr int kConcurrent = 4;
constexpr size_t kBlock = 300;

pthread_key_t g_key_heap;   // value: a malloc'd block
pthread_key_t g_key_plain;  // value: a non-heap marker
std::atomic<int> g_heap_dtor_first{0};
std::atomic<int> g_heap_dtor_second{0};
std::atomic<int> g_plain_dtor{0};
std::atomic<int> g_tls_dtor{0};
std::atomic<int> g_errors{0};

int g_marker;

struct Value {
  uint64_t round;
  uint64_t seed;
  // followed by payload
};

void* NewValue(uint64_t round, uint64_t seed) {
  Value* v = static_cast<Value*>(malloc(kBlock));
  if (v == nullptr) return nullptr;
  v->round = round;
  v->seed = seed;
  lc_fill(v + 1, kBlock - sizeof(Value), seed);
  return v;
}

bool ValueIntact(const void* p) {
  const Value* v = static_cast<const Value*>(p);
  return lc_intact(v + 1, kBlock - sizeof(Value), v->seed);
}

// Allocates, checks and frees a few blocks (some large).
void Churn(uint64_t seed) {
  void* ps[8];
  for (int i = 0; i < 8; i++) {
    size_t n = i == 7 ? 150000 : size_t{32} << i;
    ps[i] = malloc(n);
    if (ps[i] == nullptr) {
      g_errors++;
      return;
    }
    lc_fill(ps[i], 32, seed + i);
  }
  for (int i = 0; i < 8; i++) {
    if (!lc_intact(ps[i], 32, seed + i)) g_errors++;
    free(ps[i]);
  }
}

void HeapKeyDtor(void* p) {
  Value* v = static_cast<Value*>(p);
  if (!ValueIntact(v)) g_errors++;
  uint64_t round = v->round, seed = v->seed;
  free(v);
  Churn(seed);
  if (round == 0) {
    g_heap_dtor_first++;
    void* again = NewValue(1, seed + 1);  // re-arm: glibc calls this destructor once more
    if (again == nullptr || pthread_setspecific(g_key_heap, again) != 0) g_errors++;
  } else {
    g_heap_dtor_second++;
  }
}

void PlainKeyDtor(void* p) {
  if (p != &g_marker) g_errors++;
  Churn(reinterpret_cast<uintptr_t>(p));
  void* q = calloc(10, 100);
  if (q == nullptr || static_cast<char*>(q)[999] != 0) g_errors++;
  free(q);
  g_plain_dtor++;
}

struct TlsObject {
  void* block = nullptr;
  uint64_t seed = 0;
  ~TlsObject() {
    if (block == nullptr || !lc_intact(block, 1000, seed)) g_errors++;
    free(block);
    Churn(seed * 3);
    void* r = realloc(nullptr, 5000);
    r = realloc(r, 100);
    free(r);
    g_tls_dtor++;
  }
};

thread_local TlsObject t_obj;

void* FullThread(void* arg) {
  uint64_t seed = reinterpret_cast<uintptr_t>(arg);
  t_obj.block = malloc(1000);
  t_obj.seed = seed;
  lc_fill(t_obj.block, 1000, seed);
  void* v = NewValue(0, seed);
  if (v == nullptr || pthread_setspecific(g_key_heap, v) != 0) g_errors++;
  if (pthread_setspecific(g_key_plain, &g_marker) != 0) g_errors++;
  Churn(seed);
  return nullptr;
}

// No allocator call at all before teardown: the first one is in PlainKeyDtor.
void* TeardownOnlyThread(void*) {
  if (pthread_setspecific(g_key_plain, &g_marker) != 0) g_errors++;
  return nullptr;
}

}  // namespace

int main() {
  lc_require_slabby("tsd_teardown");
  // The first malloc happens before the keys exist.
  void* first = malloc(64);
  LC_CHECK(first != nullptr, "malloc");
  LC_CHECK(pthread_key_create(&g_key_heap, HeapKeyDtor) == 0, "pthread_key_create");
  LC_CHECK(pthread_key_create(&g_key_plain, PlainKeyDtor) == 0, "pthread_key_create");
  free(first);

  int full = 0, teardown_only = 0;
  for (int base = 0; base < kThreads; base += kConcurrent) {
    pthread_t ts[kConcurrent];
    for (int i = 0; i < kConcurrent; i++) {
      int id = base + i;
      bool only = id % 4 == 3;
      (only ? teardown_only : full)++;
      LC_CHECK(pthread_create(&ts[i], nullptr, only ? TeardownOnlyThread : FullThread,
                              reinterpret_cast<void*>(uintptr_t(id + 1))) == 0,
               "pthread_create");
    }
    for (int i = 0; i < kConcurrent; i++) LC_CHECK(pthread_join(ts[i], nullptr) == 0, "join");
  }
  LC_CHECK(g_errors.load() == 0, "%d errors in destructors", g_errors.load());
  LC_CHECK(g_tls_dtor.load() == full, "thread_local destructors: %d of %d", g_tls_dtor.load(),
           full);
  LC_CHECK(g_heap_dtor_first.load() == full, "key destructor first round: %d of %d",
           g_heap_dtor_first.load(), full);
  LC_CHECK(g_heap_dtor_second.load() == full, "key destructor second round: %d of %d",
           g_heap_dtor_second.load(), full);
  LC_CHECK(g_plain_dtor.load() == full + teardown_only, "plain key destructor: %d of %d",
           g_plain_dtor.load(), full + teardown_only);
  void* p = malloc(123);
  LC_CHECK(p != nullptr, "malloc after the loop");
  free(p);
  printf("tsd_teardown: ok, %d threads\n", kThreads);
  return 0;
}

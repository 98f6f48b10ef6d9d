// Threads whose very first allocator call is not an allocation: free() of a block another thread
// malloc'd, free(NULL), realloc/malloc_usable_size of another thread's block, operator delete,
// and a thread that frees one block and exits without any other allocator call. slabby must set
// up (or not need) its per-thread state on these paths.
//
// Raw pthreads are used (std::thread allocates and frees its state in the new thread around the
// user function, which would make an allocation the first call).
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

#include <new>

#include "lifecycle_check.h"

namespace {

constexpr int kRounds = 100;

struct Arg {
  int variant;
  void* block;  // made by another thread
  size_t size;
  uint64_t seed;
  int error;  // 0 = ok, else a step number
};

// After the first call: the thread's allocator must work normally.
int Exercise(uint64_t seed) {
  void* ps[20];
  for (int i = 0; i < 20; i++) {
    size_t n = i == 19 ? 100000 : 1 + i * 53;
    ps[i] = malloc(n);
    if (ps[i] == nullptr) return 100;
    lc_fill(ps[i], n < 64 ? n : 64, seed + i);
  }
  for (int i = 0; i < 20; i++) {
    size_t n = i == 19 ? 100000 : 1 + i * 53;
    if (!lc_intact(ps[i], n < 64 ? n : 64, seed + i)) return 101;
    free(ps[i]);
  }
  return 0;
}

void* Thread(void* p) {
  Arg* a = static_cast<Arg*>(p);
  switch (a->variant) {
    case 0:  // first call: free of a foreign-thread block
      if (!lc_intact(a->block, a->size, a->seed)) a->error = 1;
      free(a->block);
      break;
    case 1:  // first call: free(NULL)
      free(nullptr);
      break;
    case 2: {  // first call: realloc of a foreign-thread block
      void* q = realloc(a->block, a->size * 3);
      if (q == nullptr || !lc_intact(q, a->size, a->seed)) {
        a->error = 2;
        break;
      }
      free(q);
      break;
    }
    case 3:  // first call: malloc_usable_size of a foreign-thread block
      if (malloc_usable_size(a->block) < a->size) a->error = 3;
      free(a->block);
      break;
    case 4:  // first call: operator delete (sized) of a block new'd by another thread
      if (!lc_intact(a->block, a->size, a->seed)) a->error = 4;
      ::operator delete(a->block, a->size);
      break;
    case 5:  // free of a foreign block, then exit with no other allocator call
      free(a->block);
      return nullptr;
    case 6:  // first call: free of a large (page-span) block from another thread
      if (!lc_intact(a->block, 4096, a->seed)) a->error = 6;
      free(a->block);
      break;
    case 7:  // first call: free of an over-aligned block from another thread
      if (!lc_intact(a->block, a->size, a->seed)) a->error = 7;
      free(a->block);
      break;
  }
  if (a->error == 0) a->error = Exercise(a->seed);
  return nullptr;
}

constexpr int kVariants = 8;

void* MakeBlock(int variant, size_t* size, uint64_t seed) {
  void* p = nullptr;
  switch (variant) {
    case 1:
      *size = 0;
      return nullptr;
    case 4:
      *size = 72;
      p = ::operator new(*size);
      break;
    case 6:
      *size = 3 << 20;
      p = malloc(*size);
      lc_fill(p, 4096, seed);
      return p;
    case 7:
      *size = 200;
      p = aligned_alloc(4096, 4096);
      break;
    default:
      *size = 40 + variant * 10;
      p = malloc(*size);
  }
  LC_CHECK(p != nullptr, "allocation for variant %d", variant);
  lc_fill(p, *size, seed);
  return p;
}

// A block made by a thread that has exited before the consumer thread starts.
void* Maker(void* p) {
  Arg* a = static_cast<Arg*>(p);
  a->block = MakeBlock(a->variant, &a->size, a->seed);
  return nullptr;
}

}  // namespace

int main() {
  lc_require_slabby("first_call_free");
  for (int round = 0; round < kRounds; round++) {
    for (int v = 0; v < kVariants; v++) {
      Arg a{v, nullptr, 0, static_cast<uint64_t>(round * 16 + v), 0};
      pthread_t t;
      if (round % 2 == 0) {
        a.block = MakeBlock(v, &a.size, a.seed);  // made by main
      } else {
        LC_CHECK(pthread_create(&t, nullptr, Maker, &a) == 0, "pthread_create");
        LC_CHECK(pthread_join(t, nullptr) == 0, "pthread_join");
      }
      LC_CHECK(pthread_create(&t, nullptr, Thread, &a) == 0, "pthread_create");
      LC_CHECK(pthread_join(t, nullptr) == 0, "pthread_join");
      LC_CHECK(a.error == 0, "round %d variant %d failed at step %d", round, v, a.error);
    }
  }
  // Several first-call-free threads at once, all freeing main's blocks concurrently.
  constexpr int kParallel = 16;
  Arg args[kParallel];
  pthread_t ts[kParallel];
  for (int i = 0; i < kParallel; i++) {
    args[i] = Arg{i % 2 == 0 ? 0 : 5, nullptr, 0, static_cast<uint64_t>(5000 + i), 0};
    args[i].block = MakeBlock(args[i].variant, &args[i].size, args[i].seed);
  }
  for (int i = 0; i < kParallel; i++) {
    LC_CHECK(pthread_create(&ts[i], nullptr, Thread, &args[i]) == 0, "pthread_create");
  }
  for (int i = 0; i < kParallel; i++) {
    LC_CHECK(pthread_join(ts[i], nullptr) == 0, "pthread_join");
    LC_CHECK(args[i].error == 0, "parallel thread %d failed at step %d", i, args[i].error);
  }
  LC_CHECK(Exercise(99) == 0, "main thread allocator broken afterwards");
  printf("first_call_free: ok\n");
  return 0;
}

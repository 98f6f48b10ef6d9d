// Usage: dlopen_ctor <dlopen_ctor_lib.so> <deepbind_lib.so>
//
// 1. dlopen()s a library whose ELF constructor mallocs a block and whose destructor frees it;
//    the program checks the block, mixes allocations and frees across the library boundary, and
//    dlclose()s it, 30 times over.
// 2. dlopen()s a library with RTLD_DEEPBIND: its malloc binds to glibc's, so the blocks it returns
//    are foreign to slabby. The program frees, reallocs and sizes them with its own (slabby's)
//    functions: slabby must route them to glibc.
#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>

#include "lifecycle_check.h"

namespace {

template <typename Fn>
Fn Sym(void* handle, const char* name) {
  void* s = dlsym(handle, name);
  LC_CHECK(s != nullptr, "dlsym(%s): %s", name, dlerror());
  return reinterpret_cast<Fn>(s);
}

void CtorLibrary(const char* path) {
  for (int round = 0; round < 30; round++) {
    void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    LC_CHECK(h != nullptr, "dlopen(%s): %s", path, dlerror());
    auto block = Sym<void* (*)()>(h, "ctor_lib_block");
    auto block_size = Sym<size_t (*)()>(h, "ctor_lib_block_size");
    auto intact = Sym<int (*)()>(h, "ctor_lib_block_intact");
    auto lib_alloc = Sym<void* (*)(size_t)>(h, "ctor_lib_alloc");
    auto lib_free = Sym<void (*)(void*)>(h, "ctor_lib_free");
    auto lib_realloc = Sym<void* (*)(void*, size_t)>(h, "ctor_lib_realloc");

    void* b = block();
    LC_CHECK(b != nullptr, "the library constructor's malloc failed");
    LC_CHECK(malloc_usable_size(b) >= block_size(), "usable size of the constructor's block");
    LC_CHECK(intact(), "constructor's block damaged");

    // The library's malloc is slabby's (global scope).
    slabby_stats s0 = lc_stats();
    void* p = lib_alloc(100);
    slabby_stats s1 = lc_stats();
    LC_CHECK(p != nullptr, "library malloc");
    LC_CHECK(s1.total_allocations == s0.total_allocations + 1,
             "the library's malloc did not go through slabby");
    lc_fill(p, 100, round);
    void* q = malloc(300);  // program block, grown and freed by the library
    LC_CHECK(q != nullptr, "malloc");
    lc_fill(q, 300, round + 1);
    q = lib_realloc(q, 90000);
    LC_CHECK(q != nullptr && lc_intact(q, 300, round + 1), "library realloc of a program block");
    lib_free(q);
    LC_CHECK(lc_intact(p, 100, round), "library block damaged");
    free(p);  // library block freed by the program

    // Allocations live across dlclose: made by the library, freed after it is gone.
    void* survivor = lib_alloc(5000);
    LC_CHECK(survivor != nullptr, "library malloc");
    lc_fill(survivor, 5000, round + 2);
    LC_CHECK(intact(), "constructor's block damaged");
    LC_CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());
    LC_CHECK(lc_intact(survivor, 5000, round + 2), "block outlived its library damaged");
    free(survivor);
  }
}

void DeepbindLibrary(const char* path) {
  void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  LC_CHECK(h != nullptr, "dlopen(%s, RTLD_DEEPBIND): %s", path, dlerror());
  auto deep_alloc = Sym<void* (*)(size_t)>(h, "deep_alloc");
  auto deep_calloc = Sym<void* (*)(size_t, size_t)>(h, "deep_calloc");
  auto deep_malloc_address = Sym<void* (*)()>(h, "deep_malloc_address");
  void* global_malloc = dlsym(RTLD_DEFAULT, "malloc");
  LC_CHECK(global_malloc != nullptr, "dlsym(malloc)");
  LC_CHECK(deep_malloc_address() != global_malloc,
           "RTLD_DEEPBIND did not bind the library's malloc to glibc; the test premise fails");

  const size_t sizes[] = {16, 100, 5000, 200000, 4 << 20};
  for (size_t n : sizes) {
    void* p = deep_alloc(n);
    LC_CHECK(p != nullptr, "glibc malloc(%zu)", n);
    LC_CHECK(malloc_usable_size(p) >= n, "malloc_usable_size of a glibc block of %zu", n);
    lc_fill(p, n, n);
    slabby_stats s0 = lc_stats();
    free(p);
    slabby_stats s1 = lc_stats();
    LC_CHECK(s1.foreign_frees == s0.foreign_frees + 1,
             "free of a glibc block of %zu was not counted as foreign", n);
    LC_CHECK(s1.total_deallocations == s0.total_deallocations,
             "free of a glibc block was counted as a slabby free");
  }
  for (size_t n : sizes) {
    void* p = deep_alloc(n);
    LC_CHECK(p != nullptr, "glibc malloc");
    lc_fill(p, n, n + 1);
    void* q = realloc(p, n * 2 + 10);
    LC_CHECK(q != nullptr && lc_intact(q, n, n + 1), "realloc of a glibc block of %zu", n);
    LC_CHECK(malloc_usable_size(q) >= n * 2 + 10, "usable size after realloc");
    free(q);
    p = deep_alloc(n);
    lc_fill(p, n, n + 2);
    q = realloc(p, n / 2 + 1);  // shrink
    LC_CHECK(q != nullptr && lc_intact(q, n / 2 + 1, n + 2), "shrinking realloc of a glibc block");
    free(q);
  }
  void* z = deep_calloc(100, 100);
  LC_CHECK(z != nullptr, "glibc calloc");
  free(z);
  LC_CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());
}

}  // namespace

int main(int argc, char** argv) {
  LC_CHECK(argc == 3, "usage: %s <dlopen_ctor_lib.so> <deepbind_lib.so>", argv[0]);
  lc_require_slabby("dlopen_ctor");
  CtorLibrary(argv[1]);
  DeepbindLibrary(argv[2]);
  printf("dlopen_ctor: ok\n");
  return 0;
}

// One memory bug per mode, for tests/security/security_test.py. Built -O0
// -fno-builtin so the compiler keeps every bug as written. Each mode prints
// "survived" if the bug went unnoticed; with the matching SLABBY_* check on,
// the process dies first with one "slabby: ..." line.
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

static volatile char sink;

static char* alloc(size_t n) { return static_cast<char*>(malloc(n)); }

// C23's free_sized, looked up at run time: glibc has it from 2.43 (Debian
// 12's does not), and under LD_PRELOAD it must be slabby's.
static void (*c23_free_sized())(void*, size_t) {
  auto fs = reinterpret_cast<void (*)(void*, size_t)>(dlsym(RTLD_DEFAULT, "free_sized"));
  if (fs == nullptr) {
    printf("free_sized not found\n");
    exit(3);
  }
  return fs;
}

static int run(const char* mode) {
  if (!strcmp(mode, "double_free_small")) {
    char* p = alloc(64);
    free(p);
    free(p);
  } else if (!strcmp(mode, "double_free_large")) {
    char* p = alloc(100000);
    free(p);
    free(p);
  } else if (!strcmp(mode, "double_free_delayed")) {
    // Other frees in between push the block out of the thread's cache.
    char* others[2000];
    for (int i = 0; i < 2000; ++i) others[i] = alloc(64);
    char* p = alloc(64);
    free(p);
    for (int i = 0; i < 2000; ++i) free(others[i]);
    free(p);
  } else if (!strcmp(mode, "overflow_1_small") || !strcmp(mode, "overflow_8_small") ||
             !strcmp(mode, "overflow_1_large") || !strcmp(mode, "overflow_8_large")) {
    bool large = strstr(mode, "large") != nullptr;
    int by = strstr(mode, "_8_") != nullptr ? 8 : 1;
    char* p = alloc(large ? 100000 : 40);
    size_t n = malloc_usable_size(p);
    for (int i = 0; i < by; ++i) p[n + i] = 'x';
    free(p);
  } else if (!strcmp(mode, "overflow_realloc_grown") || !strcmp(mode, "overflow_realloc_shrunk") ||
             !strcmp(mode, "overflow_realloc_kept")) {
    // A large block resized by realloc: 3 MiB grown to 5 MiB, then shrunk to 2 MiB (the checked
    // realloc moves it) or to 3 MiB (more than half: kept). One byte past the usable size of
    // the result is past the block, whatever realloc did: on its guard page or its canary.
    const size_t M = size_t{1} << 20;
    char* p = alloc(3 * M);
    memset(p, 'a', 3 * M);
    p = static_cast<char*>(realloc(p, 5 * M));
    if (strstr(mode, "shrunk")) p = static_cast<char*>(realloc(p, 2 * M));
    if (strstr(mode, "kept")) p = static_cast<char*>(realloc(p, 3 * M));
    size_t n = malloc_usable_size(p);
    if (p[0] != 'a' || p[3 * M / 2] != 'a') printf("contents lost\n");
    p[n] = 'x';
    free(p);
  } else if (!strcmp(mode, "write_after_free_medium")) {
    // 100 KB: a medium size class block in the default mode, a page span in the checked ones.
    char* p = alloc(100000);
    memset(p, 'a', 100000);
    free(p);
    p[10] = 1;
    // Reuse: the same size again, then push it out of any quarantine (SLABBY_QUARANTINE=256K).
    char* q = alloc(100000);
    for (int i = 0; i < 4; ++i) free(alloc(200000));
    printf("reused %d\n", q == p);
    free(q);
  } else if (!strcmp(mode, "write_after_free_sparse")) {
    // A big block used only at its start: freed, its pages untouched are
    // not written (secure/checked_large.cc), and the first large block freed
    // goes back to the OS; the write faults a page in, and must be found.
    char* p = alloc(4 << 20);
    memset(p, 'a', 8192);
    free(p);
    p[(1 << 20) + 10] = 1;
    char* q = alloc(4 << 20);
    printf("reused %d\n", q == p);
    free(q);
  } else if (!strcmp(mode, "write_after_free_realloced")) {
    // The block a growing realloc left behind is freed like any other. A
    // block after it, so that it cannot grow in place.
    char* p = alloc(100000);
    char* after = alloc(100000);
    printf("after %d\n", after > p && after < p + 200000);
    memset(p, 'a', 100000);
    char* q = static_cast<char*>(realloc(p, 300000));
    if (q == p) printf("not moved\n");
    p[10] = 1;
    for (int i = 0; i < 4; ++i) free(alloc(200000));
    free(q);
    free(after);
  } else if (!strcmp(mode, "write_after_free_small")) {
    char* p = alloc(64);
    free(p);
    p[10] = 1;
    char* q = alloc(64);
    // With a quarantine the block is still held: push it out.
    for (int i = 0; i < 64; ++i) free(alloc(64));
    printf("reused %d\n", q == p);
  } else if (!strcmp(mode, "write_after_free_large")) {
    char* p = alloc(100000);
    memset(p, 'a', 100000);
    free(p);
    p[10] = 1;
    // Push it out of the quarantine (SLABBY_QUARANTINE=256K).
    for (int i = 0; i < 4; ++i) free(alloc(200000));
  } else if (!strcmp(mode, "corrupt_free_list")) {
    // A write after free over the link word of a block waiting in the
    // thread's free list: the link must be detected, never followed.
    char* q = alloc(64);
    char* p = alloc(64);
    free(q);
    free(p);
    memset(p, 0x41, 8);
    sink = *alloc(64);
    sink = *alloc(64);
  } else if (!strcmp(mode, "free_interior")) {
    char* p = alloc(64);
    free(p + 16);
  } else if (!strcmp(mode, "free_unaligned")) {
    char* p = alloc(64);
    free(p + 3);
  } else if (!strcmp(mode, "free_never_used")) {
    // With SLABBY_THREAD_CACHE_BYTES=0 blocks are carved one by one: the
    // block after the newest one was never handed out.
    char* p = alloc(3000);
    size_t block = malloc_usable_size(p) + 8;
    free(p + block);
  } else if (!strcmp(mode, "realloc_freed")) {
    char* p = alloc(64);
    free(p);
    p = static_cast<char*>(realloc(p, 128));
    sink = p[0];
  } else if (!strcmp(mode, "sized_delete_mismatch")) {
    void* p = ::operator new(64);
    ::operator delete(p, 200);
  } else if (!strcmp(mode, "free_sized_mismatch")) {
    char* p = alloc(64);
    c23_free_sized()(p, 200);
  } else if (!strcmp(mode, "free_sized_exact")) {
    // Every block of malloc, calloc and realloc freed by free_sized with the
    // size it was asked with: no report in any mode.
    void (*fs)(void*, size_t) = c23_free_sized();
    int freed = 0;
    for (size_t n = 0; n <= 70000; n += (n < 1100 ? 1 : 997)) {
      fs(malloc(n), n), ++freed;
      fs(calloc(3, n), 3 * n), ++freed;
      void* q = realloc(malloc(n + 1), n + 1 + n / 3);  // grown
      fs(q, n + 1 + n / 3), ++freed;
      q = realloc(malloc(2 * n + 1), n + 1);  // shrunk
      fs(q, n + 1), ++freed;
    }
    fs(nullptr, 10);
    printf("freed %d\n", freed);
    return 0;
  } else if (!strcmp(mode, "calloc_overflow")) {
    errno = 0;
    void* p = calloc(SIZE_MAX / 2, 4);
    printf("calloc %s %s\n", p ? "non-null" : "NULL", errno == ENOMEM ? "ENOMEM" : "other");
    return 0;
  } else if (!strcmp(mode, "huge_malloc")) {
    errno = 0;
    void* p = malloc(SIZE_MAX - 4096);
    printf("malloc %s %s\n", p ? "non-null" : "NULL", errno == ENOMEM ? "ENOMEM" : "other");
    return 0;
  } else if (!strcmp(mode, "zero_on_free")) {
    // Freed bytes read back as zero (SLABBY_ZERO=free); the reused block is
    // zero as a whole.
    char* p = alloc(200);
    size_t n = malloc_usable_size(p);
    memset(p, 0xab, n);
    free(p);
    size_t nonzero = 0;
    for (size_t i = 16; i + 8 < n; ++i) nonzero += p[i] != 0;
    char* q = alloc(200);
    size_t nonzero_reused = 0;
    for (size_t i = 0; i < n; ++i) nonzero_reused += q[i] != 0;
    printf("reused %d freed-nonzero %zu reused-nonzero %zu\n", q == p, nonzero, nonzero_reused);
    return 0;
  } else if (!strcmp(mode, "zero_on_alloc")) {
    // Dirty blocks of every small class come back zero (SLABBY_ZERO=alloc).
    size_t nonzero = 0;
    for (size_t size = 16; size <= 32768; size += size / 4) {
      char* p = alloc(size);
      memset(p, 0xcd, malloc_usable_size(p));
      free(p);
      char* q = alloc(size);
      for (size_t i = 0; i < malloc_usable_size(q); ++i) nonzero += q[i] != 0;
      free(q);
    }
    printf("nonzero %zu\n", nonzero);
    return 0;
  } else if (!strcmp(mode, "zero_after_realloc_growth")) {
    // A large block grown by realloc over recycled dirty memory: the bytes past the old size
    // read zero with SLABBY_ZERO=alloc (the default mode may grow it in place over the dirty
    // pages freed right after it, which are not zeroed).
    const size_t M = size_t{1} << 20;
    char* p = alloc(3 * M);
    memset(p, 'a', 3 * M);
    // A freed large block goes back to the OS until the program is seen reusing one: reuse
    // one first, so the next is kept dirty right after p.
    free(alloc(8 * M));
    char* dirty = alloc(8 * M);
    memset(dirty, 0xcd, 8 * M);
    free(dirty);
    p = static_cast<char*>(realloc(p, 6 * M));
    size_t lost = 0, nonzero = 0;
    for (size_t i = 0; i < 3 * M; ++i) lost += p[i] != 'a';
    for (size_t i = 3 * M; i < 6 * M; ++i) nonzero += p[i] != 0;
    printf("lost %zu nonzero %zu\n", lost, nonzero);
    free(p);
    return 0;
  } else if (!strcmp(mode, "calloc_recycled_large")) {
    // calloc of a recycled dirty block of every size above 32 KiB is zero, in every mode.
    size_t nonzero = 0;
    const size_t sizes[] = {40000, 100000, 1 << 20, (1 << 20) + 1, 3 << 20, 16 << 20};
    for (size_t n : sizes) {
      for (int round = 0; round < 2; ++round) {
        char* p = alloc(n);
        memset(p, 0xcd, malloc_usable_size(p));
        free(p);
        char* q = static_cast<char*>(round == 0 ? calloc(1, n) : calloc(n, 1));
        for (size_t i = 0; i < n; ++i) nonzero += q[i] != 0;
        memset(q, 0xcd, n);
        free(q);
      }
    }
    printf("nonzero %zu\n", nonzero);
    return 0;
  } else if (!strcmp(mode, "counted")) {
    // No bug: 100000 malloc(40)+free pairs (the CPU cache's hits, on the
    // inline paths), then 1000 blocks of 40 bytes kept live to the end. The
    // 48-byte class's figures in the exit report must be these.
    for (int i = 0; i < 100000; ++i) {
      char* p = alloc(40);
      p[0] = 1;
      free(p);
    }
    static char* kept[1000];
    for (int i = 0; i < 1000; ++i) kept[i] = alloc(40);
    sink = kept[999][0];
    printf("kept 1000\n");
    return 0;
  } else if (!strcmp(mode, "leak")) {
    // Three blocks never freed, from one site; and one grown by realloc
    // (in place or moved), traced at its new size.
    for (int i = 0; i < 3; ++i) sink = *alloc(1000 + i);
    char* grown = static_cast<char*>(realloc(alloc(100000), 200000));
    sink = *grown;
    return 0;
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  printf("survived\n");
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s MODE\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, nullptr, _IONBF, 0);
  // A freed small block waits in the cache of the CPU that freed it: the
  // modes that find a write after free when the block is handed out again
  // need the next malloc on the same CPU. Stay on one (best effort).
  int cpu = sched_getcpu();
  if (cpu >= 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(static_cast<unsigned>(cpu), &one);
    sched_setaffinity(0, sizeof(one), &one);
  }
  return run(argv[1]);
}

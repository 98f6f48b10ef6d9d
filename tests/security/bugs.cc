// One memory bug per mode, for tests/security/security_test.py. Built -O0
// -fno-builtin so the compiler keeps every bug as written. Each mode prints
// "survived" if the bug went unnoticed; with the matching SLABBY_* check on,
// the process dies first with one "slabby: ..." line.
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

static volatile char sink;

static char* alloc(size_t n) { return static_cast<char*>(malloc(n)); }

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
  } else if (!strcmp(mode, "leak")) {
    // Three blocks never freed, from one site.
    for (int i = 0; i < 3; ++i) sink = *alloc(1000 + i);
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
  return run(argv[1]);
}

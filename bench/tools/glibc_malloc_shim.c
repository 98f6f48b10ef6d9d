/* slabby bench helper: an LD_PRELOAD library that hands every malloc call
 * to glibc's allocator (__libc_malloc and friends).
 *
 * For programs linked with their own allocator, such as Debian's
 * redis-server, which is linked with libjemalloc.so.2: without a preload
 * the "glibc" run would measure jemalloc. Preloaded, this library's malloc
 * comes first in symbol lookup, as slabby's does. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);
extern void __libc_free(void*);

void* malloc(size_t n) { return __libc_malloc(n); }
void* calloc(size_t n, size_t size) { return __libc_calloc(n, size); }
void* realloc(void* p, size_t n) { return __libc_realloc(p, n); }
void free(void* p) { __libc_free(p); }
void* memalign(size_t align, size_t n) { return __libc_memalign(align, n); }
void* aligned_alloc(size_t align, size_t n) { return __libc_memalign(align, n); }
void* valloc(size_t n) { return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), n); }

int posix_memalign(void** out, size_t align, size_t n) {
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  void* p = __libc_memalign(align, n);
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}

/* glibc's own malloc_usable_size, looked up in libc.so.6 itself (the next
 * definition in the global scope may be the program's allocator's). */
size_t malloc_usable_size(void* p) {
  static size_t (*libc_usable)(void*);
  if (libc_usable == NULL) {
    void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    if (libc != NULL) libc_usable = (size_t(*)(void*))dlsym(libc, "malloc_usable_size");
    if (libc_usable == NULL) return 0;
  }
  return libc_usable(p);
}

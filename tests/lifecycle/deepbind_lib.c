/* Loaded by dlopen_ctor with RTLD_DEEPBIND: its own dependencies (libc) come before the global
 * scope, so its malloc binds to glibc's malloc, not slabby's. Not linked with slabby. */
#include <stdlib.h>

void* deep_alloc(size_t n) { return malloc(n); }
void* deep_calloc(size_t a, size_t b) { return calloc(a, b); }
void* deep_malloc_address(void) { return (void*)&malloc; }
void deep_free(void* p) { free(p); }

// slabby: the system allocator slabby falls back to (glibc's own entry
// points, which LD_PRELOAD does not interpose).
#pragma once

#include <cstddef>

extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace slabby {
// glibc exports no __libc_malloc_usable_size; read its chunk header instead
// (the layout has been stable since glibc 2.0): the size word before the
// block, low bits flags, 2 = mmapped chunk (header 16 bytes, else 8).
size_t glibc_usable_size(const void* p);
}  // namespace slabby

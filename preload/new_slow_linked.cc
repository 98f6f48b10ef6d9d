// slabby: new_slow for the static archive, over libstdc++ (new_slow.h).
#include <new>

#include "frontend/allocator.h"
#include "new_slow.h"

namespace slabby {

void* new_slow(size_t n, size_t align) {
  for (;;) {
    void* p = align > kMinAlign ? aligned_alloc_impl(align, n) : malloc_fast(n);
    if (p != nullptr) return p;
    std::new_handler h = std::get_new_handler();
    if (h == nullptr) throw std::bad_alloc();
    h();
  }
}

void* new_slow_nothrow(size_t n, size_t align) noexcept {
  try {
    return new_slow(n, align);
  } catch (...) {
    return nullptr;
  }
}

}  // namespace slabby

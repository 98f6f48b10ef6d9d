// slabby: the entry points of the checked paths that need more than a class
// index: aligned allocation, realloc, malloc_usable_size, sized delete, and
// the requests that can never succeed.
#include <cerrno>
#include <cstring>

#include "frontend/allocator.h"
#include "frontend/glibc.h"
#include "runtime/runtime.h"
#include "secure/checks.h"
#include "secure/report.h"

namespace slabby {

void checked_validate_large(uintptr_t p, const char* verb) noexcept;

namespace {

size_t canary_room() { return g_checks.bitguard ? kCanaryBytes : 0; }

// The class malloc(n) lands in on the checked paths (0: a page span): the
// first small class whose size holds the request and the canary
// (checked_small.cc class_with_canary gives the same answer from the fast
// path's class), else a medium class (checked_medium_class_of).
unsigned checked_class_of(size_t n) {
  uintptr_t cls;
  if (g_checks.bitguard)
    cls = class_with_canary_of(n);
  else
    cls = n > kMaxSmallSize ? 0 : size_class_of(n);
  return cls != 0 ? static_cast<unsigned>(cls) : checked_medium_class_of(n);
}

}  // namespace

void* checked_aligned(size_t align, size_t n) noexcept {
  if (align <= kPageSize && n <= kMaxSmallSize) {
    unsigned cls = aligned_size_class_of(n + canary_room(), align);
    if (cls != 0) return checked_alloc_class(cls);
  }
  if (SLABBY_UNLIKELY(n > static_cast<size_t>(PTRDIFF_MAX))) {
    checked_huge_request(n);
    errno = ENOMEM;
    return nullptr;
  }
  return checked_alloc_large(n, align);
}

namespace {

// Usable size of a live block; reports (verb: the caller) anything else.
size_t usable_of_live(const void* ptr, const char* verb) {
  uintptr_t p = reinterpret_cast<uintptr_t>(ptr);
  unsigned cls = g_rt.heap.class_of(ptr);
  if (SLABBY_UNLIKELY(is_medium_class(cls))) return checked_medium_usable(p, cls, verb);
  if (cls != 0) {
    checked_validate_small(p, cls, verb);
    return class_size(cls) - canary_room();
  }
  checked_validate_large(p, verb);
  return g_rt.heap.span_of(ptr)->usable;
}

}  // namespace

size_t checked_usable_size(const void* ptr) noexcept {
  return usable_of_live(ptr, "malloc_usable_size");
}

void* checked_realloc(void* ptr, size_t n) noexcept {
  // Validates the old block first: realloc of a freed or overflowed block is
  // reported before anything is copied from it.
  size_t old = usable_of_live(ptr, "realloc");
  unsigned cls = g_rt.heap.class_of(ptr);
  if (n <= old) {
    // Kept in its class while it needs more than half of it; a page span
    // keeps any size above the small classes, shrunk in place below half.
    unsigned want = checked_class_of(n);
    if (n > old / 2 && want == cls) return ptr;
    if (cls == 0 && (want == 0 || is_medium_class(want))) {
      if (n > old / 2) return ptr;
      if (void* q = checked_shrink_large(ptr, n)) return q;
    }
  }
  // A page span growing: in place, or moved with room to grow; a medium block
  // growing: in place within its class, else moved to a page span with room.
  if (n > old && cls == 0) {
    if (void* q = checked_grow_large(ptr, n)) return q;
  } else if (n > old && is_medium_class(cls)) {
    if (void* q = checked_grow_medium(ptr, cls, n)) return q;
  }
  void* q = malloc_fast(n);
  if (q == nullptr) return nullptr;  // errno is ENOMEM; ptr is untouched
  memcpy(q, ptr, old < n ? old : n);
  free_fast(ptr);
  return q;
}

void checked_sized_free(void* ptr, size_t size, const char* call) noexcept {
  if (ptr != nullptr && g_rt.heap.owns(ptr)) {
    size_t usable = usable_of_live(ptr, call);
    unsigned cls = g_rt.heap.class_of(ptr);
    // A block from the guarded sample is large whatever its size: only the
    // size bound holds for it.
    if (size > usable || (cls != 0 && checked_class_of(size) != cls)) {
      Report r;
      r.str(call).str(" of ").ptr(ptr).str(" with size ").u64(size);
      r.str(", but it was allocated with a different size").where(cls, usable);
      r.abort_now();
    }
  }
  free_fast(ptr);
}

void checked_calloc_overflow(size_t count, size_t size) noexcept {
  // Not fatal: calloc must return NULL here, and programs test for it.
  Report r;
  r.str("calloc(").u64(count).str(", ").u64(size);
  r.str(") overflows the size: returning NULL with ENOMEM");
  r.emit();
}

void checked_huge_request(size_t n) noexcept {
  Report r;
  r.str("allocation of ").u64(n).str(" bytes can never succeed: returning NULL with ENOMEM");
  r.emit();
}

}  // namespace slabby

// slabby: the hardened library's slow-path entries (frontend/hardened_fast.h):
// its inline paths jump here when the thread's cache (its CPU's, or its
// checked bin) missed, keeping their registers; both go on to the checked
// pair. Unused by libslabby_malloc.so, whose checked modes never reach them.
#include "frontend/allocator.h"
#include "secure/checks.h"

namespace slabby {

void* hardened_alloc_missed(size_t n, uintptr_t cls) noexcept {
  return cache_refill_and_alloc(static_cast<unsigned>(cls), n);
}

void hardened_free_missed(void* p, uintptr_t cls) noexcept {
  return checked_free_validated(p, static_cast<unsigned>(cls));
}

}  // namespace slabby

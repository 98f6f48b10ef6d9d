// slabby: the hardened library's paths for a thread without rseq
// (frontend/hardened_fast.h): its checked bins, a jump away from the inline
// paths, which keep their registers for the CPU caches. Unused by
// libslabby_malloc.so, whose checked modes never reach them.
#include "cache/thread_cache.h"
#include "frontend/allocator.h"
#include "frontend/hardened_fast.h"
#include "secure/checks.h"

namespace slabby {

void* hardened_alloc_missed(size_t n, uintptr_t cls) noexcept {
  if (hardened_on_bins()) {
    void* p = hardened_bin_alloc(cls);
    if (SLABBY_LIKELY(p != nullptr)) return p;
  }
  return cache_refill_and_alloc(static_cast<unsigned>(cls), n);
}

void hardened_free_missed(void* p, uintptr_t cls) noexcept {
  if (hardened_on_bins() && SLABBY_LIKELY(hardened_bin_free(cls, p))) return;
  return checked_free_validated(p, static_cast<unsigned>(cls));
}

}  // namespace slabby

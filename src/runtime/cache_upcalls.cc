// slabby: what the caches hand up (cache/thread_cache.h CacheUpcalls),
// decided here, above them: an exhausted arena falls back to glibc, a
// class-0 pointer goes to the front end's free, a finished slow path may
// start the background thread, and a thread's first slow path binds it.
#include "cache/thread_cache.h"
#include "frontend/allocator.h"
#include "runtime/background.h"
#include "runtime/runtime.h"

namespace slabby {

namespace {

void* small_from_fallback(size_t bytes) noexcept { return fallback_alloc(bytes, 0); }
void background_if_due() noexcept { maybe_start_background(); }

}  // namespace

constinit const CacheUpcalls g_cache_upcalls = {small_from_fallback, free_not_small,
                                                background_if_due, thread_init};

}  // namespace slabby

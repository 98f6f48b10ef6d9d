// slabby: every symbol slabby exports, with glibc's semantics. Each is a thin
// wrapper over the front end (src/frontend). Nothing here throws or catches:
// operator new's failure path is new_slow.h's, and what it throws passes
// through these frames by their unwind tables (preload/CMakeLists.txt).
//
// All the definitions live in this one translation unit on purpose: when a
// program links the static libslabby_malloc.a, pulling in malloc pulls in free,
// realloc and operator delete with it, so the whole set is always replaced
// together.
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cstddef>
#include <new>

#include "frontend/allocator.h"
#include "heap/page_heap.h"
#include "new_slow.h"
#include "os/os.h"
#include "runtime/background.h"
#include "runtime/control.h"
#include "secure/checks.h"
#include "slabby/slabby.h"
#include "telemetry/stats.h"

using namespace slabby;

#define EXPORT extern "C" SLABBY_EXPORT

// ------------------------------------------------------------- C symbols --

EXPORT void* malloc(size_t n) noexcept { return malloc_fast(n); }

EXPORT void free(void* p) noexcept { free_fast(p); }

EXPORT void cfree(void* p) noexcept { free_fast(p); }

namespace {

// A free that names the block's size (sized delete, free_sized) checks it only
// with SLABBY_BITGUARD (secure/checks.h): one predictable branch, the only
// test of a security flag on an exported fast path (free and malloc have
// none). The hardened library checks it inline (frontend/allocator.h
// hardened_sized_free). call: the caller's name, for the report.
SLABBY_INLINE void sized_free(void* p, size_t n, const char* call) noexcept {
  if constexpr (kHardenedBuild) return hardened_sized_free(p, n, call);
  if (SLABBY_UNLIKELY(g_checks.bitguard)) return checked_sized_free(p, n, call);
  free_fast(p);
}

}  // namespace

// C23's frees that name the size (and the alignment) the block was allocated
// with; glibc has them from 2.43. A program built against such a glibc calls
// them for blocks slabby handed out, so they must be slabby's: glibc's would
// take slabby's blocks for its own. free_sized is for blocks of malloc,
// calloc and realloc; free_aligned_sized for those of aligned_alloc, freed
// like an aligned sized delete (the size is not checked: the block's class
// follows the alignment as well).
EXPORT void free_sized(void* p, size_t n) noexcept { sized_free(p, n, "free_sized"); }

EXPORT void free_aligned_sized(void* p, size_t, size_t) noexcept { free_fast(p); }

EXPORT void* calloc(size_t count, size_t size) noexcept { return calloc_impl(count, size); }

EXPORT void* realloc(void* p, size_t n) noexcept { return realloc_impl(p, n); }

EXPORT void* reallocarray(void* p, size_t count, size_t size) noexcept {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc_impl(p, total);
}

EXPORT int posix_memalign(void** out, size_t align, size_t n) noexcept {
  // POSIX: a power of two multiple of sizeof(void*); *out untouched on error.
  if (align < sizeof(void*) || !is_pow2(align)) return EINVAL;
  int saved = errno;
  void* p = aligned_alloc_impl(align, n);
  errno = saved;
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

EXPORT void* aligned_alloc(size_t align, size_t n) noexcept {
  // glibc 2.36: a non-power-of-two alignment is EINVAL; any size is accepted.
  if (!is_pow2(align)) {
    errno = EINVAL;
    return nullptr;
  }
  return aligned_alloc_impl(align, n);
}

EXPORT void* memalign(size_t align, size_t n) noexcept {
  // glibc rounds a non-power-of-two alignment up to the next power of two.
  if (align > (size_t{1} << 62)) {
    errno = EINVAL;
    return nullptr;
  }
  if (!is_pow2(align)) align = align < 2 ? 1 : size_t{1} << (64 - __builtin_clzll(align - 1));
  return aligned_alloc_impl(align, n);
}

// The page of valloc and pvalloc is the system's (glibc's is too), which may
// be smaller than slabby's (common/base.h).
EXPORT void* valloc(size_t n) noexcept { return aligned_alloc_impl(os::system_page_size(), n); }

EXPORT void* pvalloc(size_t n) noexcept {
  size_t page = os::system_page_size();
  if (n > SIZE_MAX - page) {
    errno = ENOMEM;
    return nullptr;
  }
  return aligned_alloc_impl(page, n == 0 ? page : round_up(n, page));
}

EXPORT size_t malloc_usable_size(void* p) noexcept { return usable_size_impl(p); }

// glibc tuning knobs do not apply to slabby (SLABBY_* variables do); accepting
// them keeps programs that set M_ARENA_MAX and the like running unchanged.
EXPORT int mallopt(int, int) noexcept { return 1; }

// Returns to the OS everything free right now: this thread's cache, every
// CPU's cache, the transfer stacks, spare slabs and all free pages. 1 if any
// memory was released (glibc's meaning).
EXPORT int malloc_trim(size_t) noexcept { return release_for_trim(os::now_ms()) > 0 ? 1 : 0; }

EXPORT struct mallinfo2 mallinfo2() noexcept {
  static slabby_stats s;  // 6 KiB: not on the caller's stack
  static Mutex mu;
  LockGuard g(mu);
  collect_stats(&s);
  struct mallinfo2 m;
  memset(&m, 0, sizeof(m));
  m.arena = s.mapped_bytes;          // bytes of spans in use (slabs + large)
  m.hblkhd = s.large_live_bytes;     // large blocks
  m.uordblks = s.live_bytes;         // bytes in live blocks
  m.fordblks = s.mapped_bytes > s.live_bytes ? s.mapped_bytes - s.live_bytes : 0;
  m.keepcost = s.free_dirty_bytes;   // what malloc_trim could release
  return m;
}

EXPORT struct mallinfo mallinfo() noexcept {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo m;
  memset(&m, 0, sizeof(m));
  m.arena = static_cast<int>(m2.arena);
  m.hblkhd = static_cast<int>(m2.hblkhd);
  m.uordblks = static_cast<int>(m2.uordblks);
  m.fordblks = static_cast<int>(m2.fordblks);
  m.keepcost = static_cast<int>(m2.keepcost);
  return m;
}

EXPORT void malloc_stats() noexcept { print_report(2); }

// --------------------------------------------------------------- slabby_* --

EXPORT int slabby_get_stats(slabby_stats* out, size_t size) {
  if (out == nullptr || size < offsetof(slabby_stats, classes)) return -1;
  static slabby_stats s;
  static Mutex mu;
  LockGuard g(mu);
  collect_stats(&s);
  memcpy(out, &s, size < sizeof(s) ? size : sizeof(s));
  out->struct_size = static_cast<uint32_t>(size < sizeof(s) ? size : sizeof(s));
  return 0;
}

EXPORT void slabby_print_stats(int fd) { print_report(fd); }

EXPORT int slabby_get_health(slabby_health* out, size_t size) {
  if (out == nullptr || size < 8) return -1;
  slabby_health h;
  get_health(&h);
  memcpy(out, &h, size < sizeof(h) ? size : sizeof(h));
  out->struct_size = static_cast<uint32_t>(size < sizeof(h) ? size : sizeof(h));
  return 0;
}

EXPORT const char* slabby_trend_name(uint32_t trend) { return trend_name(trend); }

EXPORT size_t slabby_get_config(char* buf, size_t size) { return config_text(buf, size); }

EXPORT int slabby_write_stats(int fd, int format) {
  if (format < SLABBY_FORMAT_TEXT || format > SLABBY_FORMAT_PROMETHEUS) return -1;
  write_stats(fd, static_cast<StatsOutput>(format));
  return 0;
}

EXPORT size_t slabby_purge(void) { return release_all_now(); }

EXPORT size_t slabby_flush_thread_cache(void) { return control_flush_thread_cache(); }

EXPORT int slabby_set_option(const char* name, const char* value) {
  return control_set_option(name, value);
}

EXPORT int slabby_get_stat(const char* name, double* value) {
  if (name == nullptr || value == nullptr) return SLABBY_ERR_VALUE;
  return stat_by_name(name, value) ? SLABBY_OK : SLABBY_ERR_UNKNOWN;
}

EXPORT int slabby_dump_profile(const char* path) { return control_dump_profile(path); }

EXPORT const char* slabby_version(void) { return SLABBY_VERSION_STRING; }

EXPORT int slabby_is_active(void) { return 1; }

// ------------------------------------------------------------ C++ operators --

namespace {

// operator new's exits from malloc_fast: each is malloc's own
// (frontend/allocator.h MallocExits), then the new_handler loop and
// std::bad_alloc when it found no memory. The inline path tail-calls them
// with the size as an argument, so it keeps nothing live across a call and
// saves no register.
SLABBY_INLINE void* block_or_new_slow(void* p, size_t n) {
  if (SLABBY_LIKELY(p != nullptr)) return p;
  return new_slow(n, 0);
}
struct NewExits {
  using M = MallocExits;
  static constexpr bool kNoexcept = false;
  SLABBY_NOINLINE static void* large(size_t n) { return block_or_new_slow(M::large(n), n); }
  SLABBY_NOINLINE static void* sampled(uintptr_t cls, size_t n) {
    return block_or_new_slow(M::sampled(cls, n), n);
  }
  SLABBY_NOINLINE static void* percpu_refill(size_t n, uintptr_t cls) {
    return block_or_new_slow(M::percpu_refill(n, cls), n);
  }
  SLABBY_NOINLINE static void* refill(uintptr_t cls, size_t n) {
    return block_or_new_slow(M::refill(cls, n), n);
  }
  SLABBY_NOINLINE static void* hardened_missed(size_t n, uintptr_t cls) {
    return block_or_new_slow(M::hardened_missed(n, cls), n);
  }
  SLABBY_NOINLINE static void* hand_out_cached(void* p, uintptr_t cls, size_t n) {
    return block_or_new_slow(M::hand_out_cached(p, cls, n), n);
  }
};

inline void* new_impl(size_t n) { return malloc_fast<NewExits>(n); }
inline void* new_aligned(size_t n, std::align_val_t a) {
  void* p = aligned_alloc_impl(static_cast<size_t>(a), n);
  if (SLABBY_LIKELY(p != nullptr)) return p;
  return new_slow(n, static_cast<size_t>(a));
}
inline void* new_nothrow(size_t n, size_t align) noexcept {
  void* p = align > kMinAlign ? aligned_alloc_impl(align, n) : malloc_fast(n);
  if (SLABBY_LIKELY(p != nullptr)) return p;
  return new_slow_nothrow(n, align);
}

}  // namespace

#define CXX_EXPORT SLABBY_EXPORT

CXX_EXPORT void* operator new(size_t n) { return new_impl(n); }
CXX_EXPORT void* operator new[](size_t n) { return new_impl(n); }
CXX_EXPORT void* operator new(size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n, 0); }
CXX_EXPORT void* operator new[](size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n, 0); }
CXX_EXPORT void* operator new(size_t n, std::align_val_t a) { return new_aligned(n, a); }
CXX_EXPORT void* operator new[](size_t n, std::align_val_t a) { return new_aligned(n, a); }
CXX_EXPORT void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return new_nothrow(n, static_cast<size_t>(a));
}
CXX_EXPORT void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return new_nothrow(n, static_cast<size_t>(a));
}

CXX_EXPORT void operator delete(void* p) noexcept { free_fast(p); }
CXX_EXPORT void operator delete[](void* p) noexcept { free_fast(p); }
CXX_EXPORT void operator delete(void* p, size_t n) noexcept { sized_free(p, n, "sized delete"); }
CXX_EXPORT void operator delete[](void* p, size_t n) noexcept { sized_free(p, n, "sized delete"); }
CXX_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { free_fast(p); }
CXX_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { free_fast(p); }
CXX_EXPORT void operator delete(void* p, std::align_val_t) noexcept { free_fast(p); }
CXX_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { free_fast(p); }
CXX_EXPORT void operator delete(void* p, size_t, std::align_val_t) noexcept { free_fast(p); }
CXX_EXPORT void operator delete[](void* p, size_t, std::align_val_t) noexcept { free_fast(p); }
CXX_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  free_fast(p);
}
CXX_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  free_fast(p);
}

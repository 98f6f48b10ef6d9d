// slabby: compiler helpers and the constants every layer shares.
#pragma once

#include <cstddef>
#include <cstdint>

#define SLABBY_LIKELY(x) __builtin_expect(!!(x), 1)
#define SLABBY_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SLABBY_INLINE inline __attribute__((always_inline))
#define SLABBY_NOINLINE __attribute__((noinline))
#define SLABBY_COLD __attribute__((noinline, cold))
#define SLABBY_EXPORT __attribute__((visibility("default")))

namespace slabby {

// slabby manages memory in pages of kPageSize bytes, fixed at compile time
// (SLABBY_PAGE_SIZE in CMake: 4096, the default, 16384 or 65536) because the
// free fast path shifts by it. It must be at least the system's page size:
// mprotect, madvise and mremap then always see whole system pages. Init reads
// the system's (sysconf) and, on a system with larger pages (an aarch64
// kernel with 16 or 64 KiB pages under a 4 KiB build), prints one line and
// leaves every allocation to glibc rather than corrupt memory. What counts
// system pages (mincore) asks the system: os::mincore_page_size().
#ifndef SLABBY_PAGE_SHIFT
#define SLABBY_PAGE_SHIFT 12
#endif
inline constexpr size_t kPageShift = SLABBY_PAGE_SHIFT;
inline constexpr size_t kPageSize = size_t{1} << kPageShift;
static_assert(kPageShift >= 12 && kPageShift <= 16, "SLABBY_PAGE_SIZE: 4 KiB to 64 KiB");

// The inline assembly, chosen at compile time. x86-64 has the rseq critical
// sections of the per-CPU caches (cache/percpu_cache.h), flag-output asm on
// the fast paths (frontend/allocator.h) and rdtsc; aarch64 reads its virtual
// counter (telemetry/latency.h). Every other target, and any build with
// SLABBY_PORTABLE (which tests the portable code at native speed on x86-64),
// takes the plain C++ paths, with per-thread caches only.
#if defined(__x86_64__) && !defined(SLABBY_PORTABLE)
#define SLABBY_ASM_X86_64 1
#else
#define SLABBY_ASM_X86_64 0
#endif
#if defined(__aarch64__) && !defined(SLABBY_PORTABLE)
#define SLABBY_ASM_AARCH64 1
#else
#define SLABBY_ASM_AARCH64 0
#endif
// The per-CPU caches exist in this build (rseq critical sections written for
// this target). Without them every thread uses its per-thread cache.
inline constexpr bool kHaveRseqSections = SLABBY_ASM_X86_64;

// The hardened library (libslabby_malloc_hardened.so, built from the same
// sources with SLABBY_HARDENED=1): the bit guard is always on and checked on
// the inline fast paths themselves (frontend/hardened_fast.h), where
// libslabby_malloc.so reaches the same checks through its slow paths. Chosen
// at build time, so neither library tests for it at run time.
#ifndef SLABBY_HARDENED
#define SLABBY_HARDENED 0
#endif
inline constexpr bool kHardenedBuild = SLABBY_HARDENED != 0;

// glibc guarantees 16-byte alignment for every malloc (max_align_t) and
// programs rely on it, so the smallest block is 16 bytes.
inline constexpr size_t kMinAlign = 16;

inline constexpr size_t kCacheLine = 64;

constexpr size_t round_up(size_t n, size_t align) { return (n + align - 1) & ~(align - 1); }
constexpr size_t round_down(size_t n, size_t align) { return n & ~(align - 1); }
constexpr bool is_pow2(size_t n) { return n != 0 && (n & (n - 1)) == 0; }
// The position of n's top bit (n > 0): floor(log2(n)).
constexpr unsigned floor_log2(size_t n) { return 63 - static_cast<unsigned>(__builtin_clzll(n)); }

}  // namespace slabby

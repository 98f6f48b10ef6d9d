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

// slabby manages memory in 4 KiB pages. x86_64 Linux always has 4 KiB base
// pages; init checks sysconf and refuses to take over (everything falls back to
// glibc) on a system with larger pages rather than madvise at the wrong size.
inline constexpr size_t kPageShift = 12;
inline constexpr size_t kPageSize = size_t{1} << kPageShift;

// glibc guarantees 16-byte alignment for every malloc (max_align_t) and
// programs rely on it, so the smallest block is 16 bytes.
inline constexpr size_t kMinAlign = 16;

inline constexpr size_t kCacheLine = 64;

constexpr size_t round_up(size_t n, size_t align) { return (n + align - 1) & ~(align - 1); }
constexpr bool is_pow2(size_t n) { return n != 0 && (n & (n - 1)) == 0; }

}  // namespace slabby

// slabby: size classes.
//
// Spacing (checked for every size by tests/unit/size_class_test.cc):
//   16 .. 128 bytes    every 16 bytes                  (8 classes)
//   128 .. 32 KiB      4 classes per power of two      (32 classes)
//                      e.g. 160 192 224 256 320 384 448 512 640 ...
// A request is served from the smallest class that holds it, so internal waste
// is below 16 bytes up to 128 and below 25% of the block above (at most 20%
// for requests above 128). Class 0 is "not a small block" (large spans, or a
// page slabby does not serve); real classes are 1..kNumClasses-1.
//
// Each class carves blocks out of slabs of whole pages; slab size is chosen at
// compile time to hold at least 8 blocks and waste under 1/64 of the slab
// where possible (see kSlabPages).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "common/base.h"

namespace slabby {

inline constexpr size_t kMaxSmallSize = 32 * 1024;
inline constexpr unsigned kNumClasses = 41;  // including class 0

namespace size_class_detail {

constexpr std::array<uint32_t, kNumClasses> make_sizes() {
  std::array<uint32_t, kNumClasses> s{};
  unsigned i = 1;
  for (uint32_t sz = 16; sz <= 128; sz += 16) s[i++] = sz;
  for (uint32_t p = 128; p < kMaxSmallSize; p *= 2)
    for (uint32_t q = 5; q <= 8; ++q) s[i++] = p * q / 4;
  return s;
}

constexpr std::array<uint32_t, kNumClasses> make_slab_pages(const std::array<uint32_t, kNumClasses>& sizes) {
  std::array<uint32_t, kNumClasses> pages{};
  for (unsigned c = 1; c < kNumClasses; ++c) {
    size_t sz = sizes[c];
    size_t min_pages = (sz * 8 + kPageSize - 1) / kPageSize;
    if (min_pages < 4) min_pages = 4;  // 16 KiB: fewer trips to the page heap
    // First slab size (up to twice the minimum) that wastes under 1/64,
    // otherwise the one wasting the smallest fraction.
    size_t best = min_pages;
    for (size_t n = min_pages; n <= min_pages * 2 && n <= 128; ++n) {
      size_t bytes = n * kPageSize, best_bytes = best * kPageSize;
      if ((bytes % sz) * 64 <= bytes) {
        best = n;
        break;
      }
      if ((bytes % sz) * best_bytes < (best_bytes % sz) * bytes) best = n;
    }
    pages[c] = static_cast<uint32_t>(best);
  }
  return pages;
}

// The lookup table: every class size is a multiple of 16, so one byte per
// 16-byte step up to 32 KiB (2 KiB in all) maps a size to its class exactly,
// with a single bounds check on the fast path.
constexpr std::array<uint8_t, kMaxSmallSize / 16 + 1> make_class_table(
    const std::array<uint32_t, kNumClasses>& sizes) {
  std::array<uint8_t, kMaxSmallSize / 16 + 1> t{};
  unsigned c = 1;
  for (size_t i = 0; i < t.size(); ++i) {
    size_t need = i * 16;
    while (sizes[c] < need) ++c;
    t[i] = static_cast<uint8_t>(c);
  }
  return t;
}

}  // namespace size_class_detail

inline constexpr std::array<uint32_t, kNumClasses> kClassSize = size_class_detail::make_sizes();
inline constexpr std::array<uint32_t, kNumClasses> kSlabPages = size_class_detail::make_slab_pages(kClassSize);
inline constexpr auto kClassTable = size_class_detail::make_class_table(kClassSize);

static_assert(kClassSize[kNumClasses - 1] == kMaxSmallSize, "last class is the largest small size");
static_assert(kNumClasses <= 64, "fits SLABBY_MAX_CLASSES");

// n must be <= kMaxSmallSize. malloc(0) gets the 16-byte class. Full-width
// result: the fast paths index with it (see frontend/allocator.h).
SLABBY_INLINE uintptr_t size_class_of(size_t n) { return kClassTable[(n + 15) >> 4]; }

constexpr size_t class_size(unsigned cls) { return kClassSize[cls]; }
constexpr size_t slab_bytes(unsigned cls) { return size_t{kSlabPages[cls]} * kPageSize; }
constexpr uint32_t blocks_per_slab(unsigned cls) {
  return static_cast<uint32_t>(slab_bytes(cls) / class_size(cls));
}

// The smallest class whose blocks are all aligned to `align` (a power of two
// <= kPageSize) and hold n bytes; 0 when there is none. Slabs start on a page
// boundary, so a block is aligned when the class size is a multiple of align.
inline unsigned aligned_size_class_of(size_t n, size_t align) {
  if (n > kMaxSmallSize) return 0;
  size_t need = round_up(n == 0 ? 1 : n, align);
  if (need > kMaxSmallSize) return 0;
  for (unsigned c = size_class_of(need); c < kNumClasses; ++c)
    if (kClassSize[c] % align == 0) return c;
  return 0;
}

}  // namespace slabby

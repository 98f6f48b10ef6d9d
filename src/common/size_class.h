// slabby: size classes.
//
// Spacing (checked for every size by tests/unit/size_class_test.cc):
//   16 .. 128 bytes    every 16 bytes                  (8 classes)
//   128 .. 32 KiB      4 classes per power of two      (32 classes, "small")
//                      e.g. 160 192 224 256 320 384 448 512 640 ...
//   32 KiB .. 1 MiB    4 classes per power of two      (20 classes, "medium")
//                      40K 48K 56K 64K 80K ... 768K 896K 1M
// A request is served from the smallest class that holds it, so internal waste
// is below 16 bytes up to 128 and below 25% of the block above (at most 20%
// for requests above 128). Class 0 is "not a block of a class" (large spans,
// or a page slabby does not serve); real classes are 1..kNumClasses-1.
//
// Small classes carve blocks out of slabs of whole pages; slab size is chosen
// at compile time to hold at least 8 blocks and waste under 1/64 of the slab
// where possible (see kSlabPages). A medium class's slab is exactly one block
// (its size is a whole number of 4 KiB pages; with larger pages, its slab is
// rounded up to whole pages), so every medium block starts on a page
// boundary and a free medium block holds no other block's slab.
//
// Small sizes find their class in a table on the inline fast path; medium
// sizes compute it (medium_class_of) on the out-of-line path, which is where
// every request above 32 KiB goes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "common/base.h"

namespace slabby {

inline constexpr size_t kMaxSmallSize = 32 * 1024;  // largest small class: the inline table's end
inline constexpr size_t kMaxClassSize = 1024 * 1024;  // largest medium class: above, page spans
inline constexpr unsigned kNumSmallClasses = 41;      // classes 1..40 are small (and class 0)
inline constexpr unsigned kNumClasses = 61;           // including class 0
inline constexpr unsigned kNumMediumClasses = kNumClasses - kNumSmallClasses;  // 41..60

namespace size_class_detail {

constexpr std::array<uint32_t, kNumClasses> make_sizes() {
  std::array<uint32_t, kNumClasses> s{};
  unsigned i = 1;
  for (uint32_t sz = 16; sz <= 128; sz += 16) s[i++] = sz;
  for (uint32_t p = 128; p < kMaxClassSize; p *= 2)
    for (uint32_t q = 5; q <= 8; ++q) s[i++] = p * q / 4;
  return s;
}

constexpr std::array<uint32_t, kNumClasses> make_slab_pages(const std::array<uint32_t, kNumClasses>& sizes) {
  std::array<uint32_t, kNumClasses> pages{};
  // Medium: one block per slab. With 4 KiB pages every medium size is whole
  // pages; with 16 or 64 KiB pages some are not (40 KiB), and their slab is
  // rounded up to whole pages: the tail is waste, never another block.
  for (unsigned c = kNumSmallClasses; c < kNumClasses; ++c)
    pages[c] = static_cast<uint32_t>((sizes[c] + kPageSize - 1) / kPageSize);
  // At least 16 KiB (4 pages of 4 KiB): fewer trips to the page heap.
  const size_t floor_pages = kPageSize >= (16 << 10) ? 1 : (16 << 10) / kPageSize;
  // At most 512 KiB (128 pages of 4 KiB), or the page size itself.
  const size_t ceiling_pages = kPageSize >= (512 << 10) ? 1 : (512 << 10) / kPageSize;
  for (unsigned c = 1; c < kNumSmallClasses; ++c) {
    size_t sz = sizes[c];
    size_t min_pages = (sz * 8 + kPageSize - 1) / kPageSize;
    if (min_pages < floor_pages) min_pages = floor_pages;
    // First slab size (up to twice the minimum) that wastes under 1/64,
    // otherwise the one wasting the smallest fraction.
    size_t best = min_pages;
    for (size_t n = min_pages; n <= min_pages * 2 && n <= ceiling_pages; ++n) {
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

// The fast path's table for the smallest requests: one byte per size up to
// kMaxDirectSize, indexed by the size itself (no rounding step).
constexpr std::array<uint8_t, 1024 + 1> make_direct_table(const std::array<uint32_t, kNumClasses>& sizes) {
  std::array<uint8_t, 1024 + 1> t{};
  unsigned c = 1;
  for (size_t n = 0; n < t.size(); ++n) {
    while (sizes[c] < n) ++c;
    t[n] = static_cast<uint8_t>(c);
  }
  return t;
}

}  // namespace size_class_detail

inline constexpr std::array<uint32_t, kNumClasses> kClassSize = size_class_detail::make_sizes();
inline constexpr std::array<uint32_t, kNumClasses> kSlabPages = size_class_detail::make_slab_pages(kClassSize);
inline constexpr auto kClassTable = size_class_detail::make_class_table(kClassSize);

static_assert(kClassSize[kNumSmallClasses - 1] == kMaxSmallSize, "the table ends at the last small class");
static_assert(kClassSize[kNumClasses - 1] == kMaxClassSize, "last class is the largest medium size");
static_assert(kNumClasses <= 64, "fits SLABBY_MAX_CLASSES");

// n must be <= kMaxSmallSize. malloc(0) gets the 16-byte class. Full-width
// result: the fast paths index with it (see frontend/allocator.h).
SLABBY_INLINE uintptr_t size_class_of(size_t n) { return kClassTable[(n + 15) >> 4]; }

// malloc's first test: requests up to kMaxDirectSize (most of a typical
// program's) index a table by their size, two instructions fewer than
// size_class_of's round-and-shift; the table is 1 KiB, 17 cache lines where
// those sizes took one line of kClassTable.
inline constexpr size_t kMaxDirectSize = 1024;
inline constexpr auto kDirectClassTable = size_class_detail::make_direct_table(kClassSize);
static_assert(kDirectClassTable.size() == kMaxDirectSize + 1, "one entry per size");
SLABBY_INLINE uintptr_t direct_class_of(size_t n) { return kDirectClassTable[n]; }

// kMaxSmallSize < n <= kMaxClassSize: four classes per power of two, so the
// class follows from the position of n - 1's top bit and the two bits below it.
SLABBY_INLINE uintptr_t medium_class_of(size_t n) {
  size_t m = n - 1;
  unsigned top = floor_log2(m);  // 15 .. 19
  return kNumSmallClasses + (top - 15) * 4 + ((m >> (top - 2)) & 3);
}

// Any n <= kMaxClassSize.
inline uintptr_t class_of_size(size_t n) {
  return n <= kMaxSmallSize ? size_class_of(n) : medium_class_of(n);
}

constexpr bool is_medium_class(unsigned cls) { return cls >= kNumSmallClasses; }

// The largest medium block a transfer stack holds (runtime/init.cc).
inline constexpr size_t kMaxStackedMedium = size_t{256} << 10;

constexpr size_t class_size(unsigned cls) { return kClassSize[cls]; }
constexpr size_t slab_bytes(unsigned cls) { return size_t{kSlabPages[cls]} * kPageSize; }
constexpr uint32_t blocks_per_slab(unsigned cls) {
  return static_cast<uint32_t>(slab_bytes(cls) / class_size(cls));
}

// The smallest small class whose blocks are all aligned to `align` (a power
// of two <= kPageSize) and hold n bytes; 0 when there is none. Slabs start on
// a page boundary, so a block is aligned when the class size is a multiple of
// align. (Medium blocks are all page-aligned: see alloc_large.)
inline unsigned aligned_size_class_of(size_t n, size_t align) {
  if (n > kMaxSmallSize) return 0;
  size_t need = round_up(n == 0 ? 1 : n, align);
  if (need > kMaxSmallSize) return 0;
  for (unsigned c = size_class_of(need); c < kNumSmallClasses; ++c)
    if (kClassSize[c] % align == 0) return c;
  return 0;
}

}  // namespace slabby

#include "common/size_class.h"

#include <gtest/gtest.h>

namespace slabby {
namespace {

TEST(SizeClass, EverySizeGetsTheSmallestClassThatHoldsIt) {
  for (size_t n = 0; n <= kMaxSmallSize; ++n) {
    unsigned c = size_class_of(n);
    ASSERT_GE(c, 1u) << n;
    ASSERT_LT(c, kNumClasses) << n;
    ASSERT_GE(class_size(c), n) << n;
    if (c > 1) ASSERT_LT(class_size(c - 1), n) << "size " << n << " could use class " << c - 1;
  }
}

TEST(SizeClass, TheDirectTableAgreesWithTheRoundingTableForEverySizeItCovers) {
  // malloc looks requests up to kMaxDirectSize up by their size itself.
  for (size_t n = 0; n <= kMaxDirectSize; ++n) ASSERT_EQ(direct_class_of(n), size_class_of(n)) << n;
}

TEST(SizeClass, EveryMediumSizeGetsTheSmallestClassThatHoldsIt) {
  // Every size at the class edges, and a stride through the rest.
  for (unsigned c = kNumSmallClasses; c < kNumClasses; ++c) {
    for (size_t n : {class_size(c - 1) + 1, class_size(c) - 1, class_size(c)}) {
      ASSERT_EQ(medium_class_of(n), c) << n;
      ASSERT_EQ(class_of_size(n), c) << n;
    }
  }
  for (size_t n = kMaxSmallSize + 1; n <= kMaxClassSize; n += 97) {
    unsigned c = medium_class_of(n);
    ASSERT_TRUE(is_medium_class(c)) << n;
    ASSERT_GE(class_size(c), n) << n;
    ASSERT_LT(class_size(c - 1), n) << n;
  }
  for (size_t n = 0; n <= kMaxSmallSize; n += 7) ASSERT_EQ(class_of_size(n), size_class_of(n));
}

TEST(SizeClass, ClassesAreStrictlyIncreasingAndSixteenByteAligned) {
  for (unsigned c = 1; c < kNumClasses; ++c) {
    EXPECT_EQ(class_size(c) % kMinAlign, 0u) << c;
    if (c > 1) EXPECT_GT(class_size(c), class_size(c - 1)) << c;
  }
  EXPECT_EQ(class_size(kNumSmallClasses - 1), kMaxSmallSize);
  EXPECT_EQ(class_size(kNumClasses - 1), kMaxClassSize);
}

TEST(SizeClass, InternalWasteIsBounded) {
  for (size_t n = 1; n <= kMaxClassSize; ++n) {
    size_t got = class_size(class_of_size(n));
    if (n <= 128) {
      ASSERT_LT(got - n, 16u) << n;
    } else {
      // Four classes per power of two: waste under 25% of the block.
      ASSERT_LT((got - n) * 4, got) << n;
    }
  }
}

TEST(SizeClass, MediumSlabsAreOnePageAlignedBlock) {
  for (unsigned c = kNumSmallClasses; c < kNumClasses; ++c) {
    // Whole pages of 4 KiB; with larger pages (SLABBY_PAGE_SIZE) the slab is
    // the block rounded up to whole pages, and still holds only that block.
    if (kPageSize == 4096) EXPECT_EQ(class_size(c) % kPageSize, 0u) << c;
    EXPECT_EQ(slab_bytes(c), round_up(class_size(c), kPageSize)) << c;
    EXPECT_EQ(blocks_per_slab(c), 1u) << c;
  }
}

TEST(SizeClass, SmallSlabsHoldAtLeastEightBlocksAndWasteLittle) {
  for (unsigned c = 1; c < kNumSmallClasses; ++c) {
    EXPECT_GE(blocks_per_slab(c), 8u) << c;
    size_t waste = slab_bytes(c) % class_size(c);
    EXPECT_LE(waste * 16, slab_bytes(c)) << "class " << c << " wastes " << waste;
    EXPECT_EQ(slab_bytes(c) % kPageSize, 0u);
  }
}

TEST(SizeClass, AlignedClassesGiveAlignedBlocks) {
  for (size_t align = 32; align <= kPageSize; align *= 2) {
    for (size_t n : {size_t{1}, align - 1, align, align + 1, 3 * align, size_t{5000}}) {
      unsigned c = aligned_size_class_of(n, align);
      if (c == 0) {
        EXPECT_GT(round_up(n, align), kMaxSmallSize / 2) << n << " " << align;
        continue;
      }
      EXPECT_GE(class_size(c), n);
      EXPECT_EQ(class_size(c) % align, 0u) << n << " " << align;
    }
  }
  EXPECT_EQ(aligned_size_class_of(kMaxSmallSize + 1, 64), 0u);
}

}  // namespace
}  // namespace slabby

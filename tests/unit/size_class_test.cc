#include "frontend/size_class.h"

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

TEST(SizeClass, ClassesAreStrictlyIncreasingAndSixteenByteAligned) {
  for (unsigned c = 1; c < kNumClasses; ++c) {
    EXPECT_EQ(class_size(c) % kMinAlign, 0u) << c;
    if (c > 1) EXPECT_GT(class_size(c), class_size(c - 1)) << c;
  }
  EXPECT_EQ(class_size(kNumClasses - 1), kMaxSmallSize);
}

TEST(SizeClass, InternalWasteIsBounded) {
  for (size_t n = 1; n <= kMaxSmallSize; ++n) {
    size_t got = class_size(size_class_of(n));
    if (n <= 128) {
      ASSERT_LT(got - n, 16u) << n;
    } else {
      // Four classes per power of two: waste under 25% of the block.
      ASSERT_LT((got - n) * 4, got) << n;
    }
  }
}

TEST(SizeClass, SlabsHoldAtLeastEightBlocksAndWasteLittle) {
  for (unsigned c = 1; c < kNumClasses; ++c) {
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

#include "central/batch_stack.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace slabby {
namespace {

// A stack of batches of `batch` pointers, with its own descriptor memory.
struct Stack {
  Stack(uint32_t batch, uint32_t max_batches)
      : mem(new char[BatchStack::bytes_for(batch, max_batches)]) {
    s.init(mem.get(), batch, max_batches);
  }
  std::unique_ptr<char[]> mem;
  BatchStack s;
};

std::vector<void*> batch_of(uintptr_t first, uint32_t n) {
  std::vector<void*> v;
  for (uint32_t i = 0; i < n; ++i) v.push_back(reinterpret_cast<void*>(first + 16 * i));
  return v;
}

TEST(BatchStack, LifoBoundedAndCopiesWholeBatches) {
  Stack st(5, 3);
  BatchStack& s = st.s;
  std::vector<void*> out(5);
  EXPECT_FALSE(s.pop(out.data()));
  EXPECT_TRUE(s.push(batch_of(0x1000, 5).data()));
  EXPECT_TRUE(s.push(batch_of(0x2000, 5).data()));
  EXPECT_TRUE(s.push(batch_of(0x3000, 5).data()));
  EXPECT_FALSE(s.push(batch_of(0x4000, 5).data())) << "beyond max_batches";
  EXPECT_EQ(s.depth(), 3u);
  ASSERT_TRUE(s.pop(out.data()));
  EXPECT_EQ(out, batch_of(0x3000, 5));
  // A popped batch's descriptor is free again: the stack takes another.
  EXPECT_TRUE(s.push(batch_of(0x5000, 5).data()));
  ASSERT_TRUE(s.pop(out.data()));
  EXPECT_EQ(out, batch_of(0x5000, 5));
  ASSERT_TRUE(s.pop(out.data()));
  EXPECT_EQ(out, batch_of(0x2000, 5));
  ASSERT_TRUE(s.pop(out.data()));
  EXPECT_EQ(out, batch_of(0x1000, 5));
  EXPECT_FALSE(s.pop(out.data()));
  EXPECT_EQ(s.depth(), 0u);
}

TEST(BatchStack, NoDescriptorsMeansNoStack) {
  BatchStack s;
  s.init(nullptr, 8, 4);
  void* one[8] = {};
  EXPECT_FALSE(s.push(one));
  EXPECT_FALSE(s.pop(one));
  EXPECT_EQ(s.max_batches(), 0u);
}

// Many threads push and pop batches constantly through few descriptors (the
// ABA pattern), for a long run. Each batch is a set of distinct tokens; a
// thread checks every batch it pops is whole (all its pointers from one
// push) and that no token is ever held by two threads. At the end every
// token is found exactly once.
TEST(BatchStack, BatchesUnderContentionAreNeverLostTornOrDuplicated) {
  constexpr uint32_t kBatch = 4;
  constexpr uint32_t kBatches = 16;
  constexpr int kThreads = 6;
  constexpr int kOps = 200000;
  Stack st(kBatch, kBatches);
  BatchStack& s = st.s;
  constexpr size_t kTokens = kBatch * kBatches;
  std::vector<std::atomic<int>> owner(kTokens);
  // Token t is the pointer (t + 1) * 16; a batch holds kBatch consecutive
  // tokens starting at a multiple of kBatch, in order.
  for (size_t i = 0; i < kTokens; ++i) owner[i] = -1;
  for (uint32_t b = 0; b < kBatches; ++b) ASSERT_TRUE(s.push(batch_of(16 * (b * kBatch + 1), kBatch).data()));
  std::atomic<bool> bad{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::vector<void*>> mine;
      for (int i = 0; i < kOps; ++i) {
        if (mine.size() < 2 && (i % 3 != 2 || mine.empty())) {
          std::vector<void*> got(kBatch);
          if (!s.pop(got.data())) continue;
          size_t first = reinterpret_cast<uintptr_t>(got[0]) / 16 - 1;
          if (first % kBatch != 0 || first >= kTokens) bad = true;
          for (uint32_t k = 0; k < kBatch && !bad; ++k) {
            size_t tok = reinterpret_cast<uintptr_t>(got[k]) / 16 - 1;
            int expected = -1;
            if (tok != first + k || !owner[tok].compare_exchange_strong(expected, t)) bad = true;
          }
          mine.push_back(got);
        } else {
          std::vector<void*> back = mine.back();
          mine.pop_back();
          for (void* p : back) owner[reinterpret_cast<uintptr_t>(p) / 16 - 1] = -1;
          while (!s.push(back.data())) {
          }
        }
      }
      for (auto& back : mine) {
        for (void* p : back) owner[reinterpret_cast<uintptr_t>(p) / 16 - 1] = -1;
        while (!s.push(back.data())) {
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(bad.load()) << "a torn batch, or a token handed to two threads at once";
  std::vector<int> seen(kTokens, 0);
  std::vector<void*> got(kBatch);
  while (s.pop(got.data())) {
    for (void* p : got) {
      size_t tok = reinterpret_cast<uintptr_t>(p) / 16 - 1;
      ASSERT_LT(tok, kTokens);
      seen[tok]++;
    }
  }
  for (size_t i = 0; i < kTokens; ++i) EXPECT_EQ(seen[i], 1) << "token " << i;
}

}  // namespace
}  // namespace slabby

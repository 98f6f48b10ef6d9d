#include "central/transfer_stack.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

namespace slabby {
namespace {

// Nodes carved from a private mapping standing in for the arena.
struct Arena {
  explicit Arena(size_t bytes) : size(bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) abort();
    base = static_cast<char*>(p);
  }
  ~Arena() { munmap(base, size); }
  void* node(size_t i) { return base + i * 16; }
  char* base;
  size_t size;
};

TEST(TransferStack, LifoAndBounded) {
  Arena a(1 << 20);
  TransferStack s;
  s.init(reinterpret_cast<uintptr_t>(a.base), a.size, 3);
  EXPECT_EQ(s.pop(), nullptr);
  EXPECT_TRUE(s.push(a.node(0)));  // the arena's very first granule works too
  EXPECT_TRUE(s.push(a.node(5)));
  EXPECT_TRUE(s.push(a.node(9)));
  EXPECT_FALSE(s.push(a.node(11))) << "beyond max_batches";
  EXPECT_EQ(s.depth(), 3u);
  EXPECT_EQ(s.pop(), a.node(9));
  EXPECT_EQ(s.pop(), a.node(5));
  EXPECT_EQ(s.pop(), a.node(0));
  EXPECT_EQ(s.pop(), nullptr);
}

// Many threads push and pop a small set of nodes that are reused constantly
// (the ABA pattern), for a long run; at the end every node is found exactly
// once, and no thread ever held a node another thread held.
TEST(TransferStack, ReusedNodesUnderContentionAreNeverLostOrDuplicated) {
  constexpr size_t kNodes = 64;
  constexpr int kThreads = 6;
  constexpr int kOps = 200000;
  Arena a(size_t{1} << 30);  // index bits for 1 GiB: a 38-bit tag
  TransferStack s;
  s.init(reinterpret_cast<uintptr_t>(a.base), a.size, kNodes);
  std::vector<std::atomic<int>> owner(kNodes);
  for (size_t i = 0; i < kNodes; ++i) {
    owner[i] = -1;
    ASSERT_TRUE(s.push(a.node(i)));
  }
  std::atomic<bool> bad{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<void*> mine;
      for (int i = 0; i < kOps; ++i) {
        if (mine.size() < 4 && (i % 3 != 2 || mine.empty())) {
          void* p = s.pop();
          if (p == nullptr) continue;
          size_t idx = (static_cast<char*>(p) - a.base) / 16;
          int expected = -1;
          if (idx >= kNodes || !owner[idx].compare_exchange_strong(expected, t)) bad = true;
          // The owner scribbles on the node, as a program would.
          __atomic_store_n(static_cast<uint64_t*>(p) + 1, 0xdeadbeefull * (i + 1), __ATOMIC_RELAXED);
          mine.push_back(p);
        } else {
          void* p = mine.back();
          mine.pop_back();
          owner[(static_cast<char*>(p) - a.base) / 16] = -1;
          while (!s.push(p)) {
          }
        }
      }
      for (void* p : mine) {
        owner[(static_cast<char*>(p) - a.base) / 16] = -1;
        while (!s.push(p)) {
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(bad.load()) << "a node was handed to two threads at once";
  std::vector<int> seen(kNodes, 0);
  for (void* p; (p = s.pop()) != nullptr;) {
    size_t idx = (static_cast<char*>(p) - a.base) / 16;
    ASSERT_LT(idx, kNodes);
    seen[idx]++;
  }
  for (size_t i = 0; i < kNodes; ++i) EXPECT_EQ(seen[i], 1) << "node " << i;
}

}  // namespace
}  // namespace slabby

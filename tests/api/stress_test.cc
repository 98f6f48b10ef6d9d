// Multi-threaded stress test of slabby (the binary is linked with libslabby_malloc.so).
//
// kThreads threads run a fixed, seeded sequence of operations: allocate (malloc, calloc,
// aligned_alloc, operator new; sizes mostly small, some 32 KiB .. 4 MiB), free, realloc, and hand
// blocks over to another thread through its mutex-protected inbox, where they are freed (or
// adopted and later freed or handed on). Every block is filled with a pattern derived from a
// unique serial number and its address, and is checked completely before every free and realloc,
// so two live blocks sharing memory or a block damaged by the allocator is detected. A sharded
// set of live addresses also catches an address handed out twice while live.
//
// 4 million operations in all: about 3 s on a 2-core machine on glibc; the ctest timeout is
// 300 s.
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "gtest/gtest.h"
#include "slabby/slabby.h"

namespace {

constexpr int kThreads = 8;
constexpr int kOpsPerThread = 500000;
constexpr size_t kMaxLivePerThread = 1500;
// At the end, current_allocations may differ from its starting value by at most this much: glibc
// keeps a few per-thread objects (the DTV of a cached thread stack) allocated after a thread has
// been joined, and GoogleTest may allocate a little for its own bookkeeping.
constexpr int64_t kLiveDriftBound = 64;

enum class Kind : uint8_t { kMalloc, kCalloc, kAligned, kNew };

struct Block {
  uint64_t* p;
  size_t n;
  uint64_t serial;
  Kind kind;
};

uint64_t Mix(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ull;
  x ^= x >> 27;
  x *= 0x81dadef4bc2dd44dull;
  x ^= x >> 33;
  return x;
}

uint64_t Word(const Block& b, size_t i) {
  return (b.serial * 0x9E3779B97F4A7C15ull) ^ (reinterpret_cast<uintptr_t>(b.p) + i * 0x100000001b3ull);
}

void FillBlock(const Block& b) {
  size_t words = b.n / 8;
  for (size_t i = 0; i < words; i++) b.p[i] = Word(b, i);
  uint8_t* tail = reinterpret_cast<uint8_t*>(b.p);
  for (size_t i = words * 8; i < b.n; i++) tail[i] = static_cast<uint8_t>(b.serial + i);
}

// Checks the first `n` bytes (n <= b.n). Returns true when intact.
bool CheckBlock(const Block& b, size_t n) {
  size_t words = n / 8;
  for (size_t i = 0; i < words; i++) {
    if (b.p[i] != Word(b, i)) return false;
  }
  const uint8_t* tail = reinterpret_cast<const uint8_t*>(b.p);
  for (size_t i = words * 8; i < n; i++) {
    if (tail[i] != static_cast<uint8_t>(b.serial + i)) return false;
  }
  return true;
}

class LiveSet {
 public:
  bool Insert(void* p) {
    Shard& s = shards_[Index(p)];
    std::lock_guard<std::mutex> lock(s.mu);
    return s.set.insert(p).second;
  }
  bool Erase(void* p) {
    Shard& s = shards_[Index(p)];
    std::lock_guard<std::mutex> lock(s.mu);
    return s.set.erase(p) == 1;
  }

 private:
  static size_t Index(void* p) { return Mix(reinterpret_cast<uintptr_t>(p)) % kShards; }
  static constexpr size_t kShards = 64;
  struct Shard {
    std::mutex mu;
    std::unordered_set<void*> set;
  };
  Shard shards_[kShards];
};

struct Inbox {
  std::mutex mu;
  std::vector<Block> blocks;
};

class Stress {
 public:
  Stress() : inboxes_(kThreads) {}

  void Run() {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++) threads.emplace_back([this, t] { Worker(t); });
    for (auto& th : threads) th.join();
    // Blocks handed to a thread after it finished: freed by the main thread.
    for (Inbox& in : inboxes_) {
      for (Block& b : in.blocks) Release(b);
      in.blocks.clear();
      in.blocks.shrink_to_fit();
    }
  }

  uint64_t errors() const { return errors_.load(); }
  std::string first_error() {
    std::lock_guard<std::mutex> lock(error_mu_);
    return first_error_;
  }
  uint64_t ops() const { return ops_.load(); }
  uint64_t handoffs() const { return handoffs_.load(); }
  uint64_t large() const { return large_.load(); }

 private:
  void Fail(const char* what, const Block& b) {
    if (errors_.fetch_add(1) == 0) {
      char buf[200];
      snprintf(buf, sizeof(buf), "%s: block %p size %zu serial %llu kind %d", what,
               static_cast<void*>(b.p), b.n, static_cast<unsigned long long>(b.serial),
               static_cast<int>(b.kind));
      fprintf(stderr, "stress: FIRST ERROR: %s\n", buf);  // visible even if a crash follows
      std::lock_guard<std::mutex> lock(error_mu_);
      first_error_ = buf;
    }
  }

  static size_t PickSize(uint64_t r) {
    uint64_t c = r % 10000;
    uint64_t v = r >> 20;
    if (c < 7000) return 1 + v % 256;
    if (c < 9000) return 257 + v % (4096 - 257);
    if (c < 9890) return 4097 + v % (32768 - 4097);
    if (c < 9990) return 32768 + v % (256 * 1024 - 32768);
    return 256 * 1024 + v % (4 * 1024 * 1024 - 256 * 1024);
  }

  void Allocate(uint64_t r, size_t n, Block* out) {
    Block b{nullptr, n, next_serial_.fetch_add(1), Kind::kMalloc};
    uint64_t k = (r >> 8) % 100;
    if (k < 80) {
      b.kind = Kind::kMalloc;
      b.p = static_cast<uint64_t*>(malloc(n));
    } else if (k < 90) {
      b.kind = Kind::kCalloc;
      b.p = static_cast<uint64_t*>(calloc(1, n));
      if (b.p != nullptr) {
        const uint8_t* z = reinterpret_cast<const uint8_t*>(b.p);
        for (size_t i = 0; i < n; i++) {
          if (z[i] != 0) {
            Fail("calloc returned non-zero memory", b);
            break;
          }
        }
      }
    } else if (k < 95) {
      b.kind = Kind::kAligned;
      size_t align = size_t{16} << ((r >> 16) % 9);  // 16 .. 4096
      b.p = static_cast<uint64_t*>(aligned_alloc(align, (n + align - 1) / align * align));
      if (b.p != nullptr && reinterpret_cast<uintptr_t>(b.p) % align != 0) {
        Fail("aligned_alloc misaligned", b);
      }
    } else {
      b.kind = Kind::kNew;
      b.p = static_cast<uint64_t*>(::operator new(n));
    }
    if (b.p == nullptr) {  // cannot continue consistently: report and stop
      fprintf(stderr, "FATAL: allocation of %zu bytes (kind %d) returned NULL\n", n,
              static_cast<int>(b.kind));
      abort();
    }
    if (malloc_usable_size(b.p) < n) Fail("usable size below request", b);
    if (!live_.Insert(b.p)) Fail("address handed out while still live", b);
    if (n >= 256 * 1024) large_.fetch_add(1, std::memory_order_relaxed);
    FillBlock(b);
    *out = b;
  }

  void Release(const Block& b) {
    if (!CheckBlock(b, b.n)) Fail("block corrupted before free", b);
    if (!live_.Erase(b.p)) Fail("freeing a block not in the live set", b);
    if (b.kind == Kind::kNew) {
      if ((b.serial & 1) != 0) {
        ::operator delete(b.p, b.n);
      } else {
        ::operator delete(b.p);
      }
    } else {
      free(b.p);
    }
  }

  void Reallocate(Block* b, size_t n) {
    if (!CheckBlock(*b, b->n)) Fail("block corrupted before realloc", *b);
    if (b->kind == Kind::kNew) {  // not realloc-able: replace it
      Release(*b);
      Allocate(n, n, b);
      return;
    }
    if (!live_.Erase(b->p)) Fail("realloc of a block not in the live set", *b);
    void* q = realloc(b->p, n);
    if (q == nullptr) {
      Fail("realloc returned NULL", *b);
      return;
    }
    Block nb{static_cast<uint64_t*>(q), n, b->serial, Kind::kMalloc};
    // The preserved prefix still holds the pattern of the old address; check it byte-wise.
    Block old_at_new = *b;
    size_t keep = n < b->n ? n : b->n;
    size_t words = keep / 8;
    for (size_t i = 0; i < words; i++) {
      if (nb.p[i] != Word(old_at_new, i)) {
        Fail("realloc lost contents", nb);
        break;
      }
    }
    if (!live_.Insert(q)) Fail("realloc returned an address that is live elsewhere", nb);
    nb.serial = next_serial_.fetch_add(1);
    FillBlock(nb);
    *b = nb;
  }

  void DrainInbox(int t, std::vector<Block>* live, uint64_t* rng) {
    std::vector<Block> got;
    {
      std::lock_guard<std::mutex> lock(inboxes_[t].mu);
      got.swap(inboxes_[t].blocks);
    }
    for (Block& b : got) {
      *rng = Mix(*rng + 1);
      if (*rng % 4 == 0 && live->size() < kMaxLivePerThread) {
        if (!CheckBlock(b, b.n)) Fail("block corrupted in hand-over", b);
        live->push_back(b);  // adopt: freed later by this thread or handed on again
      } else {
        Release(b);
      }
    }
  }

  void Worker(int t) {
    uint64_t rng = Mix(0xC0FFEEull + static_cast<uint64_t>(t) * 0x1000193ull);
    std::vector<Block> live;
    live.reserve(kMaxLivePerThread + 1);
    for (int op = 0; op < kOpsPerThread; op++) {
      rng = Mix(rng + 0x9E3779B97F4A7C15ull);
      if (op % 64 == 0) DrainInbox(t, &live, &rng);
      uint64_t c = rng % 100;
      if (c < 45 || live.empty()) {
        Block b;
        Allocate(Mix(rng), PickSize(Mix(rng ^ 0x55)), &b);
        live.push_back(b);
        if (live.size() > kMaxLivePerThread || live.back().n >= 256 * 1024) {
          // Keep memory bounded: large blocks never pile up.
          size_t i = live.size() > kMaxLivePerThread ? (rng >> 32) % live.size() : live.size() - 1;
          if (live[i].n >= 256 * 1024 && (rng >> 40) % 2 == 0) {
            Release(live[i]);
            live[i] = live.back();
            live.pop_back();
          } else if (live.size() > kMaxLivePerThread) {
            Release(live[i]);
            live[i] = live.back();
            live.pop_back();
          }
        }
      } else if (c < 70) {
        size_t i = (rng >> 32) % live.size();
        Release(live[i]);
        live[i] = live.back();
        live.pop_back();
      } else if (c < 93) {
        size_t i = (rng >> 32) % live.size();
        int to = static_cast<int>((t + 1 + (rng >> 16) % (kThreads - 1)) % kThreads);
        {
          std::lock_guard<std::mutex> lock(inboxes_[to].mu);
          inboxes_[to].blocks.push_back(live[i]);
        }
        handoffs_.fetch_add(1, std::memory_order_relaxed);
        live[i] = live.back();
        live.pop_back();
      } else {
        size_t i = (rng >> 32) % live.size();
        size_t n = PickSize(Mix(rng ^ 0xAA));
        if (n > 64 * 1024 && (rng >> 50) % 8 != 0) n = 1 + n % 4096;
        Reallocate(&live[i], n);
      }
      ops_.fetch_add(1, std::memory_order_relaxed);
    }
    DrainInbox(t, &live, &rng);
    for (Block& b : live) Release(b);
  }

  std::vector<Inbox> inboxes_;
  LiveSet live_;
  std::atomic<uint64_t> next_serial_{1};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> ops_{0};
  std::atomic<uint64_t> handoffs_{0};
  std::atomic<uint64_t> large_{0};
  std::mutex error_mu_;
  std::string first_error_;
};

slabby_stats Stats() {
  slabby_stats s;
  memset(&s, 0, sizeof(s));
  EXPECT_EQ(slabby_get_stats(&s, sizeof(s)), 0);
  return s;
}

TEST(Stress, ManyThreadsCrossThreadFrees) {
  ASSERT_EQ(slabby_is_active(), 1);
  slabby_stats before = Stats();
  auto t0 = std::chrono::steady_clock::now();
  uint64_t errors, ops, handoffs, large;
  std::string first_error;
  {
    auto stress = std::make_unique<Stress>();
    stress->Run();
    errors = stress->errors();
    first_error = stress->first_error();
    ops = stress->ops();
    handoffs = stress->handoffs();
    large = stress->large();
  }  // the live set and inboxes are freed here
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  slabby_stats after = Stats();
  printf("stress: %llu ops, %llu hand-overs, %llu large blocks, %.1f s\n",
         static_cast<unsigned long long>(ops), static_cast<unsigned long long>(handoffs),
         static_cast<unsigned long long>(large), secs);
  EXPECT_EQ(errors, 0u) << "first error: " << first_error;
  EXPECT_EQ(ops, static_cast<uint64_t>(kThreads) * kOpsPerThread);
  EXPECT_GT(handoffs, ops / 10);
  EXPECT_GT(after.total_allocations, before.total_allocations + ops / 3)
      << "the stress allocations were not served by slabby";
  int64_t drift = static_cast<int64_t>(after.current_allocations) -
                  static_cast<int64_t>(before.current_allocations);
  EXPECT_LE(drift, kLiveDriftBound) << "live allocations grew: leak or lost free";
  EXPECT_GE(drift, -kLiveDriftBound) << "more frees than allocations were counted";
}

}  // namespace

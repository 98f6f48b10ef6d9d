// slabby::Pool's slot table and free lists.
//
// SlotTable: one 32-bit generation word per slot. Invariants:
// - even = free (on a free list, or being taken by exactly one thread that
//   popped it), odd = allocated;
// - only the thread that popped a slot makes its word odd (a plain store: no
//   one else writes an even word); only a successful CAS odd g -> g + 1
//   frees it, so of two racing releases (a reference and a stale copy of its
//   id, or Release and Reset) exactly one wins;
// - an id carries the odd generation it was allocated with, so an id is
//   valid exactly while word == its generation. A stale id can only pass
//   after 2^31 reuses of the same slot.
//
// FreeLists: shards of slabby's TransferStack (src/central/transfer_stack.h),
// the same tagged Treiber stack the malloc path uses, here over a side array
// of 16-byte link nodes, node i standing for slot i. A "batch" is one node.
// Links never live in the slabs themselves, so a stray write into a free slab
// cannot corrupt a free list, and secure/bit-guard contents stay intact.
// Invariants: a slot is on at most one stack, and on one iff its word is
// even and no thread is between popping it and marking it allocated (or
// between freeing it and pushing it); every slot is on some stack or held by
// a thread, so a scan of all shards finds any free slot (none is stranded).
#pragma once

#include <sched.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "central/transfer_stack.h"

namespace slabby::slab_pool {

inline constexpr uint32_t kHeapIndex = 0xffffffffu;  // SlabRef index of a heap fallback

inline bool is_allocated(uint32_t word) { return (word & 1u) != 0; }

// Per-shard counters: written by the threads whose home is this shard, so
// they share the shard's cache line rather than one global line.
struct ShardCounters {
  std::atomic<uint64_t> home_hits{0};  // slots popped from this (home) shard
  std::atomic<uint64_t> steals{0};     // slots popped from another shard
  std::atomic<uint64_t> frees{0};      // slots returned
  std::atomic<uint64_t> fast_allocs{0};
  std::atomic<uint64_t> fast_frees{0};
};

struct Shard {
  TransferStack stack;
  ShardCounters counters;
};

class FreeLists {
 public:
  struct alignas(16) Node {
    void* word0;
    void* word1;  // TransferStack's link
  };

  // nodes: capacity 16-byte nodes (16-byte aligned); shard_storage: room for
  // shards * stride bytes, stride a multiple of alignof(Shard).
  void init(Node* nodes, uint32_t capacity, void* shard_storage, uint32_t shards, size_t stride) {
    nodes_ = nodes;
    capacity_ = capacity;
    shards_ = shards;
    stride_ = stride;
    storage_ = static_cast<char*>(shard_storage);
    for (uint32_t s = 0; s < shards; ++s) {
      Shard* sh = new (storage_ + s * stride) Shard();
      // max_batches above capacity: a push can never be refused (a slot is
      // pushed only while it is off every stack).
      sh->stack.init(reinterpret_cast<uintptr_t>(nodes), size_t{capacity} * sizeof(Node),
                     capacity + 1);
    }
  }
  void destroy() {
    for (uint32_t s = 0; s < shards_; ++s) shard(s).~Shard();
  }

  Shard& shard(uint32_t s) const { return *reinterpret_cast<Shard*>(storage_ + s * stride_); }
  uint32_t shards() const { return shards_; }

  // TransferStack::push refuses when its depth counter reads >= max_batches.
  // Here that happens only transiently: the counter is updated after the
  // CAS, so a pop's decrement can land before the matching push's increment
  // and the unsigned counter wraps for a moment. A refused slot goes to the
  // next shard (and after a full round, the thread yields), so it is never
  // dropped.
  void push(uint32_t shard_index, uint32_t slot) {
    for (uint32_t s = shard_index;;) {
      for (uint32_t k = 0; k < shards_; ++k) {
        if (shard(s).stack.push(&nodes_[slot])) return;
        s = s + 1 < shards_ ? s + 1 : 0;
      }
      sched_yield();
    }
  }
  // A slot from `home`, else from the other shards in turn; false when all
  // are empty. *stolen tells which.
  bool pop(uint32_t home, uint32_t* slot, bool* stolen) {
    if (void* n = shard(home).stack.pop()) {
      *slot = index_of(n);
      *stolen = false;
      return true;
    }
    for (uint32_t k = 1; k < shards_; ++k) {
      uint32_t s = home + k < shards_ ? home + k : home + k - shards_;
      if (void* n = shard(s).stack.pop()) {
        *slot = index_of(n);
        *stolen = true;
        return true;
      }
    }
    return false;
  }

 private:
  uint32_t index_of(void* n) const { return static_cast<uint32_t>(static_cast<Node*>(n) - nodes_); }

  Node* nodes_ = nullptr;
  uint32_t capacity_ = 0;
  uint32_t shards_ = 0;
  size_t stride_ = 0;
  char* storage_ = nullptr;
};

}  // namespace slabby::slab_pool

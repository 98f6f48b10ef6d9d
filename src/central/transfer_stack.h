// slabby: TransferStack, a lock-free Treiber stack of nodes of at least 16
// bytes inside one mapping (the public slabby::Pool's free lists,
// slab_pool/slot_table.h). The malloc path's transfer tier is BatchStack
// (central/batch_stack.h), whose batches are pointer arrays.
//
// A node is a batch head: the chain of blocks it heads (through first words)
// is the user's business; its second word links it to the next node on the
// stack. Blocks are at least 16 bytes, so both words always exist.
//
// ABA: the head packs the batch's address (as a 16-byte-granule index into
// the arena, plus one so that 0 is "empty") with a tag that changes on every
// successful push and pop. Index bits are just enough for the arena
// (32 bits for the default 64 GiB), the rest is tag (32 bits then; at least
// 22 for the largest 64 TiB arena): a pop that read the head must lose the
// CAS unless exactly 2^tag_bits other operations completed in between.
//
// Reading a popped candidate's next-batch word may race with its new owner
// writing the block (the CAS then fails); the arena is never unmapped, so the
// read itself is always safe.
//
// Invariants: a batch is either on the stack or owned by one thread; `depth`
// counts batches on the stack (approximate while operations are in flight)
// and bounds it to max_batches.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/base.h"

namespace slabby {

class TransferStack {
 public:
  // base/size: the arena; index_bits derived from size.
  void init(uintptr_t base, size_t size, uint32_t max_batches) {
    base_ = base;
    unsigned bits = 1;
    while ((size_t{1} << bits) < (size >> 4) + 2) ++bits;
    index_bits_ = bits;
    max_batches_ = max_batches;
  }

  // Pushes a batch (its head block); false when the stack is full.
  bool push(void* batch) {
    if (depth_.load(std::memory_order_relaxed) >= max_batches_) return false;
    uint64_t old = head_.load(std::memory_order_relaxed);
    for (;;) {
      store_word1(batch, decode(old));
      uint64_t desired = encode(batch, tag_of(old) + 1);
      if (head_.compare_exchange_weak(old, desired, std::memory_order_release,
                                      std::memory_order_relaxed))
        break;
    }
    depth_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  // Pops a batch (its head block), or nullptr when empty.
  void* pop() {
    uint64_t old = head_.load(std::memory_order_acquire);
    for (;;) {
      void* top = decode(old);
      if (top == nullptr) return nullptr;
      void* next = load_word1(top);
      uint64_t desired = encode(next, tag_of(old) + 1);
      if (head_.compare_exchange_weak(old, desired, std::memory_order_acquire,
                                      std::memory_order_acquire)) {
        depth_.fetch_sub(1, std::memory_order_relaxed);
        return top;
      }
    }
  }

  uint32_t depth() const { return depth_.load(std::memory_order_relaxed); }

 private:
  uint64_t encode(void* p, uint64_t tag) const {
    uint64_t idx = p == nullptr ? 0 : ((reinterpret_cast<uintptr_t>(p) - base_) >> 4) + 1;
    return (tag << index_bits_) | idx;
  }
  void* decode(uint64_t v) const {
    uint64_t idx = v & ((uint64_t{1} << index_bits_) - 1);
    return idx == 0 ? nullptr : reinterpret_cast<void*>(base_ + ((idx - 1) << 4));
  }
  uint64_t tag_of(uint64_t v) const { return v >> index_bits_; }

  // The second word of a batch's head block. Atomic (relaxed) because a
  // losing pop may read it while the block's new owner writes it.
  // (The empty asm hides where the pointer came from: GCC's object-size
  // analysis cannot know that every block has a second word and warns when
  // it can see the block's origin. It emits no instruction.)
  static void** word1(void* b) {
    uintptr_t a = reinterpret_cast<uintptr_t>(b);
    asm("" : "+r"(a));
    return reinterpret_cast<void**>(a + sizeof(void*));
  }
  static void store_word1(void* b, void* v) { __atomic_store_n(word1(b), v, __ATOMIC_RELAXED); }
  // The one deliberate race: a pop that will lose its CAS may read this word
  // while the block's new owner writes it. The value read is then discarded
  // (the CAS fails on the changed tag), so ThreadSanitizer is told not to
  // watch this load; every other access stays checked.
  __attribute__((no_sanitize("thread"))) static void* load_word1(void* b) {
    return __atomic_load_n(word1(b), __ATOMIC_RELAXED);
  }

  std::atomic<uint64_t> head_{0};
  std::atomic<uint32_t> depth_{0};
  uint32_t max_batches_ = 0;
  uintptr_t base_ = 0;
  unsigned index_bits_ = 64;
};

}  // namespace slabby

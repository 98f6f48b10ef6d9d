// slabby: BatchStack, the lock-free tier between the caches and the
// sharded slab lists: a Treiber stack of batches of free blocks of one class.
//
// A batch is exactly `batch_size` block pointers held in a descriptor, not
// a chain through the blocks: pushing or popping one never reads or writes
// a block. A block freed on one CPU and handed out on another is thus
// touched by the program only; a chain would make the refilling CPU follow
// batch_size links, one dependent cache miss each, through lines the
// freeing CPU last wrote (that walk was nearly all of a refill's time with
// every free remote).
//
// Descriptors live in a slice of metadata the pool gives at init, room for
// max_batches of them, carved in order on first use (pages untouched until
// then). Each is on exactly one of two stacks, `full_` (holding a batch) or
// `free_` (empty), or in the hands of one thread between the two; so at most
// max_batches batches are ever stacked, and a push finds no free descriptor
// when that many are.
//
// ABA: a head packs a descriptor's index plus one (0: empty) in its low 32
// bits with a tag in the high 32 that changes on every successful push and
// pop: a pop that read the head must lose its CAS unless exactly 2^32 other
// operations completed in between. A losing pop may read a descriptor's
// `next` while its new holder rewrites it (atomic, relaxed; the value is then
// discarded); descriptors are never unmapped, so the read itself is safe.
//
// Memory order: a batch's pointers are written before the release CAS that
// puts its descriptor on `full_`, and read after the acquire CAS that takes
// it off.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/base.h"

namespace slabby {

class BatchStack {
 public:
  // Bytes of metadata for max_batches descriptors of batch_size blocks.
  static size_t bytes_for(uint32_t batch_size, uint32_t max_batches) {
    return size_t{max_batches} * stride_for(batch_size);
  }

  // mem: bytes_for(batch_size, max_batches) bytes, 8-aligned, zero or not
  // (descriptors are written before use); nullptr when max_batches is 0.
  void init(char* mem, uint32_t batch_size, uint32_t max_batches) {
    mem_ = mem;
    batch_size_ = batch_size;
    stride_ = stride_for(batch_size);
    max_batches_ = mem == nullptr ? 0 : max_batches;
  }

  // Copies a batch of batch_size block pointers onto the stack; false (and
  // nothing done) when max_batches are stacked already.
  bool push(void* const* blocks) {
    uint32_t id = pop_id(free_);
    if (id == 0) {
      id = carve();
      if (id == 0) return false;
    }
    memcpy(desc(id)->blocks, blocks, size_t{batch_size_} * sizeof(void*));
    push_id(full_, id);
    depth_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  // Copies the newest batch's batch_size block pointers to out; false when
  // the stack is empty.
  bool pop(void** out) {
    uint32_t id = pop_id(full_);
    if (id == 0) return false;
    depth_.fetch_sub(1, std::memory_order_relaxed);
    memcpy(out, desc(id)->blocks, size_t{batch_size_} * sizeof(void*));
    push_id(free_, id);
    return true;
  }

  // Batches on the stack (approximate while operations are in flight).
  uint32_t depth() const { return depth_.load(std::memory_order_relaxed); }
  uint32_t max_batches() const { return max_batches_; }

 private:
  struct Descriptor {
    std::atomic<uint32_t> next;  // the id below this one on its stack (0: none)
    uint32_t unused;
    void* blocks[1];             // batch_size of them, really
  };
  static size_t stride_for(uint32_t batch_size) {
    return offsetof(Descriptor, blocks) + size_t{batch_size} * sizeof(void*);
  }
  Descriptor* desc(uint32_t id) const {
    // The empty asm hides the object's bounds from GCC's object-size
    // analysis: blocks[] runs past the declared one entry. No instruction.
    uintptr_t a = reinterpret_cast<uintptr_t>(mem_) + (id - 1) * stride_;
    asm("" : "+r"(a));
    return reinterpret_cast<Descriptor*>(a);
  }
  // A descriptor never used yet (id), or 0 when all max_batches are carved.
  uint32_t carve() {
    uint32_t n = carved_.load(std::memory_order_relaxed);
    while (n < max_batches_) {
      if (carved_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return n + 1;
    }
    return 0;
  }
  static uint64_t pack(uint32_t id, uint64_t old) { return ((old >> 32) + 1) << 32 | id; }

  uint32_t pop_id(std::atomic<uint64_t>& head) {
    uint64_t old = head.load(std::memory_order_acquire);
    for (;;) {
      uint32_t id = static_cast<uint32_t>(old);
      if (id == 0) return 0;
      uint32_t next = desc(id)->next.load(std::memory_order_relaxed);
      if (head.compare_exchange_weak(old, pack(next, old), std::memory_order_acquire,
                                     std::memory_order_acquire))
        return id;
    }
  }
  void push_id(std::atomic<uint64_t>& head, uint32_t id) {
    uint64_t old = head.load(std::memory_order_relaxed);
    for (;;) {
      desc(id)->next.store(static_cast<uint32_t>(old), std::memory_order_relaxed);
      if (head.compare_exchange_weak(old, pack(id, old), std::memory_order_release,
                                     std::memory_order_relaxed))
        return;
    }
  }

  // Each head on a line of its own, with what changes beside it.
  alignas(64) std::atomic<uint64_t> full_{0};
  std::atomic<uint32_t> depth_{0};
  alignas(64) std::atomic<uint64_t> free_{0};
  std::atomic<uint32_t> carved_{0};
  alignas(64) char* mem_ = nullptr;
  size_t stride_ = 0;
  uint32_t batch_size_ = 0;
  uint32_t max_batches_ = 0;
};

}  // namespace slabby

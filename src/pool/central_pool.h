// slabby: the central pool of one size class: the slabs it owns and the free
// blocks in them, behind one lock. Thread caches come here in batches (refill
// takes many blocks, flush returns many), so the lock is taken once per batch.
//
// Invariants (under mu_):
// - partial_ lists exactly the class's slabs that have a free block (on their
//   freelist or not yet carved); full slabs are on no list; an empty slab
//   (used == 0) is either spare_ or returned to the page heap at once.
// - A block is in exactly one place: the program, a thread cache, or its
//   slab's freelist / uncarved tail.
// Lock order: a pool's lock may be held while taking the page heap's, never
// the other way round.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/base.h"
#include "common/lock.h"
#include "heap/page_heap.h"

namespace slabby {

// A singly linked chain of free blocks; each block's first word is the next.
struct BlockChain {
  void* head = nullptr;
  void* tail = nullptr;
  uint32_t count = 0;
};

struct CentralPoolStats {
  uint64_t slabs;
  uint64_t refills;
  uint64_t flushes;
};

class alignas(kCacheLine) CentralPool {
 public:
  void init(unsigned cls, PageHeap* heap);

  // Up to n blocks (fewer only when memory is exhausted; 0 then).
  BlockChain take(uint32_t n);
  // Gives back a chain of `count` blocks of this class.
  void give(void* head, uint32_t count);

  CentralPoolStats stats();

  void lock() { mu_.lock(); }
  void unlock() { mu_.unlock(); }
  void reset_lock_after_fork() { mu_.reset_after_fork(); }

 private:
  void push_partial(Span* s);
  void remove_partial(Span* s);

  Mutex mu_;
  PageHeap* heap_ = nullptr;
  Span* partial_ = nullptr;
  Span* spare_ = nullptr;  // one empty slab kept, so a batch going back and forth
                           // does not take a slab from the page heap each time
  uint32_t cls_ = 0;
  uint32_t block_size_ = 0;
  uint32_t blocks_per_slab_ = 0;
  uint32_t slab_pages_ = 0;
  uint64_t slabs_ = 0;
  uint64_t refills_ = 0;
  uint64_t flushes_ = 0;
};

}  // namespace slabby

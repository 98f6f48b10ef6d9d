// slabby: the central pool of one size class, the tiers behind the caches:
//
//   refill ─► BatchStack pop (lock-free, a whole batch) ─empty─► shards
//   flush  ─► BatchStack push (a whole batch, if not full) ─else─► shards
//
// Blocks move as arrays of pointers (take_blocks, give_blocks: the per-CPU
// caches, whose slots are such arrays) or as chains linked through their
// first word (take, give: the per-thread bins, which are such chains). A
// transfer batch is an array either way (central/batch_stack.h).
//
// Shards: the class's slabs are spread over `num_shards` lists, each behind
// its own lock; a slab belongs to the shard of the CPU that created it, and a
// thread takes from its CPU's shard first, then tries the others without
// waiting (try_lock), and only then carves a new slab. Frees go back to the
// shard of each block's slab, one lock per shard touched per flush.
//
// Invariants (per shard, under its lock):
// - partial lists exactly the shard's slabs that have a free block (on their
//   freelist or not yet carved); full slabs are on no list; an empty slab
//   (used == 0) is the shard's spare or is returned to the page heap at once
//   (always at once for a medium class, whose slab is a single block).
// - A block is in exactly one place: the program, a cache, a batch on the
//   transfer stack, or its slab's freelist / uncarved tail.
// Lock order: a shard's lock may be held while taking the page heap's, never
// the other way round, and never two shard locks at once.
//
// Locks apart from the shards' lists: fork takes every shard lock of every
// class and writes each again after the fork, on both sides, so every page
// holding one is a copy-on-write fault in the parent and in the child. Beside
// their shards, 128 bytes apart, the locks of 61 classes took 2 pages per
// CPU: 122 pages and 282 faults a fork at 64 CPUs, 3.8 x glibc's fork time.
// Packed by shard index (runtime/init.cc: one row of every class's lock per
// shard, rows a cache line apart) they take a page per 16 CPUs. A row is
// mostly its CPU's: the home shard of its refills and of its own slabs'
// frees.
#pragma once

#include <atomic>
#include <cstdint>

#include "central/batch_stack.h"
#include "common/base.h"
#include "common/lock.h"
#include "common/size_class.h"
#include "heap/page_heap.h"

namespace slabby {

inline constexpr unsigned kMaxShards = 64;
// The largest batch_size: half the largest cache limit (runtime/init.cc).
inline constexpr uint32_t kMaxBatch = 128;
// Slabs whose free lists a refill walks side by side (central_pool.cc).
inline constexpr uint32_t kTakeWays = 4;

// A singly linked, null-terminated chain of free blocks; each block's first
// word is the next.
struct BlockChain {
  void* head = nullptr;
  void* tail = nullptr;
  uint32_t count = 0;
};

struct CentralPoolStats {
  uint64_t slabs;           // slabs owned by the class now
  uint64_t refills;         // cache refills served
  uint64_t flushes;         // cache flushes received
  uint64_t lock_free_hits;  // refills served by a transfer-stack batch
  uint64_t lock_free_pushes;
  uint64_t shard_hits;      // refills served from existing slabs in the shards
  uint64_t new_slabs;       // slabs carved from the page heap, ever
  uint64_t stack_batches;   // batches on the transfer stack now
};

// A shard's lists; its lock is apart (above).
struct Shard {
  Span* partial = nullptr;  // its bit in CentralPool::partial_shards_ is set iff non-null
  Span* spare = nullptr;  // one empty slab kept, so a batch going back and forth
                          // does not take a slab from the page heap each time
  uint64_t slabs = 0;
  unsigned index = 0;
};

// What a slab's carved blocks get before the slab goes back to the page
// heap, chosen once at init by the layer that knows the checked modes:
//   kNone       nothing (the default: blocks keep whatever they hold);
//   kClearTags  each block's last word (its state tag) cleared, so the page
//               heap's next owner does not inherit tags that would make old
//               data look like a freed block (the bit guard);
//   kZero       every carved byte zeroed, so every free page reads zero
//               (SLABBY_ZERO=free: the large checked path relies on it);
//   kZeroEdges  each carved block's first two words zeroed (its links):
//               the rest is zero already (SLABBY_ZERO=free's medium blocks,
//               whose bodies the checked paths zero at their free and their
//               first formatting; zeroing them whole again cost a third pass
//               over their pages).
enum class SlabScrub : uint8_t { kNone, kClearTags, kZero, kZeroEdges };

class alignas(128) CentralPool {
 public:
  // shards: num_shards Shard objects placed `stride` bytes apart (the cache
  // line, so shards never share one). locks: shard i's lock is
  // locks[i * lock_stride] (constructed by the caller). batches: the
  // transfer stack's descriptors, BatchStack::bytes_for(batch_size,
  // max_stack_batches) bytes (nullptr when max_stack_batches is 0).
  // batch_size <= kMaxBatch.
  void init(unsigned cls, PageHeap* heap, char* shards, unsigned num_shards, size_t stride,
            Mutex* locks, size_t lock_stride, uint32_t batch_size, uint32_t max_stack_batches,
            char* batches, SlabScrub scrub = SlabScrub::kNone);

  // Up to n blocks (a transfer batch may give batch_size instead; fewer only
  // when memory is exhausted: 0 then). home: the caller's shard hint.
  // max_fresh: at most that many never-used blocks (carved from a slab now);
  // the take stops there, with fewer blocks (at least one when max_fresh >=
  // 1). The checked modes write into every block they take (its tag), so
  // each one they carve costs resident memory, where the others' pointers
  // do not. (take counts max_fresh per kMaxBatch blocks.)
  BlockChain take(uint32_t n, unsigned home, uint32_t max_fresh = kMaxBatch);
  // The same into out, which has room for kMaxBatch: returns the count.
  // Neither reads nor writes the blocks.
  uint32_t take_blocks(void** out, uint32_t n, unsigned home, uint32_t max_fresh = kMaxBatch);
  // Gives back a null-terminated chain of `count` blocks of this class.
  void give(void* head, uint32_t count);
  // Gives back n blocks (any n); whole batches never touch the blocks.
  void give_blocks(void* const* blocks, uint32_t n);
  // Gives a null-terminated chain straight back to its slabs, past the
  // transfer stack: blocks unlikely to be asked for again soon (a medium
  // block realloc moved out of, whose empty slab then goes back to the page
  // heap for the growing block to reuse).
  void give_to_slabs(void* head);

  // Returns the memory this class holds without using it: batches on the
  // transfer stack go back to their slabs, and each shard's spare slab goes
  // back to the page heap. Returns blocks drained from the stack.
  uint64_t reclaim();
  // Refills + flushes so far: the background purger reclaims a class whose
  // count did not move for a whole decay period.
  uint64_t activity() const {
    return refills_.load(std::memory_order_relaxed) + flushes_.load(std::memory_order_relaxed);
  }

  uint32_t batch_size() const { return batch_size_; }
  unsigned num_shards() const { return num_shards_; }
  // Its page heap's clean pages handed out so far (PageHeap::clean_pages_taken;
  // every pool shares the one heap): the caches read it to see the heap grow.
  uint64_t heap_clean_pages_taken() const {
    return heap_ != nullptr ? heap_->clean_pages_taken() : 0;
  }
  // The medium classes (bit cls) whose slabs the page heap has seen filled
  // (PageHeap::dense_medium): the caches grow those less.
  uint64_t heap_dense_medium() const { return heap_ != nullptr ? heap_->dense_medium() : 0; }
  CentralPoolStats stats();

  // Fork: every shard lock, in index order.
  void lock_all();
  void unlock_all();
  void reset_locks_after_fork();

 private:
  Shard& shard(unsigned i) { return *reinterpret_cast<Shard*>(shards_ + i * stride_); }
  Mutex& lock(unsigned i) { return locks_[i * lock_stride_]; }
  // Appends blocks of the shard's slabs to out[*count, n); the first from
  // several slabs' free lists side by side (out[k, n) of up to kTakeWays).
  uint32_t take_side_by_side(Shard& sh, void** out, uint32_t k, uint32_t n);
  // *fresh_left: never-used blocks it may still carve (the take stops at 0).
  void take_locked(Shard& sh, unsigned index, uint32_t n, bool may_grow, void** out,
                   uint32_t* count, uint32_t* fresh_left);
  // One block back onto its slab s's free list (the shard's lock held).
  void put_back_locked(Shard& sh, void* b, Span* s);
  // blocks[0, n) (n <= kMaxBatch) back to their slabs, from the array.
  void give_array_to_shards(void* const* blocks, uint32_t n);
  // A null-terminated chain back to its slabs (give_array_to_shards, a
  // kMaxBatch at a time).
  void give_to_shards(void* head);
  void push_partial(Shard& sh, Span* s);
  // An empty slab back to the page heap.
  void release_slab(Span* s);
  void remove_partial(Shard& sh, Span* s);

  BatchStack stack_;
  PageHeap* heap_ = nullptr;
  char* shards_ = nullptr;
  size_t stride_ = 0;
  Mutex* locks_ = nullptr;
  size_t lock_stride_ = 0;
  unsigned num_shards_ = 0;
  uint32_t cls_ = 0;
  uint32_t block_size_ = 0;
  uint32_t blocks_per_slab_ = 0;
  uint32_t slab_pages_ = 0;
  uint32_t batch_size_ = 1;
  SlabScrub scrub_ = SlabScrub::kNone;
  // Bit i: shard i has partial slabs. Changed under shard i's lock as its
  // list empties or fills; read without any by take_blocks, which tries only
  // those shards (with 64 shards, trying all 63 others before carving a
  // slab put take_blocks at 4.6% of a fragmentation run). A stale bit costs
  // one try, or one slab carved while another shard had blocks, as a busy
  // try_lock always did.
  std::atomic<uint64_t> partial_shards_{0};

  std::atomic<uint64_t> refills_{0}, flushes_{0}, lock_free_hits_{0}, lock_free_pushes_{0},
      shard_hits_{0}, new_slabs_{0};
};

// Shard hint for the calling thread: its current CPU.
unsigned current_shard(unsigned num_shards);

// Every small and medium class's central pool, by class ([0] unused);
// constant-initialised, set up by runtime/init.cc. Hidden: nothing
// interposes it.
extern constinit CentralPool g_central_pools[kNumClasses] __attribute__((visibility("hidden")));

}  // namespace slabby

#include "central/central_pool.h"

#include <sched.h>

#include <bit>
#include <cstring>
#include <new>

#include "common/size_class.h"

namespace slabby {

constinit CentralPool g_central_pools[kNumClasses];

unsigned current_shard(unsigned num_shards) {
  // glibc reads the CPU from the rseq area when it registered one (no system
  // call); otherwise the vDSO getcpu.
  int cpu = sched_getcpu();
  return cpu < 0 ? 0 : static_cast<unsigned>(cpu) % num_shards;
}

void CentralPool::init(unsigned cls, PageHeap* heap, char* shards, unsigned num_shards,
                       size_t stride, Mutex* locks, size_t lock_stride, uint32_t batch_size,
                       uint32_t max_stack_batches, char* batches, SlabScrub scrub) {
  heap_ = heap;
  scrub_ = scrub;
  cls_ = cls;
  block_size_ = static_cast<uint32_t>(class_size(cls));
  blocks_per_slab_ = blocks_per_slab(cls);
  slab_pages_ = kSlabPages[cls];
  shards_ = shards;
  stride_ = stride;
  locks_ = locks;
  lock_stride_ = lock_stride;
  num_shards_ = num_shards;
  batch_size_ = batch_size == 0 ? 1 : batch_size > kMaxBatch ? kMaxBatch : batch_size;
  for (unsigned i = 0; i < num_shards; ++i) new (shards_ + i * stride_) Shard{.index = i};
  partial_shards_.store(0, std::memory_order_relaxed);
  stack_.init(batches, batch_size_, max_stack_batches);
}

void CentralPool::push_partial(Shard& sh, Span* s) {
  s->in_partial = true;
  s->prev = nullptr;
  s->next = sh.partial;
  if (sh.partial)
    sh.partial->prev = s;
  else
    partial_shards_.fetch_or(uint64_t{1} << sh.index, std::memory_order_relaxed);
  sh.partial = s;
}

void CentralPool::remove_partial(Shard& sh, Span* s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    sh.partial = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = nullptr;
  s->in_partial = false;
  if (sh.partial == nullptr)
    partial_shards_.fetch_and(~(uint64_t{1} << sh.index), std::memory_order_relaxed);
}

// Pops the free lists of up to kTakeWays partial slabs side by side, one
// block from each in turn, while every one of them has a block and out has
// room for a round (at most kMaxBatch blocks). A pop reads the link in the
// block, which is usually cold by now (it was freed long before), and one
// list is a chain of dependent loads: walked alone it costs a cache miss per
// block, back to back (9.5% of a trace replay's time, all on that load).
// Independent lists let those misses overlap. The blocks are then written
// to out slab by slab, as a walk of one list at a time would have left
// them, so blocks handed out one after another still come from one slab.
// Returns the new count.
uint32_t CentralPool::take_side_by_side(Shard& sh, void** out, uint32_t k, uint32_t n) {
  Span* s[kTakeWays];
  uint32_t m = 0;
  for (Span* p = sh.partial; p != nullptr && m < kTakeWays; p = p->next)
    if (p->freelist != nullptr) s[m++] = p;
  if (m < 2) return k;
  void* head[kTakeWays];
  for (uint32_t i = 0; i < m; ++i) head[i] = s[i]->freelist;
  uint32_t room = n - k < kMaxBatch ? n - k : kMaxBatch;
  void* taken[kMaxBatch];
  uint32_t t = 0;
  for (;;) {
    bool all = room - t >= m;
    for (uint32_t i = 0; i < m; ++i) all = all && head[i] != nullptr;
    if (!all) break;
    for (uint32_t i = 0; i < m; ++i) taken[t++] = head[i];
    for (uint32_t i = 0; i < m; ++i) head[i] = *static_cast<void**>(head[i]);
  }
  uint32_t rounds = t / m;
  for (uint32_t i = 0; i < m; ++i) {
    for (uint32_t r = 0; r < rounds; ++r) out[k++] = taken[r * m + i];
    s[i]->freelist = head[i];
    s[i]->used += rounds;
    if (head[i] == nullptr && s[i]->carved == blocks_per_slab_) remove_partial(sh, s[i]);
  }
  return k;
}

// Appends blocks of the shard's slabs to out until *count is n. With
// may_grow, takes the spare or a new slab from the page heap when the shard
// runs dry. Follows the slabs' free lists (several side by side first);
// never touches a block not carved yet.
void CentralPool::take_locked(Shard& sh, unsigned index, uint32_t n, bool may_grow, void** out,
                              uint32_t* count, uint32_t* fresh_left) {
  uint32_t k = take_side_by_side(sh, out, *count, n);
  while (k < n && *fresh_left > 0) {
    Span* s = sh.partial;
    if (s == nullptr) {
      if (!may_grow) break;
      if (sh.spare != nullptr) {
        s = sh.spare;
        sh.spare = nullptr;
      } else {
        s = heap_->alloc_slab(cls_, slab_pages_);
        if (s == nullptr) break;  // out of memory: hand out what we have
        s->shard = static_cast<uint8_t>(index);
        sh.slabs++;
        new_slabs_.fetch_add(1, std::memory_order_relaxed);
      }
      push_partial(sh, s);
    }
    // Blocks freed back to the slab first (warm in cache), then fresh ones.
    uint32_t before = k;
    while (k < n && s->freelist != nullptr) {
      void* b = s->freelist;
      s->freelist = *static_cast<void**>(b);
      out[k++] = b;
    }
    uint32_t fresh = blocks_per_slab_ - s->carved;
    if (fresh > n - k) fresh = n - k;
    if (fresh > *fresh_left) fresh = *fresh_left;
    *fresh_left -= fresh;
    for (uint32_t i = 0; i < fresh; ++i)
      out[k++] = reinterpret_cast<void*>(s->start + uintptr_t{s->carved + i} * block_size_);
    // Atomic store (a plain mov): the checked free path reads `carved`
    // without the lock to tell a never-used block (secure/checked_small.cc).
    __atomic_store_n(&s->carved, s->carved + fresh, __ATOMIC_RELAXED);
    if (s->carved > s->written) s->written = s->carved;
    s->used += k - before;
    if (s->freelist == nullptr && s->carved == blocks_per_slab_) remove_partial(sh, s);
  }
  *count = k;
}

uint32_t CentralPool::take_blocks(void** out, uint32_t n, unsigned home, uint32_t max_fresh) {
  refills_.fetch_add(1, std::memory_order_relaxed);
  if (n > kMaxBatch) n = kMaxBatch;
  if (stack_.pop(out)) {
    lock_free_hits_.fetch_add(1, std::memory_order_relaxed);
    return batch_size_;
  }
  if (home >= num_shards_) home = 0;
  uint32_t count = 0;
  // Existing slabs first: the home shard (waiting for it), then the others
  // if they are free right now; then a new slab in the home shard.
  {
    LockGuard g(lock(home));
    take_locked(shard(home), home, n, false, out, &count, &max_fresh);
  }
  // Only shards with partial slabs, in order from the one after home,
  // wrapping round (so the CPUs do not all try shard 0 first): rotated, bit
  // p stands for shard home + 1 + p.
  uint64_t others = partial_shards_.load(std::memory_order_relaxed) & ~(uint64_t{1} << home);
  others = std::rotr(others, static_cast<int>(home + 1));
  while (others != 0 && count < n && max_fresh > 0) {
    unsigned idx = (home + 1 + static_cast<unsigned>(__builtin_ctzll(others))) % 64;
    others &= others - 1;
    if (!lock(idx).try_lock()) continue;
    take_locked(shard(idx), idx, n, false, out, &count, &max_fresh);
    lock(idx).unlock();
  }
  if (count > 0 && (count == n || max_fresh == 0)) {
    shard_hits_.fetch_add(1, std::memory_order_relaxed);
    return count;
  }
  LockGuard g(lock(home));
  take_locked(shard(home), home, n, true, out, &count, &max_fresh);
  return count;
}

// Links blocks[0, n) into a null-terminated chain in that order.
static BlockChain link_chain(void* const* blocks, uint32_t n) {
  BlockChain chain;
  if (n == 0) return chain;
  for (uint32_t i = 0; i + 1 < n; ++i) *static_cast<void**>(blocks[i]) = blocks[i + 1];
  *static_cast<void**>(blocks[n - 1]) = nullptr;
  chain.head = blocks[0];
  chain.tail = blocks[n - 1];
  chain.count = n;
  return chain;
}

BlockChain CentralPool::take(uint32_t n, unsigned home, uint32_t max_fresh) {
  void* blocks[kMaxBatch];
  BlockChain chain;
  while (chain.count < n) {
    uint32_t want = n - chain.count < kMaxBatch ? n - chain.count : kMaxBatch;
    uint32_t got = take_blocks(blocks, want, home, max_fresh);
    BlockChain part = link_chain(blocks, got);
    if (chain.head == nullptr) {
      chain = part;
    } else if (got > 0) {
      *static_cast<void**>(chain.tail) = part.head;
      chain.tail = part.tail;
      chain.count += got;
    }
    // Fewer: memory ran out. More: a whole transfer batch, served as is.
    if (got != want) break;
  }
  return chain;
}

void CentralPool::put_back_locked(Shard& sh, void* b, Span* s) {
  *static_cast<void**>(b) = s->freelist;
  s->freelist = b;
  s->used--;
  if (s->used == 0) {
    if (s->in_partial) remove_partial(sh, s);
    // All blocks are free: forget them and start carving afresh if reused.
    s->freelist = nullptr;
    __atomic_store_n(&s->carved, 0, __ATOMIC_RELAXED);
    // A medium slab is one block: the transfer stack already holds such
    // blocks for reuse, so a spare would only add a block's worth of idle
    // memory per shard.
    if (sh.spare == nullptr && blocks_per_slab_ > 1) {
      sh.spare = s;
    } else {
      sh.slabs--;
      release_slab(s);
    }
  } else if (!s->in_partial) {
    push_partial(sh, s);
  }
}

void CentralPool::release_slab(Span* s) {
  // Only blocks [0, written) were ever carved from this slab: the rest hold
  // what the page heap gave, and stay untouched (not faulted in). What the
  // carved ones get first: SlabScrub (central_pool.h).
  if (SLABBY_UNLIKELY(scrub_ == SlabScrub::kZero)) {
    memset(reinterpret_cast<void*>(s->start), 0, uintptr_t{s->written} * block_size_);
  } else if (SLABBY_UNLIKELY(scrub_ == SlabScrub::kZeroEdges)) {
    for (uint32_t i = 0; i < s->written; ++i) {
      auto* w = reinterpret_cast<uint64_t*>(s->start + uintptr_t{i} * block_size_);
      w[0] = w[1] = 0;
    }
  } else if (SLABBY_UNLIKELY(scrub_ == SlabScrub::kClearTags)) {
    for (uint32_t i = 0; i < s->written; ++i)
      reinterpret_cast<uint64_t*>(s->start + uintptr_t{i + 1} * block_size_)[-1] = 0;
  }
  heap_->free_slab(s);
}

void CentralPool::give(void* head, uint32_t count) {
  if (head == nullptr) return;
  if (count == batch_size_ && stack_.max_batches() > 0) {
    // A whole batch: its pointers onto the stack (the chain is only read).
    void* blocks[kMaxBatch];
    void* b = head;
    uint32_t n = 0;
    for (; b != nullptr && n < count; b = *static_cast<void**>(b)) blocks[n++] = b;
    if (b == nullptr && n == count && stack_.push(blocks)) {
      flushes_.fetch_add(1, std::memory_order_relaxed);
      lock_free_pushes_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  flushes_.fetch_add(1, std::memory_order_relaxed);
  give_to_shards(head);
}

void CentralPool::give_blocks(void* const* blocks, uint32_t n) {
  if (n == 0) return;
  flushes_.fetch_add(1, std::memory_order_relaxed);
  if (n == batch_size_ && stack_.push(blocks)) {
    lock_free_pushes_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  for (uint32_t i = 0; i < n; i += kMaxBatch)
    give_array_to_shards(blocks + i, n - i < kMaxBatch ? n - i : kMaxBatch);
}

// From the array, not through a chain: every block's span is looked up
// before any lock is taken, and the lookups (page map, span: cache misses
// when the blocks were freed in random order) do not wait on one another,
// where walking a chain waits on each link. Each shard's lock is then taken
// once, for its blocks. (A chain first cost a write to every block, then
// two walks of it: fragmentation spent 15.6% of its time here, 7.1% in
// give_blocks' linking alone.)
//
// Each block's shard is read once, before any lock, into an array of its
// own: a span whose last block goes back is released (put_back_locked), and
// the page heap may hand that Span to another thread's new slab, of any
// shard, before this loop reaches the next shard; reading spans[i]->shard
// again there put a block back twice (found under qemu, thread_churn with
// per-thread caches, about 1 run in 20 with two running at once).
void CentralPool::give_array_to_shards(void* const* blocks, uint32_t n) {
  Span* spans[kMaxBatch];
  uint8_t shard_of[kMaxBatch];
  uint64_t shards = 0;
  static_assert(kMaxShards <= 64, "shards present: one bit each, and fit a byte");
  for (uint32_t i = 0; i < n; ++i) {
    spans[i] = heap_->span_of(blocks[i]);
    shard_of[i] = static_cast<uint8_t>(spans[i]->shard);
    shards |= uint64_t{1} << shard_of[i];
  }
  while (shards != 0) {
    unsigned idx = static_cast<unsigned>(__builtin_ctzll(shards));
    shards &= shards - 1;
    Shard& sh = shard(idx);
    LockGuard g(lock(idx));
    for (uint32_t i = 0; i < n; ++i)
      if (shard_of[i] == idx) put_back_locked(sh, blocks[i], spans[i]);
  }
}

void CentralPool::give_to_slabs(void* head) {
  if (head == nullptr) return;
  flushes_.fetch_add(1, std::memory_order_relaxed);
  give_to_shards(head);
}

// A chain is read into arrays of up to kMaxBatch blocks (each block's link
// read before it is put back), each given as above.
void CentralPool::give_to_shards(void* head) {
  void* blocks[kMaxBatch];
  while (head != nullptr) {
    uint32_t n = 0;
    for (; head != nullptr && n < kMaxBatch; head = *static_cast<void**>(head)) blocks[n++] = head;
    give_array_to_shards(blocks, n);
  }
}

uint64_t CentralPool::reclaim() {
  uint64_t drained = 0;
  void* blocks[kMaxBatch];
  while (stack_.pop(blocks)) {
    // Not give_blocks(): it would push the batch straight back onto the stack.
    give_array_to_shards(blocks, batch_size_);
    drained += batch_size_;
  }
  for (unsigned i = 0; i < num_shards_; ++i) {
    Shard& sh = shard(i);
    LockGuard g(lock(i));
    if (sh.spare != nullptr) {
      release_slab(sh.spare);
      sh.spare = nullptr;
      sh.slabs--;
    }
  }
  return drained;
}

CentralPoolStats CentralPool::stats() {
  CentralPoolStats st{};
  for (unsigned i = 0; i < num_shards_; ++i) {
    LockGuard g(lock(i));
    st.slabs += shard(i).slabs;
  }
  st.refills = refills_.load(std::memory_order_relaxed);
  st.flushes = flushes_.load(std::memory_order_relaxed);
  st.lock_free_hits = lock_free_hits_.load(std::memory_order_relaxed);
  st.lock_free_pushes = lock_free_pushes_.load(std::memory_order_relaxed);
  st.shard_hits = shard_hits_.load(std::memory_order_relaxed);
  st.new_slabs = new_slabs_.load(std::memory_order_relaxed);
  st.stack_batches = stack_.depth();
  return st;
}

void CentralPool::lock_all() {
  for (unsigned i = 0; i < num_shards_; ++i) lock(i).lock();
}
void CentralPool::unlock_all() {
  for (unsigned i = num_shards_; i-- > 0;) lock(i).unlock();
}
void CentralPool::reset_locks_after_fork() {
  for (unsigned i = 0; i < num_shards_; ++i) lock(i).reset_after_fork();
}

}  // namespace slabby

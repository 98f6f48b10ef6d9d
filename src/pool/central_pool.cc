#include "pool/central_pool.h"

#include "frontend/size_class.h"

namespace slabby {

void CentralPool::init(unsigned cls, PageHeap* heap) {
  heap_ = heap;
  cls_ = cls;
  block_size_ = static_cast<uint32_t>(class_size(cls));
  blocks_per_slab_ = blocks_per_slab(cls);
  slab_pages_ = kSlabPages[cls];
}

void CentralPool::push_partial(Span* s) {
  s->in_partial = true;
  s->prev = nullptr;
  s->next = partial_;
  if (partial_) partial_->prev = s;
  partial_ = s;
}

void CentralPool::remove_partial(Span* s) {
  if (s->prev) s->prev->next = s->next; else partial_ = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = nullptr;
  s->in_partial = false;
}

BlockChain CentralPool::take(uint32_t n) {
  BlockChain chain;
  LockGuard g(mu_);
  refills_++;
  while (chain.count < n) {
    Span* s = partial_;
    if (s == nullptr) {
      if (spare_ != nullptr) {
        s = spare_;
        spare_ = nullptr;
      } else {
        s = heap_->alloc_slab(cls_, slab_pages_);
        if (s == nullptr) break;  // out of memory: hand out what we have
        slabs_++;
      }
      push_partial(s);
    }
    // Blocks freed back to the slab first (warm in cache), then fresh ones.
    while (chain.count < n && s->freelist != nullptr) {
      void* b = s->freelist;
      s->freelist = *static_cast<void**>(b);
      *static_cast<void**>(b) = chain.head;
      if (chain.head == nullptr) chain.tail = b;
      chain.head = b;
      chain.count++;
      s->used++;
    }
    while (chain.count < n && s->carved < blocks_per_slab_) {
      void* b = reinterpret_cast<void*>(s->start + uintptr_t{s->carved} * block_size_);
      s->carved++;
      *static_cast<void**>(b) = chain.head;
      if (chain.head == nullptr) chain.tail = b;
      chain.head = b;
      chain.count++;
      s->used++;
    }
    if (s->freelist == nullptr && s->carved == blocks_per_slab_) remove_partial(s);
  }
  return chain;
}

void CentralPool::give(void* head, uint32_t count) {
  LockGuard g(mu_);
  flushes_++;
  for (uint32_t i = 0; i < count; ++i) {
    void* b = head;
    head = *static_cast<void**>(b);
    Span* s = heap_->span_of(b);
    *static_cast<void**>(b) = s->freelist;
    s->freelist = b;
    s->used--;
    if (s->used == 0) {
      if (s->in_partial) remove_partial(s);
      // All blocks are free: forget them and start carving afresh if reused.
      s->freelist = nullptr;
      s->carved = 0;
      if (spare_ == nullptr) {
        spare_ = s;
      } else {
        slabs_--;
        heap_->free_slab(s);
      }
    } else if (!s->in_partial) {
      push_partial(s);
    }
  }
}

CentralPoolStats CentralPool::stats() {
  LockGuard g(mu_);
  return CentralPoolStats{slabs_, refills_, flushes_};
}

}  // namespace slabby

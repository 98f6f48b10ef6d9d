// slabby: the page heap. Owns the arena (one PROT_NONE, MAP_NORESERVE
// reservation made at init) and hands out spans of pages: slabs to the
// central pools and large allocations to the front end.
//
// Ownership: a pointer is slabby's iff it lies in [base, base + size); the
// range check is the whole answer, so free() of a foreign pointer (from glibc
// before the preload, libc internals, a DEEPBIND library) costs two
// instructions to recognise. Memory past the arena is never ours: requests the
// arena cannot hold fall back to glibc.
//
// Commit: the arena and its maps are made read-write in steps as the frontier
// grows, so the commit charge follows use (overcommit=2 and ulimit -v safe).
//
// Return to the OS: freed spans stay mapped ("dirty") so a program reusing big
// buffers does not re-fault them; when dirty bytes pass retain_max, the oldest
// are purged with MADV_DONTNEED down to half of it, so madvise calls are
// amortised over many frees (no madvise per free).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/base.h"
#include "common/lock.h"
#include "heap/span.h"
#include "os/os.h"

namespace slabby {

// A reservation whose prefix is committed on demand.
class Region {
 public:
  // `step`: commit granularity (a multiple of the page size).
  bool reserve(size_t bytes, size_t align, size_t step);
  // Commits at least [base, base + bytes). False if the OS refuses.
  bool ensure(size_t bytes);
  char* base() const { return base_; }
  size_t reserved() const { return reserved_; }
  size_t committed() const { return committed_; }

 private:
  char* base_ = nullptr;
  size_t reserved_ = 0;
  size_t committed_ = 0;
  size_t step_ = kPageSize;
};

struct PageHeapStats {
  uint64_t in_use_bytes;      // spans handed out (slabs + large)
  uint64_t free_dirty_bytes;  // free spans kept mapped
  uint64_t free_clean_bytes;  // free spans purged
  uint64_t frontier_bytes;    // arena used so far
  uint64_t metadata_bytes;
  uint64_t large_allocations;
  uint64_t large_frees;
  uint64_t large_live_bytes;
  uint64_t spans_allocated;
  uint64_t purge_passes;  // purges that made at least one madvise call
  uint64_t decay_purged_bytes;
  uint64_t limit_refusals;  // span requests refused by SLABBY_MAX_HEAP
  uint64_t last_purge_ns;   // duration of the last purge pass that made a madvise call
};

class PageHeap {
 public:
  // Reserves the arena; tries smaller sizes (down to 256 MiB) when the OS
  // refuses the requested one.
  bool init(size_t arena_bytes, size_t retain_max);

  uintptr_t base() const { return base_; }
  size_t size() const { return size_; }
  const uint8_t* class_map() const { return class_map_; }

  bool owns(const void* p) const { return reinterpret_cast<uintptr_t>(p) - base_ < size_; }

  // Span covering p (p must be owned). For a slab any page works; for other
  // spans only the first and last page are exact.
  Span* span_of(const void* p) const {
    return page_map_[(reinterpret_cast<uintptr_t>(p) - base_) >> kPageShift];
  }
  uint8_t class_of(const void* p) const {
    return class_map_[(reinterpret_cast<uintptr_t>(p) - base_) >> kPageShift];
  }

  // A slab of `pages` pages for class cls, page map and class map filled.
  Span* alloc_slab(unsigned cls, size_t pages);
  void free_slab(Span* s);

  // A large span of at least `bytes`, starting at a multiple of `align`
  // (a power of two, >= page size). nullptr when the arena is exhausted.
  // all_pages: every page's PageMap entry points at the span (the checked
  // paths find a span from any address in it).
  // Both allocations ask the circuit breaker first (runtime/breaker.h):
  // while it is open they return nullptr at once, and the callers fall back.
  Span* alloc_large(size_t bytes, size_t align, bool all_pages = false);
  void free_large(Span* s);

  // Purges every dirty free span now (malloc_trim). Returns bytes purged.
  size_t purge_all();
  // Purges dirty free spans freed at least decay_ms ago, oldest first.
  size_t decay(uint64_t now_ms);
  // True once free pages have piled up past 1 MiB: the background purger is
  // worth starting (read without the lock by the slow paths).
  bool wants_background() const { return wants_background_.load(std::memory_order_relaxed); }

  PageHeapStats stats();
  // Resident bytes of [base, frontier), per page class map entry when
  // per_class is non-null (per_class[cls] += resident bytes of that class).
  uint64_t resident(uint64_t* per_class, size_t num_classes);

  void set_retain_max(size_t bytes) { retain_max_ = bytes; }
  void set_decay_ms(uint64_t ms) { decay_ms_ = ms; }
  // Spans in use may not exceed this many bytes (0: no limit).
  void set_max_heap(size_t bytes) { max_heap_ = bytes; }
  void set_thp(os::Thp mode) { os::set_thp(arena_.base(), arena_.reserved(), mode); }

  // Fork support: the atfork handlers lock and unlock the heap as a whole.
  void lock() { mu_.lock(); }
  void unlock() { mu_.unlock(); }
  void reset_lock_after_fork() { mu_.reset_after_fork(); }

 private:
  static constexpr size_t kExactBins = 128;           // free spans of 1..128 pages
  static constexpr size_t kNumBins = kExactBins + 2;  // + one for all larger

  Span* alloc_pages_locked(size_t pages, size_t align_pages);
  void free_pages_locked(Span* s);
  Span* take_free_locked(size_t pages);
  Span* grow_locked(size_t pages);
  Span* split_locked(Span* s, size_t pages);  // returns the tail remainder, kept free
  // Every span becoming free goes through here: merged with free neighbours
  // (a remainder next to the old frontier has one), then binned.
  void merge_and_insert_locked(Span* s);
  void insert_free_locked(Span* s);
  void remove_free_locked(Span* s);
  void purge_locked(size_t target_dirty);
  // Purges the least recently freed dirty span (lru_tail_, non-null).
  size_t purge_oldest_locked();
  size_t decay_locked(uint64_t now_ms);
  void set_page_map(Span* s, bool all_pages);
  Span* new_span_locked();
  void delete_span_locked(Span* s);
  // A span request failed (after the lock): logs it (rate-limited).
  void note_failure(size_t pages, bool limit);
  // The path of every span request: asks the circuit breaker, takes the
  // pages under the lock and lets `claim` set the span up there, then logs a
  // failure and reports the outcome to the breaker.
  template <class Claim>
  Span* take_span(size_t pages, size_t align_pages, Claim claim);
  size_t bin_of(size_t pages) const { return pages <= kExactBins ? pages : kExactBins + 1; }

  Mutex mu_;
  uintptr_t base_ = 0;
  size_t size_ = 0;  // 0 until init: every pointer is foreign
  uint8_t* class_map_ = nullptr;
  Span** page_map_ = nullptr;
  Region arena_, page_map_region_, class_map_region_;

  size_t frontier_pages_ = 0;
  size_t retain_max_ = 0;
  uint64_t decay_ms_ = 1000;
  size_t max_heap_ = 0;
  uint64_t last_decay_ms_ = 0;
  std::atomic<bool> wants_background_{false};
  Span* bins_[kNumBins] = {};
  uint64_t bin_mask_[(kNumBins + 63) / 64] = {};
  Span* lru_head_ = nullptr;  // newest dirty free span
  Span* lru_tail_ = nullptr;  // oldest
  Span* span_freelist_ = nullptr;
  char* span_chunk_ = nullptr;
  size_t span_chunk_left_ = 0;

  PageHeapStats stats_ = {};
  bool last_refusal_was_limit_ = false;  // set by alloc_pages_locked
};

}  // namespace slabby

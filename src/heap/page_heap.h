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
// Reuse: a request takes a free span that already holds pages (dirty) before
// one that does not (clean), so a program reusing big buffers does not
// re-fault them (calloc too: zeroing resident pages costs less than
// faulting fresh ones); an mremap target asks the other way round. Large
// spans (above 1 MiB) come in size classes, four per power of two
// (large_class_pages), so a freed one fits the next request of its class
// whole, at the same start (kLargeExactPages asks for the pages exactly: the
// checked paths' guarded spans, whose guard page must follow the block).
//
// Return to the OS: freed spans stay mapped ("dirty"); when dirty bytes pass
// retain_max, the oldest are purged with MADV_DONTNEED down to half of it
// (spans freed within the grace period excepted while a background thread
// enforces the bound later), so madvise calls are amortised over many frees.
// Large spans are the exception until reuse is seen: a freed large span
// above keep_huge pages is purged at once, as glibc unmaps its mmapped blocks
// (a vector doubling to 128 MiB never reuses the halves it frees). keep_huge
// starts at 1 MiB (every large span is above it) and rises to retain_max the
// first time a request follows that the last span purged could have served:
// a program that frees big buffers and allocates them again keeps them (as
// glibc raises its mmap threshold when a block is freed).
//
// Huge pages (SLABBY_THP=large): a live large span that holds a whole
// aligned huge page (2 MiB with 4 KiB system pages, 512 MiB with 64 KiB
// ones) is marked MADV_HUGEPAGE, so its memory faults in a huge page at a
// time; small and medium slabs never are (their RSS would grow by whole
// huge pages). SLABBY_THP=dense (the default) marks a span only at a size
// the program has been seen to fill: a freed span's first whole huge page
// is looked at with mincore (one free in kDensityCheckEvery of each size
// per power of two, until one is found filled). A program that writes the
// first 8 KiB of blocks of 1-8 MiB faulted in 2 MiB for each under `large`
// (48-53 x jemalloc's peak RSS: large-sparse in docs/benchmarks.md).
// Slabs (SLABBY_THP=dense only) are filled by construction, so their pages
// want huge pages as soon as there are enough of them for a partly used huge
// page not to matter: once the program holds kHugeSlabsAfter bytes of slabs,
// a slab that no free dirty span serves takes a whole aligned huge page
// (free clean pages, else the frontier's), marked (huge_slabs.cc), and the
// slabs after it fill the rest. Before that
// (most programs) slabs keep small pages, and their RSS its 4 KiB grain.
// A marked span is a mapping of its own (linear, other flags); at most
// kMaxHugeSpans are marked at once. A freed marked span that stays mapped
// keeps its mark (huge_marks.cc): the next request for the same pages finds
// it marked, so a program that frees and allocates one big buffer in a loop
// makes no madvise call (it made two an iteration, each splitting and
// merging the mapping); any other use of those pages marks them back first.
// Grown in place, its new pages join that mapping when they complete a huge
// page (span_resize.cc), so up to one huge page's worth of its tail may lie
// in the arena's mapping after it.
//
// Large spans change size in place (span_resize.cc): they grow into the free
// pages after them or at the frontier, shrink by returning their tail, and
// move by mremap: the pages, not the bytes. Mappings: the arena is one
// mapping ("linear": each page's file offset follows its address). A span
// moved by mremap keeps its old offsets, so it is a mapping of its own (a
// "remapped" span), until it is freed: then its range is mapped afresh,
// linear again, and merges back. Invariant: every page outside a live
// remapped span, free pages included, is linear. So a span that is not
// remapped lies in one linear mapping (a marked one: in its own and the
// arena's, joined by one madvise before it moves) and can always move in one
// mremap, and the mappings slabby adds stay below twice the number of live
// remapped spans.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/base.h"
#include "common/lock.h"
#include "heap/fault_judge.h"
#include "heap/region.h"
#include "heap/span.h"
#include "os/os.h"

namespace slabby {

// What the page heap tells the layers above (runtime/ installs them at init;
// any may be null). admit and outcome bracket every request that may take
// new pages (the circuit breaker); failed reports a request refused; purged
// runs under the heap lock and must not allocate or call back.
struct PageHeapHooks {
  bool (*admit)(uint32_t* ticket);  // false: refuse the request at once
  void (*outcome)(uint32_t ticket, bool ok);
  void (*failed)(size_t bytes, bool limit, size_t max_heap);
  void (*purged)(size_t bytes, uint64_t ns, const char* why);
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
  // Large spans changing size (span_resize.cc).
  uint64_t grown_in_place;    // grew into free pages after them or at the frontier
  uint64_t shrunk_in_place;   // gave back their tail
  uint64_t remap_moves;       // moved by mremap
  uint64_t remap_failures;    // mremap refused: the caller copied instead
  uint64_t remapped_live;     // live spans that are a mapping of their own
  uint64_t lost_bytes;        // ranges left unmapped because the OS refused to map them again
  uint64_t huge_purged;       // large spans purged as they were freed (above keep_huge)
  uint64_t huge_page_spans;   // live large spans marked for transparent huge pages
  uint64_t huge_marks_kept;   // freed marked spans whose pages keep the mark (at most kKeptMarks)
  uint64_t huge_marks_reused;  // requests that found their pages marked already
  uint64_t keep_huge_bytes;   // freed large spans up to this size stay mapped for reuse
  uint64_t huge_slab_chunks;  // huge pages of the frontier marked for slabs (SLABBY_THP=dense)
  uint64_t huge_slab_runs;    // runs of adjacent chunks marked now: a mapping each
  uint64_t huge_slab_unmarked;  // chunks marked back after a purge touched them
  // Whether chunks pay here (fault_judge.h).
  uint64_t huge_fault_ns;       // chunks' first touches, moving average (0: none timed)
  uint64_t small_fault_ns;      // clean slabs' first touches (4 KiB faults), median
  uint64_t huge_fault_timed;    // chunks timed
  uint64_t huge_slab_declined;  // chunks not made: huge pages faulted slower than small ones
};

// How a large span is asked for.
enum LargeFlags : unsigned {
  kLargeAllPages = 1,     // every page's PageMap entry points at the span (checked paths)
  kLargePreferClean = 2,  // clean free spans first (mremap targets: the kernel discards the pages)
  kSlabRequest = 4,       // internal: a slab's pages (alloc_slab)
  kLargeZeroTable = 8,    // a calloc: no inner marks (mark_huge), zeroed tables are often sparse
  kLargeSmallPages = 16,  // no huge pages: guarded spans (checked paths), mprotect'ed by page
  kLargeExactPages = 32,  // exactly the pages asked for, not the large class's (a guarded
                          // span's guard page must follow its block; tests of sizes)
};

struct PageHeapLayout;

class PageHeap {
 public:
  constexpr PageHeap() = default;
  // A heap under a lock kept elsewhere (common/fork_locks.h).
  explicit constexpr PageHeap(Mutex& mu) : mu_(&mu) {}
  PageHeap(const PageHeap&) = delete;
  PageHeap& operator=(const PageHeap&) = delete;

  // Reserves the arena; tries smaller sizes (down to 256 MiB) when the OS
  // refuses the requested one.
  bool init(size_t arena_bytes, size_t retain_max);

  uintptr_t base() const { return base_; }
  size_t size() const { return size_; }
  const uint8_t* class_map() const { return class_map_; }
  // free()'s lookup, written in assembly, reads the three fields above at
  // these offsets (frontend/allocator.h: page_class_of).
  friend struct PageHeapLayout;

  bool owns(const void* p) const { return reinterpret_cast<uintptr_t>(p) - base_ < size_; }

  // Span covering p (p must be owned). For a slab any page works; for other
  // spans only the first and last page are exact.
  Span* span_of(const void* p) const {
    return page_map_[(reinterpret_cast<uintptr_t>(p) - base_) >> kPageShift];
  }
  uint8_t class_of(const void* p) const {
    return class_map_[(reinterpret_cast<uintptr_t>(p) - base_) >> kPageShift];
  }
  // Whether p may be a block of class cls: in the arena, in a page of a
  // slab of the class, aligned as blocks are. What a free-list link read
  // from the heap must pass before it is followed (the checked modes).
  bool may_be_block_of(uintptr_t p, unsigned cls) const {
    const void* at = reinterpret_cast<const void*>(p);
    return owns(at) && class_of(at) == cls && p % kMinAlign == 0;
  }

  // A slab of `pages` pages for class cls, page map and class map filled.
  Span* alloc_slab(unsigned cls, size_t pages);
  void free_slab(Span* s);

  // A large span of at least `bytes`, starting at a multiple of `align`
  // (a power of two, >= page size). nullptr when the arena is exhausted.
  // flags: LargeFlags. zeroed is set when every byte reads as zero.
  // Both allocations ask the admit hook first (the circuit breaker): while
  // it refuses they return nullptr at once, and the callers fall back.
  Span* alloc_large(size_t bytes, size_t align, unsigned flags = 0);
  void free_large(Span* s);

  // Resizing a large span from the front end's realloc, in span_resize.cc.
  // The span keeps its start.
  // Grows to `pages` into the free pages after it (or the frontier); false
  // when they are not free or the cap refuses (nothing changed then). With
  // all_pages (the checked paths' spans: kLargeAllPages) every page of it
  // maps to it after.
  bool grow_in_place(Span* s, size_t pages, bool all_pages = false);
  // The same to the large class of `pages` (so the span fits the next
  // request of its class once freed), else to `pages` exactly.
  bool grow_to_class(Span* s, size_t pages, bool all_pages = false) {
    size_t want = large_class_pages(pages);
    return grow_in_place(s, want, all_pages) ||
           (want != pages && grow_in_place(s, pages, all_pages));
  }
  // Shrinks to `pages` (fewer), returning the tail to the free spans.
  void shrink_in_place(Span* s, size_t pages);
  // Moves the span's pages by mremap into a new span of `pages` (at least
  // s->pages) and frees the old one; the bytes past the old end read as
  // zero. nullptr when it cannot (no room, too many remapped spans, the OS
  // refused): s is then untouched and the caller copies.
  Span* move_by_remap(Span* s, size_t pages);
  // Largest number of live remapped spans (each costs the process up to two
  // mappings of its vm.max_map_count).
  static constexpr uint64_t kMaxRemapped = 4096;
  // Likewise for spans marked for huge pages (the kept marks included).
  static constexpr uint64_t kMaxHugeSpans = 4096;
  // SLABBY_THP=dense: a span of a size not learnt has its inner huge pages
  // marked when it has at least this many (mark_huge): a span of 10-12 MiB
  // or more. Smaller blocks filled would gain less than the two madvise
  // calls cost the ones that are not (large-sparse, blocks of 1-8 MiB
  // written in their first 8 KiB: 8% slower with 2).
  static constexpr size_t kInnerHugePages = 3;
  // Freed marked spans whose marks are kept, newest last.
  static constexpr size_t kKeptMarks = 8;
  // Spans of its own size class a request above 128 pages reads at most
  // (the free bins, below).
  static constexpr int kScanLarge = 16;
  // Free spans an aligned request reads at most before it asks for one big
  // enough to hold an aligned run wherever it starts.
  static constexpr int kScanAligned = 32;
  // keep_huge to start with: 1 MiB, the largest size class, so every large
  // span goes back at its free until the program is seen reusing one.
  static constexpr size_t kInitialKeepBytes = size_t{1} << 20;
  // SLABBY_THP=dense: of the frees of one size (per power of two) not yet
  // known to be filled, one in this many is looked at (a mincore call).
  static constexpr uint32_t kDensityCheckEvery = 16;
  // A medium class's first looks at most that read a slab made of dirty
  // pages, given back as it was made (medium_to_look_at_locked).
  static constexpr uint32_t kDirtyLooksMost = 8;
  // Sizes (bit b: 2^b to 2^(b+1) - 1 pages) found filled so far.
  uint64_t dense_sizes() const { return dense_sizes_.load(std::memory_order_relaxed); }
  // Medium classes (bit cls) whose slabs were found filled so far: their
  // slabs take chunks as small ones do (huge_slabs.cc).
  uint64_t dense_medium() const { return dense_medium_.load(std::memory_order_relaxed); }
  // SLABBY_THP=dense: slab bytes in use from which new slabs at the frontier
  // take huge pages (huge_slabs.cc). A program below it never gets any.
  // Counted: slabs of small classes and of medium classes seen filled when
  // the slab was made (Span::huge_counted), the slabs that take chunks; a
  // medium block used at its start is no reason for the small slabs beside
  // it to take huge pages (medium-live-2-256k: 32 MiB of such blocks put a
  // few MiB of small blocks on chunks, and medium slabs took the chunks'
  // leftover pages, resident with them: 22-36 MiB of peak RSS against 14).
  static constexpr size_t kHugeSlabsAfter = size_t{16} << 20;
  // Runs of marked slab chunks (each a mapping) and chunks marked at once at
  // most (each may be marked back, splitting its run: a mapping more); past
  // either, slabs keep small pages.
  static constexpr uint64_t kMaxHugeSlabRuns = 1024;
  static constexpr uint64_t kMaxHugeSlabChunks = 8192;

  // Large spans above kLargeClassBytes come in size classes, four per
  // power of two (a class's step is a quarter of its lower power of two):
  // a freed span then fits the next request of its class exactly, and that
  // block starts where the last one did, on the pages it touched.
  static constexpr size_t kLargeClassBytes = size_t{1} << 20;
  static size_t large_class_pages(size_t pages) {
    if (pages <= (kLargeClassBytes >> kPageShift)) return pages;
    return round_up(pages, size_t{1} << (floor_log2(pages) - 2));
  }
  // The pages a span that has to move to grow is given (realloc, default and
  // checked): as many again as it needs, up to 1 GiB more, in its large
  // class. Later growth uses the rest in place.
  static size_t with_headroom(size_t pages) {
    constexpr size_t kMaxHeadroomPages = (size_t{1} << 30) >> kPageShift;
    return large_class_pages(pages + (pages < kMaxHeadroomPages ? pages : kMaxHeadroomPages));
  }

  // Purges every dirty free span now (malloc_trim). Returns bytes purged.
  size_t purge_all();
  // Purges dirty free spans freed at least decay_ms ago, oldest first.
  size_t decay(uint64_t now_ms);
  // True once free pages have piled up past 1 MiB, or the heap has grown to
  // kBackgroundAfterBytes: the background purger is worth starting (read
  // without the lock by allocations' slow paths).
  static constexpr size_t kBackgroundAfterBytes = size_t{8} << 20;
  bool wants_background() const { return wants_background_.load(std::memory_order_relaxed); }

  PageHeapStats stats();
  // Resident bytes of [base, frontier), per page class map entry when
  // per_class is non-null (per_class[cls] += resident bytes of that class).
  uint64_t resident(uint64_t* per_class, size_t num_classes);

  void set_retain_max(size_t bytes) {
    retain_max_ = bytes;
    size_t keep = bytes < kInitialKeepBytes ? bytes : kInitialKeepBytes;
    keep_huge_pages_.store(keep >> kPageShift, std::memory_order_relaxed);
  }
  void set_decay_ms(uint64_t ms) { decay_ms_ = ms; }
  // Spans in use may not exceed this many bytes (0: no limit).
  void set_max_heap(size_t bytes) { max_heap_ = bytes; }
  void set_thp(os::Thp mode) {
    thp_ = mode;
    huge_spans_ = mode == os::Thp::kLarge || mode == os::Thp::kDense;
    learn_density_ = mode == os::Thp::kDense;
    huge_slabs_ = mode == os::Thp::kDense && huge_page_size_ <= kMaxSlabChunk;
    os::set_thp(arena_.base(), arena_.reserved(), mode);
  }
  // Whether slabs take chunks only while huge pages fault faster than the
  // small ones they replace (fault_judge.h; on by default).
  void set_thp_timed(bool on) { fault_judge_.set_enabled(on); }
  // Tests: the judge, to tell it of faults.
  FaultJudge& fault_judge_for_tests() { return fault_judge_; }
  void set_hooks(const PageHeapHooks& h) { hooks_ = h; }
  // Pages handed out (slabs and large spans) from clean free spans or the
  // frontier, ever: pages the process's RSS grows by as they are written.
  // Read without the lock; the caches watch it (cache/medium_reclaim.cc).
  uint64_t clean_pages_taken() const { return clean_pages_taken_.load(std::memory_order_relaxed); }
  // Dirty bytes above retain_max freed less than this long ago are kept
  // (0: none are, every free enforces retain_max at once). Set while a
  // background thread enforces the bound on its ticks (enforce_retain).
  void set_retain_grace_ms(uint64_t ms) { retain_grace_ms_.store(ms, std::memory_order_relaxed); }
  uint64_t retain_grace_ms() const { return retain_grace_ms_.load(std::memory_order_relaxed); }
  // Purges dirty bytes above retain_max that have been free longer than the
  // grace period (the background thread's tick).
  void enforce_retain(uint64_t now_ms);

  // Fork support: the atfork handlers lock and unlock the heap as a whole.
  void lock() { mu_->lock(); }
  void unlock() { mu_->unlock(); }
  void reset_lock_after_fork() { mu_->reset_after_fork(); }

  // Whether the page at p, inside s, may lie where mark_huge marked it (a
  // page given back there would split a huge page): anywhere in a span
  // marked whole, below its last whole huge page in one marked inside.
  bool in_huge_marks(const Span* s, uintptr_t p) const {
    if (!s->huge) return false;
    return !s->huge_inner || p < round_down(s->end(), huge_page_size_) - huge_page_size_;
  }

 private:
  // Free spans of 1..128 pages have a bin per size. Larger ones are binned
  // by size class, 8 classes per power of two (a class spans at most 1/8 of
  // its lower bound), up to spans of 2^32 - 1 pages: a request takes the
  // best fit among the first kScanLarge spans of its own class, else the
  // first span of the next non-empty class, every span of which fits. So a
  // request costs a bitmap search and at most kScanLarge spans read however
  // many large spans are free (a single list, walked whole for a best fit,
  // took 120 us a request among 20,000 free gaps between live blocks).
  static constexpr size_t kExactBins = 128;
  static constexpr size_t kLargeClassesPerDouble = 8;
  static constexpr size_t kLargeBins = (32 - 7) * kLargeClassesPerDouble;  // 2^7 .. 2^32 pages
  static constexpr size_t kNumBins = kExactBins + 1 + kLargeBins;          // bin 0 unused

  // Free spans of one state (dirty or clean), binned by size.
  struct FreeBins {
    Span* bins[kNumBins];
    uint64_t mask[(kNumBins + 63) / 64];
  };

  // flags: kLargePreferClean takes clean free spans first.
  Span* alloc_pages_locked(size_t pages, size_t align_pages, unsigned flags = 0);
  // The span's pages become free: dirty (they may hold data) or clean (they
  // were just mapped afresh).
  void free_pages_locked(Span* s, bool dirty = true);
  // A free span holding `pages` pages from a multiple of align_pages on
  // (1: any), taken off its bin.
  Span* take_free_locked(size_t pages, size_t align_pages, unsigned flags);
  static Span* take_from_bins(FreeBins& fb, size_t pages);
  // An aligned request (align_pages > 1): the first span among the bins
  // below pages + align_pages - 1 that holds an aligned run (a freed aligned
  // block holds its own), else take_from_bins of that size, whose spans all
  // do. Without the first part, a block smaller than its alignment never
  // reused the span it was freed into: posix_memalign(2 MiB, 1 MiB) in a
  // loop grew the arena by 3 MiB a call until it ran out.
  static Span* take_aligned_from_bins(FreeBins& fb, size_t pages, size_t align_pages);
  // A span at the frontier with an aligned run of `pages` pages in it.
  Span* grow_locked(size_t pages, size_t align_pages, unsigned flags);
  // A span for a slab of `pages` once slabs take huge pages (SLABBY_THP=dense,
  // slabs past kHugeSlabsAfter; huge_slabs.cc), in this order: a free dirty
  // one (resident: no fault); the rest of the chunk the last chunk slab came
  // from (at_chunk_cursor_locked); a new chunk, that is a span holding a
  // whole aligned huge page, marked: free clean pages, else grown at the
  // frontier (either way *align_pages is set to the chunk's: the caller
  // splits the head off, and the pages before the chunk go back free); any
  // free clean span. nullptr when none fits (the caller grows). Off the free
  // bins.
  Span* take_slab_span_locked(size_t pages, size_t* align_pages);
  // The free span at chunk_cursor_ when `bytes` from there are free, clean
  // and inside the cursor's chunk, still marked; else nullptr.
  Span* at_chunk_cursor_locked(uintptr_t bytes);
  // Whether one more chunk may be marked (kMaxHugeSlabRuns,
  // kMaxHugeSlabChunks; chunk_bits_ mapped at the first).
  bool chunk_allowed_locked();
  // Marks the huge page at `chunk` (aligned, in the arena) a chunk.
  void mark_chunk_locked(uintptr_t chunk);
  // A slab span just taken (under the lock): whether its first touch is to
  // be timed for the fault judge, as a new chunk's (a huge page fault) or a
  // clean span's outside any chunk (a small one, while samples are wanted).
  enum class FaultKind { kNone, kSmall, kHuge };
  FaultKind fault_to_time_locked(const Span* s);
  // Outside the lock: writes a zero word at p (a clean page not handed out
  // yet), timed, and tells the judge.
  void time_first_touch(uintptr_t p, FaultKind kind);
  // A medium slab of class cls just taken (under the lock): the range of the
  // class's previous slab, still live, to look at for its density (one slab
  // in kDensityCheckEvery; bytes 0: none), and this one becomes the previous
  // if it was made of clean pages: pages another block left resident (a
  // dirty span's) say nothing of what this class's program writes. A slab
  // of dirty pages the next look would read is made clean instead, in a
  // class's first kDirtyLooksMost looks: *discard, its pages but the first,
  // to give back once the lock is released. (With clean slabs alone, a class
  // whose slabs all took dirty pages once the heap stopped growing was never
  // seen filled: 20 live blocks of 32 KiB-1 MiB written whole peaked at 49
  // MiB, 40 with this; the madvise and the faults, unbounded, cost blocks of
  // 40 KiB-1 MiB used at their start 1.16 x their time, bounded nothing.)
  struct Range {
    uintptr_t start;
    size_t bytes;
  };
  Range medium_to_look_at_locked(unsigned cls, const Span* s, bool clean, Range* discard);
  // Notes slab bytes going out (bytes > 0) or back (< 0): kHugeSlabsAfter.
  void note_slab_bytes_locked(int64_t bytes);
  // Pages [start, end) were just purged: the marked chunks they touch are
  // marked back (MADV_NOHUGEPAGE), or khugepaged would collapse them again
  // and fault the purged pages back in.
  void unmark_purged_chunks_locked(uintptr_t start, uintptr_t end);
  void unmark_chunk_locked(uintptr_t chunk);
  // chunk_bits_: bit i set or cleared, huge_slab_runs kept as the number of
  // runs of set bits.
  bool chunk_bit(size_t i) const { return (chunk_bits_[i / 64] >> (i % 64)) & 1; }
  // Whether address a lies in a huge page made a chunk for slabs, and
  // whether any of span s's pages do (its first or last page's huge page).
  bool in_chunk_locked(uintptr_t a) const {
    return chunk_bits_ != nullptr && chunk_bit((a - base_) / huge_page_size_);
  }
  bool touches_chunk_locked(const Span* s) const {
    return in_chunk_locked(s->start) || in_chunk_locked(s->end() - 1);
  }
  void set_chunk_bit_locked(size_t i, bool on);
  // Huge pages larger than this (512 MiB with 64 KiB system pages) are never
  // taken for slabs.
  static constexpr size_t kMaxSlabChunk = size_t{4} << 20;
  // grow_in_place's part under the lock: the pages after s, or the frontier.
  bool grow_locked(Span* s, size_t pages, bool all_pages);
  uintptr_t frontier_end() const { return base_ + (frontier_pages_ << kPageShift); }
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
  // Purges the oldest dirty spans freed before `before_ms` until dirty bytes
  // are at most target.
  void purge_older_locked(size_t target_dirty, uint64_t before_ms, const char* why);
  // Extends the frontier by `pages`, committing the arena and its maps.
  bool extend_frontier_locked(size_t pages);
  // Maps [p, p + bytes) afresh (linear again, with the arena's THP mode).
  // False: the range is left unmapped (counted in lost_bytes by the caller).
  bool remap_fresh(uintptr_t p, size_t bytes);
  // A remapped span's range back to linear, then free (or lost).
  void release_remapped(Span* s);
  // The span a move by mremap goes to (kLarge, remapped), clean pages first:
  // the kernel discards the target's pages.
  Span* take_remap_target(size_t pages);
  // A large span of `pages` is asked for (allocated or grown to): after a
  // huge span was purged at its free, one it could have served raises
  // keep_huge (under the lock).
  void note_huge_request(size_t pages);
  // Huge pages for a large span (SLABBY_THP=large or dense), outside the
  // lock: marks it when it holds a whole aligned huge page, wants_huge says
  // so for its size and the budget allows. A span just handed out
  // (`inner_ok`, from alloc_large) of a size dense has not learnt yet, clean
  // and big enough, gets the pages between its first and last whole huge
  // pages marked (huge_inner): a program filling it from the start takes
  // 2 MiB faults from the second huge page on; one writing only its first
  // few KiB, or its first and last bytes, never reaches the marked pages.
  // Not for a calloc (kLargeZeroTable): a zeroed table is read without being
  // written and is often written sparsely (a hash table), where each write
  // into a marked page would make 2 MiB resident (calloc-large-sparse: peak
  // RSS 34 -> 60 MiB).
  // Under SLABBY_THP=dense with SLABBY_THP_TIMED, only while the fault judge
  // finds that huge pages pay (fault_judge.h).
  void mark_huge(Span* s, bool inner_ok = false);
  // Whether large spans of `pages` are marked (SLABBY_THP=dense: whether
  // one of their size was found filled).
  bool wants_huge(size_t pages) const;
  // Whether a whole aligned huge page lies inside the span.
  bool holds_huge_page(const Span* s) const {
    return round_up(s->start, huge_page_size_) + huge_page_size_ <= s->end();
  }
  // SLABBY_THP=dense: a large span about to be freed, not marked; if its
  // size is not known to be filled and this free is one to look at, its
  // first whole huge page is checked with mincore (outside the lock).
  void note_density(const Span* s);
  // Whether [start, start + bytes) is mostly resident (outside the lock, a
  // mincore): the density rule of large spans and medium classes alike.
  static bool looks_filled(uintptr_t start, size_t bytes);
  // Marks [p, p + bytes) of a marked span back (its tail, or all of it when
  // `whole`, which also ends the span's mark).
  void unmark_huge(Span* s, uintptr_t p, size_t bytes, bool whole);
  // A marked span freed without a purge: its mark is kept (under the lock;
  // the oldest kept mark is marked back when there are kKeptMarks).
  void keep_mark_locked(uintptr_t start, size_t pages);
  // Pages [start, start + pages) are being handed out (under the lock).
  // Kept marks they overlap are marked back, except that a large span to be
  // marked (`marking`) takes over a kept mark it covers, and with it the
  // mark's place in huge_live_.
  enum class Takeover { kNone, kExact, kCovered };  // kCovered: the rest still to mark
  Takeover settle_marks_locked(uintptr_t start, size_t pages, bool marking);
  void drop_mark_locked(size_t i, bool unmark);
  void set_page_map(Span* s, bool all_pages);
  Span* new_span_locked();
  void delete_span_locked(Span* s);
  // The path of every span request: asks the admit hook, takes the pages
  // under the lock and lets `claim` set the span up there, then reports a
  // failure and the outcome to the hooks.
  template <class Claim>
  Span* take_span(size_t pages, size_t align_pages, unsigned flags, Claim claim);
  static size_t bin_of(size_t pages) {
    if (pages <= kExactBins) return pages;
    size_t log = floor_log2(pages);  // 7 .. 31
    size_t sub = (pages >> (log - 3)) & (kLargeClassesPerDouble - 1);
    return kExactBins + 1 + (log - 7) * kLargeClassesPerDouble + sub;
  }

  // Its own lock (own_mu_, last), or the one named at construction (g_rt's:
  // common/fork_locks.h).
  Mutex* mu_ = &own_mu_;
  uintptr_t base_ = 0;
  size_t size_ = 0;  // 0 until init: every pointer is foreign
  uint8_t* class_map_ = nullptr;
  Span** page_map_ = nullptr;
  Region arena_, page_map_region_, class_map_region_;

  size_t frontier_pages_ = 0;
  size_t retain_max_ = 0;
  // Larger freed large spans are purged at once (read without the lock by
  // free_large, written under it).
  std::atomic<size_t> keep_huge_pages_{0};
  size_t last_huge_purged_pages_ = 0;  // the size of the last one
  uint64_t decay_ms_ = 1000;
  size_t max_heap_ = 0;
  uint64_t last_decay_ms_ = 0;
  std::atomic<bool> wants_background_{false};
  std::atomic<uint64_t> retain_grace_ms_{0};
  std::atomic<uint64_t> remapped_live_{0};  // bounded by kMaxRemapped
  std::atomic<uint64_t> huge_live_{0};      // spans marked for huge pages, bounded by kMaxHugeSpans
  std::atomic<uint64_t> clean_pages_taken_{0};  // written under the lock
  bool huge_spans_ = false;                 // SLABBY_THP=large or dense
  // SLABBY_THP=dense (huge_marks.cc): bit b set once a freed span of 2^b to
  // 2^(b+1) - 1 pages was found filled; its frees looked at so far.
  bool learn_density_ = false;
  std::atomic<uint64_t> dense_sizes_{0};
  std::atomic<uint32_t> density_checks_[64] = {};
  // The same for medium classes (bit cls; under the lock but dense_medium_):
  // each class's latest slab, and its slabs so far.
  std::atomic<uint64_t> dense_medium_{0};
  uintptr_t medium_last_[64] = {};
  uint32_t medium_checks_[64] = {};
  // Slabs on huge pages (huge_slabs.cc), under the lock: whether the mode
  // allows them, slab bytes in use that count towards kHugeSlabsAfter,
  // whether it was reached (never unset).
  bool huge_slabs_ = false;
  uint64_t slab_bytes_ = 0;
  bool huge_slabs_due_ = false;
  // Bit i: the arena's i-th huge page (from base_) is a chunk marked now
  // (mapped at the first chunk). Adjacent set bits are one mapping.
  uint64_t* chunk_bits_ = nullptr;
  size_t chunk_bits_n_ = 0;
  // Where the next slab comes from in the chunk the last chunk slab came
  // from (take_slab_span_locked); a hint, checked before use.
  uintptr_t chunk_cursor_ = 0;
  // Whether new chunks pay (their faults timed: fault_judge.h); the chunk
  // made last, whose first touch alloc_slab times (0: none pending).
  FaultJudge fault_judge_;
  uintptr_t chunk_to_time_ = 0;
  size_t huge_page_size_ = size_t{2} << 20;  // the system's (os::huge_page_size), read at init
  os::Thp thp_ = os::Thp::kMadvise;
  PageHeapHooks hooks_ = {};
  FreeBins free_[2] = {};  // [0]: clean, [1]: dirty (indexed by Span::dirty)
  Span* lru_head_ = nullptr;  // newest dirty free span
  Span* lru_tail_ = nullptr;  // oldest
  Span* span_freelist_ = nullptr;
  char* span_chunk_ = nullptr;
  size_t span_chunk_left_ = 0;

  // Kept marks (keep_mark_locked): whole free pages, oldest first, each
  // counted in huge_live_. Invariant: every page of one is free.
  struct KeptMark {
    uintptr_t start;
    size_t pages;
  };
  KeptMark kept_marks_[kKeptMarks] = {};
  size_t kept_marks_n_ = 0;

  PageHeapStats stats_ = {};
  bool last_refusal_was_limit_ = false;  // set by alloc_pages_locked
  Mutex own_mu_;
};

struct PageHeapLayout {
  static constexpr size_t kBaseAt = offsetof(PageHeap, base_);
  static constexpr size_t kSizeAt = offsetof(PageHeap, size_);
  static constexpr size_t kClassMapAt = offsetof(PageHeap, class_map_);
};

}  // namespace slabby

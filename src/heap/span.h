// slabby: Span, the descriptor of a run of pages in the arena.
//
// Invariants (the page heap and the central pools keep them):
// - Every page of the arena below the frontier belongs to exactly one span.
// - PageMap entries of a span's first and last page point at it, whatever
//   its state; for a slab every page's entry does (blocks find their slab).
// - ClassMap bytes of a slab's pages hold its size class; every other page's
//   byte is 0 (so free() of a large block or a stray pointer never takes the
//   small-block path).
// - state == kFree: the span is in exactly one free bin of the page heap, and
//   in the dirty LRU iff dirty. Adjacent free spans in the same state (both
//   dirty or both clean) are always merged; a dirty span never absorbs a
//   clean one, so purging touches only pages that may hold data.
// - state == kSlab: fields below "slab" are owned by the central pool of
//   `cls` and change only under its lock. used == blocks not on `freelist` and
//   carved; carved <= written <= blocks_per_slab(cls), where written is the
//   highest carved since the slab left the page heap: blocks past it hold
//   what the page heap gave (zeros in the checked modes that zero). A
//   medium class's slab is one block: on the checked paths its block_tag,
//   usable and lone_canary are that block's, written by whoever holds it (the
//   program, a cache, the pool), reset by the page heap as the slab is made.
// - state == kLarge: one allocation starting at `start`, of pages * kPageSize
//   usable bytes; or, from the checked paths (secure/), starting at `block`
//   with guard pages and/or a canary (then every page's PageMap entry points
//   at the span, so any address in it finds it). remapped: its pages were
//   moved there by mremap and form a mapping of their own (page_heap.h);
//   only spans of the unchecked paths are ever remapped or resized.
// - state == kUnused: a descriptor on the free list, or the range of a span
//   the OS refused to map again after a move (never handed out again).
#pragma once

#include <cstdint>

#include "common/base.h"

namespace slabby {

enum class SpanState : uint8_t { kUnused = 0, kFree, kSlab, kLarge };

struct Span {
  uintptr_t start;
  uint32_t pages;
  SpanState state;
  uint8_t cls;    // size class for kSlab, else 0
  bool dirty;     // kFree: pages may hold data (not purged since last use)
  bool zeroed;    // kLarge: every byte read as zero when handed out
  // kLarge from the checked paths only (secure/checked_large.cc):
  bool guarded;      // first and last page are PROT_NONE guards
  bool canary;       // the 8 bytes after the usable ones hold a canary
  bool quarantined;  // freed by the program, held back (secure/quarantine.h)
  bool remapped;     // kLarge: moved by mremap, a mapping of its own
  bool huge;         // kLarge: marked for transparent huge pages (SLABBY_THP=large)
  bool huge_inner;   // huge: only the pages between its first and last whole huge
                     // page are (SLABBY_THP=dense, a fresh span of a size not learnt)
  bool sampled;      // kLarge: a heap-profile sample (telemetry/heap_profile.h): its
                     // free drops it from the profile; `usable` is its class's size
  bool lone_canary;  // kSlab of a medium class, checked paths: at its block's last free
                     // the page of its canary held nothing else (secure/checked_medium.cc)
  union {
    uintptr_t block;     // kLarge: the address handed out
    uint64_t block_tag;  // kSlab of a medium class (one block a slab), on the checked
                         // paths: its block's state tag (secure/checks.h); 0 when made
  };
  uint64_t usable;  // bytes the program may use from `block` (a medium slab's block,
                    // on the checked paths: its last life's; 0 when made)

  // Free bin list (kFree) or central partial list (kSlab).
  Span* next;
  Span* prev;
  // Dirty LRU (kFree and dirty only), oldest at the tail.
  Span* lru_next;
  Span* lru_prev;

  // slab
  void* freelist;     // blocks returned to this slab
  uint32_t used;      // blocks out of the slab (in caches or with the program)
  uint32_t carved;    // blocks handed out at least once (bump index)
  uint64_t freed_ms;  // kFree and dirty: when it became free (decay clock)

  bool in_partial;    // on its shard's list of slabs with free blocks
  uint8_t shard;      // the central pool shard that owns this slab
  bool huge_counted;  // kSlab: counted in the slab bytes after which slabs take huge
                      // pages (a small class's, or a medium class's seen filled)
  uint32_t written;   // blocks that may have been written (see the invariants)

  uintptr_t end() const { return start + (uintptr_t{pages} << kPageShift); }
};

}  // namespace slabby

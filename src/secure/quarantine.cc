// slabby: the quarantine (SLABBY_QUARANTINE=bytes). A freed block waits in
// its thread's FIFO until the bytes behind it pass the budget, so a use
// after free hits a block nobody else owns yet: with zeroing on, a write is
// found when the block leaves (its bytes must still be zero); a guarded large
// block is PROT_NONE while it waits, so any access faults at once; a second
// free finds the block's freed tag (or its span marked quarantined).
#include <cstring>

#include "runtime/runtime.h"
#include "secure/checked_cache.h"
#include "secure/checks.h"

namespace slabby {

namespace {

// The next link: small blocks keep it in their first word (encoded), large
// ones in their span (their pages may be PROT_NONE).
uintptr_t next_of(uintptr_t p, bool large) {
  if (large)
    return reinterpret_cast<uintptr_t>(g_rt.heap.span_of(reinterpret_cast<void*>(p))->freelist);
  return encode_link(p, *reinterpret_cast<uint64_t*>(p));
}

void set_next(uintptr_t p, uintptr_t next) {
  if (g_rt.heap.class_of(reinterpret_cast<void*>(p)) == 0)
    g_rt.heap.span_of(reinterpret_cast<void*>(p))->freelist = reinterpret_cast<void*>(next);
  else
    *reinterpret_cast<uint64_t*>(p) = encode_link(p, next);
}

uint64_t size_of(uintptr_t p, bool large) {
  if (large) return g_rt.heap.span_of(reinterpret_cast<void*>(p))->usable;
  return class_size(g_rt.heap.class_of(reinterpret_cast<void*>(p)));
}

// Takes the oldest block out and releases it (verified on the way).
void evict_oldest(Quarantine& q) {
  uintptr_t p = q.head;
  unsigned cls = g_rt.heap.class_of(reinterpret_cast<void*>(p));
  bool large = cls == 0;
  q.head = next_of(p, large);
  if (q.head == 0) q.tail = 0;
  q.bytes -= size_of(p, large);
  q.blocks--;
  if (large) return checked_release_large(p);
  checked_verify_free_small(p, cls, "quarantine");
  checked_release_small(p, cls);
}

}  // namespace

void quarantine_push(uintptr_t p, uint64_t bytes) noexcept {
  Quarantine& q = tl_checked.quarantine;
  set_next(p, 0);
  if (q.tail != 0)
    set_next(q.tail, p);
  else
    q.head = p;
  q.tail = p;
  q.bytes += bytes;
  q.blocks++;
  while (q.bytes > g_checks.quarantine && q.head != 0) evict_oldest(q);
}

void quarantine_drain() noexcept {
  Quarantine& q = tl_checked.quarantine;
  while (q.head != 0) evict_oldest(q);
}

}  // namespace slabby

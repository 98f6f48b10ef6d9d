// slabby: the page heap's free pages back to the OS (docs/design.md, "Page
// heap and returning memory"): the byte bound (retain_max, enforced at a free
// and by the background thread past its grace period), the time bound
// (decay), and purge_all (malloc_trim). A purge takes the LRU's oldest free
// dirty span, purges it (MADV_DONTNEED), marks back the slab chunks it
// touches (huge_slabs.cc) and puts it back clean, merged with its clean
// neighbours. All under the heap lock.
#include <time.h>

#include "heap/page_heap.h"
#include "os/os.h"

namespace slabby {

namespace {

uint64_t monotonic_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no system call, errno untouched
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
}

// A purge pass that returned pages: its duration in the stats, and the hook
// (under the heap lock).
void note_purge(const PageHeapHooks& hooks, PageHeapStats& st, uint64_t t0, size_t bytes,
                const char* why) {
  st.last_purge_ns = monotonic_ns() - t0;
  if (hooks.purged != nullptr) hooks.purged(bytes, st.last_purge_ns, why);
}

}  // namespace

void PageHeap::enforce_retain(uint64_t now_ms) {
  LockGuard g(*mu_);
  if (stats_.free_dirty_bytes <= retain_max_) return;
  uint64_t grace = retain_grace_ms_.load(std::memory_order_relaxed);
  purge_older_locked(retain_max_ / 2, now_ms - grace, "retain_max");
}

size_t PageHeap::decay_locked(uint64_t now) {
  last_decay_ms_ = now;
  size_t purged = 0;
  if (lru_tail_ == nullptr || now - lru_tail_->freed_ms < decay_ms_) return 0;
  uint64_t t0 = monotonic_ns();
  while (lru_tail_ != nullptr && now - lru_tail_->freed_ms >= decay_ms_)
    purged += purge_oldest_locked();
  stats_.purge_passes++;
  stats_.decay_purged_bytes += purged;
  note_purge(hooks_, stats_, t0, purged, "decay");
  return purged;
}

size_t PageHeap::decay(uint64_t now_ms) {
  LockGuard g(*mu_);
  return decay_locked(now_ms);
}

size_t PageHeap::purge_oldest_locked() {
  Span* s = lru_tail_;
  size_t bytes = size_t{s->pages} << kPageShift;
  remove_free_locked(s);
  os::purge(reinterpret_cast<void*>(s->start), bytes);
  unmark_purged_chunks_locked(s->start, s->end());
  s->dirty = false;
  merge_and_insert_locked(s);  // now clean: joins its clean neighbours
  return bytes;
}

void PageHeap::purge_locked(size_t target_dirty) {
  purge_older_locked(target_dirty, UINT64_MAX, target_dirty == 0 ? "trim" : "retain_max");
}

void PageHeap::purge_older_locked(size_t target_dirty, uint64_t before_ms, const char* why) {
  // The LRU's tail is its oldest span: once that one is too young, all are.
  auto due = [&] {
    return stats_.free_dirty_bytes > target_dirty && lru_tail_ != nullptr &&
           lru_tail_->freed_ms <= before_ms;
  };
  if (!due()) return;
  stats_.purge_passes++;
  uint64_t t0 = monotonic_ns();
  size_t purged = 0;
  while (due()) purged += purge_oldest_locked();
  note_purge(hooks_, stats_, t0, purged, why);
}

size_t PageHeap::purge_all() {
  LockGuard g(*mu_);
  size_t before = stats_.free_dirty_bytes;
  purge_locked(0);
  return before - stats_.free_dirty_bytes;
}

}  // namespace slabby

// slabby: the single locks fork takes, side by side on one page.
//
// fork (runtime/init.cc) takes every allocator lock before it and writes each
// again after it, on both sides, so every page holding one is a
// copy-on-write fault in the parent and in the child. Each of these locks
// used to sit on its own page beside its module's data: five pages, ten
// faults a fork. Here they share one, each on its own 128-byte line, as far
// apart as before from one another's holders. (The shard locks, one per
// class and CPU, are packed apart: central/central_pool.h.)
//
// Each lock belongs to the module named beside it; the modules bind their
// names to these slots, so their code reads as before. Lock order is
// runtime/init.cc's (fork_prepare).
#pragma once

#include "common/lock.h"

namespace slabby {

struct alignas(1024) ForkLocks {
  alignas(128) Mutex heap;     // heap/page_heap.h: the page heap of g_rt
  alignas(128) Mutex threads;  // cache/thread_cache.h: the thread registry
  alignas(128) Mutex regions;  // cache/percpu_cache.cc: the per-CPU regions
  alignas(128) Mutex leaks;    // secure/leak_check.cc
  alignas(128) Mutex profile;  // telemetry/heap_profile.cc
};
static_assert(sizeof(ForkLocks) <= 1024, "one aligned kilobyte: never across a page");

extern constinit ForkLocks g_fork_locks __attribute__((visibility("hidden")));

}  // namespace slabby

// slabby: SLABBY_LEAK_CHECK, the seeds' finalizers done for real: at exit,
// the blocks still live, and for one allocation in SLABBY_LEAK_SAMPLE the
// stack that allocated it, grouped by site.
//
// Tables live in memory mapped once at init (no malloc): a hash set of traced
// live blocks (open addressing; lookups and removals lock-free, inserts under
// a lock) and a table of distinct stacks with their live blocks and bytes.
#pragma once

#include <cstddef>

namespace slabby {

// After init, outside the init lock: maps the tables and primes the unwinder
// (glibc's backtrace loads libgcc_s, which allocates, on first use).
void leak_check_start() noexcept;
// Every checked allocation and free (sampling is decided inside).
void leak_note_alloc(void* p, size_t usable) noexcept;
void leak_note_free(void* p) noexcept;
// A block resized in place: traced as freed and allocated again at its new size.
void leak_note_resized(void* p, size_t usable) noexcept;
// The at-exit report to fd.
void leak_report(int fd) noexcept;
// Fork: the table lock is a leaf (held only while a stack is recorded), so
// the prepare handler takes it first.
void leak_fork_prepare() noexcept;
void leak_fork_parent() noexcept;
void leak_fork_child() noexcept;

}  // namespace slabby

// slabby: the operating-system layer. Every mmap/mprotect/madvise the
// allocator makes goes through here, and none of them changes errno.
#pragma once

#include <cstddef>
#include <cstdint>

namespace slabby::os {

// The system's page size (getpagesize: the value the kernel passed in the
// auxiliary vector; no system call). slabby's own page (kPageSize) is a
// multiple of it wherever slabby runs, which init checks.
size_t system_page_size();

// The granularity of mincore's answer: one byte per this many bytes. It is
// the system's page size on Linux; under qemu's user-mode emulation with a
// page size of its own (qemu-aarch64 -p 65536), the host kernel answers for
// its 4 KiB pages, 16 bytes per emulated page. Measured once (a one-page
// mapping asked about), so no mincore buffer is ever overrun.
size_t mincore_page_size();

// The size of a transparent huge page (a PMD): 2 MiB with 4 KiB pages, 32 MiB
// with 16 KiB, 512 MiB with 64 KiB. Read from sysfs, else derived from the
// page size.
size_t huge_page_size();

// Reserves address space with no access and no commit charge
// (PROT_NONE, MAP_NORESERVE). Aligned to `align` (a power of two >= page).
// Returns nullptr on failure. `readable`: PROT_READ instead, so the pages
// read as zeros until committed (still no charge: a private read-only
// mapping is not counted against the commit limit, and a read maps the
// shared zero page).
void* reserve(size_t bytes, size_t align, bool readable = false);
void release(void* p, size_t bytes);

// Makes reserved pages readable and writable (they read as zero until touched).
bool commit(void* p, size_t bytes);

// Returns the pages' memory to the OS; they stay mapped and read as zero.
// Counts the call (see madvise_calls()).
void purge(void* p, size_t bytes);

// Moves the pages of [from, from + bytes) to `to` (which must not overlap it)
// with mremap, resizing the mapping to new_bytes (the bytes past `bytes` read
// as zero). [from, from + bytes) must be one mapping; it is left unmapped.
// Whatever `to` held is discarded. False: nothing moved ([to, to + new_bytes)
// may have been unmapped already).
bool move_pages(void* from, size_t bytes, void* to, size_t new_bytes);

// Maps [p, p + bytes) afresh (anonymous, read-write, no reserve), replacing
// what was there: the pages read as zero and the range merges into the
// neighbouring anonymous mapping when that one is linear.
bool map_fresh(void* p, size_t bytes);

// Makes the whole pages of [p, p + bytes) read as zero at the least cost:
// pages present are written with zeros, pages swapped out are discarded
// (MADV_DONTNEED), pages never touched or purged (they read as zero) are left
// alone. Nothing is faulted in. Asks /proc/self/pagemap or mincore, by the
// range's size (os/residency.cc); without pagemap, mincore cannot tell a page
// swapped out from one never touched, so with swap configured every page not
// resident is discarded.
// Returns the bytes written.
size_t zero_pages(void* p, size_t bytes);
// The same for any range: the partial pages at either end are written (at
// most two pages faulted in), the whole pages between as zero_pages does.
// Returns the bytes written.
size_t zero_resident(void* p, size_t bytes);

// Makes [p, p + bytes) read as zero without keeping its pages: the partial
// pages at either end are written, the whole pages between given back to the
// OS (purge). `page`: the system's page size (a test passes a larger one).
void zero_by_discarding(void* p, size_t bytes, size_t page = system_page_size());

// The offset of the first non-zero byte in [p, p + bytes) (p and bytes
// multiples of 8), or SIZE_MAX. Only pages present or swapped out are read
// (the others read as zero), so nothing never touched is faulted in. Without
// /proc/self/pagemap, pages swapped out are not read (mincore cannot tell
// them from pages never touched).
size_t find_nonzero(const void* p, size_t bytes);

// Which of the pages are resident in RAM.
size_t resident_bytes(const void* p, size_t bytes);

// Where zero_pages and find_nonzero learn which pages hold data.
enum class Residency : int {
  kPagemap,      // /proc/self/pagemap: present and swapped pages, exactly
  kMincore,      // mincore (and sysinfo for swap): no /proc, or its file failed the probe
  kMincoreSwap,  // mincore as if swap were configured (tests only)
};
// The source answering now (opening the pagemap file if it is not open).
Residency residency_source();
// Tests only: answer from this source (a Residency), or -1: the automatic choice.
void force_residency_for_tests(int source);

// In a forked child: the residency queries' lock (taken by a thread of the
// parent's, it would be held for ever). They never wait for it.
void residency_fork_child();

// Whole anonymous read-write mapping (for metadata regions that are small).
void* map_rw(size_t bytes);

// CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU
// quota (cpu.max) when one is set. At least 1.
unsigned usable_cpus();

// Number of possible CPUs (highest CPU id + 1) from
// /sys/devices/system/cpu/possible; 0 when it cannot be read.
unsigned possible_cpus();

// Milliseconds of CLOCK_MONOTONIC_COARSE (vDSO, no system call).
uint64_t now_ms();

// Writes a zero word at p, the start of a page known to hold zeros (clean:
// never written, or purged), and returns the nanoseconds it took: the page's
// first fault (a store, never a load first: a load would map the zero page,
// and a store after it splits a huge zero page into small ones). By
// CLOCK_MONOTONIC (vDSO: for faults of a microsecond), or with `thread_cpu`
// by the thread's CPU time (two system calls: for faults long enough that a
// preemption inside one would otherwise be read as the fault's cost; a
// host's work behind a fault still counts, as the thread's system time).
uint64_t time_first_write(void* p, bool thread_cpu);

// Mappings slabby holds now (each reserve/map_rw is one; a region split by
// mprotect counts once). Reported in the stats (max_map_count is finite).
uint64_t mappings();
// errno of the last reserve or map_rw that failed, in any thread (0: none);
// for messages only (the calls themselves leave errno as it was).
int last_map_errno();

// kLarge, kDense: none for the arena as a whole (as kNever); the page heap
// marks large spans with mark_huge (kDense: only at sizes the program has
// been seen to fill).
enum class Thp { kNever, kMadvise, kAlways, kLarge, kDense };
// Applies the transparent-huge-page choice to a reservation.
void set_thp(void* p, size_t bytes, Thp mode);
// Asks for (or stops asking for) transparent huge pages for a range: its
// flags then differ from its neighbours', so it is a mapping of its own
// until marked back.
void mark_huge(void* p, size_t bytes, bool huge);
// mark_huge calls so far (each one madvise).
uint64_t huge_marks();

uint64_t madvise_calls();
uint64_t purged_bytes();

void write_stderr(const char* s, size_t n);

// Aborts the process with SIGABRT after printing `msg` (one line) to stderr.
[[noreturn]] void fatal(const char* msg);

}  // namespace slabby::os

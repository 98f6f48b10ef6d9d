// slabby: the sampled heap profile (SLABBY_PROF). Which code holds the
// memory, and which allocated it, in the text format of gperftools' and
// jemalloc's heap profiles (google-pprof reads it; scripts/slabby-prof
// symbolizes it and draws a flame graph).
//
// Sampling is by bytes: on average one sample per SLABBY_PROF_SAMPLE bytes
// allocated, at random points, so that a site's share of the samples is its
// share of the bytes whatever its block sizes. Each sample carries the
// weights that make the estimates unbiased (estimated blocks and bytes it
// stands for), and the profile sums them per stack.
// - Small blocks (up to 32 KiB) cost nothing extra on the fast path: the
//   latency countdown (frontend/allocator.h, sample_due) also counts down to
//   the profile's candidates, one allocation in kProfCallMean on average at
//   random; a candidate of s bytes is taken with probability
//   min(1, kProfCallMean * s / SAMPLE), so a block is sampled with
//   probability s / SAMPLE (1 / kProfCallMean above SAMPLE / kProfCallMean).
// - Larger requests (out of line already) count their bytes down to the next
//   sample point: intervals uniform in [0, 2 * SAMPLE), each point crossed
//   stands for SAMPLE bytes.
// A sampled block is served as a page span of its own, marked `sampled`
// (heap/span.h), so its free reaches the span path and drops it from the
// live profile; the fast paths never look. realloc moves a sampled block by
// malloc + copy + free.
//
// Tables are mapped when profiling starts (never malloc): a hash set of
// sampled live blocks and a table of distinct stacks with their estimated
// live and total blocks and bytes. Both change only under g_mu, a leaf lock
// taken by samples, frees of sampled blocks and dumps. A dump from a signal
// handler only try-locks it (else the dump waits for the next sample, free
// of a sampled block or background tick).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/prof_thread.h"

namespace slabby {

// Allocations between two small-block candidates, on average.
inline constexpr uint32_t kProfCallMean = 128;

// Sampling new allocations now (SLABBY_PROF, slabby_set_option).
extern std::atomic<bool> g_prof_active;
// Tables exist (profiling was on at some point): frees of sampled spans
// must be noted.
extern std::atomic<bool> g_prof_tables;

struct ProfSettings {
  bool active;
  uint64_t sample_bytes;  // SLABBY_PROF_SAMPLE
  const char* file;       // SLABBY_PROF_FILE pattern: %p pid, %n dump number
  uint64_t interval_ms;   // SLABBY_PROF_INTERVAL_MS (0: none)
  int signal;             // SLABBY_PROF_SIGNAL (0: none)
  bool dump_at_exit;
};

// After init, outside every allocator lock: maps the tables, primes the
// unwinder, installs the signal handler. False when the tables cannot be
// mapped (profiling stays off; one line says so).
bool heap_profile_start(const ProfSettings& s) noexcept;
// Turns sampling on or off, and changes the mean interval (runtime control).
// Turning it on for the first time starts the tables.
bool heap_profile_set_active(bool on) noexcept;
void heap_profile_set_sample(uint64_t bytes) noexcept;
void heap_profile_set_interval(uint64_t ms) noexcept;
uint64_t heap_profile_sample_bytes() noexcept;

// Calls to the next small-block candidate: uniform in [1, 2 * kProfCallMean).
uint32_t prof_next_candidate(ProfThread& t) noexcept;

// Weights of a sample: the blocks and bytes it stands for.
struct ProfWeight {
  double blocks;
  double bytes;
};

// A small-block candidate of `size` bytes: true (and its weight) when it is
// sampled.
bool prof_take_small(ProfThread& t, size_t size, ProfWeight* w) noexcept;
// A large request of n bytes counted down: true when a sample point falls in it.
bool prof_take_bytes(ProfThread& t, size_t n, ProfWeight* w) noexcept;

// Records the sampled block p (size bytes asked for) with the caller's stack.
// p may be null (the allocation failed): nothing is recorded.
void heap_profile_record(void* p, size_t size, const ProfWeight& w) noexcept;
// A sampled block was freed (or is being moved by realloc).
void heap_profile_forget(const void* p) noexcept;

// Writes the profile: to `path`, or when null to the SLABBY_PROF_FILE
// pattern with the next dump number. 0, or an errno value (EINVAL: profiling
// never started; EAGAIN: the tables are busy and the caller is a signal
// handler). A file that cannot be written gets one "slabby:" line on stderr.
int heap_profile_dump(const char* path) noexcept;
// Periodic and signal-requested dumps, from the background thread's tick.
void heap_profile_tick(uint64_t now_ms) noexcept;
// At exit (SLABBY_PROF=1): the final dump.
void heap_profile_at_exit() noexcept;

// Counters for the stats.
struct ProfCounters {
  uint64_t samples;       // sampled blocks recorded
  uint64_t live_samples;  // of them, not freed yet
  uint64_t dropped;       // samples not recorded (tables full)
  uint64_t dumps;         // profiles written
};
ProfCounters heap_profile_counters() noexcept;
// Slots of the sampled-block table not empty: live samples and removed ones
// not cleaned up yet (for tests: the table must not fill with removed ones).
size_t heap_profile_slots_used() noexcept;

void heap_profile_fork_prepare() noexcept;
void heap_profile_fork_parent() noexcept;
void heap_profile_fork_child() noexcept;

}  // namespace slabby

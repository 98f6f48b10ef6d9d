#include "telemetry/heap_profile.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/fork_locks.h"
#include "common/lock.h"
#include "common/writer.h"
#include "os/os.h"
#include "os/stack_trace.h"
#include "runtime/runtime.h"

namespace slabby {

std::atomic<bool> g_prof_active{false};
std::atomic<bool> g_prof_tables{false};

namespace {

constexpr int kFrames = 48;
constexpr size_t kBlockBits = 17;  // 128K sampled live blocks
constexpr size_t kBlockSlots = size_t{1} << kBlockBits;
constexpr size_t kStackSlots = size_t{1} << 14;  // 16K distinct stacks
constexpr uintptr_t kTombstone = 1;
constexpr uint32_t kNoStack = UINT32_MAX;

struct Sample {
  uintptr_t p;  // 0: empty, kTombstone: removed
  uint32_t stack;
  double blocks;
  double bytes;
};

struct Stack {
  uint64_t hash;  // 0: empty slot
  int depth;
  double live_blocks, live_bytes;    // estimated, blocks not freed yet
  double total_blocks, total_bytes;  // estimated, everything since start
  void* frames[kFrames];
};

// Tables, mapped once; changed only under g_mu.
Sample* g_samples = nullptr;
Stack* g_stacks = nullptr;
uint32_t* g_stack_ids = nullptr;  // the g_stacks slots in use, in order of first use
Mutex& g_mu = g_fork_locks.profile;
size_t g_samples_used = 0;  // slots not empty (live + tombstones), under g_mu
size_t g_num_stacks = 0;    // entries of g_stack_ids, under g_mu

std::atomic<uint64_t> g_sample_bytes{512 << 10};
std::atomic<uint64_t> g_interval_ms{0};
std::atomic<uint64_t> g_next_dump_ms{0};
std::atomic<uint64_t> g_dump_number{0};
std::atomic<bool> g_dump_pending{false};  // a signal asked while the tables were busy
std::atomic<uint64_t> g_samples_taken{0}, g_live{0}, g_dropped{0}, g_dumps{0};
char g_pattern[256] = "slabby.%p.%n.heap";
bool g_dump_at_exit = false;
Mutex g_start_mu;

uint64_t next_random(ProfThread& t) {
  if (t.rng == 0) {
    // Seeded from the thread's state address and the clock: distinct per thread.
    t.rng = reinterpret_cast<uintptr_t>(&t) * 0x9e3779b97f4a7c15ULL ^ os::now_ms();
    if (t.rng == 0) t.rng = 1;
  }
  uint64_t x = t.rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  t.rng = x;
  return x * 0x2545f4914f6cdd1dULL;
}

// Uniform in [0, 1).
double unit_random(ProfThread& t) { return static_cast<double>(next_random(t) >> 11) * 0x1p-53; }

size_t slot_of(uintptr_t p) { return ((p >> 4) * 0x9e3779b97f4a7c15ULL) >> (64 - kBlockBits); }

uint32_t intern_stack_locked(void* const* frames, int depth) {
  uint64_t h = 1469598103934665603ULL;
  for (int i = 0; i < depth; ++i)
    h = (h ^ reinterpret_cast<uintptr_t>(frames[i])) * 1099511628211ULL;
  if (h == 0) h = 1;
  for (size_t i = 0, at = h % kStackSlots; i < kStackSlots; ++i, at = (at + 1) % kStackSlots) {
    Stack& s = g_stacks[at];
    if (s.hash == 0) {
      s.hash = h;
      s.depth = depth;
      memcpy(s.frames, frames, sizeof(void*) * depth);
      g_stack_ids[g_num_stacks++] = static_cast<uint32_t>(at);
      return static_cast<uint32_t>(at);
    }
    if (s.hash == h && s.depth == depth && memcmp(s.frames, frames, sizeof(void*) * depth) == 0)
      return static_cast<uint32_t>(at);
  }
  return kNoStack;
}

// Removes every tombstone when they fill the table (under g_mu): live
// entries are inserted again.
// An entry may move forward and be visited again; it is then only inserted
// again, so the count is taken at the end.
void rehash_locked() {
  for (size_t i = 0; i < kBlockSlots; ++i)
    if (g_samples[i].p == kTombstone) g_samples[i].p = 0;
  for (size_t i = 0; i < kBlockSlots; ++i) {
    Sample s = g_samples[i];
    if (s.p == 0) continue;
    g_samples[i].p = 0;
    for (size_t at = slot_of(s.p);; at = (at + 1) % kBlockSlots) {
      if (g_samples[at].p == 0) {
        g_samples[at] = s;
        break;
      }
    }
  }
  size_t live = 0;
  for (size_t i = 0; i < kBlockSlots; ++i) live += g_samples[i].p != 0;
  g_samples_used = live;
}

// The path for dump number n: the pattern with %p and %n expanded.
void expand_pattern(uint64_t n, char* out, size_t cap) {
  size_t len = 0;
  for (const char* s = g_pattern; *s != '\0' && len + 24 < cap; ++s) {
    if (s[0] == '%' && (s[1] == 'p' || s[1] == 'n')) {
      len += format_u64(s[1] == 'p' ? static_cast<uint64_t>(getpid()) : n, out + len);
      ++s;
    } else {
      out[len++] = *s;
    }
  }
  out[len] = '\0';
}

uint64_t rounded(double v) { return v <= 0 ? 0 : static_cast<uint64_t>(v + 0.5); }

void write_counts(Writer& w, double lb, double lbytes, double tb, double tbytes) {
  w.u64_pad(rounded(lb), 6).str(": ").u64_pad(rounded(lbytes), 8).str(" [");
  w.u64_pad(rounded(tb), 6).str(": ").u64_pad(rounded(tbytes), 8).str("] @");
}

// The profile, under g_mu. gperftools' heap-profile text: a header line of
// totals, one line per stack ("live blocks: live bytes [total blocks: total
// bytes] @ addresses"), then the process's mappings for symbolization. The
// type "heapprofile" tells pprof the counts need no unsampling (they are
// estimates already).
void write_profile_locked(Writer& w) {
  // Only the stacks in use are read: the table's untouched pages stay out
  // of the process's RSS.
  double lb = 0, lbytes = 0, tb = 0, tbytes = 0;
  for (size_t i = 0; i < g_num_stacks; ++i) {
    const Stack& s = g_stacks[g_stack_ids[i]];
    lb += s.live_blocks;
    lbytes += s.live_bytes;
    tb += s.total_blocks;
    tbytes += s.total_bytes;
  }
  w.str("heap profile: ");
  write_counts(w, lb, lbytes, tb, tbytes);
  w.str(" heapprofile\n");
  for (size_t i = 0; i < g_num_stacks; ++i) {
    const Stack& s = g_stacks[g_stack_ids[i]];
    if (rounded(s.total_bytes) == 0) continue;
    write_counts(w, s.live_blocks, s.live_bytes, s.total_blocks, s.total_bytes);
    for (int f = 0; f < s.depth; ++f) w.ch(' ').hex(reinterpret_cast<uintptr_t>(s.frames[f]));
    w.ch('\n');
  }
  w.str("\nMAPPED_LIBRARIES:\n");
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    w.str(buf, static_cast<size_t>(n));
  }
  close(fd);
}

// Dumps under g_mu (held by the caller) to path; 0 or an errno value.
int dump_locked(const char* path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    report_file_error("write the heap profile", path, err, g_rt.report_fd);
    return err;
  }
  int err;
  {
    Writer w(fd);
    write_profile_locked(w);
    w.flush();
    err = w.error();
  }
  if (close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    report_file_error("write the heap profile", path, err, g_rt.report_fd);
    return err;
  }
  g_dumps.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

int dump_to(const char* path, bool from_signal) {
  if (!g_prof_tables.load(std::memory_order_acquire)) return EINVAL;
  if (from_signal) {
    if (!g_mu.try_lock()) return EAGAIN;
  } else {
    g_mu.lock();
  }
  char buf[320];
  if (path == nullptr) {
    expand_pattern(g_dump_number.fetch_add(1, std::memory_order_relaxed), buf, sizeof(buf));
    path = buf;
  }
  int r = dump_locked(path);
  g_mu.unlock();
  return r;
}

void on_signal(int) {
  int saved = errno;
  if (dump_to(nullptr, true) == EAGAIN) g_dump_pending.store(true, std::memory_order_relaxed);
  errno = saved;
}

bool map_tables() {
  if (g_prof_tables.load(std::memory_order_acquire)) return true;
  LockGuard g(g_start_mu);
  if (g_prof_tables.load(std::memory_order_relaxed)) return true;
  g_samples = static_cast<Sample*>(os::map_rw(kBlockSlots * sizeof(Sample)));
  g_stacks = static_cast<Stack*>(os::map_rw(kStackSlots * sizeof(Stack)));
  g_stack_ids = static_cast<uint32_t*>(os::map_rw(kStackSlots * sizeof(uint32_t)));
  if (g_samples == nullptr || g_stacks == nullptr || g_stack_ids == nullptr) {
    os::write_stderr("slabby: cannot map the heap profile's tables; SLABBY_PROF is off\n", 64);
    return false;
  }
  os::stack_trace_start();
  g_prof_tables.store(true, std::memory_order_release);
  return true;
}

}  // namespace

bool heap_profile_start(const ProfSettings& s) noexcept {
  g_sample_bytes.store(s.sample_bytes == 0 ? 1 : s.sample_bytes, std::memory_order_relaxed);
  if (s.file != nullptr && s.file[0] != '\0') {
    size_t n = strlen(s.file);
    if (n >= sizeof(g_pattern)) n = sizeof(g_pattern) - 1;
    memcpy(g_pattern, s.file, n);
    g_pattern[n] = '\0';
  }
  g_dump_at_exit = s.dump_at_exit;
  heap_profile_set_interval(s.interval_ms);
  if (s.signal > 0) {
    struct sigaction sa = {};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(s.signal, &sa, nullptr);
  }
  if (!s.active) return true;
  return heap_profile_set_active(true);
}

bool heap_profile_set_active(bool on) noexcept {
  if (on && !map_tables()) return false;
  g_prof_active.store(on, std::memory_order_release);
  return true;
}

void heap_profile_set_sample(uint64_t bytes) noexcept {
  g_sample_bytes.store(bytes == 0 ? 1 : bytes, std::memory_order_relaxed);
}

uint64_t heap_profile_sample_bytes() noexcept {
  return g_sample_bytes.load(std::memory_order_relaxed);
}

void heap_profile_set_interval(uint64_t ms) noexcept {
  g_interval_ms.store(ms, std::memory_order_relaxed);
  g_next_dump_ms.store(ms == 0 ? 0 : os::now_ms() + ms, std::memory_order_relaxed);
}

uint32_t prof_next_candidate(ProfThread& t) noexcept {
  return 1 + static_cast<uint32_t>(next_random(t) % (2 * kProfCallMean - 1));
}

bool prof_take_small(ProfThread& t, size_t size, ProfWeight* w) noexcept {
  double sample = static_cast<double>(g_sample_bytes.load(std::memory_order_relaxed));
  double q = static_cast<double>(kProfCallMean) * static_cast<double>(size) / sample;
  if (q < 1.0 && unit_random(t) >= q) return false;
  if (q > 1.0) q = 1.0;
  // Sampled with probability q / kProfCallMean: it stands for the inverse.
  double blocks = static_cast<double>(kProfCallMean) / q;
  w->blocks = blocks;
  w->bytes = blocks * static_cast<double>(size);
  return true;
}

bool prof_take_bytes(ProfThread& t, size_t n, ProfWeight* w) noexcept {
  t.bytes_left -= static_cast<int64_t>(n > INT64_MAX / 2 ? INT64_MAX / 2 : n);
  if (t.bytes_left > 0) return false;
  uint64_t sample = g_sample_bytes.load(std::memory_order_relaxed);
  // Every point crossed stands for `sample` bytes (the intervals' mean).
  uint64_t points = 0;
  while (t.bytes_left <= 0) {
    ++points;
    t.bytes_left += static_cast<int64_t>(next_random(t) % (2 * sample));
    if (points > (uint64_t{1} << 20)) {  // n / sample points at most, on average
      t.bytes_left = static_cast<int64_t>(sample);
      break;
    }
  }
  w->bytes = static_cast<double>(points) * static_cast<double>(sample);
  w->blocks = w->bytes / static_cast<double>(n == 0 ? 1 : n);
  return true;
}

void heap_profile_record(void* p, size_t size, const ProfWeight& w) noexcept {
  (void)size;
  if (p == nullptr || !g_prof_tables.load(std::memory_order_acquire)) return;
  void* frames[kFrames];
  int depth = os::stack_trace_capture(frames, kFrames);
  int saved = errno;
  LockGuard g(g_mu);
  g_samples_taken.fetch_add(1, std::memory_order_relaxed);
  uint32_t id = intern_stack_locked(frames, depth);
  if (id == kNoStack || g_samples_used + 1 > kBlockSlots / 2) {
    // A full stack table, or half the block table live: rehash away the
    // tombstones once; if it stays full, the sample is dropped.
    if (id != kNoStack) rehash_locked();
    if (id == kNoStack || g_samples_used + 1 > kBlockSlots / 2) {
      g_dropped.fetch_add(1, std::memory_order_relaxed);
      errno = saved;
      return;
    }
  }
  // The first removed or empty slot on the probe path: a block's address is
  // in the table at most once (its free removed the last sample there), and
  // reusing tombstones keeps the path short where one address is sampled
  // again and again (freed and allocated anew: its chain grew by one slot a
  // sample, and a loop of 30 M malloc+free took 4 x its time).
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  for (size_t at = slot_of(a);; at = (at + 1) % kBlockSlots) {
    Sample& s = g_samples[at];
    if (s.p == 0 || s.p == kTombstone) {
      if (s.p == 0) ++g_samples_used;
      s = Sample{a, id, w.blocks, w.bytes};
      break;
    }
  }
  Stack& st = g_stacks[id];
  st.live_blocks += w.blocks;
  st.live_bytes += w.bytes;
  st.total_blocks += w.blocks;
  st.total_bytes += w.bytes;
  g_live.fetch_add(1, std::memory_order_relaxed);
  bool pending = g_dump_pending.exchange(false, std::memory_order_relaxed);
  if (pending) {
    char path[320];
    expand_pattern(g_dump_number.fetch_add(1, std::memory_order_relaxed), path, sizeof(path));
    dump_locked(path);
  }
  errno = saved;
}

void heap_profile_forget(const void* p) noexcept {
  if (!g_prof_tables.load(std::memory_order_acquire)) return;
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  LockGuard g(g_mu);
  for (size_t i = 0, at = slot_of(a); i < kBlockSlots; ++i, at = (at + 1) % kBlockSlots) {
    Sample& s = g_samples[at];
    if (s.p == 0) return;
    if (s.p == a) {
      Stack& st = g_stacks[s.stack];
      st.live_blocks -= s.blocks;
      st.live_bytes -= s.bytes;
      s.p = kTombstone;
      g_live.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
  }
}

int heap_profile_dump(const char* path) noexcept {
  int saved = errno;
  int r = dump_to(path, false);
  errno = saved;
  return r;
}

void heap_profile_tick(uint64_t now_ms) noexcept {
  bool due = g_dump_pending.exchange(false, std::memory_order_relaxed);
  uint64_t next = g_next_dump_ms.load(std::memory_order_relaxed);
  uint64_t every = g_interval_ms.load(std::memory_order_relaxed);
  if (every != 0 && next != 0 && now_ms >= next) {
    g_next_dump_ms.store(now_ms + every, std::memory_order_relaxed);
    due = true;
  }
  if (due) dump_to(nullptr, false);
}

void heap_profile_at_exit() noexcept {
  if (g_dump_at_exit && g_prof_tables.load(std::memory_order_acquire)) dump_to(nullptr, false);
}

size_t heap_profile_slots_used() noexcept {
  LockGuard g(g_mu);
  return g_samples_used;
}

ProfCounters heap_profile_counters() noexcept {
  return ProfCounters{
      g_samples_taken.load(std::memory_order_relaxed), g_live.load(std::memory_order_relaxed),
      g_dropped.load(std::memory_order_relaxed), g_dumps.load(std::memory_order_relaxed)};
}

void heap_profile_fork_prepare() noexcept { g_mu.lock(); }
void heap_profile_fork_parent() noexcept { g_mu.unlock(); }
void heap_profile_fork_child() noexcept { g_mu.reset_after_fork(); }

}  // namespace slabby

#include "secure/leak_check.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdint>
#include <cstring>

#include "common/fork_locks.h"
#include "common/lock.h"
#include "common/writer.h"
#include "os/os.h"
#include "os/stack_trace.h"
#include "runtime/runtime.h"
#include "secure/checked_cache.h"
#include "secure/checks.h"
#include "telemetry/stats.h"

namespace slabby {

namespace {

constexpr int kFrames = 12;
constexpr size_t kBlockSlots = size_t{1} << 18;
constexpr size_t kStackSlots = size_t{1} << 12;
constexpr uintptr_t kTombstone = 1;

struct TracedBlock {
  std::atomic<uintptr_t> p;
  uint32_t stack;
  uint32_t unused;
  uint64_t bytes;
};

struct Stack {
  uint64_t hash;
  std::atomic<uint64_t> blocks;
  std::atomic<uint64_t> bytes;
  int depth;
  void* frames[kFrames];
};

TracedBlock* g_blocks = nullptr;
Stack* g_stacks = nullptr;
Mutex& g_mu = g_fork_locks.leaks;
std::atomic<uint64_t> g_dropped{0};  // tables full: traced but not recorded
size_t slot_of(uintptr_t p) { return ((p >> 4) * 0x9e3779b97f4a7c15ULL) >> (64 - 18); }

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
      return static_cast<uint32_t>(at);
    }
    if (s.hash == h && s.depth == depth && memcmp(s.frames, frames, sizeof(void*) * depth) == 0)
      return static_cast<uint32_t>(at);
  }
  return UINT32_MAX;
}

void trace(void* p, size_t usable) {
  void* frames[kFrames];
  int depth = os::stack_trace_capture(frames, kFrames);
  if (depth == 0) return;  // re-entered from inside a capture
  LockGuard g(g_mu);
  uint32_t id = intern_stack_locked(frames, depth);
  if (id == UINT32_MAX) {
    g_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  for (size_t i = 0, at = slot_of(a); i < kBlockSlots; ++i, at = (at + 1) % kBlockSlots) {
    TracedBlock& b = g_blocks[at];
    uintptr_t cur = b.p.load(std::memory_order_relaxed);
    if (cur == 0 || cur == kTombstone) {
      b.stack = id;
      b.bytes = usable;
      b.p.store(a, std::memory_order_release);
      g_stacks[id].blocks.fetch_add(1, std::memory_order_relaxed);
      g_stacks[id].bytes.fetch_add(usable, std::memory_order_relaxed);
      return;
    }
  }
  g_dropped.fetch_add(1, std::memory_order_relaxed);
}

void write_frame(Writer& w, void* frame) {
  Dl_info info;
  w.str("slabby:     ").hex(reinterpret_cast<uintptr_t>(frame));
  if (dladdr(frame, &info) != 0 && info.dli_fname != nullptr) {
    if (info.dli_sname != nullptr) {
      w.str(" ").str(info.dli_sname).str("+");
      w.hex(reinterpret_cast<uintptr_t>(frame) - reinterpret_cast<uintptr_t>(info.dli_saddr));
    }
    // module+offset: what addr2line -e MODULE takes (for a PIE main program too).
    w.str(" (").str(info.dli_fname[0] ? info.dli_fname : "main program").str("+");
    w.hex(reinterpret_cast<uintptr_t>(frame) - reinterpret_cast<uintptr_t>(info.dli_fbase));
    w.str(")");
  }
  w.ch('\n');
}

}  // namespace

void leak_check_start() noexcept {
  g_blocks = static_cast<TracedBlock*>(os::map_rw(kBlockSlots * sizeof(TracedBlock)));
  g_stacks = static_cast<Stack*>(os::map_rw(kStackSlots * sizeof(Stack)));
  if (g_blocks == nullptr || g_stacks == nullptr) return;
  os::stack_trace_start();
}

void leak_note_alloc(void* p, size_t usable) noexcept {
  if (g_blocks == nullptr || g_stacks == nullptr) return;
  CheckedCache& k = tl_checked;
  if (k.leak_countdown == 0) k.leak_countdown = g_checks.leak_sample;
  if (--k.leak_countdown != 0) return;
  trace(p, usable);
}

void leak_note_free(void* p) noexcept {
  if (g_blocks == nullptr) return;
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  for (size_t i = 0, at = slot_of(a); i < kBlockSlots; ++i, at = (at + 1) % kBlockSlots) {
    TracedBlock& b = g_blocks[at];
    uintptr_t cur = b.p.load(std::memory_order_acquire);
    if (cur == 0) return;
    if (cur == a) {
      if (b.p.compare_exchange_strong(cur, kTombstone, std::memory_order_acq_rel)) {
        g_stacks[b.stack].blocks.fetch_sub(1, std::memory_order_relaxed);
        g_stacks[b.stack].bytes.fetch_sub(b.bytes, std::memory_order_relaxed);
      }
      return;
    }
  }
}

void leak_note_resized(void* p, size_t usable) noexcept {
  leak_note_free(p);
  leak_note_alloc(p, usable);
}

void leak_fork_prepare() noexcept { g_mu.lock(); }
void leak_fork_parent() noexcept { g_mu.unlock(); }
void leak_fork_child() noexcept { g_mu.reset_after_fork(); }

void leak_report(int fd) noexcept {
  slabby_stats st;
  collect_stats(&st);
  Writer w(fd);
  w.str("slabby: leak check: ").u64(st.current_allocations).str(" blocks (");
  w.bytes(st.live_bytes).str(") still live at exit");
  if (g_stacks == nullptr) {
    w.ch('\n');
    return;
  }
  w.str("; traced 1 in ").u64(g_checks.leak_sample).str(" allocations");
  if (g_dropped.load() != 0) w.str(" (").u64(g_dropped.load()).str(" not recorded: tables full)");
  w.ch('\n');
  // The ten sites holding the most traced bytes, largest first.
  uint8_t shown[kStackSlots / 8] = {};
  for (int rank = 0; rank < 10; ++rank) {
    size_t best = kStackSlots;
    for (size_t i = 0; i < kStackSlots; ++i) {
      const Stack& s = g_stacks[i];
      if (s.hash == 0 || s.blocks.load() == 0 || (shown[i / 8] >> (i % 8) & 1)) continue;
      if (best == kStackSlots || s.bytes.load() > g_stacks[best].bytes.load()) best = i;
    }
    if (best == kStackSlots) break;
    shown[best / 8] |= static_cast<uint8_t>(1 << (best % 8));
    const Stack& s = g_stacks[best];
    w.str("slabby:   ").u64(s.blocks.load()).str(" traced blocks, ").bytes(s.bytes.load());
    w.str(", allocated at:\n");
    for (int f = 0; f < s.depth; ++f) write_frame(w, s.frames[f]);
  }
}

}  // namespace slabby

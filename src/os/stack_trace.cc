#include "os/stack_trace.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <sys/auxv.h>

#include <atomic>
#include <cstdint>

namespace slabby::os {

namespace {

constexpr int kSkipLinked = 4;  // slabby's frames when they share the main program's module
constexpr int kMaxRaw = 128;

std::atomic<bool> g_started{false};
// The address range of slabby's own module, whose frames lead every stack
// (found once: a dladdr per frame cost more than the unwinding); empty when
// slabby is linked into the main program.
uintptr_t g_self_lo = 0, g_self_hi = 0;
__thread bool tl_in_capture __attribute__((tls_model("initial-exec")));

int frames_to_skip(void* const* frames, int depth) {
  if (g_self_hi == 0) return depth > kSkipLinked ? kSkipLinked : 0;
  int skip = 0;
  while (skip < depth - 1) {
    uintptr_t a = reinterpret_cast<uintptr_t>(frames[skip]);
    if (a < g_self_lo || a >= g_self_hi) break;
    ++skip;
  }
  return skip;
}

// dl_iterate_phdr callback: the loaded range of the module holding *data.
int find_self(struct dl_phdr_info* info, size_t, void* data) {
  uintptr_t target = *static_cast<uintptr_t*>(data);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (start < lo) lo = start;
    if (start + ph.p_memsz > hi) hi = start + ph.p_memsz;
  }
  if (target < lo || target >= hi) return 0;
  g_self_lo = lo;
  g_self_hi = hi;
  return 1;
}

}  // namespace

void stack_trace_start() noexcept {
  if (g_started.exchange(true)) return;
  Dl_info self, main_program;
  if (dladdr(reinterpret_cast<void*>(&stack_trace_capture), &self) != 0 &&
      dladdr(reinterpret_cast<void*>(getauxval(AT_PHDR)), &main_program) != 0 &&
      self.dli_fbase != main_program.dli_fbase) {
    uintptr_t target = reinterpret_cast<uintptr_t>(&stack_trace_capture);
    dl_iterate_phdr(find_self, &target);
  }
  void* frames[2];
  tl_in_capture = true;
  backtrace(frames, 2);
  tl_in_capture = false;
}

int stack_trace_capture(void** out, int max) noexcept {
  if (tl_in_capture) return 0;
  void* raw[kMaxRaw];
  int want = max + 8 < kMaxRaw ? max + 8 : kMaxRaw;  // slabby's own frames: 3 to 6
  tl_in_capture = true;
  int depth = backtrace(raw, want);
  tl_in_capture = false;
  int skip = frames_to_skip(raw, depth);
  int n = depth - skip < max ? depth - skip : max;
  for (int i = 0; i < n; ++i) out[i] = raw[skip + i];
  return n < 0 ? 0 : n;
}

}  // namespace slabby::os

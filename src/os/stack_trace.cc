#include "os/stack_trace.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <sys/auxv.h>

#include <atomic>

namespace slabby::os {

namespace {

constexpr int kSkipLinked = 4;  // slabby's frames when they share the main program's module
constexpr int kMaxRaw = 128;

std::atomic<bool> g_started{false};
// slabby's own module, whose frames lead every stack; null when slabby is
// linked into the main program.
const void* g_self_base = nullptr;
__thread bool tl_in_capture __attribute__((tls_model("initial-exec")));

int frames_to_skip(void* const* frames, int depth) {
  if (g_self_base == nullptr) return depth > kSkipLinked ? kSkipLinked : 0;
  int skip = 0;
  Dl_info info;
  while (skip < depth - 1 && dladdr(frames[skip], &info) != 0 && info.dli_fbase == g_self_base)
    ++skip;
  return skip;
}

}  // namespace

void stack_trace_start() noexcept {
  if (g_started.exchange(true)) return;
  Dl_info self, main_program;
  if (dladdr(reinterpret_cast<void*>(&stack_trace_capture), &self) != 0 &&
      dladdr(reinterpret_cast<void*>(getauxval(AT_PHDR)), &main_program) != 0 &&
      self.dli_fbase != main_program.dli_fbase)
    g_self_base = self.dli_fbase;
  void* frames[2];
  tl_in_capture = true;
  backtrace(frames, 2);
  tl_in_capture = false;
}

int stack_trace_capture(void** out, int max) noexcept {
  if (tl_in_capture) return 0;
  void* raw[kMaxRaw];
  int want = max + 16 < kMaxRaw ? max + 16 : kMaxRaw;
  tl_in_capture = true;
  int depth = backtrace(raw, want);
  tl_in_capture = false;
  int skip = frames_to_skip(raw, depth);
  int n = depth - skip < max ? depth - skip : max;
  for (int i = 0; i < n; ++i) out[i] = raw[skip + i];
  return n < 0 ? 0 : n;
}

}  // namespace slabby::os

#include "secure/guard_fault.h"

#include <signal.h>
#include <ucontext.h>
#if defined(__aarch64__)
#include <asm/sigcontext.h>  // _aarch64_ctx, esr_context
#endif

#include <cstring>

#include "heap/page_heap.h"
#include "runtime/runtime.h"
#include "secure/report.h"

namespace slabby {

std::atomic<uint64_t> g_guard_violations{0};

namespace {

struct sigaction g_previous;

// Whether the faulting access was a read or a write, from the signal frame.
// x86-64: bit 1 of the page-fault error code is set for a write. aarch64:
// the kernel appends an esr_context record to the frame of a fault; for a
// data abort from user space (exception class 0x24) bit 6 of the syndrome
// (WnR) is set for a write. Where the frame has none (qemu's user-mode
// emulation does not write one), and on other targets: "access".
const char* access_kind(void* context) {
  auto* uc = static_cast<ucontext_t*>(context);
#if defined(__x86_64__)
  return (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0 ? "write" : "read";
#elif defined(__aarch64__)
  const char* rec = reinterpret_cast<const char*>(uc->uc_mcontext.__reserved);
  const char* end = rec + sizeof(uc->uc_mcontext.__reserved);
  while (rec + sizeof(_aarch64_ctx) <= end) {
    auto* head = reinterpret_cast<const _aarch64_ctx*>(rec);
    if (head->magic == 0 || head->size < sizeof(_aarch64_ctx) || head->size > size_t(end - rec))
      break;
    if (head->magic == ESR_MAGIC && head->size >= sizeof(esr_context)) {
      uint64_t esr = reinterpret_cast<const esr_context*>(rec)->esr;
      if (((esr >> 26) & 0x3f) != 0x24) break;  // not a data abort
      return (esr >> 6) & 1 ? "write" : "read";
    }
    rec += head->size;
  }
  return "access";
#else
  (void)uc;
  return "access";
#endif
}

// True (and the line written) when addr is on one of slabby's guards.
bool describe_guard_fault(uintptr_t addr, void* context) {
  const PageHeap& h = g_rt.heap;
  if (!h.owns(reinterpret_cast<void*>(addr))) return false;
  Span* s = h.span_of(reinterpret_cast<void*>(addr));
  if (s == nullptr || s->state != SpanState::kLarge || !s->guarded) return false;
  if (addr < s->start || addr >= s->end()) return false;
  Report r;
  const char* kind = access_kind(context);
  uintptr_t end = s->block + s->usable;
  if (addr >= s->end() - kPageSize) {
    r.str("guard page hit: ").str(kind).str(" at ").ptr(addr).str(" is ").u64(addr - end + 1);
    r.str(addr - end == 0 ? " byte" : " bytes").str(" past the end of the ").u64(s->usable);
    r.str("-byte block at ").ptr(s->block);
  } else if (addr < s->start + kPageSize) {
    r.str("guard page hit: ").str(kind).str(" at ").ptr(addr).str(" is ").u64(s->block - addr);
    r.str(" bytes before the start of the ").u64(s->usable).str("-byte block at ").ptr(s->block);
  } else if (s->quarantined) {
    r.str("use after free: ").str(kind).str(" at ").ptr(addr).str(" is ").u64(addr - s->block);
    r.str(" bytes into the freed ").u64(s->usable).str("-byte block at ").ptr(s->block);
  } else {
    return false;
  }
  r.str(" (SIGSEGV)");
  r.emit();
  return true;
}

void on_segv(int sig, siginfo_t* info, void* context) {
  if (describe_guard_fault(reinterpret_cast<uintptr_t>(info->si_addr), context)) {
    g_guard_violations.fetch_add(1, std::memory_order_relaxed);
    // Default action, then return: the faulting instruction runs again and
    // the kernel ends the process with SIGSEGV (and its core dump).
    signal(SIGSEGV, SIG_DFL);
    return;
  }
  if ((g_previous.sa_flags & SA_SIGINFO) != 0 && g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(sig, info, context);
    return;
  }
  if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN &&
      g_previous.sa_handler != nullptr) {
    g_previous.sa_handler(sig);
    return;
  }
  signal(SIGSEGV, SIG_DFL);
}

}  // namespace

void guard_fault_install() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_previous);
}

}  // namespace slabby

// Guard-page fault reports (fault_report.h).
#include "slab_pool/fault_report.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace slabby::slab_pool {
namespace {

constexpr int kMaxPools = 64;

struct Entry {
  std::atomic<uintptr_t> begin{0};
  uintptr_t end = 0;
  size_t page = 0, stride = 0, data = 0, slab = 0;
};
Entry g_entries[kMaxPools];
std::atomic<bool> g_installed{false};
struct sigaction g_previous;

// Async-signal-safe formatting: decimal or hex into the buffer's tail.
char* put_uint(char* end, uint64_t v, int base) {
  do {
    *--end = "0123456789abcdef"[v % base];
    v /= base;
  } while (v != 0);
  return end;
}

void append(char*& out, const char* s, size_t n) {
  std::memcpy(out, s, n);
  out += n;
}
void append(char*& out, const char* s) { append(out, s, std::strlen(s)); }
void append_uint(char*& out, uint64_t v, int base) {
  char tmp[24];
  char* b = put_uint(tmp + sizeof tmp, v, base);
  append(out, b, tmp + sizeof tmp - b);
}

void report(uintptr_t addr, const Entry& e) {
  size_t off = addr - e.begin;
  char msg[200];
  char* out = msg;
  append(out, "slabby: guard page violation at 0x");
  append_uint(out, addr, 16);
  append(out, ": ");
  if (off < e.page) {
    append_uint(out, e.page - off, 10);
    append(out, " bytes before slab 0\n");
  } else {
    // The guard page after slot `slot` is also the one below slot + 1 (whose
    // slab starts data - slab bytes above it): name both.
    size_t slot = (off - e.page) / e.stride;
    size_t in_slot = (off - e.page) % e.stride;  // >= data: in the guard page
    append_uint(out, in_slot - e.data + 1, 10);
    append(out, " bytes past the end of slab ");
    append_uint(out, slot, 10);
    if (e.begin.load(std::memory_order_relaxed) + e.page + (slot + 1) * e.stride < e.end) {
      append(out, ", ");
      append_uint(out, e.stride - in_slot + (e.data - e.slab), 10);
      append(out, " bytes before slab ");
      append_uint(out, slot + 1, 10);
    }
    append(out, "\n");
  }
  ssize_t r = write(STDERR_FILENO, msg, out - msg);
  (void)r;
}

void on_segv(int sig, siginfo_t* info, void* ctx) {
  uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (const Entry& e : g_entries) {
    uintptr_t b = e.begin.load(std::memory_order_acquire);
    if (b != 0 && addr >= b && addr < e.end) {
      report(addr, e);
      break;
    }
  }
  // Hand the fault on: restore the previous disposition and return, so the
  // faulting instruction runs again and meets it (default: death by SIGSEGV).
  sigaction(SIGSEGV, &g_previous, nullptr);
  (void)sig;
  (void)ctx;
}

void install_once() {
  bool expected = false;
  if (!g_installed.compare_exchange_strong(expected, true)) return;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_previous);
}

}  // namespace

void register_guarded(const GuardLayout& l) {
  install_once();
  for (Entry& e : g_entries) {
    uintptr_t expected = 0;
    // Claim with a sentinel, fill in, then publish the real begin.
    if (!e.begin.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) continue;
    e.end = l.end;
    e.page = l.page;
    e.stride = l.stride;
    e.data = l.data;
    e.slab = l.slab;
    e.begin.store(l.begin, std::memory_order_release);
    return;
  }
}

void unregister_guarded(uintptr_t begin) {
  for (Entry& e : g_entries)
    if (e.begin.load(std::memory_order_acquire) == begin) {
      e.begin.store(0, std::memory_order_release);
      return;
    }
}

}  // namespace slabby::slab_pool

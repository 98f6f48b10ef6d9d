// Fuzz target: sequences of malloc API calls on 1 to 4 threads, checked
// against glibc's rules.
//
// The calls go to the exact wrappers slabby exports (preload/malloc_symbols.cc,
// its global functions renamed fz_* after compiling: see CMakeLists.txt), so
// the process keeps ASan's malloc while slabby serves the calls under test.
// The security mode is chosen once per process, before slabby's first
// allocation, by SLABBY_FUZZ_MODE (default, percpu0, zero-free, zero-alloc,
// bitguard, secure, guard, quarantine, paranoid, limit, fallback).
//
// The input: a thread count, then one slice of bytes per thread, each decoded
// into calls. Checked after every call:
// - a block is aligned as asked (16 bytes at least), its usable size is at
//   least the size asked and stays the same, it overlaps no other live block
//   (an interval map of every live block), and its bytes are as last written
//   until it is freed (a pattern per block, written over all of a small block
//   and at sampled offsets of a large one, verified before every free and
//   realloc);
// - calloc's bytes, and with SLABBY_ZERO=alloc every block's, are zero;
// - realloc keeps min(old usable size, new size) bytes; realloc(p, 0) frees
//   and returns NULL; a failed realloc leaves the block as it was;
// - impossible sizes (above PTRDIFF_MAX, overflowing products) fail with
//   ENOMEM; a bad alignment fails with EINVAL (posix_memalign returns it and
//   leaves *out alone); every failure returns NULL;
// - errno is left alone by every call that succeeds, by free and by
//   malloc_usable_size, and by posix_memalign always;
// - operator new throws std::bad_alloc (after calling the new_handler) where
//   malloc would fail; the nothrow forms return NULL; each delete form takes
//   what its new gave (sized delete with the size asked); blocks of malloc,
//   calloc and realloc may go to C23's free_sized, those of aligned_alloc to
//   free_aligned_sized, with the size (and alignment) asked.
// Blocks move between threads through a shared mailbox, so frees are remote
// too.
#include <fuzzer/FuzzedDataProvider.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "common/size_class.h"
#include "fuzz_common.h"

using fuzzcheck::fail;

// The exported wrappers, renamed.
extern "C" {
void* fz_malloc(size_t);
void fz_free(void*);
void fz_cfree(void*);
void* fz_calloc(size_t, size_t);
void* fz_realloc(void*, size_t);
void* fz_reallocarray(void*, size_t, size_t);
int fz_posix_memalign(void**, size_t, size_t);
void* fz_aligned_alloc(size_t, size_t);
void* fz_memalign(size_t, size_t);
void* fz_valloc(size_t);
void* fz_pvalloc(size_t);
size_t fz_malloc_usable_size(void*);
void fz_free_sized(void*, size_t);
void fz_free_aligned_sized(void*, size_t, size_t);
int fz_malloc_trim(size_t);
// C++ operators by their mangled names; align_val_t is a size_t, a
// reference to nothrow_t a pointer.
void* fz__Znwm(size_t);
void* fz__Znam(size_t);
void* fz__ZnwmRKSt9nothrow_t(size_t, const void*);
void* fz__ZnwmSt11align_val_t(size_t, size_t);
void* fz__ZnwmSt11align_val_tRKSt9nothrow_t(size_t, size_t, const void*);
void fz__ZdlPv(void*);
void fz__ZdaPv(void*);
void fz__ZdlPvm(void*, size_t);
void fz__ZdaPvm(void*, size_t);
void fz__ZdlPvSt11align_val_t(void*, size_t);
void fz__ZdlPvmSt11align_val_t(void*, size_t, size_t);
}

namespace {

constexpr const char* kTarget = "malloc_fuzz";
constexpr size_t kPage = 4096;
constexpr size_t kSlots = 16;
constexpr size_t kMailboxes = 8;
constexpr size_t kMaxBlock = size_t{64} << 20;       // largest block actually asked for
constexpr size_t kMaxLivePerInput = size_t{384} << 20;  // requested bytes live at once
constexpr int kSentinelErrno = 4242;

// The process's mode (SLABBY_FUZZ_MODE).
bool g_may_fail = false;   // limit: any allocation may fail with ENOMEM
bool g_zero_alloc = false;  // SLABBY_ZERO=alloc or both
// fallback: no aligned requests above 16 bytes. slabby serves aligned heap
// fallbacks with __libc_memalign, which ASan intercepts (unlike
// __libc_malloc and __libc_free), so in this process they would be ASan's
// blocks, whose glibc header slabby reads for malloc_usable_size and which
// glibc's free would then be handed (the fuzzer's first find in this mode:
// regressions/malloc_fuzz/fallback-aligned-block-from-asan-libc-memalign).
// Without ASan, __libc_memalign is glibc's; tests/api covers that path.
bool g_no_aligned = false;

enum class Kind : uint8_t { kMalloc, kNew, kNewArray, kNewAligned };
// Which C call gave a kMalloc block, for C23's sized frees: free_sized takes
// those of malloc, calloc and realloc, free_aligned_sized those of
// aligned_alloc; the others (posix_memalign, memalign, valloc, pvalloc) only
// free and cfree.
enum class From : uint8_t { kOther, kMallocFamily, kAlignedAlloc };

struct Block {
  unsigned char* p = nullptr;
  size_t n = 0;        // size asked
  size_t usable = 0;   // malloc_usable_size at allocation
  size_t align = 16;   // alignment asked (new aligned: also the delete's)
  uint8_t tag = 0;     // pattern seed
  Kind kind = Kind::kMalloc;
  From from = From::kOther;
};

std::mutex g_live_mu;
std::map<uintptr_t, uintptr_t> g_live;  // start -> end of every live block
std::atomic<size_t> g_live_bytes{0};
std::atomic<Block*> g_mailbox[kMailboxes];

std::string hex(const void* p) {
  char b[32];
  snprintf(b, sizeof(b), "%p", p);
  return b;
}

void track(const Block& b) {
  uintptr_t s = reinterpret_cast<uintptr_t>(b.p), e = s + (b.usable ? b.usable : 1);
  std::lock_guard<std::mutex> g(g_live_mu);
  auto next = g_live.lower_bound(s);
  if (next != g_live.end() && next->first < e)
    fail(kTarget, "block " + hex(b.p) + " (" + std::to_string(b.usable) + " usable) overlaps the live block at " +
                      hex(reinterpret_cast<void*>(next->first)));
  if (next != g_live.begin() && std::prev(next)->second > s)
    fail(kTarget, "block " + hex(b.p) + " overlaps the live block at " +
                      hex(reinterpret_cast<void*>(std::prev(next)->first)));
  g_live[s] = e;
}

void untrack(const Block& b) {
  std::lock_guard<std::mutex> g(g_live_mu);
  g_live.erase(reinterpret_cast<uintptr_t>(b.p));
}

// Offsets of a block that carry its pattern: every byte up to 64 KiB; above,
// the first and last 4 KiB and 64 bytes every 64 KiB (so that big blocks do
// not become resident whole).
template <typename F>
void for_sampled(size_t len, F f) {
  if (len <= (64u << 10)) {
    f(0, len);
    return;
  }
  f(0, 4096);
  for (size_t o = 64u << 10; o + 64 < len - 4096; o += 64u << 10) f(o, 64);
  f(len - 4096, 4096);
}

inline unsigned char pattern(uint8_t tag, size_t o) {
  return static_cast<unsigned char>(tag * 131u + o * 7u + (o >> 9));
}

void fill(Block& b) {
  for_sampled(b.usable, [&](size_t o, size_t len) {
    for (size_t k = o; k < o + len; ++k) b.p[k] = pattern(b.tag, k);
  });
}

// The pattern must hold up to `upto` bytes (sampled offsets only).
void verify(const Block& b, size_t upto, const unsigned char* at, const char* when) {
  for_sampled(b.usable, [&](size_t o, size_t len) {
    for (size_t k = o; k < o + len && k < upto; ++k)
      if (at[k] != pattern(b.tag, k))
        fail(kTarget, std::string("byte ") + std::to_string(k) + " of the " + std::to_string(b.n) +
                          "-byte block " + hex(b.p) + " changed " + when + " (usable " +
                          std::to_string(b.usable) + ")");
  });
}

void expect_zero(const unsigned char* p, size_t n, const char* what) {
  auto check = [&](size_t o, size_t len) {
    for (size_t k = o; k < o + len && k < n; ++k)
      if (p[k] != 0) fail(kTarget, std::string(what) + ": byte " + std::to_string(k) + " of " + std::to_string(n) + " is not zero");
  };
  if (n <= (256u << 10)) return check(0, n);
  check(0, 4096);
  for (size_t o = 4096; o + 4096 < n; o += kPage) check(o, 64);
  check(n - 4096, 4096);
}

void check_errno_kept(const char* call) {
  if (errno != kSentinelErrno)
    fail(kTarget, std::string(call) + " changed errno to " + std::to_string(errno));
}

// A successful allocation: alignment, usable size, no overlap, zeroes where
// promised; then the block takes its pattern.
void accept(Block& b, const char* call, bool zeroed, uint8_t tag, bool fresh = true) {
  check_errno_kept(call);
  if (reinterpret_cast<uintptr_t>(b.p) % (b.align < 16 ? 16 : b.align) != 0)
    fail(kTarget, std::string(call) + " returned " + hex(b.p) + ", not aligned to " + std::to_string(b.align));
  b.usable = fz_malloc_usable_size(b.p);
  check_errno_kept("malloc_usable_size");
  if (b.usable < b.n)
    fail(kTarget, std::string(call) + "(" + std::to_string(b.n) + "): usable size " + std::to_string(b.usable));
  if (zeroed || (g_zero_alloc && fresh)) expect_zero(b.p, b.n, call);
  track(b);
  b.tag = tag;
  fill(b);
  g_live_bytes.fetch_add(b.n);
}

void check_failure(void* p, const char* call, size_t n, int want) {
  if (p != nullptr) fail(kTarget, std::string(call) + "(" + std::to_string(n) + ") should have failed");
  if (errno != want && !(g_may_fail && errno == ENOMEM))
    fail(kTarget, std::string(call) + "(" + std::to_string(n) + ") failed with errno " +
                      std::to_string(errno) + ", expected " + std::to_string(want));
}

// A failure where success was possible: allowed only with a heap limit.
void unexpected_null(const char* call, size_t n) {
  if (g_may_fail && errno == ENOMEM) return;
  fail(kTarget, std::string(call) + "(" + std::to_string(n) + ") returned NULL with errno " +
                    std::to_string(errno));
}

size_t pick_size(FuzzedDataProvider& in, bool* impossible) {
  *impossible = false;
  switch (in.ConsumeIntegralInRange<int>(0, 9)) {
    case 0: return in.ConsumeIntegralInRange<size_t>(0, 64);
    case 1: return in.ConsumeIntegralInRange<size_t>(0, 1024);
    case 2: return in.ConsumeIntegralInRange<size_t>(0, slabby::kMaxSmallSize);
    case 3: {  // a class edge
      unsigned c = in.ConsumeIntegralInRange<unsigned>(1, slabby::kNumClasses - 1);
      return slabby::class_size(c) + in.ConsumeIntegralInRange<int>(-1, 1);
    }
    case 4: return in.ConsumeIntegralInRange<size_t>(slabby::kMaxSmallSize, slabby::kMaxClassSize + 1);
    case 5: return in.ConsumeIntegralInRange<size_t>(1, 512) * kPage + in.ConsumeIntegralInRange<int>(-1, 1);
    case 6: return in.ConsumeIntegralInRange<size_t>(slabby::kMaxClassSize, 8u << 20);
    case 7: return in.ConsumeIntegralInRange<size_t>(8u << 20, kMaxBlock);
    case 8: {  // sizes no allocator can serve
      *impossible = true;
      static const size_t kHuge[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4096, SIZE_MAX / 2 + 1,
                                     static_cast<size_t>(PTRDIFF_MAX) + 1, SIZE_MAX - 15};
      return kHuge[in.ConsumeIntegralInRange<size_t>(0, 5)];
    }
    default: return in.ConsumeIntegral<uint16_t>();
  }
}

size_t pick_align(FuzzedDataProvider& in, bool* valid) {
  *valid = true;
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: *valid = false; return in.ConsumeIntegralInRange<size_t>(0, 1) == 0 ? 0 : 3 << in.ConsumeIntegralInRange<int>(0, 20);
    case 1: return size_t{1} << in.ConsumeIntegralInRange<int>(21, 26);
    default: return size_t{1} << in.ConsumeIntegralInRange<int>(0, 13);
  }
}

struct ThreadState {
  Block slot[kSlots];
  bool used[kSlots] = {};
  FuzzedDataProvider* in;
  uint8_t next_tag = 1;
};

void release(Block& b, FuzzedDataProvider& in) {
  verify(b, b.usable, b.p, "while it was live");
  untrack(b);
  g_live_bytes.fetch_sub(b.n);
  errno = kSentinelErrno;
  switch (b.kind) {
    case Kind::kMalloc:
      // The sized frees take the tag's odd half of the cfree branch: no more
      // input is read, so saved inputs decode as they did.
      if (in.ConsumeBool()) fz_free(b.p);
      else if ((b.tag & 1) && b.from == From::kMallocFamily) fz_free_sized(b.p, b.n);
      else if ((b.tag & 1) && b.from == From::kAlignedAlloc) fz_free_aligned_sized(b.p, b.align, b.n);
      else fz_cfree(b.p);
      check_errno_kept("free");
      break;
    case Kind::kNew:
      if (in.ConsumeBool()) fz__ZdlPv(b.p);
      else fz__ZdlPvm(b.p, b.n);
      check_errno_kept("operator delete");
      break;
    case Kind::kNewArray:
      if (in.ConsumeBool()) fz__ZdaPv(b.p);
      else fz__ZdaPvm(b.p, b.n);
      check_errno_kept("operator delete[]");
      break;
    case Kind::kNewAligned:
      if (in.ConsumeBool()) fz__ZdlPvSt11align_val_t(b.p, b.align);
      else fz__ZdlPvmSt11align_val_t(b.p, b.n, b.align);
      check_errno_kept("operator delete(align_val_t)");
      break;
  }
  b = Block{};
}

bool room(size_t n) { return n <= kMaxBlock && g_live_bytes.load() + n <= kMaxLivePerInput; }

size_t g_threads = 1;  // the new_handler is process-wide: used by 1-thread inputs only
thread_local int tl_handler_calls = 0;
void counting_handler() {
  ++tl_handler_calls;
  std::set_new_handler(nullptr);  // the next failure throws
}

void run_ops(ThreadState& t) {
  FuzzedDataProvider& in = *t.in;
  while (in.remaining_bytes() > 0) {
    size_t i = in.ConsumeIntegralInRange<size_t>(0, kSlots - 1);
    Block& b = t.slot[i];
    int op = in.ConsumeIntegralInRange<int>(0, 13);
    // Allocating ops replace the slot's block.
    if (op <= 1 || op == 4 || op == 5 || op == 6 || op == 8) {
      if (t.used[i]) release(b, in), t.used[i] = false;
    }
    bool impossible = false;
    Block nb;
    switch (op) {
      case 0: {  // malloc
        size_t n = pick_size(in, &impossible);
        if (!impossible && !room(n)) break;
        errno = kSentinelErrno;
        void* p = fz_malloc(n);
        if (impossible) {
          check_failure(p, "malloc", n, ENOMEM);
          break;
        }
        if (p == nullptr) { unexpected_null("malloc", n); break; }
        nb.p = static_cast<unsigned char*>(p), nb.n = n, nb.from = From::kMallocFamily;
        accept(nb, "malloc", false, t.next_tag++);
        b = nb, t.used[i] = true;
        break;
      }
      case 1: {  // calloc, products that overflow too
        size_t count = in.ConsumeIntegralInRange<size_t>(0, 4) == 0 ? in.ConsumeIntegral<size_t>()
                                                                   : in.ConsumeIntegralInRange<size_t>(0, 300);
        size_t size = pick_size(in, &impossible);
        size_t total;
        bool overflow = __builtin_mul_overflow(count, size, &total) || total > static_cast<size_t>(PTRDIFF_MAX);
        if (!overflow && !room(total)) break;
        errno = kSentinelErrno;
        void* p = fz_calloc(count, size);
        if (overflow) {
          check_failure(p, "calloc", total, ENOMEM);
          break;
        }
        if (p == nullptr) { unexpected_null("calloc", total); break; }
        nb.p = static_cast<unsigned char*>(p), nb.n = total, nb.from = From::kMallocFamily;
        accept(nb, "calloc", true, t.next_tag++);
        b = nb, t.used[i] = true;
        break;
      }
      case 2:    // realloc
      case 10: {  // reallocarray
        if (t.used[i] && b.kind != Kind::kMalloc) break;
        size_t n;
        bool overflow = false;
        size_t count = 1, size = 0;
        if (op == 2) {
          n = pick_size(in, &impossible);
        } else {
          count = in.ConsumeIntegralInRange<size_t>(0, 3) == 0 ? in.ConsumeIntegral<size_t>()
                                                               : in.ConsumeIntegralInRange<size_t>(0, 64);
          size = pick_size(in, &impossible);
          overflow = __builtin_mul_overflow(count, size, &n);
          impossible = overflow || n > static_cast<size_t>(PTRDIFF_MAX);
        }
        if (!impossible && !room(n)) break;
        void* old = t.used[i] ? b.p : nullptr;
        if (old) {
          verify(b, b.usable, b.p, "before realloc");
          untrack(b);  // before the call: once freed, another thread may get its memory
          g_live_bytes.fetch_sub(b.n);
        }
        auto keep_old = [&] {
          if (!old) return;
          verify(b, b.usable, b.p, "after a failed realloc");
          track(b);
          g_live_bytes.fetch_add(b.n);
        };
        errno = kSentinelErrno;
        void* p = op == 2 ? fz_realloc(old, n) : fz_reallocarray(old, count, size);
        const char* call = op == 2 ? "realloc" : "reallocarray";
        if (impossible) {
          check_failure(p, call, n, ENOMEM);
          keep_old();
          break;
        }
        if (n == 0 && old != nullptr) {  // glibc: frees the block, returns NULL
          if (p != nullptr) fail(kTarget, std::string(call) + "(p, 0) returned a block");
          check_errno_kept(call);
          b = Block{}, t.used[i] = false;
          break;
        }
        if (p == nullptr) {
          unexpected_null(call, n);
          keep_old();
          break;
        }
        // The old block's bytes, up to the new size, moved with it.
        if (old) verify(b, n < b.usable ? n : b.usable, static_cast<unsigned char*>(p), "by realloc");
        nb.p = static_cast<unsigned char*>(p), nb.n = n, nb.from = From::kMallocFamily;
        accept(nb, call, false, t.next_tag++, /*fresh=*/old == nullptr);
        b = nb, t.used[i] = true;
        break;
      }
      case 3:
        if (t.used[i]) release(b, in), t.used[i] = false;
        break;
      case 4:    // aligned_alloc
      case 5: {  // posix_memalign
        bool valid;
        size_t align = pick_align(in, &valid);
        size_t n = pick_size(in, &impossible);
        if (!impossible && !room(n + align)) break;
        if (g_no_aligned && valid && align > 16) break;
        if (op == 4) {
          errno = kSentinelErrno;
          void* p = fz_aligned_alloc(align, n);
          if (!valid) { check_failure(p, "aligned_alloc", n, EINVAL); break; }
          if (impossible) { check_failure(p, "aligned_alloc", n, ENOMEM); break; }
          if (p == nullptr) { unexpected_null("aligned_alloc", n); break; }
          nb.p = static_cast<unsigned char*>(p), nb.n = n, nb.align = align;
          nb.from = From::kAlignedAlloc;
          accept(nb, "aligned_alloc", false, t.next_tag++);
        } else {
          void* out = reinterpret_cast<void*>(0x5eed);
          errno = kSentinelErrno;
          int rc = fz_posix_memalign(&out, align, n);
          check_errno_kept("posix_memalign");
          bool bad_align = !valid || align < sizeof(void*);
          if (bad_align || impossible || rc != 0) {
            int want = bad_align ? EINVAL : ENOMEM;
            if (rc != want && !(g_may_fail && rc == ENOMEM && !bad_align))
              fail(kTarget, "posix_memalign(" + std::to_string(align) + ", " + std::to_string(n) +
                                ") returned " + std::to_string(rc) + ", expected " + std::to_string(want));
            if (out != reinterpret_cast<void*>(0x5eed)) fail(kTarget, "posix_memalign changed *out on failure");
            break;
          }
          nb.p = static_cast<unsigned char*>(out), nb.n = n, nb.align = align;
          accept(nb, "posix_memalign", false, t.next_tag++);
        }
        b = nb, t.used[i] = true;
        break;
      }
      case 6: {  // memalign (any alignment, rounded up), valloc, pvalloc
        int which = in.ConsumeIntegralInRange<int>(0, 2);
        size_t n = pick_size(in, &impossible);
        size_t align = which == 0 ? in.ConsumeIntegralInRange<size_t>(0, 70000) : kPage;
        if (!impossible && !room(n + align + kPage)) break;
        if (g_no_aligned && align > 16) break;
        errno = kSentinelErrno;
        void* p = which == 0 ? fz_memalign(align, n) : which == 1 ? fz_valloc(n) : fz_pvalloc(n);
        const char* call = which == 0 ? "memalign" : which == 1 ? "valloc" : "pvalloc";
        if (impossible) { check_failure(p, call, n, ENOMEM); break; }
        if (p == nullptr) { unexpected_null(call, n); break; }
        size_t want_align = 16;
        if (which > 0) want_align = kPage;
        else if (align > 16) want_align = size_t{1} << (64 - __builtin_clzll(align - 1));
        nb.p = static_cast<unsigned char*>(p), nb.n = n, nb.align = want_align;
        if (which == 2) nb.n = n == 0 ? kPage : (n + kPage - 1) / kPage * kPage;  // pvalloc rounds up
        accept(nb, call, false, t.next_tag++);
        b = nb, t.used[i] = true;
        break;
      }
      case 7: {  // malloc_usable_size: stable, and 0 for NULL
        errno = kSentinelErrno;
        if (fz_malloc_usable_size(nullptr) != 0) fail(kTarget, "malloc_usable_size(NULL) != 0");
        if (t.used[i] && fz_malloc_usable_size(b.p) != b.usable)
          fail(kTarget, "malloc_usable_size changed for a live block");
        check_errno_kept("malloc_usable_size");
        errno = kSentinelErrno;
        fz_free(nullptr);
        fz__ZdlPv(nullptr);
        check_errno_kept("free(NULL)");
        break;
      }
      case 8: {  // operator new, new[], nothrow, aligned
        int which = in.ConsumeIntegralInRange<int>(0, 4);
        size_t n = pick_size(in, &impossible);
        bool valid;
        size_t align = which >= 3 ? pick_align(in, &valid) : 16;
        if (align < 32 || !valid) align = 32;
        if (!impossible && !room(n + align)) break;
        if (g_no_aligned && which >= 3) break;
        bool handler = in.ConsumeBool() && g_threads == 1;
        tl_handler_calls = 0;
        if (handler) std::set_new_handler(counting_handler);
        void* p = nullptr;
        bool threw = false;
        errno = kSentinelErrno;
        try {
          switch (which) {
            case 0: p = fz__Znwm(n); break;
            case 1: p = fz__Znam(n); break;
            case 2: p = fz__ZnwmRKSt9nothrow_t(n, &std::nothrow); break;
            case 3: p = fz__ZnwmSt11align_val_t(n, align); break;
            default: p = fz__ZnwmSt11align_val_tRKSt9nothrow_t(n, align, &std::nothrow); break;
          }
        } catch (const std::bad_alloc&) {
          threw = true;
        }
        std::set_new_handler(nullptr);
        bool nothrow = which == 2 || which == 4;
        if (impossible || p == nullptr || threw) {
          if (!impossible && !g_may_fail) fail(kTarget, "operator new(" + std::to_string(n) + ") failed");
          if (nothrow ? (threw || p != nullptr) : !threw)
            fail(kTarget, std::string("operator new") + (nothrow ? " (nothrow) threw or returned a block" : " did not throw bad_alloc"));
          if (handler && tl_handler_calls != 1)
            fail(kTarget, "the new_handler ran " + std::to_string(tl_handler_calls) + " times, not once");
          break;
        }
        nb.p = static_cast<unsigned char*>(p), nb.n = n;
        nb.kind = which == 1 ? Kind::kNewArray : which >= 3 ? Kind::kNewAligned : Kind::kNew;
        if (which == 2) nb.kind = Kind::kNew;
        if (which == 4) nb.kind = Kind::kNewAligned;
        nb.align = which >= 3 ? align : 16;
        accept(nb, "operator new", false, t.next_tag++);
        b = nb, t.used[i] = true;
        break;
      }
      case 9:
      case 11: {  // hand a block to another thread through a mailbox
        size_t m = in.ConsumeIntegralInRange<size_t>(0, kMailboxes - 1);
        Block* mine = t.used[i] ? new Block(b) : nullptr;
        Block* theirs = g_mailbox[m].exchange(mine);
        t.used[i] = theirs != nullptr;
        b = theirs ? *theirs : Block{};
        delete theirs;
        if (t.used[i]) verify(b, b.usable, b.p, "while it was handed between threads");
        break;
      }
      case 12:  // trim: every cache and free page back
        errno = kSentinelErrno;
        fz_malloc_trim(0);
        check_errno_kept("malloc_trim");
        break;
      default:
        if (t.used[i]) verify(b, b.usable, b.p, "while it was live");
        break;
    }
  }
  for (size_t k = 0; k < kSlots; ++k)
    if (t.used[k]) release(t.slot[k], in), t.used[k] = false;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* mode = getenv("SLABBY_FUZZ_MODE");
  std::string m = mode ? mode : "default";
  auto set = [](const char* k, const char* v) { setenv(k, v, 1); };
  if (m == "percpu0") set("SLABBY_PERCPU", "0");
  else if (m == "zero-free") set("SLABBY_ZERO", "free");
  else if (m == "zero-alloc") set("SLABBY_ZERO", "alloc"), g_zero_alloc = true;
  else if (m == "bitguard") set("SLABBY_BITGUARD", "1");
  else if (m == "secure") set("SLABBY_SECURE", "1");
  else if (m == "guard") set("SLABBY_GUARD_PAGES", "1"), set("SLABBY_GUARD_SAMPLE", "7");
  else if (m == "quarantine") set("SLABBY_SECURE", "1"), set("SLABBY_QUARANTINE", "256K");
  else if (m == "paranoid") {
    set("SLABBY_SECURE", "1"), set("SLABBY_ZERO", "both"), set("SLABBY_GUARD_PAGES", "1");
    set("SLABBY_GUARD_SAMPLE", "31"), set("SLABBY_QUARANTINE", "1M"), g_zero_alloc = true;
  } else if (m == "limit") {
    set("SLABBY_MAX_HEAP", "96M"), set("SLABBY_HEAP_FALLBACK", "0"), g_may_fail = true;
  } else if (m == "fallback") {
    set("SLABBY_MAX_HEAP", "48M");  // past it glibc serves (foreign pointers)
    g_no_aligned = true;
  } else if (m != "default") {
    fprintf(stderr, "malloc_fuzz: unknown SLABBY_FUZZ_MODE=%s\n", m.c_str());
    exit(2);
  }
  fprintf(stderr, "malloc_fuzz: mode %s\n", m.c_str());
  fz_free(fz_malloc(1));  // slabby starts with the mode's settings
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t threads = 1 + data[0] % 4;
  g_threads = threads;
  ++data, --size;
  std::vector<std::unique_ptr<FuzzedDataProvider>> slices;
  std::vector<ThreadState> states(threads);
  size_t per = size / threads;
  for (size_t t = 0; t < threads; ++t)
    slices.push_back(std::make_unique<FuzzedDataProvider>(data + t * per, t + 1 == threads ? size - t * per : per));
  for (size_t t = 0; t < threads; ++t) states[t].in = slices[t].get();
  if (threads == 1) {
    run_ops(states[0]);
  } else {
    std::atomic<bool> go{false};
    std::vector<std::thread> ts;
    for (size_t t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        while (!go.load()) std::this_thread::yield();
        run_ops(states[t]);
      });
    go = true;
    for (auto& th : ts) th.join();
  }
  // Blocks left in the mailboxes.
  uint8_t none[1] = {0};
  FuzzedDataProvider empty(none, 0);
  for (auto& m : g_mailbox) {
    Block* b = m.exchange(nullptr);
    if (b) release(*b, empty), delete b;
  }
  return 0;
}

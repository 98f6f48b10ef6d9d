// slabby: per-CPU caches on restartable sequences (rseq).
//
// Each CPU has a region: a header of one {begin, end} pair of 16-bit slot
// indices and one cursor word (cur, and a count) per size class, then the
// slots (8-byte block pointers); the full layout, and how end moves with
// demand, is in cache/percpu_region.h. Indices count 8-byte words from the
// region's start. Class c's cached blocks are slots [begin, cur); a pop
// reads slot cur-1 and commits cur-1, a push writes slot cur and commits
// cur+1. Each operation is one rseq critical section whose commit is a
// single read-modify-write of the cursor word, so a thread preempted,
// migrated or signalled inside it restarts from the top and the CPU's cache
// is never seen half-updated.
//
// The sections are x86-64 assembly; builds for other targets (and with
// SLABBY_PORTABLE) have none and keep every thread on its per-thread cache
// (common/base.h: kHaveRseqSections).
//
// The rseq area is glibc's (found through __rseq_offset, glibc >= 2.35);
// only where glibc did not register one does slabby register its own, per
// thread. The kernel-owned fields are only read (USER-EXPECTATIONS 25); the
// only field written is rseq_cs, as the ABI intends.
//
// Invariants:
// - regions[cpu] is a real region or the shared read-only sentinel, whose
//   header is all zeros: a pop finds it empty and a push finds it full, so
//   the first use on a CPU takes the slow path, which creates the region.
//   No "initialised?" branch on the fast path.
// - begin <= cur <= end for every class of every region; only critical
//   sections running on that CPU change cur.
// - The slow paths' sections (the region table) run only on a thread whose
//   rseq area is registered (rseq_ok), so cpu_id is always a real CPU, below
//   the number of possible CPUs, which init checked is at most kMaxCpus:
//   they index the table without a bounds check. The inline sections (the
//   fast table, below) run on any thread: an unregistered area's cpu_id, -1
//   or -2, has a slot there too.
// - g_fast_regions.at[2 + cpu] is the sentinel or regions[cpu]; the latter
//   only in per-CPU mode without a divert (cache/thread_cache.h), set once
//   when the region is created.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cache/thread_cache.h"
#include "common/base.h"
#include "common/size_class.h"

namespace slabby {

inline constexpr unsigned kMaxCpus = 1024;

// A class's slot range in a region: its cached blocks are slots
// [begin, cur), its capacity end - begin.
struct SlotRange {
  uint16_t begin;
  uint16_t end;
  uint32_t unused;
};
static_assert(sizeof(SlotRange) == 8, "the asm indexes ranges by cls * 8");
// Each class's cursor word, in an array after the ranges (at kCursorAt, also
// indexed by cls * 8): cur in its low 16 bits, and above them the blocks the
// inline free pushed (its commit adds kCursorPush: 1 to both at once).
// The fast pops are not counted: they follow from the pushes, the blocks the
// other sections moved (tl_cache.percpu_net) and the blocks cached now
// (percpu_fast_counts). A pop never borrows from the count: cur > begin > 0.
inline constexpr size_t kCursorAt = sizeof(SlotRange) * kNumClasses;
inline constexpr uint64_t kCursorPush = (uint64_t{1} << 16) + 1;
inline constexpr unsigned kCursorCountShift = 16;
// Bytes of a region's header (ranges, then cursors), and of the sentinel.
inline constexpr size_t kRegionHeaderBytes = (2 * kCursorAt + 63) / 64 * 64;

struct PerCpuState {
  long rseq_offset;            // thread pointer to the rseq area (all threads alike)
  char* regions[kMaxCpus];     // a region, or the sentinel
};
// Named plainly (slabby_g_percpu) so the critical sections can address its
// fields rip-relative, one instruction each; hidden, so nothing interposes it.
static_assert(offsetof(PerCpuState, regions) == 8, "the asm reads the table at slabby_g_percpu+8");
extern PerCpuState g_percpu __asm__("slabby_g_percpu") __attribute__((visibility("hidden")));
// True when the per-CPU caches are in use (rseq works and SLABBY_PERCPU=1).
extern bool g_percpu_mode;

// The table malloc's and free's inline sections read: at[2 + cpu] for cpu_id
// -2 (registration failed) .. kMaxCpus - 1. It holds a CPU's region once the
// fast paths may use it (per-CPU mode and no divert: cache/thread_cache.h),
// the sentinel otherwise, so a section always misses for a thread whose area
// is not registered, in per-thread mode, and in the checked modes. The
// default library's fast paths run a section only for a thread on the CPU
// caches (they test its mode first, frontend/allocator.h); the hardened
// library's run one on every call, and rely on this. Static, all sentinel
// until then; g_percpu.rseq_offset points at a real area (glibc's, or
// slabby's own, whose cpu_id stays -1 until registered) before init hands
// out a block.
// After it, a copy of malloc's size-to-class table (common/size_class.h
// kDirectClassTable, never written): malloc looks up the class, then the
// CPU's region, from one base register (percpu_pop_fast's `fast`), where
// two tables needed a rip-relative address each, one instruction more.
struct FastRegionTable {
  const void* at[kMaxCpus + 2];
  uint8_t direct_class[kMaxDirectSize + 1];
  constexpr explicit FastRegionTable(const void* sentinel) : at(), direct_class() {
    for (const void*& a : at) a = sentinel;
    for (size_t n = 0; n <= kMaxDirectSize; ++n) direct_class[n] = kDirectClassTable[n];
  }
  // The class of a request of n <= kMaxDirectSize bytes.
  SLABBY_INLINE uintptr_t class_of(size_t n) const { return direct_class[n]; }
};
extern FastRegionTable g_fast_regions __asm__("slabby_g_fast_regions")
    __attribute__((visibility("hidden")));

#if SLABBY_ASM_X86_64
// The text shared by both critical sections (x86-64). Labels: 0 re-arms,
// 1 starts the section (start_ip), 2 ends it (after the commit store), 3 is
// the struct rseq_cs descriptor, 4 the abort handler, which the kernel
// enters on preemption, migration or a signal inside [1, 2) and which starts
// over from 0 (the kernel cleared rseq_cs). The rseq area's offset from the
// thread pointer and the region table are read from g_percpu by name (one
// instruction each); [tmp] and [region] are scratch registers the compiler
// picks. On entry to the body, [region] holds this CPU's region and [tmp] is
// free.
#define SLABBY_RSEQ_ARM                               \
  ".pushsection __rseq_cs, \"aw\"\n\t"                \
  ".balign 32\n\t"                                    \
  "3:\n\t"                                            \
  ".long 0, 0\n\t"                                    \
  ".quad 1f, (2f - 1f), 4f\n\t"                       \
  ".popsection\n\t"                                   \
  "0:\n\t"                                            \
  "movq slabby_g_percpu(%%rip), %[region]\n\t"        \
  "leaq 3b(%%rip), %[tmp]\n\t"                        \
  "movq %[tmp], %%fs:8(%[region])\n\t"                \
  "1:\n\t"
// The slow paths' sections index the region table; their thread is known to
// be registered (a real CPU).
#define SLABBY_RSEQ_SECTION_START                     \
  SLABBY_RSEQ_ARM                                     \
  "movl %%fs:4(%[region]), %k[tmp]\n\t"               \
  "leaq slabby_g_percpu+8(%%rip), %[region]\n\t"      \
  "movq (%[region], %[tmp], 8), %[region]\n\t"
// The fast paths' sections index the fast table (FastRegionTable, below) by
// the signed cpu_id, so any thread may run them: an unregistered area's -1
// or -2 finds the sentinel.
#define SLABBY_RSEQ_FAST_SECTION_START                \
  SLABBY_RSEQ_ARM                                     \
  "movslq %%fs:4(%[region]), %[tmp]\n\t"              \
  "leaq slabby_g_fast_regions+16(%%rip), %[region]\n\t" \
  "movq (%[region], %[tmp], 8), %[region]\n\t"
// The signature (RSEQ_SIG inside a ud1, so disassemblers stay in step) must
// immediately precede abort_ip.
#define SLABBY_RSEQ_SECTION_END                       \
  "2:\n\t"                                            \
  ".pushsection __rseq_failure, \"ax\"\n\t"           \
  ".byte 0x0f, 0xb9, 0x3d\n\t"                        \
  ".long 0x53053053\n\t"                              \
  "4:\n\t"                                            \
  "jmp 0b\n\t"                                        \
  ".popsection\n\t"

// The critical sections. They return nullptr / false on any miss (empty or
// full); the caller's slow path sorts out which. Volatile: with outputs, an
// asm goto is not implicitly volatile, and GCC 12 deleted the push (whose
// scratch outputs are unused) as dead code.
// The commits write the whole 64-bit cursor word (2026-12-01, measured with
// bench/fastpath on 2 cores, docs/benchmarks.md "The per-CPU pair at 40
// instructions"):
// - every store to it is 64 bits wide: the push reads it whole, and a load
//   wider than the store before it cannot take its value from the store
//   buffer (a 16-bit pop commit made the pair loop 1.58 x slower);
// - the pop subtracts 1 in memory (one instruction: it completes or the
//   section restarts); cur > begin > 0, so it never borrows from the count;
// - the push adds to the word it loaded and stores it back: the same add
//   in memory made malloc+free of mixed sizes 1.2 x slower (the pop's form
//   cost nothing there and saves two instructions on the pair loop).
// The class's cursor word and its top slot are addressed by a base register
// alone ([hdr], and [tmp] once it holds the slot's address: an lea each), not
// base + index x 8: on the Intel Xeon host (2026-12-06) the pair loop on a
// CPU's cache took 0.81 x the time of the indexed forms and mixed sizes
// 0.92 x, over 16 thread-local placements (docs/benchmarks.md, "The bins'
// addressing"); two instructions more per call.
// percpu_pop / percpu_push run on the slow paths' table; percpu_pop_fast /
// percpu_push_fast, inlined in malloc and free, on the fast table.
// A pop's body, after its start has put the CPU's region in [region].
// It also prefetches the block under the one it hands out: the next pop of
// the class returns it, and the program writes it (a block freed long after
// it was last touched otherwise misses at the program's first store). When
// the pop empties the class, the slot below begin is read instead: the
// class's pad slot, which holds the region's own address (percpu_region.h),
// a line every section reads, never a stale block's (0 until the class's
// first miss on the CPU).
// (docs/benchmarks.md, "Prefetching the next block").
#define SLABBY_PERCPU_POP_BODY                                      \
  "leaq (%[region], %[cls], 8), %[hdr]\n\t"                         \
  "movzwl %c[cur](%[hdr]), %k[tmp]\n\t"                             \
  "cmpw (%[hdr]), %w[tmp]\n\t"                                      \
  "je %l[miss]\n\t"                                                 \
  "leaq (%[region], %[tmp], 8), %[tmp]\n\t"                         \
  "movq -8(%[tmp]), %[result]\n\t"                                  \
  "movq -16(%[tmp]), %[next]\n\t"                                   \
  "prefetcht0 (%[next])\n\t"                                        \
  "subq $1, %c[cur](%[hdr])\n\t"                                    \
  SLABBY_RSEQ_SECTION_END
#define SLABBY_PERCPU_POP(name, start)                              \
  SLABBY_INLINE void* name(uintptr_t cls) {                         \
    void* result;                                                   \
    uintptr_t tmp, region, next, hdr;                               \
    asm volatile goto(start SLABBY_PERCPU_POP_BODY                  \
                      : [result] "=&a"(result), [tmp] "=&r"(tmp),   \
                        [region] "=&r"(region), [next] "=&r"(next), \
                        [hdr] "=&r"(hdr)                            \
                      : [cls] "r"(cls), [cur] "i"(kCursorAt)        \
                      : "memory", "cc"                              \
                      : miss);                                      \
    /* Slots never hold nullptr: telling the compiler saves a test. */ \
    if (result == nullptr) __builtin_unreachable();                 \
    return result;                                                  \
  miss:                                                             \
    return nullptr;                                                 \
  }
#define SLABBY_PERCPU_PUSH(name, start, commit)                     \
  SLABBY_INLINE bool name(uintptr_t cls, void* p) {                 \
    uintptr_t tmp, region, w, hdr;                                  \
    asm volatile goto(start                                         \
                      "leaq (%[region], %[cls], 8), %[hdr]\n\t"   \
                      "movq %c[cur](%[hdr]), %[w]\n\t"             \
                      "cmpw 2(%[hdr]), %w[w]\n\t"                  \
                      "je %l[miss]\n\t"                             \
                      "movzwl %w[w], %k[tmp]\n\t"                   \
                      "leaq (%[region], %[tmp], 8), %[tmp]\n\t"     \
                      "movq %[p], (%[tmp])\n\t"                     \
                      commit ", %[w]\n\t"                           \
                      "movq %[w], %c[cur](%[hdr])\n\t"             \
                      SLABBY_RSEQ_SECTION_END                       \
                      : [tmp] "=&r"(tmp), [region] "=&r"(region),   \
                        [w] "=&r"(w), [hdr] "=&r"(hdr)              \
                      : [cls] "r"(cls), [p] "r"(p), [cur] "i"(kCursorAt), \
                        [count] "i"(kCursorPush)                    \
                      : "memory", "cc"                              \
                      : miss);                                      \
    return true;                                                    \
  miss:                                                             \
    return false;                                                   \
  }
SLABBY_PERCPU_POP(percpu_pop_section, SLABBY_RSEQ_SECTION_START)
SLABBY_PERCPU_PUSH(percpu_push_section, SLABBY_RSEQ_SECTION_START, "addq $1")
// The inline pop, given the fast table's address (the register malloc
// already holds it in, for the class): FastRegionTable above.
SLABBY_INLINE void* percpu_pop_fast(uintptr_t cls, const FastRegionTable* fast = &g_fast_regions) {
  void* result;
  uintptr_t tmp, region, next, hdr;
  // SLABBY_RSEQ_FAST_SECTION_START, with the table's address given.
  asm volatile goto(SLABBY_RSEQ_ARM
                    "movslq %%fs:4(%[region]), %[tmp]\n\t"
                    "movq %c[at](%[fast], %[tmp], 8), %[region]\n\t"
                    SLABBY_PERCPU_POP_BODY
                    : [result] "=&a"(result), [tmp] "=&r"(tmp), [region] "=&r"(region),
                      [next] "=&r"(next), [hdr] "=&r"(hdr)
                    : [cls] "r"(cls), [fast] "r"(fast), [cur] "i"(kCursorAt),
                      [at] "i"(2 * sizeof(void*))
                    : "memory", "cc"
                    : miss);
  if (result == nullptr) __builtin_unreachable();
  return result;
miss:
  return nullptr;
}
// The inline free's push counts itself in the cursor word.
SLABBY_PERCPU_PUSH(percpu_push_fast, SLABBY_RSEQ_FAST_SECTION_START, "addq %[count]")
#undef SLABBY_PERCPU_POP
#undef SLABBY_PERCPU_POP_BODY
#undef SLABBY_PERCPU_PUSH

// The bulk sections' copy: k (> 0) pointers from [src] to [dst], counting
// in [i], through [v].
#define SLABBY_RSEQ_COPY_K                            \
  "xorl %k[i], %k[i]\n\t"                             \
  "5:\n\t"                                            \
  "movq (%[src], %[i], 8), %[v]\n\t"                  \
  "movq %[v], (%[dst], %[i], 8)\n\t"                  \
  "addq $1, %[i]\n\t"                                 \
  "cmpq %[k], %[i]\n\t"                               \
  "jne 5b\n\t"

// Moves blocks between an array and the CPU's cache of class cls in one
// critical section (the refill and flush slow paths): copies the slots, then
// commits cur once. A restart copies again; slots beyond cur are this
// section's until it commits. push_n pushes src[0, k) (src[k-1] on top)
// and pop_n pops the top k into dst[0, k) (dst[k-1] was on top), k the
// largest that fits, at most n; both return k (0 on a miss).
SLABBY_INLINE uint32_t percpu_push_n_section(uintptr_t cls, void* const* src, uint32_t n) {
  uintptr_t tmp, region, k, dst, i, v;
  asm volatile goto(
      SLABBY_RSEQ_SECTION_START
      "movzwl %c[cur](%[region], %[cls], 8), %k[tmp]\n\t"
      "movzwl 2(%[region], %[cls], 8), %k[k]\n\t"
      "subl %k[tmp], %k[k]\n\t"
      "cmpl %k[n], %k[k]\n\t"
      "cmoval %k[n], %k[k]\n\t"
      "testl %k[k], %k[k]\n\t"
      "je %l[miss]\n\t"
      "leaq (%[region], %[tmp], 8), %[dst]\n\t"
      SLABBY_RSEQ_COPY_K
      "addl %k[k], %k[tmp]\n\t"
      "movw %w[tmp], %c[cur](%[region], %[cls], 8)\n\t"
      SLABBY_RSEQ_SECTION_END
      : [tmp] "=&r"(tmp), [region] "=&r"(region), [k] "=&r"(k), [dst] "=&r"(dst),
        [i] "=&r"(i), [v] "=&r"(v)
      : [cls] "r"(cls), [src] "r"(src), [n] "r"(n), [cur] "i"(kCursorAt)
      : "memory", "cc"
      : miss);
  return static_cast<uint32_t>(k);
miss:
  return 0;
}

SLABBY_INLINE uint32_t percpu_pop_n_section(uintptr_t cls, void** dst, uint32_t n) {
  uintptr_t tmp, region, k, src, i, v;
  asm volatile goto(
      SLABBY_RSEQ_SECTION_START
      "movzwl %c[cur](%[region], %[cls], 8), %k[tmp]\n\t"
      "movzwl (%[region], %[cls], 8), %k[k]\n\t"
      "negl %k[k]\n\t"
      "addl %k[tmp], %k[k]\n\t"
      "cmpl %k[n], %k[k]\n\t"
      "cmoval %k[n], %k[k]\n\t"
      "testl %k[k], %k[k]\n\t"
      "je %l[miss]\n\t"
      "subl %k[k], %k[tmp]\n\t"
      "leaq (%[region], %[tmp], 8), %[src]\n\t"
      SLABBY_RSEQ_COPY_K
      "movw %w[tmp], %c[cur](%[region], %[cls], 8)\n\t"
      SLABBY_RSEQ_SECTION_END
      : [tmp] "=&r"(tmp), [region] "=&r"(region), [k] "=&r"(k), [src] "=&r"(src),
        [i] "=&r"(i), [v] "=&r"(v)
      : [cls] "r"(cls), [dst] "r"(dst), [n] "r"(n), [cur] "i"(kCursorAt)
      : "memory", "cc"
      : miss);
  return static_cast<uint32_t>(k);
miss:
  return 0;
}

// Capacity changes (cache/percpu_sizing.cc), one section each on the
// calling thread's CPU. A region's begin is above 0, so the sentinel (all
// zeros) is recognised and never written. grow_end raises class cls's end
// by `add` slots, to at most max_end; shrink_end lowers it to new_end, and
// misses (false) while the cache holds blocks above new_end.
SLABBY_INLINE void percpu_grow_end(uintptr_t cls, uint32_t add, uint32_t max_end) {
  uintptr_t tmp, region;
  asm volatile goto(
      SLABBY_RSEQ_SECTION_START
      "cmpw $0, (%[region], %[cls], 8)\n\t"
      "je %l[sentinel]\n\t"
      "movzwl 2(%[region], %[cls], 8), %k[tmp]\n\t"
      "addl %k[add], %k[tmp]\n\t"
      "cmpl %k[max], %k[tmp]\n\t"
      "cmoval %k[max], %k[tmp]\n\t"
      "movw %w[tmp], 2(%[region], %[cls], 8)\n\t"
      SLABBY_RSEQ_SECTION_END
      : [tmp] "=&r"(tmp), [region] "=&r"(region)
      : [cls] "r"(cls), [add] "r"(uintptr_t{add}), [max] "r"(uintptr_t{max_end})
      : "memory", "cc"
      : sentinel);
sentinel:
  return;
}

SLABBY_INLINE bool percpu_shrink_end(uintptr_t cls, uint32_t new_end) {
  uintptr_t tmp, region;
  asm volatile goto(
      SLABBY_RSEQ_SECTION_START
      "cmpw $0, (%[region], %[cls], 8)\n\t"
      "je %l[miss]\n\t"
      "movzwl %c[cur](%[region], %[cls], 8), %k[tmp]\n\t"
      "cmpl %k[end], %k[tmp]\n\t"
      "ja %l[miss]\n\t"
      "movw %w[end], 2(%[region], %[cls], 8)\n\t"
      SLABBY_RSEQ_SECTION_END
      : [tmp] "=&r"(tmp), [region] "=&r"(region)
      : [cls] "r"(cls), [end] "r"(uintptr_t{new_end}), [cur] "i"(kCursorAt)
      : "memory", "cc"
      : miss);
  return true;
miss:
  return false;
}

#else
// No critical sections for this target (or SLABBY_PORTABLE): percpu_init
// never enables the per-CPU caches, so no thread's percpu_ok is set and the
// fast paths never get here (frontend/allocator.h drops the calls at compile
// time). Should anything call them, they miss: the slow paths then find no
// usable CPU and go to the central pools.
SLABBY_INLINE void* percpu_pop_section(uintptr_t) { return nullptr; }
SLABBY_INLINE bool percpu_push_section(uintptr_t, void*) { return false; }
SLABBY_INLINE void* percpu_pop_fast(uintptr_t, const FastRegionTable* = nullptr) { return nullptr; }
SLABBY_INLINE bool percpu_push_fast(uintptr_t, void*) { return false; }
SLABBY_INLINE uint32_t percpu_push_n_section(uintptr_t, void* const*, uint32_t) { return 0; }
SLABBY_INLINE uint32_t percpu_pop_n_section(uintptr_t, void**, uint32_t) { return 0; }
SLABBY_INLINE void percpu_grow_end(uintptr_t, uint32_t, uint32_t) {}
SLABBY_INLINE bool percpu_shrink_end(uintptr_t, uint32_t) { return false; }
#endif  // SLABBY_ASM_X86_64

// The slow paths' sections, each counting what it moved into (or out of) the
// CPU caches in the calling thread's percpu_net: with the inline free's
// pushes (in the cursor words) and the blocks cached now, that gives the
// inline malloc's pops without a counter on its path (percpu_fast_counts).
// The inline sections never count here. A divert's hit paths may use the
// *_section forms: with a divert nothing is derived (percpu_fast_counts).
SLABBY_INLINE void* percpu_pop(uintptr_t cls) {
  void* p = percpu_pop_section(cls);
  if (p != nullptr) tl_cache.percpu_net[cls]--;
  return p;
}
SLABBY_INLINE bool percpu_push(uintptr_t cls, void* p) {
  if (!percpu_push_section(cls, p)) return false;
  tl_cache.percpu_net[cls]++;
  return true;
}
SLABBY_INLINE uint32_t percpu_push_n(uintptr_t cls, void* const* src, uint32_t n) {
  uint32_t k = percpu_push_n_section(cls, src, n);
  tl_cache.percpu_net[cls] += k;
  return k;
}
SLABBY_INLINE uint32_t percpu_pop_n(uintptr_t cls, void** dst, uint32_t n) {
  uint32_t k = percpu_pop_n_section(cls, dst, n);
  tl_cache.percpu_net[cls] -= k;
  return k;
}

// Decides the mode (SLABBY_PERCPU, rseq availability) once, at init, on the
// initialising thread. cache_limit: each class's base capacity in slots per
// CPU; grow_bytes: how far above their bases a CPU's small classes may grow
// together, in bytes of blocks (SLABBY_PERCPU_GROW_BYTES; 0: never);
// medium_grow_bytes: how far every CPU's medium classes together may
// (SLABBY_MEDIUM_GROW_BYTES; 0: never).
void percpu_init(bool wanted, const uint32_t* cache_limit, size_t grow_bytes,
                 size_t medium_grow_bytes);
// Per thread, on its first call: registers slabby's own rseq area where glibc
// has none. Returns false when this thread cannot use the per-CPU caches.
bool percpu_thread_init();
// The CPU the thread runs on per its rseq area, or -1.
int percpu_current_cpu();

// A per-CPU thread's allocation and free of a small block (the thread's bin
// missed): one critical section, then the slow path on a miss.
void* percpu_alloc(unsigned cls) noexcept;
void percpu_free(void* p, unsigned cls) noexcept;
// Their slow paths (the CPU's cache was empty / full, or it has no region).
void* percpu_refill_and_alloc(unsigned cls) noexcept;
void percpu_flush_and_free(void* p, unsigned cls) noexcept;
// A thread's first allocation (cache/thread_cache.h cache_alloc_first): a
// block on a line of its own among the CPU cache's top blocks, else among a
// few of the pool's; the others go (back) into the cache, its line mates
// deepest.
void* percpu_alloc_first(unsigned cls) noexcept;

// For a divert (cache/thread_cache.h) whose blocks wait in the CPU caches
// too. Neither counts the block in the thread's allocs/frees: the divert
// does. A divert must not come back here through uncached_alloc/free, so
// both return failure instead of falling back.
// Each block the pool hands out, before it enters a CPU cache or goes to the
// program (the pool hands out pointers; nothing else has read the block).
using BlockAdmit = void (*)(void* block, unsigned cls) noexcept;
// Refills the calling thread's CPU cache of class cls from the pool, each
// block admitted on the way, and returns one block (admitted). nullptr when
// the thread cannot use a CPU cache now or the pool has nothing. At most
// max_fresh of the blocks are never-used ones (CentralPool::take_blocks).
void* percpu_refill_admitting(unsigned cls, BlockAdmit admit, uint32_t max_fresh) noexcept;
// A thread's first allocation as percpu_alloc_first, each block the pool
// hands out admitted on its way (max_fresh as above); the block returned
// (from the CPU cache or admitted) is not counted. nullptr when the thread
// cannot use a CPU cache now or the pool has nothing.
void* percpu_alloc_first_admitting(unsigned cls, BlockAdmit admit, uint32_t max_fresh) noexcept;
// The CPU cache of class cls is full: moves one batch to the pool, then
// pushes p. false (nothing done) when the thread cannot use a CPU cache now.
bool percpu_flush_and_push(void* p, unsigned cls) noexcept;

// Empties the caches of CPUs that missed no refill or flush since the last
// call (idle CPUs), or of every CPU with `all`, and puts their classes back
// to their base capacities; on the other CPUs, halves what a class grew if
// it missed nothing since the last call (cache/percpu_region.h). Moves the
// calling thread onto each CPU it works on in turn (sched_setaffinity) and
// restores its affinity. Returns blocks moved to the pools.
uint64_t percpu_drain_idle(bool all);
// Empties the cache of the CPU the calling thread runs on (0 when the thread
// does not use the per-CPU caches). Returns blocks drained.
uint64_t percpu_drain_current();

// Fork: the lock that guards region creation (taken first; it nests none).
void percpu_fork_prepare();
void percpu_fork_parent();
void percpu_fork_child();

// Blocks cached per class over all CPUs (racy snapshot, for stats).
void percpu_cached_blocks(uint64_t* per_class);
// The blocks the inline paths took from (pops) and gave to (pushes) the CPU
// caches, per class, ever: pushes from the cursor words, pops = pushes +
// slow_net (the percpu_net of every thread, live and gone) - cached now;
// adds the blocks cached now to cached, as percpu_cached_blocks does, from
// the same walk. Exact when no thread is inside malloc or free; a moment old
// otherwise (pops clamped at 0).
void percpu_fast_counts(const int64_t* slow_net, uint64_t* cached, uint64_t* pops,
                        uint64_t* pushes);
// Capacity of class cls on CPU cpu now (0: the CPU has no cache yet), and
// the most it may grow to.
uint32_t percpu_capacity(int cpu, unsigned cls);
uint32_t percpu_max_capacity(unsigned cls);
// Bytes the CPUs' caches may hold now (capacities times block sizes, over
// every CPU and class), and how often a class grew or shrank on a CPU, ever.
uint64_t percpu_capacity_bytes();
uint64_t percpu_grows();
uint64_t percpu_shrinks();
// "glibc" or "own" rseq area, or "none".
const char* percpu_rseq_source();
// Why this process uses per-thread caches ("no rseq on this system", "no
// rseq critical sections in this build", ...), or "" in per-CPU mode.
const char* percpu_off_reason();

}  // namespace slabby

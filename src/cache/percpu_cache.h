// slabby: per-CPU caches on restartable sequences (rseq).
//
// Each CPU has a region: a header of one {begin, end} pair of 16-bit slot
// indices and one pair of cursor words per size class, then the slots
// (8-byte block pointers); the full layout, and how end moves with demand,
// is in cache/percpu_region.h. Indices count 8-byte words from the region's
// start. Class c's slots [begin, end) hold two stacks that grow towards each
// other:
//
//   [begin ........ acur)  free slots  [fcur ........ end)
//    the alloc stack: malloc             the free stack: free pushes at
//    pops slot acur-1                    slot fcur-1 (its top is fcur)
//
// Split so that a free and the malloc after it touch different cursor
// words: with one stack, malloc popped the very slot the free before it
// had pushed, through the cursor the free had just stored, and the pair's
// loads waited on each other's stores (a malloc(16)+free loop took 1.7 x
// as long; docs/benchmarks.md "Two stacks per class"). When the alloc stack
// runs empty, a slow path moves the free stack onto it (percpu_reshape), the
// most recently freed block on top; the cache is full when the two meet
// (fcur == acur). Each operation is one rseq critical section whose commit
// is a single write (one 64-bit read-modify-write of a cursor word, or one
// 16-byte store of both), so a thread preempted, migrated or signalled
// inside it restarts from the top and the CPU's cache is never seen
// half-updated.
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
// - begin <= acur <= fcur <= end for every class of every region; only
//   critical sections running on that CPU change them.
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
#include "frontend/size_class.h"

namespace slabby {

inline constexpr unsigned kMaxCpus = 1024;

// A class's first slot in a region (SlotRange::begin; the layout's base
// capacity is SlotRange::end in RegionLayout, cache/percpu_region.h). In a
// region only begin is read: the live end is in the class's cursor pair.
struct SlotRange {
  uint16_t begin;
  uint16_t end;
  uint32_t unused;
};
static_assert(sizeof(SlotRange) == 8, "the asm indexes ranges by cls * 8");
// Each class's cursor pair, in an array after the ranges (at kCursorAt,
// 16 bytes per class, so the sections index it by 2 * cls, scaled by 8,
// and the ranges by 2 * cls, scaled by 4):
// - the alloc word (kAllocWord): acur in bits 0-15, end in bits 16-31, and
//   in bits 32-63 the blocks the hardened library's inline free pushed onto
//   the alloc stack (the checked modes keep one LIFO stack: their free pushes
//   there, adding kAllocPush). The inline malloc's commit subtracts 1
//   (acur > begin > 0: it never borrows).
// - the free word (kFreeWord): fcur in bits 0-15, and above them the blocks
//   the inline free pushed: its commit adds kFreePush (fcur - 1 and one more
//   push at once; fcur > acur > 0, so it never borrows).
// The fast pops are not counted: they follow from the pushes, the blocks the
// other sections moved (tl_cache.percpu_net) and the blocks cached now
// (percpu_fast_counts). Both words are written together only by
// percpu_reshape's 16-byte store.
inline constexpr size_t kCursorAt = (sizeof(SlotRange) * kNumClasses + 63) / 64 * 64;
inline constexpr size_t kAllocWord = kCursorAt;
inline constexpr size_t kFreeWord = kCursorAt + 8;
inline constexpr uint64_t kFreePush = (uint64_t{1} << 16) - 1;
inline constexpr unsigned kFreeCountShift = 16;
inline constexpr unsigned kAllocEndShift = 16;
inline constexpr uint64_t kAllocPush = (uint64_t{1} << 32) + 1;
inline constexpr unsigned kAllocCountShift = 32;
// Bytes of a region's header (ranges, then cursor pairs), and of the sentinel.
inline constexpr size_t kRegionHeaderBytes = (kCursorAt + 16 * kNumClasses + 63) / 64 * 64;
static_assert(kCursorAt % 16 == 0, "percpu_reshape commits a pair with one aligned 16-byte store");

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
// is not registered, in per-thread mode, and in the checked modes, and the
// fast paths need no mode test before it. Static, all sentinel until then;
// g_percpu.rseq_offset points at a real area (glibc's, or slabby's own,
// whose cpu_id stays -1 until registered) before init hands out a block.
struct FastRegionTable {
  const void* at[kMaxCpus + 2];
  constexpr explicit FastRegionTable(const void* sentinel) : at() {
    for (const void*& a : at) a = sentinel;
  }
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
// scratch outputs are unused) as dead code. [c2] is 2 * cls.
// Every commit is one 64-bit write of a cursor word (2026-12-01, measured with
// bench/fastpath on 2 cores, docs/benchmarks.md "The per-CPU pair at 40
// instructions"): a load wider than the store before it cannot take its
// value from the store buffer (a 16-bit commit made the pair loop 1.58 x
// slower). The pop and the push commit by adding in memory (one instruction:
// it completes or the section restarts); the reads before are 16 bits wide,
// inside the 64-bit word the last commit wrote.
// percpu_pop_alloc_section / percpu_push_section run on the slow paths'
// table; percpu_pop_fast / percpu_push_fast, inlined in malloc and free, on
// the fast table. The pops take the alloc stack only (percpu_pop_section,
// below, also moves the free stack over when it is empty).
#define SLABBY_PERCPU_POP(name, start)                              \
  SLABBY_INLINE void* name(uintptr_t cls) {                         \
    void* result;                                                   \
    uintptr_t tmp, region;                                          \
    asm volatile goto(start                                         \
                      "movzwl %c[a](%[region], %[c2], 8), %k[tmp]\n\t" \
                      "cmpw (%[region], %[c2], 4), %w[tmp]\n\t"     \
                      "je %l[miss]\n\t"                             \
                      "movq -8(%[region], %[tmp], 8), %[result]\n\t" \
                      "subq $1, %c[a](%[region], %[c2], 8)\n\t"     \
                      SLABBY_RSEQ_SECTION_END                       \
                      : [result] "=&a"(result), [tmp] "=&r"(tmp),   \
                        [region] "=&r"(region)                      \
                      : [c2] "r"(cls * 2), [a] "i"(kAllocWord)      \
                      : "memory", "cc"                              \
                      : miss);                                      \
    /* Slots never hold nullptr: telling the compiler saves a test. */ \
    if (result == nullptr) __builtin_unreachable();                 \
    return result;                                                  \
  miss:                                                             \
    return nullptr;                                                 \
  }
// The push onto the free stack is full when fcur has come down to acur (or,
// in the sentinel and for class 0, both are 0 / begin).
#define SLABBY_PERCPU_PUSH_FREE(name, start, commit)                \
  SLABBY_INLINE bool name(uintptr_t cls, void* p) {                 \
    uintptr_t tmp, region;                                          \
    asm volatile goto(start                                         \
                      "movzwl %c[f](%[region], %[c2], 8), %k[tmp]\n\t" \
                      "cmpw %c[a](%[region], %[c2], 8), %w[tmp]\n\t" \
                      "je %l[miss]\n\t"                             \
                      "movq %[p], -8(%[region], %[tmp], 8)\n\t"     \
                      commit ", %c[f](%[region], %[c2], 8)\n\t"     \
                      SLABBY_RSEQ_SECTION_END                       \
                      : [tmp] "=&r"(tmp), [region] "=&r"(region)    \
                      : [c2] "r"(cls * 2), [p] "r"(p), [a] "i"(kAllocWord), \
                        [f] "i"(kFreeWord), [count] "i"(kFreePush)  \
                      : "memory", "cc"                              \
                      : miss);                                      \
    return true;                                                    \
  miss:                                                             \
    return false;                                                   \
  }
// The checked modes' push, onto the alloc stack (one LIFO stack, as their
// detections expect: a freed block is the next one handed out): full when
// acur has come up to fcur. The hardened library's inline free counts itself
// in the alloc word's top half (kAllocPush).
#define SLABBY_PERCPU_PUSH_ALLOC(name, start, commit)               \
  SLABBY_INLINE bool name(uintptr_t cls, void* p) {                 \
    uintptr_t tmp, region;                                          \
    asm volatile goto(start                                         \
                      "movzwl %c[a](%[region], %[c2], 8), %k[tmp]\n\t" \
                      "cmpw %c[f](%[region], %[c2], 8), %w[tmp]\n\t" \
                      "je %l[miss]\n\t"                             \
                      "movq %[p], (%[region], %[tmp], 8)\n\t"       \
                      commit ", %c[a](%[region], %[c2], 8)\n\t"     \
                      SLABBY_RSEQ_SECTION_END                       \
                      : [tmp] "=&r"(tmp), [region] "=&r"(region)    \
                      : [c2] "r"(cls * 2), [p] "r"(p), [a] "i"(kAllocWord), \
                        [f] "i"(kFreeWord), [count] "r"(kAllocPush) \
                      : "memory", "cc"                              \
                      : miss);                                      \
    return true;                                                    \
  miss:                                                             \
    return false;                                                   \
  }
SLABBY_PERCPU_POP(percpu_pop_alloc_section, SLABBY_RSEQ_SECTION_START)
SLABBY_PERCPU_PUSH_FREE(percpu_push_free_section, SLABBY_RSEQ_SECTION_START, "subq $1")
SLABBY_PERCPU_PUSH_ALLOC(percpu_push_alloc_section, SLABBY_RSEQ_SECTION_START, "addq $1")
SLABBY_PERCPU_POP(percpu_pop_fast, SLABBY_RSEQ_FAST_SECTION_START)
// The inline free's push counts itself in the free word (the hardened
// library's, in the alloc word).
SLABBY_PERCPU_PUSH_FREE(percpu_push_free_fast, SLABBY_RSEQ_FAST_SECTION_START, "addq %[count]")
SLABBY_PERCPU_PUSH_ALLOC(percpu_push_alloc_fast, SLABBY_RSEQ_FAST_SECTION_START, "addq %[count]")
#undef SLABBY_PERCPU_POP
#undef SLABBY_PERCPU_PUSH_FREE
#undef SLABBY_PERCPU_PUSH_ALLOC

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
// commits one cursor word. A restart copies again; the free slots between
// the stacks are this section's until it commits. push_n pushes src[0, k)
// onto the alloc stack (src[k-1] on top); pop_n_alloc and pop_n_free pop
// the top k of the alloc or the free stack into dst[0, k) (dst[k-1] was on
// top). k is the largest that fits, at most n; all return k (0 on a miss).
SLABBY_INLINE uint32_t percpu_push_n_section(uintptr_t cls, void* const* src, uint32_t n) {
  uintptr_t tmp, region, k, dst, i, v;
  asm volatile goto(
      SLABBY_RSEQ_SECTION_START
      "movzwl %c[a](%[region], %[c2], 8), %k[tmp]\n\t"
      "movzwl %c[f](%[region], %[c2], 8), %k[k]\n\t"
      "subl %k[tmp], %k[k]\n\t"
      "cmpl %k[n], %k[k]\n\t"
      "cmoval %k[n], %k[k]\n\t"
      "testl %k[k], %k[k]\n\t"
      "je %l[miss]\n\t"
      "leaq (%[region], %[tmp], 8), %[dst]\n\t"
      SLABBY_RSEQ_COPY_K
      "addq %[k], %c[a](%[region], %[c2], 8)\n\t"
      SLABBY_RSEQ_SECTION_END
      : [tmp] "=&r"(tmp), [region] "=&r"(region), [k] "=&r"(k), [dst] "=&r"(dst),
        [i] "=&r"(i), [v] "=&r"(v)
      : [c2] "r"(cls * 2), [src] "r"(src), [n] "r"(n), [a] "i"(kAllocWord), [f] "i"(kFreeWord)
      : "memory", "cc"
      : miss);
  return static_cast<uint32_t>(k);
miss:
  return 0;
}

SLABBY_INLINE uint32_t percpu_pop_n_alloc_section(uintptr_t cls, void** dst, uint32_t n) {
  uintptr_t tmp, region, k, src, i, v;
  asm volatile goto(
      SLABBY_RSEQ_SECTION_START
      "movzwl %c[a](%[region], %[c2], 8), %k[tmp]\n\t"
      "movzwl (%[region], %[c2], 4), %k[k]\n\t"
      "negl %k[k]\n\t"
      "addl %k[tmp], %k[k]\n\t"
      "cmpl %k[n], %k[k]\n\t"
      "cmoval %k[n], %k[k]\n\t"
      "testl %k[k], %k[k]\n\t"
      "je %l[miss]\n\t"
      "subl %k[k], %k[tmp]\n\t"
      "leaq (%[region], %[tmp], 8), %[src]\n\t"
      SLABBY_RSEQ_COPY_K
      "subq %[k], %c[a](%[region], %[c2], 8)\n\t"
      SLABBY_RSEQ_SECTION_END
      : [tmp] "=&r"(tmp), [region] "=&r"(region), [k] "=&r"(k), [src] "=&r"(src),
        [i] "=&r"(i), [v] "=&r"(v)
      : [c2] "r"(cls * 2), [dst] "r"(dst), [n] "r"(n), [a] "i"(kAllocWord)
      : "memory", "cc"
      : miss);
  return static_cast<uint32_t>(k);
miss:
  return 0;
}

// The free stack's top is its lowest slot (fcur): slots [fcur, fcur + k)
// go to dst[k-1] .. dst[0].
SLABBY_INLINE uint32_t percpu_pop_n_free_section(uintptr_t cls, void** dst, uint32_t n) {
  uintptr_t tmp, region, k, src, i, v;
  asm volatile goto(
      SLABBY_RSEQ_SECTION_START
      "movzwl %c[f](%[region], %[c2], 8), %k[tmp]\n\t"
      "movl %c[a](%[region], %[c2], 8), %k[k]\n\t"
      "shrl %[end_shift], %k[k]\n\t"
      "subl %k[tmp], %k[k]\n\t"
      "cmpl %k[n], %k[k]\n\t"
      "cmoval %k[n], %k[k]\n\t"
      "testl %k[k], %k[k]\n\t"
      "je %l[miss]\n\t"
      "leaq (%[region], %[tmp], 8), %[src]\n\t"
      "leaq -8(%[dst], %[k], 8), %[tmp]\n\t"
      "xorl %k[i], %k[i]\n\t"
      "5:\n\t"
      "movq (%[src], %[i], 8), %[v]\n\t"
      "movq %[v], (%[tmp])\n\t"
      "subq $8, %[tmp]\n\t"
      "addq $1, %[i]\n\t"
      "cmpq %[k], %[i]\n\t"
      "jne 5b\n\t"
      "addq %[k], %c[f](%[region], %[c2], 8)\n\t"
      SLABBY_RSEQ_SECTION_END
      : [tmp] "=&r"(tmp), [region] "=&r"(region), [k] "=&r"(k), [src] "=&r"(src),
        [i] "=&r"(i), [v] "=&r"(v)
      : [c2] "r"(cls * 2), [dst] "r"(dst), [n] "r"(n), [a] "i"(kAllocWord),
        [f] "i"(kFreeWord), [end_shift] "i"(kAllocEndShift)
      : "memory", "cc"
      : miss);
  return static_cast<uint32_t>(k);
miss:
  return 0;
}

// Reshapes class cls's cache on the calling thread's CPU in one section:
// moves the free stack onto the alloc stack (the free stack's top, its most
// recently freed block, becomes the alloc stack's top when the free slots
// between them hold it; else the free stack's oldest blocks fill those
// slots and the rest stay where they are) and sets end to
// min(end + add, limit), so that acur = begin + cached and fcur = end.
// Misses (false) on the sentinel and when the blocks cached would not fit
// below the new end; commits both cursor words with one 16-byte store. Both
// copies read only slots the section does not write before it commits, so
// a restart finds the blocks where they were. With add 0 and limit 0xffff
// it only moves the free stack over (percpu_pop_section); the capacity
// changes of cache/percpu_sizing.cc pass theirs.
SLABBY_INLINE bool percpu_reshape(uintptr_t cls, uint32_t add, uint32_t limit) {
  uintptr_t tmp, region, ac, e, fw, ne, k, cnt, v;
  asm volatile goto(
      SLABBY_RSEQ_SECTION_START
      "cmpw $0, (%[region], %[c2], 4)\n\t"
      "je %l[miss]\n\t"
      "movq %c[a](%[region], %[c2], 8), %[e]\n\t"
      "movzwl %w[e], %k[ac]\n\t"
      "shrq %[end_shift], %[e]\n\t"
      "movzwl %w[e], %k[e]\n\t"
      "movq %c[f](%[region], %[c2], 8), %[fw]\n\t"
      // k = end - fcur (the free stack), cnt = fcur - acur (the free slots)
      "movzwl %w[fw], %k[k]\n\t"
      "movl %k[k], %k[cnt]\n\t"
      "negl %k[k]\n\t"
      "addl %k[e], %k[k]\n\t"
      "subl %k[ac], %k[cnt]\n\t"
      // ne = min(end + add, limit); acur + k must fit below it
      "leal (%k[e], %k[add]), %k[ne]\n\t"
      "cmpl %k[limit], %k[ne]\n\t"
      "cmoval %k[limit], %k[ne]\n\t"
      "leal (%k[ac], %k[k]), %k[tmp]\n\t"
      "cmpl %k[ne], %k[tmp]\n\t"
      "ja %l[miss]\n\t"
      "testl %k[k], %k[k]\n\t"
      "je 8f\n\t"
      "leaq (%[region], %[ac], 8), %[ac]\n\t"
      "cmpl %k[cnt], %k[k]\n\t"
      "ja 6f\n\t"
      // k <= free slots: slot[acur + i] = slot[end - 1 - i], i < k
      "leaq -8(%[region], %[e], 8), %[e]\n\t"
      "movl %k[k], %k[cnt]\n\t"
      "5:\n\t"
      "movq (%[e]), %[v]\n\t"
      "movq %[v], (%[ac])\n\t"
      "subq $8, %[e]\n\t"
      "addq $8, %[ac]\n\t"
      "subl $1, %k[cnt]\n\t"
      "jne 5b\n\t"
      "jmp 8f\n\t"
      // k > free slots: slot[acur + i] = slot[acur + k + i], i < fcur - acur
      "6:\n\t"
      "testl %k[cnt], %k[cnt]\n\t"
      "je 8f\n\t"
      "leaq (%[region], %[tmp], 8), %[e]\n\t"
      "7:\n\t"
      "movq (%[e]), %[v]\n\t"
      "movq %[v], (%[ac])\n\t"
      "addq $8, %[e]\n\t"
      "addq $8, %[ac]\n\t"
      "subl $1, %k[cnt]\n\t"
      "jne 7b\n\t"
      // alloc word: (acur + k) | ne << 16, its count kept; free word: ne,
      // its count kept
      "8:\n\t"
      "movw %w[ne], %w[fw]\n\t"
      "shll %[end_shift], %k[ne]\n\t"
      "orl %k[ne], %k[tmp]\n\t"
      "movq %c[a](%[region], %[c2], 8), %[v]\n\t"
      "shrq $32, %[v]\n\t"
      "shlq $32, %[v]\n\t"
      "orq %[tmp], %[v]\n\t"
      "movq %[v], %%xmm0\n\t"
      "movq %[fw], %%xmm1\n\t"
      "punpcklqdq %%xmm1, %%xmm0\n\t"
      "movdqa %%xmm0, %c[a](%[region], %[c2], 8)\n\t"
      SLABBY_RSEQ_SECTION_END
      : [tmp] "=&r"(tmp), [region] "=&r"(region), [ac] "=&r"(ac), [e] "=&r"(e), [fw] "=&r"(fw),
        [ne] "=&r"(ne), [k] "=&r"(k), [cnt] "=&r"(cnt), [v] "=&r"(v)
      : [c2] "r"(cls * 2), [add] "r"(uintptr_t{add}), [limit] "r"(uintptr_t{limit}),
        [a] "i"(kAllocWord), [f] "i"(kFreeWord), [end_shift] "i"(kAllocEndShift)
      : "memory", "cc", "xmm0", "xmm1"
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
SLABBY_INLINE void* percpu_pop_alloc_section(uintptr_t) { return nullptr; }
SLABBY_INLINE bool percpu_push_free_section(uintptr_t, void*) { return false; }
SLABBY_INLINE bool percpu_push_alloc_section(uintptr_t, void*) { return false; }
SLABBY_INLINE void* percpu_pop_fast(uintptr_t) { return nullptr; }
SLABBY_INLINE bool percpu_push_free_fast(uintptr_t, void*) { return false; }
SLABBY_INLINE bool percpu_push_alloc_fast(uintptr_t, void*) { return false; }
SLABBY_INLINE uint32_t percpu_push_n_section(uintptr_t, void* const*, uint32_t) { return 0; }
SLABBY_INLINE uint32_t percpu_pop_n_alloc_section(uintptr_t, void**, uint32_t) { return 0; }
SLABBY_INLINE uint32_t percpu_pop_n_free_section(uintptr_t, void**, uint32_t) { return 0; }
SLABBY_INLINE bool percpu_reshape(uintptr_t, uint32_t, uint32_t) { return false; }
#endif  // SLABBY_ASM_X86_64

// The inline free's push: onto the free stack, or in the hardened library
// onto the alloc stack (its checks expect one LIFO stack).
SLABBY_INLINE bool percpu_push_fast(uintptr_t cls, void* p) {
  if constexpr (kHardenedBuild) return percpu_push_alloc_fast(cls, p);
  return percpu_push_free_fast(cls, p);
}
// The slow paths' push: onto the free stack, or, in the checked modes (the
// hardened library, or a divert), onto the alloc stack.
SLABBY_INLINE bool percpu_push_section(uintptr_t cls, void* p) {
  if (kHardenedBuild || g_small_divert.alloc != nullptr) return percpu_push_alloc_section(cls, p);
  return percpu_push_free_section(cls, p);
}

// The slow paths' pop: the alloc stack's top; when that stack is empty, the
// free stack is moved onto it first (one more section; a block still comes
// from this CPU's cache, so it is no miss).
SLABBY_INLINE void* percpu_pop_section(uintptr_t cls) {
  void* p = percpu_pop_alloc_section(cls);
  if (SLABBY_LIKELY(p != nullptr)) return p;
  if (!percpu_reshape(cls, 0, 0xffff)) return nullptr;
  return percpu_pop_alloc_section(cls);
}

// The slow paths' sections, each counting what it moved into (or out of) the
// CPU caches in the calling thread's percpu_net: with the inline free's
// pushes (in the free words) and the blocks cached now, that gives the
// inline malloc's pops without a counter on its path (percpu_fast_counts).
// The inline sections never count here, nor does a reshape (its blocks stay
// in the cache). A divert's hit paths may use the *_section forms: with a
// divert nothing is derived (percpu_fast_counts).
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
// The free stack's top blocks first (the most recently freed, as a flush
// wants), then the alloc stack's; two sections, so a migration between them
// takes the rest from the next CPU's cache.
SLABBY_INLINE uint32_t percpu_pop_n(uintptr_t cls, void** dst, uint32_t n) {
  uint32_t k = percpu_pop_n_free_section(cls, dst, n);
  if (k < n) k += percpu_pop_n_alloc_section(cls, dst + k, n - k);
  tl_cache.percpu_net[cls] -= k;
  return k;
}

// Decides the mode (SLABBY_PERCPU, rseq availability) once, at init, on the
// initialising thread. cache_limit: each class's base capacity in slots per
// CPU; grow_bytes: how far above their bases a CPU's classes may grow
// together, in bytes of blocks (SLABBY_PERCPU_GROW_BYTES; 0: never).
void percpu_init(bool wanted, const uint32_t* cache_limit, size_t grow_bytes);
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

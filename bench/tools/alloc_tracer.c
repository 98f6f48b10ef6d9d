/* slabby bench helper: an LD_PRELOAD tracer that records a program's
 * malloc, calloc, realloc, aligned allocations and frees to a compact binary
 * file, for bench/workloads/trace_replay.c.
 *
 *   SLABBY_TRACE_FILE=out.trace LD_PRELOAD=build/lib/libslabby_alloc_tracer.so PROGRAM...
 *
 * It serves every call from glibc (__libc_malloc and friends, so no dlsym and
 * no bootstrap problem) and traces only the process that first allocated
 * (not forked children), from all of its threads, in call order.
 *
 * Format: the 8 bytes "SLTRACE1", then records of one op byte and unsigned
 * LEB128 varints. Each allocation takes the next id (1, 2, ...); a free or
 * realloc names its block by D = (next id) - (block's id), which keeps the
 * numbers small:
 *   'm' SIZE          malloc                    (new id)
 *   'c' SIZE          calloc, SIZE = n * size   (new id)
 *   'a' ALIGN SIZE    memalign, posix_memalign, aligned_alloc, valloc (new id)
 *   'r' D SIZE        realloc of a block to SIZE; the block keeps its id
 *   'f' D             free
 * realloc(NULL, n) is recorded as 'm', realloc(p, 0) as 'f'. Frees of
 * pointers the tracer did not see (from before it started) are skipped. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);
extern void __libc_free(void*);

enum { kTableBits = 23, kBufferBytes = 1 << 20 };
#define TABLE_SIZE ((size_t)1 << kTableBits)

struct entry {
  uintptr_t ptr; /* 0: empty */
  uint64_t id;
};

static atomic_flag g_lock = ATOMIC_FLAG_INIT;
static int g_state; /* 0: not started, 1: tracing, 2: off */
static int g_fd = -1;
static pid_t g_pid;
static struct entry* g_table;
static uint64_t g_next_id = 1;
static unsigned char g_buf[kBufferBytes];
static size_t g_used;

static void lock(void) {
  while (atomic_flag_test_and_set_explicit(&g_lock, memory_order_acquire)) {
  }
}
static void unlock(void) { atomic_flag_clear_explicit(&g_lock, memory_order_release); }

static void flush(void) {
  size_t off = 0;
  while (off < g_used) {
    ssize_t n = write(g_fd, g_buf + off, g_used - off);
    if (n <= 0 && errno != EINTR) break;
    if (n > 0) off += (size_t)n;
  }
  g_used = 0;
}

static void put_byte(unsigned char b) {
  if (g_used == kBufferBytes) flush();
  g_buf[g_used++] = b;
}

static void put_varint(uint64_t v) {
  while (v >= 0x80) {
    put_byte((unsigned char)(v | 0x80));
    v >>= 7;
  }
  put_byte((unsigned char)v);
}

/* Called with the lock held: is this process traced? */
static int tracing(void) {
  if (g_state == 0) {
    g_state = 2;
    const char* path = getenv("SLABBY_TRACE_FILE");
    if (path == NULL) return 0;
    g_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    void* t = mmap(NULL, TABLE_SIZE * sizeof(struct entry), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (g_fd < 0 || t == MAP_FAILED) return 0;
    g_table = t;
    g_pid = getpid();
    memcpy(g_buf, "SLTRACE1", 8);
    g_used = 8;
    g_state = 1;
  }
  return g_state == 1 && getpid() == g_pid;
}

static size_t slot_of(uintptr_t p) {
  uint64_t h = (uint64_t)p * 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> (64 - kTableBits));
}

static void table_put(uintptr_t p, uint64_t id) {
  size_t i = slot_of(p);
  while (g_table[i].ptr != 0 && g_table[i].ptr != p) i = (i + 1) & (TABLE_SIZE - 1);
  g_table[i].ptr = p;
  g_table[i].id = id;
}

/* Removes p and returns its id, or 0 when p is unknown (linear probing with
 * backward-shift deletion). */
static uint64_t table_take(uintptr_t p) {
  size_t i = slot_of(p);
  while (g_table[i].ptr != p) {
    if (g_table[i].ptr == 0) return 0;
    i = (i + 1) & (TABLE_SIZE - 1);
  }
  uint64_t id = g_table[i].id;
  size_t hole = i;
  for (size_t j = (i + 1) & (TABLE_SIZE - 1); g_table[j].ptr != 0; j = (j + 1) & (TABLE_SIZE - 1)) {
    size_t home = slot_of(g_table[j].ptr);
    /* Move j into the hole unless its home lies cyclically in (hole, j]. */
    if (((j - home) & (TABLE_SIZE - 1)) >= ((j - hole) & (TABLE_SIZE - 1))) {
      g_table[hole] = g_table[j];
      hole = j;
    }
  }
  g_table[hole].ptr = 0;
  return id;
}

static void record_new(unsigned char op, void* p, size_t align, size_t size) {
  if (p == NULL) return;
  lock();
  if (tracing()) {
    put_byte(op);
    if (op == 'a') put_varint(align);
    put_varint(size);
    table_put((uintptr_t)p, g_next_id++);
  }
  unlock();
}

void* malloc(size_t n) {
  void* p = __libc_malloc(n);
  record_new('m', p, 0, n);
  return p;
}

void* calloc(size_t n, size_t size) {
  void* p = __libc_calloc(n, size);
  record_new('c', p, 0, n * size);
  return p;
}

void free(void* p) {
  if (p == NULL) return;
  lock();
  if (tracing()) {
    uint64_t id = table_take((uintptr_t)p);
    if (id != 0) {
      put_byte('f');
      put_varint(g_next_id - id);
    }
  }
  unlock();
  __libc_free(p);
}

void* realloc(void* old, size_t n) {
  if (old == NULL) return malloc(n);
  if (n == 0) {
    free(old);
    return NULL;
  }
  /* The lock is held across the call, so that another thread cannot get
   * old's address (freed by realloc) before old leaves the table. */
  lock();
  void* p = __libc_realloc(old, n);
  if (p != NULL && tracing()) {
    uint64_t id = table_take((uintptr_t)old);
    if (id != 0) {
      put_byte('r');
      put_varint(g_next_id - id);
      put_varint(n);
      table_put((uintptr_t)p, id);
    }
  }
  unlock();
  return p;
}

void* memalign(size_t align, size_t n) {
  void* p = __libc_memalign(align, n);
  record_new('a', p, align, n);
  return p;
}

void* aligned_alloc(size_t align, size_t n) { return memalign(align, n); }

void* valloc(size_t n) { return memalign((size_t)sysconf(_SC_PAGESIZE), n); }

int posix_memalign(void** out, size_t align, size_t n) {
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  void* p = memalign(align, n);
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}

__attribute__((destructor)) static void finish(void) {
  lock();
  if (g_state == 1 && getpid() == g_pid) flush();
  unlock();
}

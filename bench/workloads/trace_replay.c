/* slabby bench: replays an allocation trace recorded from a real program by
 * bench/tools/alloc_tracer.c (its header comment describes the format).
 *
 *   trace_replay TRACE_FILE [REPEAT]
 *
 * The trace is decoded into an array first (not timed). Then it is replayed
 * REPEAT times (default 1): each malloc'd or aligned block is written in
 * full, as the program wrote it, a realloc'd block at its end, and at the
 * end of each pass every block still live is freed. Trace ids map to
 * pointers through a table indexed by id. Prints its own time and ops. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct op {
  uint64_t size;
  uint32_t id;
  uint32_t align; /* log2 of the alignment for 'a' */
  char kind;
};

static int get_varint(const unsigned char** p, const unsigned char* end, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; *p < end && shift < 64; shift += 7) {
    unsigned char b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return 1;
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s TRACE_FILE [REPEAT]\n", argv[0]);
    return 2;
  }
  int repeat = argc > 2 ? atoi(argv[2]) : 1;
  FILE* f = fopen(argv[1], "rb");
  if (f == NULL) {
    perror(argv[1]);
    return 2;
  }
  fseek(f, 0, SEEK_END);
  long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char* raw = malloc((size_t)bytes);
  if (fread(raw, 1, (size_t)bytes, f) != (size_t)bytes || bytes < 8 || memcmp(raw, "SLTRACE1", 8)) {
    fprintf(stderr, "%s: not a slabby trace\n", argv[1]);
    return 2;
  }
  fclose(f);

  /* Decode. Every op takes at least 2 bytes. */
  struct op* ops = malloc(sizeof(struct op) * (size_t)(bytes / 2 + 1));
  size_t n_ops = 0;
  uint64_t next_id = 1;
  const unsigned char* p = raw + 8;
  const unsigned char* end = raw + bytes;
  while (p < end) {
    struct op o = {0, 0, 0, (char)*p++};
    uint64_t a = 0, b = 0;
    int ok = 1;
    switch (o.kind) {
      case 'm':
      case 'c':
        ok = get_varint(&p, end, &a);
        o.size = a;
        o.id = (uint32_t)next_id++;
        break;
      case 'a':
        ok = get_varint(&p, end, &a) && get_varint(&p, end, &b);
        o.align = (uint32_t)__builtin_ctzll(a);
        o.size = b;
        o.id = (uint32_t)next_id++;
        break;
      case 'r':
        ok = get_varint(&p, end, &a) && get_varint(&p, end, &b);
        o.id = (uint32_t)(next_id - a);
        o.size = b;
        break;
      case 'f':
        ok = get_varint(&p, end, &a);
        o.id = (uint32_t)(next_id - a);
        break;
      default:
        ok = 0;
    }
    if (!ok) break; /* a truncated tail: replay what came before */
    ops[n_ops++] = o;
  }
  free(raw);
  void** ptrs = malloc(sizeof(void*) * (size_t)next_id);

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int r = 0; r < repeat; r++) {
    memset(ptrs, 0, sizeof(void*) * (size_t)next_id);
    for (size_t i = 0; i < n_ops; i++) {
      const struct op* o = &ops[i];
      void* q;
      switch (o->kind) {
        case 'm':
          q = ptrs[o->id] = malloc(o->size);
          if (q) memset(q, (int)o->id, o->size);
          break;
        case 'c':
          ptrs[o->id] = calloc(1, o->size);
          break;
        case 'a':
          q = ptrs[o->id] =
              aligned_alloc((size_t)1 << o->align, (o->size + ((size_t)1 << o->align) - 1) &
                                                       ~(((size_t)1 << o->align) - 1));
          if (q) memset(q, (int)o->id, o->size);
          break;
        case 'r':
          if (ptrs[o->id]) {
            q = realloc(ptrs[o->id], o->size);
            if (q) {
              ptrs[o->id] = q;
              ((char*)q)[o->size - 1] = 1;
            }
          }
          break;
        case 'f':
          free(ptrs[o->id]);
          ptrs[o->id] = NULL;
          break;
      }
    }
    for (uint64_t id = 1; id < next_id; id++) free(ptrs[id]);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("seconds: %.6f\nops: %zu\nops_per_second: %.0f\n", secs, n_ops * (size_t)repeat,
         (double)n_ops * repeat / secs);
  free(ptrs);
  free(ops);
  return 0;
}

/* slabby bench: buffers grown by realloc, a step at a time (a log, a
 * string builder, a network receive buffer).
 *
 *   realloc_growth BUFFERS FINAL_MIB STEP_BYTES ROUNDS [SEED]
 *
 * Each round BUFFERS buffers start empty (NULL) and grow round-robin, each
 * by STEP_BYTES per realloc, until each holds FINAL_MIB MiB. Every appended
 * byte is written: byte i of a buffer is byte i % 8 of the 64-bit word
 * (i / 8) * golden ^ key, with a key per buffer and round from the seed.
 * After each realloc the last word written before it is checked (the copy,
 * when realloc moved the buffer); at the end of the round one word per
 * 4 KiB page and the last word of every buffer are checked, and the buffers
 * freed. An allocator that copies the whole buffer on every realloc makes
 * this quadratic. Prints its own time. Exits non-zero if a buffer's
 * contents were disturbed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { kMaxBuffers = 1024 };

static const uint64_t kGolden = 0x9E3779B97F4A7C15ull;

static uint32_t next_rand(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static unsigned char pattern_byte(uint64_t key, size_t i) {
  return (unsigned char)((((uint64_t)(i / 8) * kGolden) ^ key) >> (8 * (i % 8)));
}

/* Writes the pattern into [from, to): whole words where they fit. */
static void fill(unsigned char* p, size_t from, size_t to, uint64_t key) {
  size_t i = from;
  for (; i < to && i % 8 != 0; i++) p[i] = pattern_byte(key, i);
  for (; i + 8 <= to; i += 8) *(uint64_t*)(p + i) = ((uint64_t)(i / 8) * kGolden) ^ key;
  for (; i < to; i++) p[i] = pattern_byte(key, i);
}

/* The 8 bytes at [at, at + 8), at a multiple of 8, within the buffer. */
static int word_ok(const unsigned char* p, size_t at, uint64_t key) {
  return *(const uint64_t*)(p + at) == (((uint64_t)(at / 8) * kGolden) ^ key);
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s BUFFERS FINAL_MIB STEP_BYTES ROUNDS [SEED]\n", argv[0]);
    return 2;
  }
  int buffers = atoi(argv[1]);
  size_t final_size = (size_t)atol(argv[2]) << 20;
  size_t step = (size_t)atol(argv[3]);
  int rounds = atoi(argv[4]);
  uint32_t seed = argc > 5 ? (uint32_t)atol(argv[5]) : 3735928559u;
  if (buffers < 1 || buffers > kMaxBuffers || final_size == 0 || step < 1 || rounds < 1)
    return 2;

  unsigned char* buf[kMaxBuffers];
  uint64_t key[kMaxBuffers];
  long bad = 0, reallocs = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int r = 0; r < rounds; r++) {
    for (int b = 0; b < buffers; b++) {
      buf[b] = NULL;
      key[b] = ((uint64_t)next_rand(&seed) << 32) | next_rand(&seed);
    }
    for (size_t size = 0; size < final_size;) {
      size_t grown = size + step < final_size ? size + step : final_size;
      for (int b = 0; b < buffers; b++) {
        unsigned char* p = realloc(buf[b], grown);
        if (p == NULL) {
          fprintf(stderr, "realloc(%zu) failed\n", grown);
          return 2;
        }
        reallocs++;
        if (size >= 8 && !word_ok(p, (size - 8) & ~(size_t)7, key[b])) bad++;
        fill(p, size, grown, key[b]);
        buf[b] = p;
      }
      size = grown;
    }
    for (int b = 0; b < buffers; b++) {
      for (size_t page = 0; page + 8 <= final_size; page += 4096) {
        size_t at = page + (((page >> 12) * 520) & 4088); /* a word that moves in the page */
        if (at + 8 > final_size) at = page;
        if (!word_ok(buf[b], at, key[b])) bad++;
      }
      if (final_size >= 8 && !word_ok(buf[b], (final_size - 8) & ~(size_t)7, key[b])) bad++;
      for (size_t i = final_size & ~(size_t)7; i < final_size; i++)
        if (buf[b][i] != pattern_byte(key[b], i)) bad++;
      free(buf[b]);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("seconds: %.6f\nreallocs: %ld\n", secs, reallocs);
  if (bad) fprintf(stderr, "realloc_growth: %ld words disturbed\n", bad);
  return bad ? 1 : 0;
}

/* Loaded by dlopen_ctor. Allocates in its ELF constructor and frees in its destructor; its
 * malloc/free bind to the global scope, i.e. to slabby. Not linked with slabby itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CTOR_BLOCK_SIZE 4000

static unsigned char* g_block;
static int g_ctor_ok;

static unsigned char pat(size_t i) { return (unsigned char)(i * 7 + 3); }

__attribute__((constructor)) static void lib_ctor(void) {
  g_block = malloc(CTOR_BLOCK_SIZE);
  if (g_block == NULL) return;
  for (size_t i = 0; i < CTOR_BLOCK_SIZE; i++) g_block[i] = pat(i);
  g_ctor_ok = 1;
}

__attribute__((destructor)) static void lib_dtor(void) {
  /* A damaged block at unload is fatal: the program cannot see this otherwise. */
  for (size_t i = 0; g_block != NULL && i < CTOR_BLOCK_SIZE; i++) {
    if (g_block[i] != pat(i)) abort();
  }
  free(g_block);
  g_block = NULL;
  void* p = malloc(100); /* allocating during unload works too */
  free(p);
}

/* The constructor's block, or NULL if the constructor failed. */
void* ctor_lib_block(void) { return g_ctor_ok ? g_block : NULL; }
size_t ctor_lib_block_size(void) { return CTOR_BLOCK_SIZE; }
int ctor_lib_block_intact(void) {
  for (size_t i = 0; i < CTOR_BLOCK_SIZE; i++) {
    if (g_block[i] != pat(i)) return 0;
  }
  return 1;
}
void* ctor_lib_alloc(size_t n) { return malloc(n); }
void ctor_lib_free(void* p) { free(p); }
void* ctor_lib_realloc(void* p, size_t n) { return realloc(p, n); }

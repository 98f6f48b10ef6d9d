/* slabby bench tool: what a fork costs a process under an allocator.
 *
 *   fork_costs FORKS LIVE_BLOCKS
 *
 * Allocates LIVE_BLOCKS blocks of 64..575 bytes (first bytes written), then
 * FORKS times forks a child that mallocs, writes and frees one block and
 * _exits, waiting for each. Prints the seconds of the fork loop and the
 * minor page faults per fork, parent and children together (getrusage): a
 * page the allocator's fork handlers write on either side of the fork is a
 * copy-on-write fault there, so the faults count what the handlers touch.
 * Deterministic, unlike the time, on a noisy machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static long minor_faults(void) {
  struct rusage self, kids;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  return self.ru_minflt + kids.ru_minflt;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s FORKS LIVE_BLOCKS\n", argv[0]);
    return 2;
  }
  int forks = atoi(argv[1]);
  size_t live = (size_t)atol(argv[2]);
  char** keep = malloc((live ? live : 1) * sizeof(char*));
  for (size_t i = 0; i < live; ++i) {
    keep[i] = malloc(64 + i % 512);
    memset(keep[i], 1, 8);
  }
  long f0 = minor_faults();
  double t0 = now();
  for (int i = 0; i < forks; ++i) {
    pid_t p = fork();
    if (p < 0) {
      perror("fork");
      return 1;
    }
    if (p == 0) {
      char* q = malloc(100);
      q[0] = 1;
      free(q);
      _exit(0);
    }
    int status;
    if (waitpid(p, &status, 0) != p || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
  }
  double t = now() - t0;
  long faults = minor_faults() - f0;
  printf("seconds %.3f faults_per_fork %.1f\n", t, forks > 0 ? (double)faults / forks : 0.0);
  for (size_t i = 0; i < live; ++i) free(keep[i]);
  free(keep);
  return 0;
}

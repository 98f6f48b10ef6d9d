/* slabby bench helper: runs a command and prints "<seconds> <peak RSS bytes>"
 * of it to the file descriptor named by $RSS_RUN_FD, else to stderr.
 *
 * Why a launcher: Linux keeps a process's peak RSS (ru_maxrss) across exec,
 * so a program started straight from a big parent (the Python harness)
 * reports the parent's size. Forked from this small process, the workload's
 * peak is its own. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s COMMAND [ARG...]\n", argv[0]);
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) return 2;
  if (pid == 0) {
    execvp(argv[1], argv + 1);
    _exit(127);
  }
  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0)
    if (errno != EINTR) return 2;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  const char* fd_text = getenv("RSS_RUN_FD");
  FILE* out = fd_text ? fdopen(atoi(fd_text), "w") : NULL;
  if (out == NULL) out = stderr;
  fprintf(out, "%.6f %ld\n", secs, ru.ru_maxrss * 1024L);
  fflush(out);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

// What a fork costs in pages, with 1 and with 64 central shards per class.
//
// fork writes every lock the fork handlers hold (runtime/init.cc), in the
// parent and in the child, so every page holding one is a copy-on-write
// fault on each side. The shard locks, one per class and shard, sat beside
// their shards, 128 bytes apart: with 64 shards (the default on 64 CPUs) a
// fork cost 282 page faults against 44 with one shard. Packed by shard
// (central/central_pool.h) the 64 shards' locks fill 4 pages.
//
// Without arguments: runs itself with SLABBY_SHARDS=1 and =64 and fails if a
// fork with 64 shards costs more than 32 page faults more than with one.
// Faults are counted, not timed: the count does not depend on the machine's
// load. With --measure: prints the minor page faults per fork of 50 forks,
// parent and children together, after every CPU has set up its cache
// (each process runs on each CPU once first, so no child pays for a new
// per-CPU region).
#include <errno.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "lifecycle_check.h"

extern char** environ;

namespace {

constexpr int kForks = 50;

long MinorFaults() {
  rusage self, kids;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  return self.ru_minflt + kids.ru_minflt;
}

void ForkOnce() {
  pid_t pid = fork();
  LC_CHECK(pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    char* volatile p = static_cast<char*>(malloc(100));
    p[0] = 1;
    free(p);
    _exit(0);
  }
  int status = 0;
  LC_CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
  LC_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
}

int Measure() {
  // Every CPU this process may run on sets up its cache now.
  cpu_set_t all;
  LC_CHECK(sched_getaffinity(0, sizeof(all), &all) == 0, "sched_getaffinity: %s", strerror(errno));
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &all)) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof(one), &one) != 0) continue;
    for (int i = 0; i < 64; ++i) free(malloc(static_cast<size_t>(16 + 16 * i)));
  }
  LC_CHECK(sched_setaffinity(0, sizeof(all), &all) == 0, "sched_setaffinity: %s", strerror(errno));
  // The first fork takes every lock for the first time (zero pages faulted
  // in before the fork, not copies): not counted.
  ForkOnce();
  long before = MinorFaults();
  for (int i = 0; i < kForks; ++i) ForkOnce();
  printf("%.2f\n", static_cast<double>(MinorFaults() - before) / kForks);
  return 0;
}

// Runs this program with --measure and SLABBY_SHARDS=shards; its figure.
double FaultsPerFork(const char* self, int shards) {
  std::string var = "SLABBY_SHARDS=" + std::to_string(shards);
  char** env = static_cast<char**>(calloc(1024, sizeof(char*)));
  int n = 0;
  for (char** e = environ; *e != nullptr && n < 1022; ++e)
    if (strncmp(*e, "SLABBY_SHARDS=", 14) != 0) env[n++] = *e;
  env[n++] = const_cast<char*>(var.c_str());
  int out[2];
  LC_CHECK(pipe(out) == 0, "pipe: %s", strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  char* argv[] = {const_cast<char*>(self), const_cast<char*>("--measure"), nullptr};
  pid_t pid;
  LC_CHECK(posix_spawn(&pid, self, &fa, nullptr, argv, env) == 0, "posix_spawn of %s failed", self);
  close(out[1]);
  char buf[64] = {};
  ssize_t got = 0, r;
  while (got < static_cast<ssize_t>(sizeof(buf)) - 1 &&
         (r = read(out[0], buf + got, sizeof(buf) - 1 - got)) > 0)
    got += r;
  close(out[0]);
  int status = 0;
  LC_CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
  LC_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "the --measure run with %d shards: status %#x", shards, status);
  posix_spawn_file_actions_destroy(&fa);
  free(env);
  return atof(buf);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "--measure") == 0) return Measure();
  double one = FaultsPerFork("/proc/self/exe", 1);
  double many = FaultsPerFork("/proc/self/exe", 64);
  printf("page faults per fork: %.2f with 1 shard, %.2f with 64\n", one, many);
  LC_CHECK(one > 0, "no figure from the run with one shard");
  if (many - one > 32) {
    fprintf(stderr,
            "a fork with 64 shards costs %.1f page faults more than with one (at most 32)\n",
            many - one);
    return 1;
  }
  return 0;
}

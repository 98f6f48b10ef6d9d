// fork() while other threads allocate: the child must find the allocator consistent (no lock
// held by a thread that does not exist in the child, no half-updated free list).
//
// 4 threads allocate and free continuously; the main thread forks 200 times. Each child checks
// and frees blocks inherited from the parent, allocates and frees a few hundred blocks (small and
// large), spawns a thread that does the same (or, with FORK_STRESS_CHILD_THREAD=0, does it
// itself), and _exit(0)s. The parent requires every child to exit 0. A child that deadlocks is
// killed by alarm() and reported.
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <atomic>
#include <vector>

#include "lifecycle_check.h"

namespace {

constexpr int kWorkers = 4;
constexpr int kDefaultForks = 200;  // FORK_STRESS_FORKS overrides (ctest's paranoid run)
constexpr int kChildTimeoutSeconds = 30;

std::atomic<bool> g_stop{false};
std::atomic<uint64_t> g_worker_errors{0};
std::atomic<uint64_t> g_worker_ops{0};

void* Worker(void* arg) {
  uint64_t rng = 0x9E3779B97F4A7C15ull * (reinterpret_cast<uintptr_t>(arg) + 1);
  struct Slot {
    void* p = nullptr;
    size_t n = 0;
    uint64_t seed = 0;
  } slots[64];
  uint64_t seed = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    Slot& s = slots[rng % 64];
    if (s.p != nullptr) {
      if (!lc_intact(s.p, s.n < 256 ? s.n : 256, s.seed)) g_worker_errors++;
      free(s.p);
      s.p = nullptr;
    }
    size_t n = (rng >> 8) % 100 == 0 ? 65536 + (rng >> 20) % (2 << 20) : 1 + (rng >> 20) % 2048;
    s.p = malloc(n);
    if (s.p == nullptr) {
      g_worker_errors++;
      continue;
    }
    s.n = n;
    s.seed = ++seed;
    lc_fill(s.p, n < 256 ? n : 256, s.seed);
    g_worker_ops.fetch_add(1, std::memory_order_relaxed);
  }
  for (Slot& s : slots) free(s.p);
  return nullptr;
}

void* ChildThread(void* arg) {
  uintptr_t fails = 0;
  for (int i = 0; i < 200; i++) {
    size_t n = i % 50 == 0 ? 300000 : 16 + (i * 37) % 3000;
    void* p = malloc(n);
    if (p == nullptr) {
      fails++;
      continue;
    }
    lc_fill(p, n, i);
    if (!lc_intact(p, n, i)) fails++;
    free(p);
  }
  (void)arg;
  return reinterpret_cast<void*>(fails);
}

// FORK_STRESS_CHILD_THREAD=0: the child starts no thread. qemu's user-mode
// emulation (7.2, the aarch64 runs) cannot start one in the child of a
// process with threads: it fails an assertion of its own, with glibc's
// malloc as with slabby.
bool g_child_thread = true;

// Runs in the child; never returns.
[[noreturn]] void Child(std::vector<void*>* inherited, int iteration) {
  alarm(kChildTimeoutSeconds);  // a deadlocked child dies by SIGALRM instead of hanging
  for (size_t i = 0; i < inherited->size(); i++) {
    if (!lc_intact((*inherited)[i], 128, 1000 + i)) _exit(10);
    free((*inherited)[i]);
  }
  std::vector<void*> blocks;  // the vector itself allocates too
  for (int i = 0; i < 300; i++) {
    size_t n;
    switch (i % 10) {
      case 0:
        n = 128 * 1024 + i * 100;
        break;
      case 1:
        n = 3 << 20;
        break;
      default:
        n = 1 + (i * 97 + iteration) % 1500;
    }
    void* p = malloc(n);
    if (p == nullptr) _exit(11);
    lc_fill(p, n < 512 ? n : 512, i);
    blocks.push_back(p);
  }
  for (size_t i = 0; i < blocks.size(); i += 2) {
    if (!lc_intact(blocks[i], 1, i)) _exit(12);
    free(blocks[i]);
  }
  void* r = realloc(blocks[1], 50000);
  if (r == nullptr || !lc_intact(r, 1, 1)) _exit(13);
  blocks[1] = r;
  if (g_child_thread) {
    pthread_t th;
    if (pthread_create(&th, nullptr, ChildThread, nullptr) != 0) _exit(14);
    void* fails = nullptr;
    if (pthread_join(th, &fails) != 0 || fails != nullptr) _exit(15);
  } else if (ChildThread(nullptr) != nullptr) {
    _exit(15);
  }
  for (size_t i = 1; i < blocks.size(); i += 2) free(blocks[i]);
  void* q = calloc(1000, 10);
  if (q == nullptr) _exit(16);
  for (int i = 0; i < 10000; i++) {
    if (static_cast<char*>(q)[i] != 0) _exit(17);
  }
  free(q);
  _exit(0);
}

}  // namespace

int main() {
  lc_require_slabby("fork_stress");
  pthread_t workers[kWorkers];
  for (int i = 0; i < kWorkers; i++) {
    LC_CHECK(pthread_create(&workers[i], nullptr, Worker, reinterpret_cast<void*>(uintptr_t(i))) == 0,
             "pthread_create");
  }
  int failures = 0;
  const char* forks_env = getenv("FORK_STRESS_FORKS");
  const int kForks = forks_env != nullptr && atoi(forks_env) > 0 ? atoi(forks_env) : kDefaultForks;
  const char* thread_env = getenv("FORK_STRESS_CHILD_THREAD");
  g_child_thread = thread_env == nullptr || atoi(thread_env) != 0;
  for (int f = 0; f < kForks; f++) {
    // Blocks the child will check and free (copy-on-write copies of the parent's).
    std::vector<void*> inherited;
    for (size_t i = 0; i < 8; i++) {
      size_t n = i == 7 ? (1 << 20) : 128 + i * 1000;
      void* p = malloc(n);
      LC_CHECK(p != nullptr, "malloc in parent");
      lc_fill(p, 128, 1000 + i);
      inherited.push_back(p);
    }
    pid_t pid = fork();
    LC_CHECK(pid >= 0, "fork failed at iteration %d", f);
    if (pid == 0) Child(&inherited, f);
    int status = 0;
    LC_CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      failures++;
      if (WIFSIGNALED(status)) {
        fprintf(stderr, "fork %d: child killed by signal %d%s\n", f, WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (deadlock: timed out)" : "");
      } else {
        fprintf(stderr, "fork %d: child exited with %d\n", f, WEXITSTATUS(status));
      }
    }
    for (void* p : inherited) free(p);
  }
  g_stop = true;
  for (int i = 0; i < kWorkers; i++) pthread_join(workers[i], nullptr);
  LC_CHECK(failures == 0, "%d of %d children failed", failures, kForks);
  LC_CHECK(g_worker_errors.load() == 0, "%llu worker errors",
           static_cast<unsigned long long>(g_worker_errors.load()));
  LC_CHECK(g_worker_ops.load() > 1000, "workers barely ran (%llu ops)",
           static_cast<unsigned long long>(g_worker_ops.load()));
  printf("fork_stress: ok, %d forks, %llu worker ops\n", kForks,
         static_cast<unsigned long long>(g_worker_ops.load()));
  return 0;
}

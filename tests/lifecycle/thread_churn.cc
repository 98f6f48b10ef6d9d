// Thousands of short-lived threads, each allocating and freeing, some leaving blocks behind for
// the main thread to check and free after the join, some freeing blocks the main thread gave
// them. Thread caches must be torn down (or recycled) at thread exit without losing blocks: at the
// end the live allocation count is back near its start and no thread cache is left behind.
#include <pthread.h>
#include <stdlib.h>

#include <atomic>

#include "lifecycle_check.h"

namespace {

constexpr int kThreads = 5000;
constexpr int kConcurrent = 16;
constexpr int kLeft = 4;  // blocks a thread leaves to main

struct Job {
  int id;
  void* from_main;  // allocated by main, freed by the thread
  size_t from_main_size;
  void* left[kLeft];  // allocated by the thread, freed by main
  size_t left_size[kLeft];
  int errors;
};

void* Run(void* arg) {
  Job* job = static_cast<Job*>(arg);
  const int id = job->id;
  void* mine[32];
  size_t sizes[32];
  for (int i = 0; i < 32; i++) {
    sizes[i] = (i == 31 && id % 10 == 0) ? 200000 + id : 1 + (i * 61 + id * 7) % 4000;
    mine[i] = malloc(sizes[i]);
    if (mine[i] == nullptr) {
      job->errors++;
      return nullptr;
    }
    lc_fill(mine[i], sizes[i] < 64 ? sizes[i] : 64, id * 100 + i);
  }
  for (int i = 0; i < 32; i++) {
    if (!lc_intact(mine[i], sizes[i] < 64 ? sizes[i] : 64, id * 100 + i)) job->errors++;
    free(mine[i]);
  }
  if (job->from_main != nullptr) {
    if (!lc_intact(job->from_main, job->from_main_size, id)) job->errors++;
    free(job->from_main);
  }
  if (id % 3 == 0) {  // leave some blocks behind
    for (int i = 0; i < kLeft; i++) {
      job->left_size[i] = i == 3 ? 70000 : 8 + 100 * i + id % 50;
      job->left[i] = malloc(job->left_size[i]);
      if (job->left[i] == nullptr) {
        job->errors++;
        continue;
      }
      lc_fill(job->left[i], job->left_size[i], id * 7 + i);
    }
  }
  return nullptr;
}

}  // namespace

int main() {
  lc_require_slabby("thread_churn");
  static Job jobs[kConcurrent];
  pthread_t threads[kConcurrent];
  // Warm-up so the baseline includes the main thread's own cache.
  free(malloc(100));
  slabby_stats before = lc_stats();
  int total_errors = 0;
  for (int base = 0; base < kThreads; base += kConcurrent) {
    int n = kThreads - base < kConcurrent ? kThreads - base : kConcurrent;
    for (int i = 0; i < n; i++) {
      Job& j = jobs[i];
      memset(&j, 0, sizeof(j));
      j.id = base + i;
      if (j.id % 2 == 0) {
        j.from_main_size = 24 + j.id % 500;
        j.from_main = malloc(j.from_main_size);
        LC_CHECK(j.from_main != nullptr, "malloc");
        lc_fill(j.from_main, j.from_main_size, j.id);
      }
      LC_CHECK(pthread_create(&threads[i], nullptr, Run, &j) == 0, "pthread_create #%d", j.id);
    }
    for (int i = 0; i < n; i++) {
      LC_CHECK(pthread_join(threads[i], nullptr) == 0, "pthread_join");
      Job& j = jobs[i];
      total_errors += j.errors;
      for (int k = 0; k < kLeft; k++) {
        if (j.left[k] == nullptr) continue;
        LC_CHECK(lc_intact(j.left[k], j.left_size[k], j.id * 7 + k),
                 "block left by exited thread %d was damaged", j.id);
        free(j.left[k]);
      }
    }
  }
  LC_CHECK(total_errors == 0, "%d errors in threads", total_errors);
  slabby_stats after = lc_stats();
  long long drift = (long long)after.current_allocations - (long long)before.current_allocations;
  // glibc may keep a few thread-related allocations (DTVs of cached stacks) live.
  LC_CHECK(drift <= 64 && drift >= -64, "live allocations drifted by %lld over %d threads", drift,
           kThreads);
  LC_CHECK(after.threads_live <= before.threads_live + 2,
           "thread caches leaked: threads_live %llu before, %llu after all joins",
           (unsigned long long)before.threads_live, (unsigned long long)after.threads_live);
  printf("thread_churn: ok, %d threads, drift %lld, threads_exited %llu\n", kThreads, drift,
         (unsigned long long)(after.threads_exited - before.threads_exited));
  return 0;
}

// Runtime control from code (include/slabby/slabby.h): slabby_purge,
// slabby_flush_thread_cache, slabby_set_option, slabby_get_stat and
// slabby_dump_profile, each with good and bad arguments. Linked with the
// shared library, so every allocation here is slabby's.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "slabby/slabby.h"

namespace {

double stat(const char* name) {
  double v = -1;
  EXPECT_EQ(slabby_get_stat(name, &v), SLABBY_OK) << name;
  return v;
}

std::string config_text() {
  std::string s(16384, '\0');
  size_t n = slabby_get_config(&s[0], s.size());
  s.resize(n < s.size() ? n : s.size());
  return s;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs f with stderr captured into the returned string.
template <class F>
std::string capture_stderr(F f) {
  char path[] = "/tmp/slabby_control_stderrXXXXXX";
  int fd = mkstemp(path);
  int saved = dup(2);
  dup2(fd, 2);
  f();
  dup2(saved, 2);
  close(saved);
  close(fd);
  std::string s = read_file(path);
  unlink(path);
  return s;
}

TEST(Control, PurgeReturnsFreePagesToTheOs) {
  std::vector<void*> v;
  for (int i = 0; i < 64; ++i) {
    void* p = malloc(256 << 10);
    memset(p, 1, 256 << 10);
    v.push_back(p);
  }
  for (void* p : v) free(p);
  double purged_before = stat("purged_bytes");
  size_t n = slabby_purge();
  EXPECT_GT(n, 0u);
  EXPECT_GE(stat("purged_bytes"), purged_before + static_cast<double>(n));
  EXPECT_EQ(stat("free_dirty_bytes"), 0);
}

TEST(Control, FlushThreadCacheEmptiesThisThreadsCache) {
  std::vector<void*> v;
  for (int i = 0; i < 200; ++i) v.push_back(malloc(48));
  for (void* p : v) free(p);
  // The freed blocks sit in this thread's (or this CPU's) cache now.
  EXPECT_GT(slabby_flush_thread_cache(), 0u);
  // Nothing left to move right after.
  EXPECT_EQ(slabby_flush_thread_cache(), 0u);
}

TEST(Control, SetOptionChangesLiveSettingsAndTheConfigShowsThem) {
  EXPECT_EQ(slabby_set_option("SLABBY_DECAY_MS", "2s"), SLABBY_OK);
  EXPECT_NE(config_text().find("SLABBY_DECAY_MS=2000ms"), std::string::npos) << config_text();
  // Prefix and case optional.
  EXPECT_EQ(slabby_set_option("decay_ms", "1000"), SLABBY_OK);
  EXPECT_NE(config_text().find("SLABBY_DECAY_MS=1000ms"), std::string::npos);
  EXPECT_EQ(slabby_set_option("Retain_Max", "32M"), SLABBY_OK);
  EXPECT_NE(config_text().find("SLABBY_RETAIN_MAX=32M"), std::string::npos);
  EXPECT_EQ(slabby_set_option("SLABBY_RETAIN_MAX", "64M"), SLABBY_OK);
  EXPECT_EQ(slabby_set_option("SLABBY_MAX_HEAP", "0"), SLABBY_OK);
  EXPECT_EQ(slabby_set_option("SLABBY_LOG_LEVEL", "debug"), SLABBY_OK);
  EXPECT_EQ(slabby_set_option("SLABBY_LOG_LEVEL", "warn"), SLABBY_OK);
  EXPECT_EQ(slabby_set_option("SLABBY_PROF_SAMPLE", "1M"), SLABBY_OK);
  EXPECT_EQ(slabby_set_option("SLABBY_PROF_INTERVAL_MS", "0"), SLABBY_OK);
}

// The value of one setting in the configuration text ("" when absent).
std::string config_value(const std::string& name) {
  std::string text = config_text();
  size_t at = text.find(name + "=");
  if (at == std::string::npos) return "";
  size_t start = at + name.size() + 1;
  size_t end = text.find_first_of(" \n,\"", start);
  return text.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

TEST(Control, SetOptionRefusesBadNamesValuesAndFixedSettings) {
  // Whatever the environment set (the emulated runs use a 4G arena).
  const std::string arena = config_value("SLABBY_ARENA_SIZE");
  ASSERT_NE(arena, "");
  EXPECT_EQ(slabby_set_option("SLABBY_NO_SUCH_THING", "1"), SLABBY_ERR_UNKNOWN);
  EXPECT_EQ(slabby_set_option("", "1"), SLABBY_ERR_UNKNOWN);
  EXPECT_EQ(slabby_set_option(nullptr, "1"), SLABBY_ERR_VALUE);
  EXPECT_EQ(slabby_set_option("SLABBY_DECAY_MS", nullptr), SLABBY_ERR_VALUE);
  EXPECT_EQ(slabby_set_option("SLABBY_DECAY_MS", "soon"), SLABBY_ERR_VALUE);
  EXPECT_EQ(slabby_set_option("SLABBY_DECAY_MS", "2h"), SLABBY_ERR_VALUE);  // over 1 hour
  EXPECT_EQ(slabby_set_option("SLABBY_RETAIN_MAX", "lots"), SLABBY_ERR_VALUE);
  EXPECT_EQ(slabby_set_option("SLABBY_PROF", "maybe"), SLABBY_ERR_VALUE);
  EXPECT_EQ(slabby_set_option("SLABBY_LOG_LEVEL", "loud"), SLABBY_ERR_VALUE);
  // Set once at start: the arena, the caching mode, the security modes.
  EXPECT_EQ(slabby_set_option("SLABBY_ARENA_SIZE", "1G"), SLABBY_ERR_FIXED);
  EXPECT_EQ(slabby_set_option("SLABBY_PERCPU", "0"), SLABBY_ERR_FIXED);
  EXPECT_EQ(slabby_set_option("SLABBY_SECURE", "1"), SLABBY_ERR_FIXED);
  // A bad value of a fixed setting is a bad value first.
  EXPECT_EQ(slabby_set_option("SLABBY_ARENA_SIZE", "huge"), SLABBY_ERR_VALUE);
  // Nothing changed.
  EXPECT_EQ(config_value("SLABBY_ARENA_SIZE"), arena);
  EXPECT_NE(arena, "1G");
}

TEST(Control, LatencySamplingStartsAtRunTime) {
  double before = stat("health.latency_samples");
  ASSERT_EQ(slabby_set_option("SLABBY_LATENCY_SAMPLE", "10"), SLABBY_OK);
  // A thread sees the change within 65536 of its allocations.
  for (int i = 0; i < 200000; ++i) free(malloc(32));
  double after = stat("health.latency_samples");
  EXPECT_GT(after, before + 1000);
  ASSERT_EQ(slabby_set_option("SLABBY_LATENCY_SAMPLE", "0"), SLABBY_OK);
  for (int i = 0; i < 70000; ++i) free(malloc(32));
  double off = stat("health.latency_samples");
  for (int i = 0; i < 200000; ++i) free(malloc(32));
  EXPECT_EQ(stat("health.latency_samples"), off);
}

TEST(Control, GetStatReadsEveryLevelOfTheJsonReport) {
  void* p = malloc(100);
  EXPECT_GE(stat("total_allocations"), 1);
  EXPECT_GE(stat("live_bytes"), 100);
  EXPECT_EQ(stat("stats_version"), SLABBY_STATS_VERSION);
  double score = stat("health.health_score");
  EXPECT_GE(score, 0.0);
  EXPECT_LE(score, 1.0);
  EXPECT_GT(stat("classes.1.block_size"), 0);
  EXPECT_GT(stat("classes.2.block_size"), stat("classes.1.block_size"));
  EXPECT_GE(stat("classes.1.allocations"), 0);
  free(p);
  double v = 7;
  EXPECT_EQ(slabby_get_stat("no_such_stat", &v), SLABBY_ERR_UNKNOWN);
  EXPECT_EQ(slabby_get_stat("health.no_such", &v), SLABBY_ERR_UNKNOWN);
  EXPECT_EQ(slabby_get_stat("classes.0.allocations", &v), SLABBY_ERR_UNKNOWN);
  EXPECT_EQ(slabby_get_stat("classes.999.allocations", &v), SLABBY_ERR_UNKNOWN);
  EXPECT_EQ(slabby_get_stat("classes.x.allocations", &v), SLABBY_ERR_UNKNOWN);
  EXPECT_EQ(slabby_get_stat("classes.1.nope", &v), SLABBY_ERR_UNKNOWN);
  EXPECT_EQ(v, 7);
  EXPECT_EQ(slabby_get_stat(nullptr, &v), SLABBY_ERR_VALUE);
  EXPECT_EQ(slabby_get_stat("live_bytes", nullptr), SLABBY_ERR_VALUE);
}

// Profiling off at start (this binary runs without SLABBY_PROF): a dump is
// unavailable until it is turned on; then samples flow and dumps work.
TEST(Control, HeapProfileTurnsOnAtRunTimeAndDumps) {
  std::string path = "/tmp/slabby_control_test." + std::to_string(getpid()) + ".heap";
  if (stat("prof_samples") == 0)
    EXPECT_EQ(slabby_dump_profile(path.c_str()), SLABBY_ERR_UNAVAILABLE);
  ASSERT_EQ(slabby_set_option("SLABBY_PROF", "1"), SLABBY_OK);
  ASSERT_EQ(slabby_set_option("SLABBY_PROF_SAMPLE", "64K"), SLABBY_OK);
  std::vector<void*> live;
  for (int i = 0; i < 200000; ++i) {
    void* p = malloc(64 + i % 2000);
    if (i % 10 == 0)
      live.push_back(p);
    else
      free(p);
  }
  EXPECT_GT(stat("prof_samples"), 10);
  double live_samples = stat("prof_live_samples");
  EXPECT_GT(live_samples, 5);
  ASSERT_EQ(slabby_dump_profile(path.c_str()), SLABBY_OK);
  std::string text = read_file(path);
  EXPECT_EQ(text.rfind("heap profile: ", 0), 0u) << text.substr(0, 200);
  EXPECT_NE(text.find("@ heapprofile\n"), std::string::npos);
  EXPECT_NE(text.find("\nMAPPED_LIBRARIES:\n"), std::string::npos);
  unlink(path.c_str());
  for (void* p : live) free(p);
  // Freed samples leave the profile (a few blocks of GoogleTest's and of
  // `live` itself may still be sampled and live).
  EXPECT_LT(stat("prof_live_samples"), live_samples / 2);
  // Off again: no new samples.
  ASSERT_EQ(slabby_set_option("SLABBY_PROF", "0"), SLABBY_OK);
  for (int i = 0; i < 70000; ++i) free(malloc(64));
  double samples = stat("prof_samples");
  for (int i = 0; i < 200000; ++i) free(malloc(64 + i % 2000));
  EXPECT_EQ(stat("prof_samples"), samples);
}

TEST(Control, DumpToAPathThatCannotBeWrittenSaysWhy) {
  ASSERT_EQ(slabby_set_option("SLABBY_PROF", "1"), SLABBY_OK);
  int r = 0;
  std::string err = capture_stderr(
      [&] { r = slabby_dump_profile("/nonexistent-dir/slabby/profile.heap"); });
  EXPECT_EQ(r, SLABBY_ERR_VALUE);
  EXPECT_NE(err.find("slabby: cannot write the heap profile /nonexistent-dir/slabby/profile.heap: "
                     "No such file or directory"),
            std::string::npos)
      << err;
  ASSERT_EQ(slabby_set_option("SLABBY_PROF", "0"), SLABBY_OK);
}

}  // namespace

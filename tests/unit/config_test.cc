#include "config/config.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace slabby {
namespace {

struct Parsed {
  ConfigResult result;
  std::vector<std::string> lines;
  std::shared_ptr<std::vector<std::string>> env;  // result points into it
};

void collect(void* ctx, const char* line, size_t len) {
  static_cast<std::vector<std::string>*>(ctx)->emplace_back(line, len);
}

Parsed parse(std::vector<std::string> env) {
  Parsed p;
  p.env = std::make_shared<std::vector<std::string>>(std::move(env));
  std::vector<char*> envp;
  for (auto& e : *p.env) envp.push_back(e.data());
  envp.push_back(nullptr);
  p.result = parse_config(envp.data(), collect, &p.lines);
  return p;
}

TEST(ConfigPrimitives, Booleans) {
  for (const char* t : {"1", "true", "TRUE", "yes", "on", "On"}) {
    bool b = false;
    EXPECT_TRUE(parse_bool(t, strlen(t), &b)) << t;
    EXPECT_TRUE(b) << t;
  }
  for (const char* f : {"0", "false", "no", "off", "OFF"}) {
    bool b = true;
    EXPECT_TRUE(parse_bool(f, strlen(f), &b)) << f;
    EXPECT_FALSE(b) << f;
  }
  for (const char* bad : {"", "2", "yess", "tru", " 1", "-1"}) {
    bool b = false;
    EXPECT_FALSE(parse_bool(bad, strlen(bad), &b)) << bad;
  }
}

TEST(ConfigPrimitives, ByteSizesWithUnits) {
  struct Case {
    const char* text;
    uint64_t want;
  } cases[] = {{"0", 0},         {"4096", 4096},           {"64K", 64 << 10},
               {"64k", 64 << 10}, {"2M", 2 << 20},          {"3G", 3ull << 30},
               {"1T", 1ull << 40}, {"5KB", 5 << 10},        {"5KiB", 5 << 10},
               {"7B", 7},         {"16777216", 16777216}};
  for (const auto& c : cases) {
    uint64_t v = 0;
    EXPECT_TRUE(parse_bytes(c.text, strlen(c.text), &v)) << c.text;
    EXPECT_EQ(v, c.want) << c.text;
  }
}

TEST(ConfigPrimitives, ByteSizesRejectGarbageNegativeOverflowAndEmpty) {
  for (const char* bad : {"", "abc", "-1", "+5", "12x", "1.5G", "K", "1KK", "1 K",
                          "18446744073709551616", "99999999999999999999", "20000000T"}) {
    uint64_t v = 123;
    EXPECT_FALSE(parse_bytes(bad, strlen(bad), &v)) << bad;
    EXPECT_EQ(v, 123u) << "output touched for " << bad;
  }
}

TEST(Config, CleanEnvironmentPrintsNothingAndKeepsDefaults) {
  Parsed p = parse({"PATH=/bin", "HOME=/root", "SLABBYX=1"});
  EXPECT_TRUE(p.lines.empty());
  EXPECT_EQ(p.result.problems, 0);
  Config def;
  EXPECT_EQ(p.result.config.arena_size, def.arena_size);
  EXPECT_EQ(p.result.config.stats, StatsFormat::kOff);
}

TEST(Config, ValidValuesApply) {
  Parsed p =
      parse({"SLABBY_STATS=1", "SLABBY_VERBOSE=yes", "SLABBY_ARENA_SIZE=1G", "SLABBY_RETAIN_MAX=0",
             "SLABBY_THREAD_CACHE_BYTES=16K", "SLABBY_MEDIUM_GROW_BYTES=4M"});
  EXPECT_TRUE(p.lines.empty()) << p.lines[0];
  EXPECT_EQ(p.result.config.stats, StatsFormat::kText);
  EXPECT_TRUE(p.result.config.verbose);
  EXPECT_EQ(p.result.config.arena_size, 1ull << 30);
  EXPECT_EQ(p.result.config.retain_max, 0u);
  EXPECT_EQ(p.result.config.thread_cache_bytes, 16u << 10);
  EXPECT_EQ(p.result.config.medium_grow_bytes, 4u << 20);
  EXPECT_EQ(Config{}.medium_grow_bytes, 96u << 20) << "README's default";
  auto source_of = [&](const char* name) {
    for (size_t i = 0; i < num_options(); ++i)
      if (strcmp(option(i).name, name) == 0) return p.result.source[i];
    ADD_FAILURE() << name;
    return ValueSource::kDefault;
  };
  EXPECT_EQ(source_of("SLABBY_ARENA_SIZE"), ValueSource::kEnvironment);
  EXPECT_EQ(source_of("SLABBY_RETAIN_MAX"), ValueSource::kEnvironment);
  EXPECT_EQ(source_of("SLABBY_DECAY_MS"), ValueSource::kDefault);
  EXPECT_EQ(Parsed(parse({"SLABBY_STATS=text"})).result.config.stats, StatsFormat::kText);
  EXPECT_EQ(Parsed(parse({"SLABBY_STATS=json"})).result.config.stats, StatsFormat::kJson);
  EXPECT_EQ(Parsed(parse({"SLABBY_STATS=Prometheus"})).result.config.stats,
            StatsFormat::kPrometheus);
  Parsed f = parse({"SLABBY_STATS_FILE=/tmp/s-%p.json", "SLABBY_STATS_INTERVAL_MS=2s"});
  EXPECT_STREQ(f.result.config.stats_file, "/tmp/s-%p.json");
  EXPECT_EQ(f.result.config.stats_interval_ms, 2000u);
  EXPECT_EQ(parse({"SLABBY_STATS_FILE=" + std::string(300, 'x')}).result.problems, 1);
}

// Every bad-value kind: one line naming the variable, the value and what is
// accepted, and the default stays.
TEST(Config, EachBadValueKindGivesOneLineAndTheDefault) {
  Config def;
  for (const char* value : {"garbage", "-5", "99999999999999999999999", "", "1X"}) {
    std::string entry = std::string("SLABBY_ARENA_SIZE=") + value;
    Parsed p = parse({entry});
    ASSERT_EQ(p.lines.size(), 1u) << entry;
    const std::string& line = p.lines[0];
    EXPECT_EQ(line.rfind("slabby: invalid SLABBY_ARENA_SIZE=\"", 0), 0u) << line;
    EXPECT_NE(line.find(std::string("\"") + value + "\""), std::string::npos) << line;
    EXPECT_NE(line.find("K, M, G or T"), std::string::npos) << line;
    EXPECT_NE(line.find("using the default"), std::string::npos) << line;
    EXPECT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1) << "exactly one line";
    EXPECT_EQ(p.result.config.arena_size, def.arena_size);
    EXPECT_EQ(p.result.problems, 1);
  }
  Parsed b = parse({"SLABBY_VERBOSE=maybe"});
  ASSERT_EQ(b.lines.size(), 1u);
  EXPECT_NE(b.lines[0].find("yes, no, on or off"), std::string::npos) << b.lines[0];
  EXPECT_FALSE(b.result.config.verbose);
}

TEST(Config, OutOfRangeIsRejected) {
  Parsed p = parse({"SLABBY_ARENA_SIZE=1M"});  // below the 256M minimum
  ASSERT_EQ(p.lines.size(), 1u);
  EXPECT_NE(p.lines[0].find("between 256M and 64T"), std::string::npos) << p.lines[0];
}

TEST(Config, UnknownNameIsWarnedWithTheClosestKnownName) {
  Parsed p = parse({"SLABBY_STAT=1", "SLABBY_COMPLETELY_DIFFERENT=3"});
  ASSERT_EQ(p.lines.size(), 2u);
  EXPECT_EQ(p.lines[0], "slabby: unknown variable SLABBY_STAT (ignored); did you mean SLABBY_STATS?\n");
  EXPECT_EQ(p.lines[1], "slabby: unknown variable SLABBY_COMPLETELY_DIFFERENT (ignored)\n");
  EXPECT_EQ(p.result.problems, 2);
  EXPECT_EQ(std::string(p.result.first_problem, p.result.first_problem_len), "SLABBY_STAT");
}

TEST(Config, StrictIsReportedToTheCaller) {
  Parsed p = parse({"SLABBY_STRICT=1", "SLABBY_RETAIN_MAX=lots"});
  EXPECT_TRUE(p.result.config.strict);
  EXPECT_EQ(p.result.problems, 1);
  EXPECT_EQ(std::string(p.result.first_problem, p.result.first_problem_len), "SLABBY_RETAIN_MAX");
}

TEST(Config, DescribeListsEveryOptionWithItsSource) {
  Parsed p = parse({"SLABBY_RETAIN_MAX=8M"});
  std::vector<std::string> lines;
  describe_config(p.result, collect, &lines);
  ASSERT_EQ(lines.size(), num_options());
  bool found = false;
  for (const auto& l : lines) {
    EXPECT_EQ(l.rfind("slabby:   SLABBY_", 0), 0u) << l;
    if (l.find("SLABBY_RETAIN_MAX=8M (environment)") != std::string::npos) found = true;
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace slabby

namespace slabby {
namespace {

// A config file in a temporary directory, removed at the end of the test.
struct ConfigFile {
  explicit ConfigFile(const std::string& text) {
    char tmpl[] = "/tmp/slabby-config-XXXXXX";
    int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    path = tmpl;
    EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
  }
  ~ConfigFile() { unlink(path.c_str()); }
  std::string path;
};

TEST(ConfigFile, KeyValueLinesWithCommentsAndAnyCase) {
  ConfigFile f("# slabby profile\n\n  retain_max = 8M   # trailing comment\nSTATS=json\n"
               "Decay_Ms = 250\n");
  Parsed p = parse({"SLABBY_CONFIG=" + f.path});
  EXPECT_TRUE(p.lines.empty()) << p.lines[0];
  EXPECT_EQ(p.result.config.retain_max, 8u << 20);
  EXPECT_EQ(p.result.config.stats, StatsFormat::kJson);
  EXPECT_EQ(p.result.config.decay_ms, 250u);
  for (size_t i = 0; i < num_options(); ++i) {
    std::string name = option(i).name;
    if (name == "SLABBY_RETAIN_MAX" || name == "SLABBY_STATS" || name == "SLABBY_DECAY_MS")
      EXPECT_EQ(p.result.source[i], ValueSource::kFile) << name;
  }
}

TEST(ConfigFile, TheEnvironmentOverridesTheFile) {
  ConfigFile f("RETAIN_MAX = 8M\nSHARDS = 3\n");
  Parsed p = parse({"SLABBY_RETAIN_MAX=16M", "SLABBY_CONFIG=" + f.path});
  EXPECT_EQ(p.result.config.retain_max, 16u << 20);  // whatever the order in the environment
  EXPECT_EQ(p.result.config.shards, 3u);
}

TEST(ConfigFile, EachProblemIsOneLineNamingFileAndLine) {
  ConfigFile f("RETIAN_MAX = 8M\nARENA_SIZE = lots\nnot a pair\nSTATS = 1\n");
  Parsed p = parse({"SLABBY_CONFIG=" + f.path});
  ASSERT_EQ(p.lines.size(), 3u);
  EXPECT_EQ(p.lines[0], "slabby: " + f.path +
                            ":1: unknown key RETIAN_MAX (ignored); did you mean RETAIN_MAX?\n");
  EXPECT_EQ(p.lines[1].rfind("slabby: " + f.path + ":2: invalid ARENA_SIZE=\"lots\": expected ", 0),
            0u)
      << p.lines[1];
  EXPECT_EQ(p.lines[2], "slabby: " + f.path + ":3: expected KEY = value, got \"not a pair\" (ignored)\n");
  EXPECT_EQ(p.result.problems, 3);
  EXPECT_EQ(std::string(p.result.first_problem, p.result.first_problem_len), "RETIAN_MAX");
  EXPECT_EQ(p.result.config.stats, StatsFormat::kText) << "good lines still apply";
}

TEST(ConfigFile, AMissingFileIsOneProblem) {
  Parsed p = parse({"SLABBY_CONFIG=/nonexistent/slabby.conf", "SLABBY_SHARDS=2"});
  ASSERT_EQ(p.lines.size(), 1u);
  EXPECT_EQ(p.lines[0].rfind("slabby: cannot read SLABBY_CONFIG=/nonexistent/slabby.conf", 0), 0u);
  EXPECT_EQ(p.result.config.shards, 2u);
}

// Found by config_fuzz (tests/fuzz/regressions/config_fuzz): a value with a
// newline or an escape sequence split or garbled the message, a long one
// pushed its newline out of the buffer.
TEST(ConfigMessages, AnyValueGivesOneLineWithTheValueEscaped) {
  Parsed p = parse({std::string("SLABBY_SHARDS=4\n\x1b[2Jx\"y\xff")});
  ASSERT_EQ(p.lines.size(), 1u);
  EXPECT_EQ(p.lines[0],
            "slabby: invalid SLABBY_SHARDS=\"4\\x0a\\x1b[2Jx\\\"y\\xff\": expected a whole number from 0 "
            "to 64; using the default\n");
  Parsed longer = parse({"SLABBY_ARENA_SIZE=" + std::string(5000, '\x01')});
  ASSERT_EQ(longer.lines.size(), 1u);
  const std::string& l = longer.lines[0];
  EXPECT_EQ(l.back(), '\n');
  EXPECT_EQ(l.find('\n'), l.size() - 1);
  EXPECT_NE(l.find("\\x01\\x01...\": expected a byte count"), std::string::npos) << l;
}

TEST(ConfigMessages, EffectivePathsAreShownOnOneLine) {
  Parsed p = parse({"SLABBY_STATS_FILE=/tmp/a\nb"});
  EXPECT_EQ(p.result.problems, 0);
  EXPECT_STREQ(p.result.config.stats_file, "/tmp/a\nb");  // kept as given
  std::vector<std::string> lines;
  describe_config(p.result, collect, &lines);
  for (const std::string& l : lines) EXPECT_EQ(l.find('\n'), l.size() - 1) << l;
  char shown[64];
  size_t i = 0;
  while (strcmp(option(i).name, "SLABBY_STATS_FILE") != 0) ++i;
  EXPECT_EQ(std::string(shown, format_option_value(p.result.config, i, shown, sizeof(shown))),
            "/tmp/a\\x0ab");
}

// Found by config_fuzz: the file was read as a C string, so a NUL byte
// silently ended it; now the line is reported and the lines after it apply.
TEST(ConfigFile, ANulByteIsReportedAndTheRestStillApplies) {
  static const char kText[] = "RETAIN_MAX = 8M\nSHA\0RDS = 3\nDECAY_MS = 2s\n";
  ConfigFile f(std::string(kText, sizeof(kText) - 1));
  Parsed p = parse({"SLABBY_CONFIG=" + f.path});
  ASSERT_EQ(p.lines.size(), 1u);
  EXPECT_NE(p.lines[0].find(":2: unknown key SHA\\x00RDS (ignored)"), std::string::npos) << p.lines[0];
  EXPECT_EQ(p.result.config.retain_max, size_t{8} << 20);
  EXPECT_EQ(p.result.config.decay_ms, 2000u);
}

}  // namespace
}  // namespace slabby

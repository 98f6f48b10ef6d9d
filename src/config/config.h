// slabby: configuration from SLABBY_* environment variables.
//
// Read once at init by walking the environment array (getenv may not be
// usable that early and must not be called from inside malloc). Nothing here
// allocates: values are parsed in place and messages are written through a
// caller-supplied sink, one line per problem.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/base.h"

namespace slabby {

// Values match StatsOutput + 1 (telemetry/stats.h).
enum class StatsFormat : uint8_t { kOff = 0, kText, kJson, kPrometheus };

struct Config {
  StatsFormat stats = StatsFormat::kOff;  // SLABBY_STATS: report at exit
  bool verbose = false;                   // SLABBY_VERBOSE: print config at start
  bool strict = false;                    // SLABBY_STRICT: bad config is fatal
  size_t arena_size = size_t{64} << 30;   // SLABBY_ARENA_SIZE: address space reserved
  size_t retain_max = size_t{64} << 20;   // SLABBY_RETAIN_MAX: free pages kept mapped
  size_t thread_cache_bytes = 64 << 10;   // SLABBY_THREAD_CACHE_BYTES: per class per thread
  size_t shards = 0;                      // SLABBY_SHARDS: central shards per class (0: CPUs)
  size_t cache_line = 128;                // SLABBY_CACHE_LINE: spacing of per-CPU/shard data
  bool percpu = true;                     // SLABBY_PERCPU: per-CPU caches (else per-thread)
  size_t percpu_grow_bytes = 1 << 20;     // SLABBY_PERCPU_GROW_BYTES: per CPU, above the bases
  size_t medium_grow_bytes = 96 << 20;    // SLABBY_MEDIUM_GROW_BYTES: the whole process
  size_t percpu_threads = 0;              // SLABBY_PERCPU_THREADS: live threads from which
                                          // threads use them (0: four per CPU, plus two)
  size_t decay_ms = 1000;                 // SLABBY_DECAY_MS: free pages kept this long
  bool background = true;                 // SLABBY_BACKGROUND: purge while idle
  size_t thp = 4;                         // SLABBY_THP: never madvise always large dense
  bool thp_timed = true;                  // SLABBY_THP_TIMED: chunks only while they pay
  size_t stats_interval_ms = 0;           // SLABBY_STATS_INTERVAL_MS: rewrite the file
  size_t max_heap = 0;                    // SLABBY_MAX_HEAP: cap on slabby's memory (0: none)
  bool heap_fallback = true;              // SLABBY_HEAP_FALLBACK: past the cap, use glibc
  // Security and debugging (secure/checks.h); any of them on selects the
  // checked paths at init.
  size_t zero = 0;                        // SLABBY_ZERO: 0, 1 free, 2 alloc, 3 both
  bool bitguard = kHardenedBuild;         // SLABBY_BITGUARD: canaries, tags, encoded links
                                          // (always on in the hardened library)
  bool guard_pages = false;               // SLABBY_GUARD_PAGES: PROT_NONE around large blocks
  size_t guard_sample = 0;                // SLABBY_GUARD_SAMPLE: 1 in N small blocks guarded
  size_t quarantine = 0;                  // SLABBY_QUARANTINE: freed bytes held per thread
  bool leak_check = false;                // SLABBY_LEAK_CHECK: live blocks reported at exit
  size_t leak_sample = 64;                // SLABBY_LEAK_SAMPLE: 1 in N allocations traced
  bool secure = false;                    // SLABBY_SECURE: zero on free + bit guard
  char stats_file[256] = {};              // SLABBY_STATS_FILE: %p is the pid ("": stderr)
  char config_file[256] = {};             // SLABBY_CONFIG: key = value lines, read first
  // Observability (telemetry/latency.h, telemetry/log.h, runtime/breaker.h).
  size_t latency_sample = 0;             // SLABBY_LATENCY_SAMPLE: time 1 allocation in N (0: off)
  size_t max_alloc_latency_ns = 100000;  // SLABBY_MAX_ALLOC_LATENCY_NS: slower ones counted (0: off)
  size_t breaker_threshold = 0;          // SLABBY_BREAKER_THRESHOLD: failures that open it (0: off)
  size_t breaker_timeout_ms = 1000;      // SLABBY_BREAKER_TIMEOUT_MS: open this long, also the window
  // Heap profile (telemetry/heap_profile.h).
  bool prof = false;                     // SLABBY_PROF: sample allocations by stack
  size_t prof_sample = 512 << 10;        // SLABBY_PROF_SAMPLE: bytes per sample, on average
  char prof_file[256] = "slabby.%p.%n.heap";  // SLABBY_PROF_FILE: %p pid, %n dump number
  size_t prof_interval_ms = 0;           // SLABBY_PROF_INTERVAL_MS: periodic dumps (0: none)
  size_t prof_signal = 0;                // SLABBY_PROF_SIGNAL: signal that dumps (0: none)
  char log_file[256] = {};               // SLABBY_LOG: "stderr" or a path, %p the pid ("": off)
  size_t log_level = 1;                  // SLABBY_LOG_LEVEL: index into error, warn, info, debug
  size_t log_format = 0;                 // SLABBY_LOG_FORMAT: 0 text, 1 json
};

enum class OptionKind : uint8_t { kBool, kBytes, kCount, kMillis, kChoice, kStats, kPath };

struct OptionSpec {
  const char* name;  // full variable name, e.g. "SLABBY_ARENA_SIZE"
  OptionKind kind;
  uint64_t min;      // kBytes and kCount
  uint64_t max;
  const char* help;  // one line, printed by SLABBY_VERBOSE
  bool Config::*flag = nullptr;     // kBool: the field it sets
  size_t Config::*bytes = nullptr;  // kBytes, kCount: the field it sets
  bool pow2 = false;                // kBytes: must be a power of two
  const char* const* choices = nullptr;  // kChoice: the accepted words (index stored)
  char (Config::*path)[256] = nullptr;    // kPath: the field it sets
};

// Where each effective value came from (for SLABBY_VERBOSE).
enum class ValueSource : uint8_t { kDefault = 0, kFile, kEnvironment };

struct ConfigResult {
  Config config;
  int problems = 0;           // bad values + unknown names
  const char* first_problem;  // variable name of the first problem (in envp), or nullptr
  size_t first_problem_len;
  ValueSource source[64];     // indexed like options()
};

using ConfigSink = void (*)(void* ctx, const char* line, size_t len);

// Parses every SLABBY_* entry of envp (NULL-terminated "NAME=value" strings).
// If one is SLABBY_CONFIG=PATH, that file is read first: "KEY = value" lines
// (KEY is the variable name without SLABBY_, any case), "#" starts a
// comment; the environment then overrides it. Each bad value or unknown name
// is reported to sink as one line; the default (or the file's value) stays in
// force for a bad value. The file is read into static storage: no allocation.
ConfigResult parse_config(char* const* envp, ConfigSink sink, void* ctx);

// Writes the effective configuration, one "slabby:   NAME=value (source)" line
// per option, to sink.
void describe_config(const ConfigResult& r, ConfigSink sink, void* ctx);

// The effective value of option i as the user would write it ("64G", "json",
// "250ms"), into out (no terminator); returns its length (at most cap).
size_t format_option_value(const Config& c, size_t i, char* out, size_t cap);

// Parsing primitives, exposed for the unit tests. Return false on bad input.
bool parse_bool(const char* s, size_t n, bool* out);
bool parse_bytes(const char* s, size_t n, uint64_t* out);  // 123, 64K, 2M, 1G, 1T (binary)
bool parse_count(const char* s, size_t n, uint64_t* out);  // a plain decimal number
bool parse_millis(const char* s, size_t n, uint64_t* out);  // 250, 250ms, 2s, 1m

size_t num_options();
const OptionSpec& option(size_t i);
// The index of the option named `name` (the full SLABBY_ name), or
// num_options() when there is none.
size_t find_option(const char* name);

// Parses one value of option i into c (slabby_set_option); false when the
// value is not accepted (c unchanged).
bool parse_option_value(size_t i, const char* value, Config* c);

}  // namespace slabby

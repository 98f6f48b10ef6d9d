// slabby: the table of SLABBY_* options: name, kind, bounds, help, field.
// config.cc parses values into a Config by it; runtime/control.cc says which
// of them may change in a running process.
#include "config/config.h"

namespace slabby {

namespace {

constexpr const char* kThpChoices[] = {"never", "madvise", "always", "large", "dense", nullptr};
constexpr const char* kZeroChoices[] = {"0", "free", "alloc", "both", nullptr};
constexpr const char* kLogLevelChoices[] = {"error", "warn", "info", "debug", nullptr};
constexpr const char* kLogFormatChoices[] = {"text", "json", nullptr};

constexpr OptionSpec kOptions[] = {
    {"SLABBY_STATS", OptionKind::kStats, 0, 0,
     "report at exit: text (1), json or prometheus, to stderr or SLABBY_STATS_FILE"},
    {"SLABBY_STATS_FILE", OptionKind::kPath, 0, 0,
     "file for the report instead of stderr (%p: the process id)", nullptr, nullptr, false, nullptr,
     &Config::stats_file},
    {"SLABBY_CONFIG", OptionKind::kPath, 0, 0,
     "a file of KEY = value lines read first (the environment overrides it)", nullptr, nullptr,
     false, nullptr, &Config::config_file},
    {"SLABBY_STATS_INTERVAL_MS", OptionKind::kMillis, 0, 3600000,
     "also rewrite SLABBY_STATS_FILE this often (for servers that never exit; 0: only at exit)",
     nullptr, &Config::stats_interval_ms},
    {"SLABBY_VERBOSE", OptionKind::kBool, 0, 0, "print the effective configuration at start",
     &Config::verbose},
    {"SLABBY_STRICT", OptionKind::kBool, 0, 0, "abort on an invalid or unknown SLABBY_ variable",
     &Config::strict},
    {"SLABBY_ARENA_SIZE", OptionKind::kBytes, uint64_t{256} << 20, uint64_t{64} << 40,
     "virtual address space reserved for slabby's heap", nullptr, &Config::arena_size},
    {"SLABBY_RETAIN_MAX", OptionKind::kBytes, 0, uint64_t{1} << 40,
     "free pages kept mapped for reuse before they are returned to the OS", nullptr,
     &Config::retain_max},
    {"SLABBY_THREAD_CACHE_BYTES", OptionKind::kBytes, 0, uint64_t{16} << 20,
     "bytes each thread may cache per size class", nullptr, &Config::thread_cache_bytes},
    {"SLABBY_PERCPU", OptionKind::kBool, 0, 0,
     "per-CPU caches on rseq (0: per-thread caches; also per-thread where rseq is missing)",
     &Config::percpu},
    {"SLABBY_PERCPU_GROW_BYTES", OptionKind::kBytes, 0, uint64_t{64} << 20,
     "bytes each CPU's caches may grow by, together, above their base sizes, for classes whose "
     "blocks do not fit (0: fixed sizes)",
     nullptr, &Config::percpu_grow_bytes},
    {"SLABBY_MEDIUM_GROW_BYTES", OptionKind::kBytes, 0, uint64_t{1} << 30,
     "bytes the medium classes (32 KiB-1 MiB) of every CPU's and thread's cache may grow by, "
     "together, for classes whose blocks do not fit and that miss often (0: no growth)",
     nullptr, &Config::medium_grow_bytes},
    {"SLABBY_PERCPU_THREADS", OptionKind::kCount, 0, 1000000,
     "live threads from which threads move to the per-CPU caches (0: four per CPU the process "
     "may use, plus two; 1: from the first; until then each thread has its own cache, which is "
     "faster)",
     nullptr, &Config::percpu_threads},
    {"SLABBY_SHARDS", OptionKind::kCount, 0, 64,
     "central list shards per size class (0: one per CPU the process may use)", nullptr,
     &Config::shards},
    {"SLABBY_CACHE_LINE", OptionKind::kBytes, 32, 1024,
     "spacing of per-CPU and per-shard data, against false sharing", nullptr, &Config::cache_line,
     true},
    {"SLABBY_MAX_HEAP", OptionKind::kBytes, 0, uint64_t{64} << 40,
     "cap on slabby's memory in use (0: none); past it see SLABBY_HEAP_FALLBACK", nullptr,
     &Config::max_heap},
    {"SLABBY_HEAP_FALLBACK", OptionKind::kBool, 0, 0,
     "when slabby cannot serve a request (cap reached, arena full), the system allocator does "
     "(0: the request fails with ENOMEM)",
     &Config::heap_fallback},
    {"SLABBY_DECAY_MS", OptionKind::kMillis, 0, 3600000,
     "free pages unused this long are returned to the OS", nullptr, &Config::decay_ms},
    {"SLABBY_BACKGROUND", OptionKind::kBool, 0, 0,
     "a background thread returns memory while the process is idle", &Config::background},
    {"SLABBY_THP", OptionKind::kChoice, 0, 0,
     "transparent huge pages: for large blocks of the sizes the program fills (dense), for "
     "every large block (large), the whole arena (always), none (never), or the system's "
     "setting (madvise)",
     nullptr, &Config::thp, false, kThpChoices},
    {"SLABBY_THP_TIMED", OptionKind::kBool, 0, 0,
     "with SLABBY_THP=dense, time new huge pages' first faults and give slabs small pages while "
     "huge ones fault slower than the small ones they replace (0: slabs always take huge pages "
     "past 16 MiB)",
     &Config::thp_timed},
    {"SLABBY_ZERO", OptionKind::kChoice, 0, 0,
     "zero blocks on free (and check they stay zero), on allocation, or both", nullptr,
     &Config::zero, false, kZeroChoices},
    {"SLABBY_BITGUARD", OptionKind::kBool, 0, 0,
     "a canary after every block, encoded free lists; detect double and invalid frees",
     &Config::bitguard},
    {"SLABBY_GUARD_PAGES", OptionKind::kBool, 0, 0,
     "PROT_NONE pages around large blocks (each ends against its guard)", &Config::guard_pages},
    {"SLABBY_GUARD_SAMPLE", OptionKind::kCount, 0, 1000000000,
     "one small allocation in N is placed against a guard page (0: none)", nullptr,
     &Config::guard_sample},
    {"SLABBY_QUARANTINE", OptionKind::kBytes, 0, uint64_t{1} << 30,
     "freed bytes each thread holds back before reuse (0: none)", nullptr, &Config::quarantine},
    {"SLABBY_LEAK_CHECK", OptionKind::kBool, 0, 0,
     "report blocks still live at exit, by allocation site for traced ones", &Config::leak_check},
    {"SLABBY_LEAK_SAMPLE", OptionKind::kCount, 1, 1000000000,
     "with SLABBY_LEAK_CHECK, one allocation in N records its stack", nullptr,
     &Config::leak_sample},
    {"SLABBY_SECURE", OptionKind::kBool, 0, 0,
     "the balanced hardening set: SLABBY_ZERO=free and SLABBY_BITGUARD=1", &Config::secure},
    {"SLABBY_LATENCY_SAMPLE", OptionKind::kCount, 0, 1000000000,
     "time one allocation in N with the cycle counter, for the latency percentiles (0: off)",
     nullptr, &Config::latency_sample},
    {"SLABBY_MAX_ALLOC_LATENCY_NS", OptionKind::kCount, 0, 1000000000000,
     "timed allocations slower than this many ns are counted and logged (0: none)", nullptr,
     &Config::max_alloc_latency_ns},
    {"SLABBY_BREAKER_THRESHOLD", OptionKind::kCount, 0, 1000000,
     "page heap failures within SLABBY_BREAKER_TIMEOUT_MS that open the circuit breaker (0: off)",
     nullptr, &Config::breaker_threshold},
    {"SLABBY_BREAKER_TIMEOUT_MS", OptionKind::kMillis, 1, 3600000,
     "how long an open breaker sends new-memory requests to the system allocator", nullptr,
     &Config::breaker_timeout_ms},
    {"SLABBY_PROF", OptionKind::kBool, 0, 0,
     "sampled heap profile: dumps of the live heap and of all allocations, by stack "
     "(gperftools' format; scripts/slabby-prof)",
     &Config::prof},
    {"SLABBY_PROF_SAMPLE", OptionKind::kBytes, 1, uint64_t{1} << 40,
     "with SLABBY_PROF, one sample per this many bytes allocated, on average", nullptr,
     &Config::prof_sample},
    {"SLABBY_PROF_FILE", OptionKind::kPath, 0, 0,
     "heap profile dumps (%p: the process id, %n: the dump number)", nullptr, nullptr, false,
     nullptr, &Config::prof_file},
    {"SLABBY_PROF_INTERVAL_MS", OptionKind::kMillis, 0, 3600000,
     "with SLABBY_PROF, also dump the profile this often (0: at exit and on request only)", nullptr,
     &Config::prof_interval_ms},
    {"SLABBY_PROF_SIGNAL", OptionKind::kCount, 0, 64,
     "a signal number that dumps the heap profile (e.g. 12, SIGUSR2; 0: none)", nullptr,
     &Config::prof_signal},
    {"SLABBY_LOG", OptionKind::kPath, 0, 0,
     "event log: stderr or a file path (%p: the process id); unset: no log", nullptr, nullptr,
     false, nullptr, &Config::log_file},
    {"SLABBY_LOG_LEVEL", OptionKind::kChoice, 0, 0, "events logged: error, warn, info or debug",
     nullptr, &Config::log_level, false, kLogLevelChoices},
    {"SLABBY_LOG_FORMAT", OptionKind::kChoice, 0, 0, "log lines as text or json (one object each)",
     nullptr, &Config::log_format, false, kLogFormatChoices},
};

constexpr size_t kNumOptions = sizeof(kOptions) / sizeof(kOptions[0]);
static_assert(kNumOptions <= sizeof(ConfigResult::source) / sizeof(ValueSource),
              "ConfigResult::source has room for every option");

}  // namespace

size_t num_options() { return kNumOptions; }
const OptionSpec& option(size_t i) { return kOptions[i]; }

}  // namespace slabby

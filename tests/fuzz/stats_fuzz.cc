// Fuzz target: the stats writers (telemetry/stats_export.cc, the text report).
//
// The input drives the allocator (through the front end's internal entry
// points, as tests/unit do, so ASan keeps its own malloc) into some state:
// blocks of every size kept live across inputs, frees, reallocs, callocs,
// aligned blocks, trims, threads that allocate and exit, odd paths in the
// configuration. Then the stats are written as JSON and Prometheus text and
// must pass the strict checkers of text_checks.h: the JSON parses (UTF-8, no
// duplicate keys) and has the documented shape; the Prometheus text passes
// the exposition-format checker; the values of one snapshot agree between the
// two formats. A second kind of step writes a snapshot whose counters, gauges
// and ratios are arbitrary (any 64-bit value, any double: NaN, infinities,
// negatives) through the same writers, so no value a long-running process
// may reach can break either format.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "config/config.h"
#include "frontend/allocator.h"
#include "fuzz_common.h"
#include "runtime/background.h"
#include "runtime/runtime.h"
#include "telemetry/stats.h"
#include "text_checks.h"

using namespace slabby;
using fuzzcheck::fail;

namespace {

constexpr const char* kTarget = "stats_fuzz";
constexpr size_t kSlots = 128;
constexpr size_t kMaxLiveBytes = size_t{64} << 20;

void* g_slot[kSlots];
size_t g_size[kSlots];
size_t g_live_bytes = 0;
fuzzcheck::MemFile* g_out;
size_t g_prom_samples = 0;  // every exposition has the same series
uint64_t g_writes = 0;

size_t pick_size(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 4)) {
    case 0: return in.ConsumeIntegralInRange<size_t>(0, 256);
    case 1: return in.ConsumeIntegralInRange<size_t>(0, 32 << 10);
    case 2: return in.ConsumeIntegralInRange<size_t>(32 << 10, 1 << 20);
    case 3: return in.ConsumeIntegralInRange<size_t>(1 << 20, 8 << 20);
    default: return in.ConsumeIntegral<uint16_t>();
  }
}

void drop(size_t i) {
  if (g_slot[i] == nullptr) return;
  free_fast(g_slot[i]);
  g_live_bytes -= g_size[i];
  g_slot[i] = nullptr;
  g_size[i] = 0;
}

void keep(size_t i, void* p, size_t n) {
  drop(i);
  if (p == nullptr) return;
  g_slot[i] = p;
  g_size[i] = n;
  g_live_bytes += n;
}

std::string write(StatsOutput format, const slabby_stats* s, const slabby_health* h) {
  g_out->clear();
  if (s == nullptr)
    write_stats(g_out->fd(), format);
  else
    write_stats_snapshot(g_out->fd(), format, *s, *h);
  return g_out->contents();
}

bool is_uint(const std::string& t) {
  if (t.empty() || t.size() > 20) return false;
  for (char c : t)
    if (c < '0' || c > '9') return false;
  return t.size() == 1 || t[0] != '0';
}

// A ratio as written: 0 to 1 with exactly four decimals.
bool is_ratio(const std::string& t) {
  if (t.size() != 6 || t[1] != '.') return false;
  if (t[0] != '0' && t[0] != '1') return false;
  for (size_t i = 2; i < 6; ++i)
    if (t[i] < '0' || t[i] > '9') return false;
  return t[0] == '0' || t == "1.0000";
}

std::string expected_ratio(double v) {
  if (!(v >= 0)) v = 0;
  if (v > 1) v = 1;
  uint64_t x = static_cast<uint64_t>(v * 10000 + 0.5);
  char buf[16];
  snprintf(buf, sizeof(buf), "%llu.%04llu", static_cast<unsigned long long>(x / 10000),
           static_cast<unsigned long long>(x % 10000));
  return buf;
}

void check_json(const std::string& text, const slabby_stats& s, const slabby_health* h) {
  fuzzcheck::JsonParser parser(text);
  auto root = parser.parse();
  if (!root) fail(kTarget, "JSON does not parse: " + parser.error() + "\n" + text.substr(0, 2000));
  if (root->kind != fuzzcheck::Json::kObject) fail(kTarget, "JSON is not an object");
  if (text.back() != '\n') fail(kTarget, "JSON report does not end with a newline");
  for (const char* k : {"version", "cache_mode", "breaker_state"}) {
    const fuzzcheck::Json* v = root->get(k);
    if (v == nullptr || v->kind != fuzzcheck::Json::kString) fail(kTarget, std::string("no string ") + k);
  }
  // Every top-level number is a whole number that fits 64 bits.
  size_t numbers = 0;
  for (auto& [k, v] : root->members) {
    if (v->kind != fuzzcheck::Json::kNumber) continue;
    if (!is_uint(v->text)) fail(kTarget, "top-level " + k + " is not a u64: " + v->text);
    ++numbers;
  }
  if (numbers < 40) fail(kTarget, "JSON has only " + std::to_string(numbers) + " numbers");
  const fuzzcheck::Json* classes = root->get("classes");
  if (classes == nullptr || classes->kind != fuzzcheck::Json::kArray ||
      classes->items.size() != s.num_classes)
    fail(kTarget, "classes is not an array of num_classes entries");
  for (size_t i = 0; i < classes->items.size(); ++i) {
    const fuzzcheck::Json& c = *classes->items[i];
    const fuzzcheck::Json* id = c.get("class");
    const fuzzcheck::Json* bs = c.get("block_size");
    if (id == nullptr || id->text != std::to_string(i + 1)) fail(kTarget, "class numbers");
    if (bs == nullptr || bs->text != std::to_string(s.classes[i].block_size))
      fail(kTarget, "block_size of class " + std::to_string(i + 1));
    for (auto& [k, v] : c.members)
      if (v->kind != fuzzcheck::Json::kNumber || !is_uint(v->text))
        fail(kTarget, "class field " + k + " is not a u64");
  }
  const fuzzcheck::Json* health = root->get("health");
  if (health == nullptr || health->kind != fuzzcheck::Json::kObject) fail(kTarget, "no health");
  static const char* const kRatios[] = {"fragmentation_score", "memory_pressure", "error_rate",
                                        "cache_efficiency", "health_score"};
  const double values[] = {h ? h->fragmentation_score : 0, h ? h->memory_pressure : 0,
                           h ? h->error_rate : 0, h ? h->cache_efficiency : 0,
                           h ? h->health_score : 0};
  for (size_t i = 0; i < 5; ++i) {
    const fuzzcheck::Json* r = health->get(kRatios[i]);
    if (r == nullptr || r->kind != fuzzcheck::Json::kNumber || !is_ratio(r->text))
      fail(kTarget, std::string("health ratio ") + kRatios[i] + " is not 0..1 with 4 decimals");
    if (h != nullptr && r->text != expected_ratio(values[i]))
      fail(kTarget, std::string("health ratio ") + kRatios[i] + " = " + r->text + ", expected " +
                        expected_ratio(values[i]));
  }
  const fuzzcheck::Json* config = root->get("config");
  if (config == nullptr || config->kind != fuzzcheck::Json::kObject ||
      config->members.size() != num_options())
    fail(kTarget, "config object does not have one entry per option");
  for (size_t i = 0; i < num_options(); ++i) {
    auto& [k, v] = config->members[i];
    if (k != option(i).name || v->kind != fuzzcheck::Json::kString)
      fail(kTarget, "config entry " + std::to_string(i) + " is not " + option(i).name);
  }
}

void check_prometheus(const std::string& text, const std::string& json_text) {
  fuzzcheck::PromResult r = fuzzcheck::check_prometheus(text);
  if (!r.error.empty()) fail(kTarget, "Prometheus text rejected: " + r.error);
  if (g_prom_samples == 0) g_prom_samples = r.samples.size();
  if (r.samples.size() != g_prom_samples)
    fail(kTarget, "Prometheus sample count changed: " + std::to_string(r.samples.size()) +
                      " against " + std::to_string(g_prom_samples));
  for (auto& [name, type] : r.types) {
    if (!r.help.count(name)) fail(kTarget, name + " has a TYPE but no HELP");
    bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
    if ((type == "counter") != total) fail(kTarget, name + ": counters and only counters end in _total");
  }
  for (auto& smp : r.samples)
    if (!r.types.count(smp.name)) fail(kTarget, smp.name + " has no TYPE");
  // One snapshot, two formats: a JSON key K and a Prometheus series slabby_K
  // (or slabby_K_total) without labels carry the same number.
  fuzzcheck::JsonParser parser(json_text);
  auto root = parser.parse();
  std::map<std::string, std::string> prom;
  for (auto& smp : r.samples)
    if (smp.labels.empty()) prom[smp.name] = smp.value_text;
  size_t compared = 0;
  for (auto& [k, v] : root->members) {
    if (v->kind != fuzzcheck::Json::kNumber) continue;
    for (const std::string& name : {"slabby_" + k, "slabby_" + k + "_total"}) {
      auto it = prom.find(name);
      if (it == prom.end()) continue;
      ++compared;
      if (it->second != v->text)
        fail(kTarget, k + ": JSON " + v->text + ", Prometheus " + name + " " + it->second);
    }
  }
  if (compared < 20) fail(kTarget, "only " + std::to_string(compared) + " fields matched by name");
}

void check_text_report(const std::string& text) {
  if (text.empty() || text.back() != '\n') fail(kTarget, "text report does not end with a newline");
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (text.compare(pos, 7, "slabby:") != 0)
      fail(kTarget, "text report line without the slabby: prefix: " + text.substr(pos, eol - pos));
    pos = eol + 1;
  }
}

void write_and_check(const slabby_stats* s, const slabby_health* h) {
  std::string json = write(StatsOutput::kJson, s, h);
  std::string prom = write(StatsOutput::kPrometheus, s, h);
  static slabby_stats real;
  if (s == nullptr) collect_stats(&real);
  check_json(json, s ? *s : real, h);
  check_prometheus(prom, json);
  if (fuzzcheck::dump_dir() != nullptr) {
    std::string n = std::to_string(g_writes);
    fuzzcheck::dump("stats-" + n + ".json", json);
    fuzzcheck::dump("stats-" + n + ".prom", prom);
  }
  ++g_writes;
}

// A snapshot with arbitrary values in every counter, gauge and ratio.
void arbitrary_snapshot(FuzzedDataProvider& in) {
  static slabby_stats s;
  static slabby_health h;
  collect_stats(&s);
  collect_health(s, &h);
  uint32_t classes = s.num_classes;
  size_t edits = in.ConsumeIntegralInRange<size_t>(1, 48);
  for (size_t e = 0; e < edits && in.remaining_bytes() > 0; ++e) {
    bool health = in.ConsumeBool();
    size_t size = health ? sizeof(h) : sizeof(s);
    size_t off = in.ConsumeIntegralInRange<size_t>(0, size / 8 - 1) * 8;
    uint64_t v;
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0: v = ~uint64_t{0} - in.ConsumeIntegralInRange<uint64_t>(0, 3); break;
      case 1: {
        static const double kOdd[] = {NAN, -NAN, INFINITY, -INFINITY, -0.0, -1e-300, 1e-320,
                                      0.99995, 0.99994999, 1.00001, 1e300, -5.0};
        double d = kOdd[in.ConsumeIntegralInRange<size_t>(0, 11)];
        memcpy(&v, &d, 8);
        break;
      }
      default: v = in.ConsumeIntegral<uint64_t>(); break;
    }
    memcpy(reinterpret_cast<char*>(health ? static_cast<void*>(&h) : static_cast<void*>(&s)) + off,
           &v, 8);
  }
  s.num_classes = classes;  // the struct's shape, which the writer relies on
  write_and_check(&s, &h);
}

// A configuration path holding any bytes (a file line can hold anything but
// a newline or '#', an environment value anything but NUL).
void odd_paths(FuzzedDataProvider& in) {
  Config& c = g_rt.config.config;
  for (char (*field)[256] : {&c.stats_file, &c.log_file, &c.config_file}) {
    std::string v = in.ConsumeRandomLengthString(255);
    v = v.substr(0, strnlen(v.data(), v.size()));
    memcpy(*field, v.data(), v.size());
    (*field)[v.size()] = '\0';
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // No background thread: each input sees only what it did.
  setenv("SLABBY_BACKGROUND", "0", 1);
  setenv("SLABBY_LATENCY_SAMPLE", "5", 1);  // latency percentiles in the health figures
  free_fast(malloc_fast(1));
  g_out = new fuzzcheck::MemFile();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The allocator's state carries over from input to input; the paths an
  // input sets do not, so that a failing input fails on its own.
  static const Config initial = g_rt.config.config;
  Config& c = g_rt.config.config;
  memcpy(c.stats_file, initial.stats_file, sizeof(c.stats_file));
  memcpy(c.log_file, initial.log_file, sizeof(c.log_file));
  memcpy(c.config_file, initial.config_file, sizeof(c.config_file));
  FuzzedDataProvider in(data, size);
  bool wrote = false;
  while (in.remaining_bytes() > 0) {
    size_t i = in.ConsumeIntegralInRange<size_t>(0, kSlots - 1);
    switch (in.ConsumeIntegralInRange<int>(0, 11)) {
      case 0:
      case 1: {
        size_t n = pick_size(in);
        if (g_live_bytes + n > kMaxLiveBytes) break;
        keep(i, malloc_fast(n), n);
        break;
      }
      case 2: drop(i); break;
      case 3: {
        size_t n = pick_size(in);
        if (g_slot[i] == nullptr || g_live_bytes + n > kMaxLiveBytes) break;
        void* p = realloc_impl(g_slot[i], n == 0 ? 1 : n);
        if (p == nullptr) break;
        g_live_bytes -= g_size[i];
        g_slot[i] = p;
        g_size[i] = n;
        g_live_bytes += n;
        break;
      }
      case 4: {
        size_t n = pick_size(in);
        if (g_live_bytes + n > kMaxLiveBytes) break;
        keep(i, calloc_impl(1, n), n);
        break;
      }
      case 5: {
        size_t align = size_t{1} << in.ConsumeIntegralInRange<int>(4, 16);
        size_t n = pick_size(in);
        if (g_live_bytes + n > kMaxLiveBytes) break;
        keep(i, aligned_alloc_impl(align, n), n);
        break;
      }
      case 6: release_all_now(); break;
      case 7: {  // a thread that allocates, frees some and exits
        size_t n = in.ConsumeIntegralInRange<size_t>(1, 64);
        size_t sz = pick_size(in) % (64 << 10);
        std::thread([n, sz] {
          void* keep_some[64];
          for (size_t k = 0; k < n; ++k) keep_some[k] = malloc_fast(sz);
          for (size_t k = 0; k < n; k += 2) free_fast(keep_some[k]);
          for (size_t k = 1; k < n; k += 2) free_fast(keep_some[k]);
        }).join();
        break;
      }
      case 8: arbitrary_snapshot(in); wrote = true; break;
      case 9: {  // odd paths; slabby_get_config stays one NAME=value line per option
        odd_paths(in);
        static char text[16384];
        size_t n = config_text(text, sizeof(text));
        size_t lines = 0;
        for (size_t k = 0; k < n && k < sizeof(text); ++k) lines += text[k] == '\n';
        if (n >= sizeof(text) || lines != num_options())
          fail(kTarget, "slabby_get_config: " + std::to_string(lines) + " lines for " +
                            std::to_string(num_options()) + " options");
        break;
      }
      case 10: {
        g_out->clear();
        print_report(g_out->fd());
        check_text_report(g_out->contents());
        break;
      }
      default: write_and_check(nullptr, nullptr); wrote = true; break;
    }
  }
  if (!wrote) write_and_check(nullptr, nullptr);
  return 0;
}

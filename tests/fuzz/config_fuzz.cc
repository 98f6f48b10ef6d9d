// Fuzz target: the configuration parser (config/config.cc): SLABBY_* values
// from the environment and whole SLABBY_CONFIG files.
//
// Properties, beyond "no crash, no out-of-bounds access" (ASan, UBSan):
// - every message is exactly one line: "slabby: ...\n", no other newline and
//   no control character (values are echoed escaped), at most 2048 bytes;
// - one message per problem, and ConfigResult::problems counts them;
// - a value is accepted exactly when an independent reference parser (below,
//   written from the README's rules, not from config.cc) accepts it, and then
//   sets exactly that option to the reference value; a rejected value names
//   the variable and the value (a prefix of it when long) and what is
//   accepted, and leaves every option at its default;
// - in a file, every non-blank line is either applied or reported (the same
//   reference decides which), including lines after a NUL byte;
// - the effective configuration (SLABBY_VERBOSE's lines, slabby_get_config's
//   values) is one line per option, and each value reads back as itself.
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "config/config.h"
#include "fuzz_common.h"

using namespace slabby;
using fuzzcheck::fail;

namespace {

constexpr const char* kTarget = "config_fuzz";

struct Captured {
  std::vector<std::string> lines;
};

void sink(void* ctx, const char* line, size_t len) {
  static_cast<Captured*>(ctx)->lines.emplace_back(line, len);
}

std::string show(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      char b[8];
      snprintf(b, sizeof(b), "\\x%02x", c);
      out += b;
    }
  }
  return out;
}

void check_one_line(const std::string& line, const char* what) {
  if (line.size() < 9 || line.compare(0, 8, "slabby: ") != 0)
    fail(kTarget, std::string(what) + " does not start with \"slabby: \": " + show(line));
  if (line.back() != '\n') fail(kTarget, std::string(what) + " does not end with a newline: " + show(line));
  if (line.size() > 2048) fail(kTarget, std::string(what) + " longer than 2048 bytes: " + show(line));
  for (size_t i = 0; i + 1 < line.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(line[i]);
    if (c < 0x20 || c == 0x7f)
      fail(kTarget, std::string(what) + " holds a control character at byte " + std::to_string(i) +
                        ": " + show(line));
  }
}

// ------------------------------------------------------------ reference --
// The README's rules, written independently of config.cc.

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// Decimal digits into a 128-bit value; false past 2^64 - 1.
bool ref_number(const std::string& s, uint64_t* out) {
  if (!all_digits(s)) return false;
  unsigned __int128 v = 0;
  for (char c : s) {
    v = v * 10 + static_cast<unsigned>(c - '0');
    if (v > ~uint64_t{0}) return false;
  }
  *out = static_cast<uint64_t>(v);
  return true;
}

bool ref_bool(const std::string& s, bool* out) {
  std::string l = lower(s);
  if (l == "1" || l == "true" || l == "yes" || l == "on") return *out = true, true;
  if (l == "0" || l == "false" || l == "no" || l == "off") return *out = false, true;
  return false;
}

// Sizes: digits, then nothing, "B", or K/M/G/T optionally followed by "i"
// and/or "B" (KB, KiB, K all 1024), any case.
bool ref_bytes(const std::string& s, uint64_t* out) {
  size_t d = 0;
  while (d < s.size() && s[d] >= '0' && s[d] <= '9') ++d;
  uint64_t v;
  if (d == 0 || !ref_number(s.substr(0, d), &v)) return false;
  std::string suffix = lower(s.substr(d));
  int shift = -1;
  if (suffix.empty() || suffix == "b") shift = 0;
  for (auto [letter, sh] : {std::pair{'k', 10}, {'m', 20}, {'g', 30}, {'t', 40}})
    for (const char* tail : {"", "i", "b", "ib"})
      if (suffix == std::string(1, letter) + tail) shift = sh;
  if (shift < 0) return false;
  unsigned __int128 x = static_cast<unsigned __int128>(v) << shift;
  if (x > ~uint64_t{0}) return false;
  *out = static_cast<uint64_t>(x);
  return true;
}

bool ref_millis(const std::string& s, uint64_t* out) {
  size_t d = 0;
  while (d < s.size() && s[d] >= '0' && s[d] <= '9') ++d;
  uint64_t v;
  if (d == 0 || !ref_number(s.substr(0, d), &v)) return false;
  std::string suffix = lower(s.substr(d));
  uint64_t scale;
  if (suffix.empty() || suffix == "ms") scale = 1;
  else if (suffix == "s") scale = 1000;
  else if (suffix == "m") scale = 60000;
  else return false;
  unsigned __int128 x = static_cast<unsigned __int128>(v) * scale;
  if (x > ~uint64_t{0}) return false;
  *out = static_cast<uint64_t>(x);
  return true;
}

// Whether option o accepts value v, and the value it then holds (as
// format_option_value writes it, for the comparison).
bool ref_accepts(const OptionSpec& o, const std::string& v) {
  uint64_t n = 0;
  bool b;
  switch (o.kind) {
    case OptionKind::kBool: return ref_bool(v, &b);
    case OptionKind::kStats: {
      std::string l = lower(v);
      return ref_bool(v, &b) || l == "text" || l == "json" || l == "prometheus";
    }
    case OptionKind::kPath: return !v.empty() && v.size() <= 255;
    case OptionKind::kBytes:
      return ref_bytes(v, &n) && n >= o.min && n <= o.max && (!o.pow2 || (n & (n - 1)) == 0);
    case OptionKind::kCount: return ref_number(v, &n) && n >= o.min && n <= o.max;
    case OptionKind::kMillis: return ref_millis(v, &n) && n >= o.min && n <= o.max;
    case OptionKind::kChoice:
      for (size_t k = 0; o.choices[k] != nullptr; ++k)
        if (lower(v) == o.choices[k]) return true;
      return false;
  }
  return false;
}

// The numeric value the reference reads (kBytes, kCount, kMillis).
uint64_t ref_numeric(const OptionSpec& o, const std::string& v) {
  uint64_t n = 0;
  if (o.kind == OptionKind::kBytes) ref_bytes(v, &n);
  if (o.kind == OptionKind::kCount) ref_number(v, &n);
  if (o.kind == OptionKind::kMillis) ref_millis(v, &n);
  return n;
}

std::string formatted(const Config& c, size_t i) {
  char buf[300];
  size_t n = format_option_value(c, i, buf, sizeof(buf));
  return std::string(buf, n);
}

// Undoes the escaping of echoed values: \xHH, \" and \\.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out.push_back(s[i]);
      continue;
    }
    char e = s[++i];
    if (e == 'x' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(strtol(s.substr(i + 1, 2).c_str(), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(e);
    }
  }
  return out;
}

// ------------------------------------------------------------- properties --

struct Parsed {
  ConfigResult r;
  Captured msgs;
};

Parsed parse(const std::vector<std::string>& env) {
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  Parsed p;
  p.r = parse_config(envp.data(), sink, &p.msgs);
  return p;
}

void check_messages(const Parsed& p) {
  for (const std::string& l : p.msgs.lines) check_one_line(l, "message");
  if (static_cast<size_t>(p.r.problems) != p.msgs.lines.size())
    fail(kTarget, std::to_string(p.r.problems) + " problems counted, " +
                      std::to_string(p.msgs.lines.size()) + " messages written");
}

void check_effective(const ConfigResult& r) {
  Captured d;
  describe_config(r, sink, &d);
  if (d.lines.size() != num_options()) fail(kTarget, "describe_config: not one line per option");
  for (const std::string& l : d.lines) check_one_line(l, "describe_config line");
  // Every effective value reads back as itself.
  for (size_t i = 0; i < num_options(); ++i) {
    const OptionSpec& o = option(i);
    std::string v = formatted(r.config, i);
    if (o.kind == OptionKind::kPath && (v.empty() || strcmp(o.name, "SLABBY_CONFIG") == 0 ||
                                        v != std::string(r.config.*o.path)))
      continue;  // an escaped path reads back as its escaped text, not itself
    Parsed again = parse({std::string(o.name) + "=" + v});
    if (again.r.problems != 0 || formatted(again.r.config, i) != v)
      fail(kTarget, std::string(o.name) + "=" + show(v) + " (an effective value) does not read back");
  }
}

std::string c_string(std::string s) { return s.substr(0, strnlen(s.data(), s.size())); }

// One SLABBY_NAME=value, checked against the reference.
void one_entry(FuzzedDataProvider& in) {
  size_t i = in.ConsumeIntegralInRange<size_t>(0, num_options());
  std::string name;
  if (i < num_options()) {
    name = option(i).name;
    if (name == "SLABBY_CONFIG") return;  // files: see file_mode
  } else {
    name = "SLABBY_" + c_string(in.ConsumeRandomLengthString(64));
    if (name.find('=') != std::string::npos) name.resize(name.find('='));
  }
  std::string value = c_string(in.ConsumeRandomLengthString(600));
  Parsed p = parse({name + "=" + value});
  check_messages(p);
  Config defaults{};
  if (i == num_options()) {  // an unknown name, unless it spelled a known one
    bool known = false;
    for (size_t k = 0; k < num_options(); ++k) known |= name == option(k).name;
    if (known) return;
    if (p.r.problems != 1) fail(kTarget, "unknown variable " + show(name) + " not reported once");
    if (p.msgs.lines[0].compare(0, 25, "slabby: unknown variable ") != 0)
      fail(kTarget, "unknown variable message: " + show(p.msgs.lines[0]));
    return;
  }
  const OptionSpec& o = option(i);
  bool want = ref_accepts(o, value);
  if (want != (p.r.problems == 0))
    fail(kTarget, name + "=\"" + show(value) + "\": the reference " +
                      (want ? "accepts it, slabby rejects it" : "rejects it, slabby accepts it"));
  for (size_t k = 0; k < num_options(); ++k) {
    if (k == i && want) continue;
    if (formatted(p.r.config, k) != formatted(defaults, k))
      fail(kTarget, name + "=\"" + show(value) + "\" changed " + option(k).name);
  }
  if (want) {
    if (p.r.source[i] != ValueSource::kEnvironment) fail(kTarget, "source not the environment");
    if (o.kind == OptionKind::kBytes || o.kind == OptionKind::kCount ||
        o.kind == OptionKind::kMillis) {
      if (p.r.config.*o.bytes != ref_numeric(o, value))
        fail(kTarget, name + "=\"" + show(value) + "\" read as " +
                          std::to_string(p.r.config.*o.bytes) + ", the reference reads " +
                          std::to_string(ref_numeric(o, value)));
    }
    if (o.kind == OptionKind::kPath && std::string(p.r.config.*o.path) != value)
      fail(kTarget, name + ": the path is not kept as given");
    // Shown as written, bytes outside printable ASCII as \xHH (one line).
    // (format_option_value stops at its caller's buffer: 300 bytes here)
    if (o.kind == OptionKind::kPath && formatted(p.r.config, i) != show(value).substr(0, 300))
      fail(kTarget, name + ": the path is shown as " + show(formatted(p.r.config, i)));
    check_effective(p.r);
    return;
  }
  // Rejected: one line naming the variable, the value and what is accepted.
  const std::string& l = p.msgs.lines[0];
  std::string head = "slabby: invalid " + name + "=\"";
  if (l.compare(0, head.size(), head) != 0) fail(kTarget, "message does not name the variable: " + show(l));
  size_t close = head.size();  // the closing quote: the first one not escaped
  while (close < l.size() && l[close] != '"') close += l[close] == '\\' ? 2 : 1;
  if (l.compare(close, 12, "\": expected ") != 0)
    fail(kTarget, "message does not say what is accepted: " + show(l));
  std::string shown = l.substr(head.size(), close - head.size());
  bool cut = value.size() > 64;  // longer values are shown by their first 64 bytes, then "..."
  if (cut && (shown.size() < 3 || shown.compare(shown.size() - 3, 3, "...") != 0))
    fail(kTarget, "a long value is shown without \"...\": " + show(l));
  std::string echoed = unescape(cut ? shown.substr(0, shown.size() - 3) : shown);
  if (echoed != value.substr(0, 64))
    fail(kTarget, "message does not show the value " + show(value) + ": " + show(l));
  if (l.find("; using the default\n") == std::string::npos)
    fail(kTarget, "message does not say the default is used: " + show(l));
}

// Several raw environment entries: only the generic properties.
void raw_env(FuzzedDataProvider& in, int memfd) {
  std::vector<std::string> env;
  size_t n = in.ConsumeIntegralInRange<size_t>(0, 12);
  for (size_t k = 0; k < n; ++k) {
    std::string e = c_string(in.ConsumeRandomLengthString(300));
    if (in.ConsumeBool()) e = "SLABBY_" + e;
    // SLABBY_CONFIG may only name the fuzzer's own file (no blocking reads
    // of devices or FIFOs the fuzzer might spell).
    if (e.compare(0, 14, "SLABBY_CONFIG=") == 0) e = "SLABBY_CONFIG=/proc/self/fd/" + std::to_string(memfd);
    env.push_back(e);
  }
  Parsed p = parse(env);
  check_messages(p);
  check_effective(p.r);
}

// A whole config file, checked line by line against the reference.
void file_mode(FuzzedDataProvider& in, int memfd) {
  std::string text = in.ConsumeRandomLengthString(8192);
  if (ftruncate(memfd, 0) != 0 || pwrite(memfd, text.data(), text.size(), 0) !=
                                      static_cast<ssize_t>(text.size()))
    abort();
  std::string path = "/proc/self/fd/" + std::to_string(memfd);
  Parsed p = parse({"SLABBY_CONFIG=" + path});
  check_messages(p);
  // Expected problems: every non-blank line that is not KEY = value with a
  // known key and an accepted value.
  int expected = 0;
  std::string bad_lines;
  // slabby splits the text on newlines (the last line needs none).
  std::vector<std::string> lines;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    lines.push_back(text.substr(pos, eol - pos));
    pos = eol + 1;
  }
  for (size_t line_no = 1; line_no <= lines.size(); ++line_no) {
    std::string line = lines[line_no - 1];
    size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
    while (!line.empty() && space(line.back())) line.pop_back();
    size_t b = 0;
    while (b < line.size() && space(line[b])) ++b;
    line = line.substr(b);
    if (line.empty()) continue;
    size_t eq = line.find('=');
    bool ok = false;
    if (eq != std::string::npos) {
      std::string key = line.substr(0, eq);
      while (!key.empty() && space(key.back())) key.pop_back();
      std::string value = line.substr(eq + 1);
      size_t vb = 0;
      while (vb < value.size() && space(value[vb])) ++vb;
      value = value.substr(vb);
      std::string name = "SLABBY_";
      for (char c : key) name.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
      for (size_t k = 0; k < num_options() && !key.empty(); ++k)
        if (name == option(k).name) ok = ref_accepts(option(k), value);
    }
    if (!ok) {
      ++expected;
      bad_lines += " " + std::to_string(line_no);
    }
  }
  if (p.r.problems != expected)
    fail(kTarget, "config file: " + std::to_string(p.r.problems) + " problems reported, the reference finds " +
                      std::to_string(expected) + " (lines" + bad_lines + ")\n" + show(text.substr(0, 400)));
  for (const std::string& l : p.msgs.lines)
    if (l.compare(0, 8 + path.size() + 1, "slabby: " + path + ":") != 0)
      fail(kTarget, "a file message does not name the file: " + show(l));
  check_effective(p.r);
}

// The parsing primitives against the reference, on any bytes.
void primitives(FuzzedDataProvider& in) {
  std::string s = in.ConsumeRandomLengthString(64);
  uint64_t got = 0, want = 0;
  bool b1 = false, b2 = false;
  if (parse_bool(s.data(), s.size(), &b1) != ref_bool(s, &b2) || b1 != b2)
    fail(kTarget, "parse_bool(\"" + show(s) + "\") disagrees with the reference");
  bool g = parse_bytes(s.data(), s.size(), &got), w = ref_bytes(s, &want);
  if (g != w || (g && got != want)) fail(kTarget, "parse_bytes(\"" + show(s) + "\") disagrees with the reference");
  g = parse_count(s.data(), s.size(), &got), w = ref_number(s, &want);
  if (g != w || (g && got != want)) fail(kTarget, "parse_count(\"" + show(s) + "\") disagrees with the reference");
  g = parse_millis(s.data(), s.size(), &got), w = ref_millis(s, &want);
  if (g != w || (g && got != want)) fail(kTarget, "parse_millis(\"" + show(s) + "\") disagrees with the reference");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static int memfd = memfd_create("slabby-config", MFD_CLOEXEC);
  FuzzedDataProvider in(data, size);
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: one_entry(in); break;
    case 1: raw_env(in, memfd); break;
    case 2: file_mode(in, memfd); break;
    default: primitives(in); break;
  }
  return 0;
}

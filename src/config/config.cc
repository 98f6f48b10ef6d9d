#include "config/config.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/writer.h"

namespace slabby {

namespace {

constexpr char kPrefix[] = "SLABBY_";
constexpr size_t kPrefixLen = sizeof(kPrefix) - 1;

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equals_ci(const char* s, size_t n, const char* word) {
  size_t wn = strlen(word);
  if (n != wn) return false;
  for (size_t i = 0; i < n; ++i)
    if (lower(s[i]) != word[i]) return false;
  return true;
}

// A line builder writing into a fixed buffer; handed to the sink whole.
// Whatever it is given, a line stays one line: bytes outside printable
// ASCII (newlines, escape sequences, invalid UTF-8 from a value or a file)
// are written as \xHH, and text past the buffer is cut so that the newline
// always fits (config_fuzz found both).
class Line {
 public:
  Line& str(const char* s) { return str(s, strlen(s)); }
  Line& str(const char* s, size_t n) {
    for (size_t i = 0; i < n; ++i) put(s[i], false);
    return *this;
  }
  // A value echoed between double quotes: also escapes '"' and '\\', and
  // shows at most kShown bytes of it, then "...". With a file path and a key
  // of the longest kinds, every part of the message still fits.
  Line& value(const char* s, size_t n) {
    static constexpr size_t kShown = 64;
    for (size_t i = 0; i < n && i < kShown; ++i) put(s[i], true);
    if (n > kShown) str("...");
    return *this;
  }
  Line& u64(uint64_t v) {
    char tmp[24];
    return str(tmp, format_u64(v, tmp));
  }
  // Bytes with the largest exact binary suffix (64G, 512K, 100).
  Line& bytes(uint64_t v) {
    static const char kSuffix[] = "KMGT";
    int unit = -1;
    while (unit < 3 && v != 0 && v % 1024 == 0) {
      v /= 1024;
      ++unit;
    }
    u64(v);
    if (unit >= 0) str(&kSuffix[unit], 1);
    return *this;
  }
  size_t copy_to(char* out, size_t cap) const {
    size_t n = len_ < cap ? len_ : cap;
    memcpy(out, buf_, n);
    return n;
  }
  void emit(ConfigSink sink, void* ctx) {
    buf_[len_++] = '\n';  // put() leaves room for it
    if (sink) sink(ctx, buf_, len_);
  }

 private:
  void put(char ch, bool quoted) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && !(quoted && (c == '"' || c == '\\'))) {
      if (len_ + 1 < sizeof(buf_)) buf_[len_++] = ch;
      return;
    }
    if (quoted && (c == '"' || c == '\\')) {
      if (len_ + 2 < sizeof(buf_)) buf_[len_++] = '\\', buf_[len_++] = ch;
      return;
    }
    if (len_ + 4 < sizeof(buf_)) {
      buf_[len_++] = '\\';
      buf_[len_++] = 'x';
      buf_[len_++] = "0123456789abcdef"[c >> 4];
      buf_[len_++] = "0123456789abcdef"[c & 15];
    }
  }

  char buf_[2048];
  size_t len_ = 0;
};

// Levenshtein distance of two short names, for "did you mean".
size_t distance(const char* a, size_t an, const char* b, size_t bn) {
  if (an > 48 || bn > 48) return 99;
  size_t row[49];
  for (size_t j = 0; j <= bn; ++j) row[j] = j;
  for (size_t i = 1; i <= an; ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= bn; ++j) {
      size_t up = row[j];
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      size_t best = diag + cost;
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[bn];
}

const char* accepted_text(const OptionSpec& o) {
  switch (o.kind) {
    case OptionKind::kBool: return "1, 0, true, false, yes, no, on or off";
    case OptionKind::kStats: return "1, 0, true, false, yes, no, on, off, text, json or prometheus";
    case OptionKind::kPath: return "a file path of 1 to 255 bytes";
    case OptionKind::kBytes:
      return o.pow2 ? "a power of two, in bytes, with an optional K, M, G or T suffix"
                    : "a byte count with an optional K, M, G or T suffix";
    case OptionKind::kCount: return "a whole number";
    case OptionKind::kMillis: return "a duration in ms, or with an ms, s or m suffix";
    case OptionKind::kChoice: return "one of";  // the choices follow (apply)
  }
  return "";
}

}  // namespace


bool parse_bool(const char* s, size_t n, bool* out) {
  if (equals_ci(s, n, "1") || equals_ci(s, n, "true") || equals_ci(s, n, "yes") ||
      equals_ci(s, n, "on")) {
    *out = true;
    return true;
  }
  if (equals_ci(s, n, "0") || equals_ci(s, n, "false") || equals_ci(s, n, "no") ||
      equals_ci(s, n, "off")) {
    *out = false;
    return true;
  }
  return false;
}

bool parse_bytes(const char* s, size_t n, uint64_t* out) {
  size_t i = 0;
  uint64_t v = 0;
  if (n == 0) return false;
  for (; i < n && s[i] >= '0' && s[i] <= '9'; ++i) {
    uint64_t d = static_cast<uint64_t>(s[i] - '0');
    if (v > (~uint64_t{0} - d) / 10) return false;  // overflow
    v = v * 10 + d;
  }
  if (i == 0) return false;  // no digits (also rejects "-1" and "+1")
  int shift = 0;
  if (i < n) {
    switch (lower(s[i])) {
      case 'k': shift = 10; break;
      case 'm': shift = 20; break;
      case 'g': shift = 30; break;
      case 't': shift = 40; break;
      case 'b': shift = 0; break;
      default: return false;
    }
    ++i;
    // Accept "K", "KB", "KiB" (all binary) and a bare "B".
    if (shift != 0 && i < n && lower(s[i]) == 'i') ++i;
    if (shift != 0 && i < n && lower(s[i]) == 'b') ++i;
    if (i != n) return false;
  }
  if (shift != 0 && v > (~uint64_t{0} >> shift)) return false;
  *out = v << shift;
  return true;
}

bool parse_count(const char* s, size_t n, uint64_t* out) {
  uint64_t v = 0;
  if (n == 0) return false;
  for (size_t i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    uint64_t d = static_cast<uint64_t>(s[i] - '0');
    if (v > (~uint64_t{0} - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool parse_millis(const char* s, size_t n, uint64_t* out) {
  size_t digits = 0;
  while (digits < n && s[digits] >= '0' && s[digits] <= '9') ++digits;
  uint64_t v = 0;
  if (digits == 0 || !parse_count(s, digits, &v)) return false;
  uint64_t scale = 1;
  if (digits < n) {
    if (equals_ci(s + digits, n - digits, "ms")) scale = 1;
    else if (equals_ci(s + digits, n - digits, "s")) scale = 1000;
    else if (equals_ci(s + digits, n - digits, "m")) scale = 60000;
    else return false;
  }
  if (v > ~uint64_t{0} / scale) return false;
  *out = v * scale;
  return true;
}

namespace {

// Where an entry came from: the environment, or a line of the config file.
struct Origin {
  ValueSource source;
  const char* file;  // kFile
  size_t line;       // kFile
};

void note_problem(ConfigResult& r, const char* name, size_t len) {
  if (r.problems++ == 0) {
    r.first_problem = name;
    r.first_problem_len = len;
  }
}

void start_message(Line& line, const Origin& at) {
  line.str("slabby: ");
  if (at.source == ValueSource::kFile) line.str(at.file).str(":").u64(at.line).str(": ");
}

// Applies one NAME=value (NAME: the full SLABBY_ variable name; shown: the
// name as the user wrote it, for messages).
void apply(ConfigResult& r, const char* name, size_t name_len, const char* shown,
           size_t shown_len, const char* value, size_t value_len, const Origin& at,
           ConfigSink sink, void* ctx) {
  size_t idx = num_options();
  for (size_t i = 0; i < num_options(); ++i)
    if (strlen(option(i).name) == name_len && strncmp(option(i).name, name, name_len) == 0)
      idx = i;
  if (idx == num_options()) {
    size_t best = 0, best_d = 99;
    for (size_t i = 0; i < num_options(); ++i) {
      size_t d = distance(name, name_len, option(i).name, strlen(option(i).name));
      if (d < best_d) {
        best_d = d;
        best = i;
      }
    }
    Line line;
    start_message(line, at);
    bool file = at.source == ValueSource::kFile;
    line.str(file ? "unknown key " : "unknown variable ").str(shown, shown_len).str(" (ignored)");
    if (best_d <= 3)
      line.str("; did you mean ").str(option(best).name + (file ? kPrefixLen : 0)).str("?");
    line.emit(sink, ctx);
    note_problem(r, shown, shown_len);
    return;
  }

  const OptionSpec& o = option(idx);
  Config& c = r.config;
  bool ok = false;
  switch (o.kind) {
    case OptionKind::kBool: {
      bool b = false;
      ok = parse_bool(value, value_len, &b);
      if (ok && kHardenedBuild && !b && o.flag == &Config::bitguard) {
        // The hardened library's inline paths check every block.
        Line line;
        start_message(line, at);
        line.str(shown, shown_len).str("=\"").value(value, value_len);
        line.str("\": the hardened library always keeps the bit guard on (its fast paths check ");
        line.str("every block); libslabby_malloc.so runs without it");
        line.emit(sink, ctx);
        note_problem(r, shown, shown_len);
        return;
      }
      if (ok) c.*o.flag = b;
      break;
    }
    case OptionKind::kStats: {
      bool b = false;
      if (equals_ci(value, value_len, "text")) {
        ok = true;
        c.stats = StatsFormat::kText;
      } else if (equals_ci(value, value_len, "json")) {
        ok = true;
        c.stats = StatsFormat::kJson;
      } else if (equals_ci(value, value_len, "prometheus")) {
        ok = true;
        c.stats = StatsFormat::kPrometheus;
      } else if (parse_bool(value, value_len, &b)) {
        ok = true;
        c.stats = b ? StatsFormat::kText : StatsFormat::kOff;
      }
      break;
    }
    case OptionKind::kPath: {
      char* field = c.*o.path;
      ok = value_len > 0 && value_len < sizeof(c.*o.path);
      if (ok) {
        memcpy(field, value, value_len);
        field[value_len] = '\0';
      }
      break;
    }
    case OptionKind::kBytes: {
      uint64_t v = 0;
      ok = parse_bytes(value, value_len, &v) && v >= o.min && v <= o.max &&
           (!o.pow2 || (v & (v - 1)) == 0);
      if (ok) c.*o.bytes = v;
      break;
    }
    case OptionKind::kCount: {
      uint64_t v = 0;
      ok = parse_count(value, value_len, &v) && v >= o.min && v <= o.max;
      if (ok) c.*o.bytes = v;
      break;
    }
    case OptionKind::kMillis: {
      uint64_t v = 0;
      ok = parse_millis(value, value_len, &v) && v >= o.min && v <= o.max;
      if (ok) c.*o.bytes = v;
      break;
    }
    case OptionKind::kChoice: {
      for (size_t k = 0; o.choices[k] != nullptr; ++k) {
        if (equals_ci(value, value_len, o.choices[k])) {
          c.*o.bytes = k;
          ok = true;
        }
      }
      break;
    }
  }
  if (ok) {
    r.source[idx] = at.source;
    return;
  }
  Line line;
  start_message(line, at);
  line.str("invalid ").str(shown, shown_len).str("=\"").value(value, value_len).str("\": expected ");
  line.str(accepted_text(o));
  if (o.kind == OptionKind::kBytes) line.str(" between ").bytes(o.min).str(" and ").bytes(o.max);
  if (o.kind == OptionKind::kCount) line.str(" from ").u64(o.min).str(" to ").u64(o.max);
  if (o.kind == OptionKind::kMillis) line.str(" up to 1 hour");
  if (o.kind == OptionKind::kMillis && o.min > 0) line.str(", at least ").u64(o.min).str("ms");
  for (size_t k = 0; o.kind == OptionKind::kChoice && o.choices[k] != nullptr; ++k)
    line.str(k == 0 ? " " : o.choices[k + 1] == nullptr ? " or " : ", ").str(o.choices[k]);
  line.str("; using the default");
  line.emit(sink, ctx);
  note_problem(r, shown, shown_len);
}

bool is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r'; }

// The config file's text lives here for the life of the process (messages
// and first_problem point into it).
char g_file_text[64 * 1024];

void apply_file(ConfigResult& r, const char* path, ConfigSink sink, void* ctx) {
  int saved = errno;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  int open_errno = fd < 0 ? errno : 0;
  size_t len = 0;
  bool too_big = false;
  if (fd >= 0) {
    for (;;) {
      // 4 KiB at a time: qemu-aarch64 with 64 KiB pages refused (EFAULT) a
      // read into the whole buffer, whose end it does not treat as mapped.
      size_t room = sizeof(g_file_text) - 1 - len;
      ssize_t n = read(fd, g_file_text + len, room < 4096 ? room : 4096);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) open_errno = errno;  // a directory, an I/O error
      if (n <= 0) break;
      len += static_cast<size_t>(n);
      if (len == sizeof(g_file_text) - 1) {
        char probe;
        too_big = read(fd, &probe, 1) > 0;
        break;
      }
    }
    close(fd);
  }
  errno = saved;
  if (fd >= 0 && open_errno != 0) fd = -1;
  if (fd < 0 || too_big) {
    Line line;
    line.str("slabby: cannot read SLABBY_CONFIG=").str(path).str(" (");
    const char* why = fd < 0 ? strerrordesc_np(open_errno) : nullptr;
    line.str(fd < 0 ? (why != nullptr ? why : "cannot open") : "larger than 64 KiB");
    line.str("); using the environment and defaults");
    line.emit(sink, ctx);
    note_problem(r, "SLABBY_CONFIG", 13);
    return;
  }
  g_file_text[len] = '\0';
  size_t line_no = 0;
  // By length, not to the first NUL: a NUL byte is reported with its line
  // instead of silently ending the file (config_fuzz found it).
  char* const text_end = g_file_text + len;
  for (char* p = g_file_text; p < text_end;) {
    char* eol = p;
    while (eol < text_end && *eol != '\n') ++eol;
    char* next = eol < text_end ? eol + 1 : eol;
    ++line_no;
    char* hash = p;
    while (hash < eol && *hash != '#') ++hash;
    char* end = hash;
    while (p < end && is_space(*p)) ++p;
    while (end > p && is_space(end[-1])) --end;
    if (p < end) {
      Origin at{ValueSource::kFile, path, line_no};
      char* eq = p;
      while (eq < end && *eq != '=') ++eq;
      char* key_end = eq;
      while (key_end > p && is_space(key_end[-1])) --key_end;
      char* value = eq < end ? eq + 1 : end;
      while (value < end && is_space(*value)) ++value;
      char name[96];
      size_t key_len = static_cast<size_t>(key_end - p);
      if (eq == end || key_len == 0 || key_len + kPrefixLen >= sizeof(name)) {
        Line line;
        start_message(line, at);
        line.str("expected KEY = value, got \"").value(p, static_cast<size_t>(end - p));
        line.str("\" (ignored)");
        line.emit(sink, ctx);
        note_problem(r, p, static_cast<size_t>(end - p));
      } else {
        memcpy(name, kPrefix, kPrefixLen);
        for (size_t i = 0; i < key_len; ++i) {
          char ch = p[i];
          name[kPrefixLen + i] = ch >= 'a' && ch <= 'z' ? static_cast<char>(ch - 'a' + 'A') : ch;
        }
        apply(r, name, kPrefixLen + key_len, p, key_len, value,
              static_cast<size_t>(end - value), at, sink, ctx);
      }
    }
    p = next;
  }
}

}  // namespace

size_t find_option(const char* name) {
  for (size_t i = 0; i < num_options(); ++i)
    if (strcmp(option(i).name, name) == 0) return i;
  return num_options();
}

bool parse_option_value(size_t i, const char* value, Config* c) {
  if (i >= num_options()) return false;
  ConfigResult r{};
  r.config = *c;
  const char* name = option(i).name;
  Origin at{ValueSource::kEnvironment, nullptr, 0};
  apply(r, name, strlen(name), name, strlen(name), value, strlen(value), at, nullptr, nullptr);
  if (r.problems != 0) return false;
  *c = r.config;
  return true;
}

ConfigResult parse_config(char* const* envp, ConfigSink sink, void* ctx) {
  ConfigResult r{};
  r.first_problem = nullptr;
  // The file first, so that the environment overrides it.
  static constexpr char kConfigVar[] = "SLABBY_CONFIG=";
  for (size_t e = 0; envp != nullptr && envp[e] != nullptr; ++e)
    if (strncmp(envp[e], kConfigVar, sizeof(kConfigVar) - 1) == 0 &&
        envp[e][sizeof(kConfigVar) - 1] != '\0')
      apply_file(r, envp[e] + sizeof(kConfigVar) - 1, sink, ctx);
  Origin env{ValueSource::kEnvironment, nullptr, 0};
  for (size_t e = 0; envp != nullptr && envp[e] != nullptr; ++e) {
    const char* entry = envp[e];
    if (strncmp(entry, kPrefix, kPrefixLen) != 0) continue;
    const char* eq = strchr(entry, '=');
    if (eq == nullptr) continue;
    size_t name_len = static_cast<size_t>(eq - entry);
    apply(r, entry, name_len, entry, name_len, eq + 1, strlen(eq + 1), env, sink, ctx);
  }
  return r;
}

namespace {

// An option's effective value as SLABBY_VERBOSE and slabby_get_config show it.
void write_value(Line& line, const Config& c, const OptionSpec& o) {
  switch (o.kind) {
    case OptionKind::kStats: {
      static const char* const kNames[] = {"0", "text", "json", "prometheus"};
      line.str(kNames[static_cast<int>(c.stats)]);
      break;
    }
    case OptionKind::kPath: line.str(c.*o.path); break;
    case OptionKind::kBool: line.str(c.*o.flag ? "1" : "0"); break;
    case OptionKind::kBytes: line.bytes(c.*o.bytes); break;
    case OptionKind::kCount: line.u64(c.*o.bytes); break;
    case OptionKind::kMillis: line.u64(c.*o.bytes).str("ms"); break;
    case OptionKind::kChoice: line.str(o.choices[c.*o.bytes]); break;
  }
}

}  // namespace

void describe_config(const ConfigResult& r, ConfigSink sink, void* ctx) {
  const Config& c = r.config;
  for (size_t i = 0; i < num_options(); ++i) {
    Line line;
    line.str("slabby:   ").str(option(i).name).str("=");
    const OptionSpec& o = option(i);
    write_value(line, c, o);
    static const char* const kSources[] = {" (default)", " (file)", " (environment)"};
    line.str(kSources[static_cast<int>(r.source[i])]);
    line.str(": ").str(option(i).help);
    line.emit(sink, ctx);
  }
}

size_t format_option_value(const Config& c, size_t i, char* out, size_t cap) {
  Line line;
  write_value(line, c, option(i));
  return line.copy_to(out, cap);
}

}  // namespace slabby

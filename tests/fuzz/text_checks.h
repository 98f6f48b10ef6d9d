// Strict checkers for the text slabby writes, used by the fuzz targets:
//
// - check_json: RFC 8259 JSON, stricter than most parsers: valid UTF-8 in
//   strings (no overlongs, no surrogates), no raw control characters, only
//   the standard escapes, numbers by the RFC's grammar, no duplicate keys in
//   an object, nothing after the value but whitespace. It returns the parsed
//   tree, so the caller can check the schema and the values.
// - check_prometheus: the Prometheus text exposition format 0.0.4 as
//   Prometheus's own parser (expfmt) and python3-prometheus-client read it:
//   valid metric and label names, label values with only \\ \" \n escapes,
//   float values, at most one HELP and one TYPE per family, TYPE before the
//   family's samples, each family's samples together, no duplicate series,
//   counters not negative, and the file ending in a newline.
//
// tests/fuzz/check_outputs.py replays the corpus and feeds the same outputs
// to Python's json module and prometheus_client's parser, so these checkers
// are held to the real parsers too (they must accept everything those accept
// from slabby, and slabby's output must pass both).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

// The checkers are not coverage-instrumented: their branches would only
// steer the fuzzer toward the checker, and tracing them slowed stats_fuzz
// several times.
#pragma clang attribute push(__attribute__((no_sanitize("coverage"))), apply_to = function)

namespace fuzzcheck {

// ------------------------------------------------------------------ JSON --

struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  bool b = false;
  std::string text;  // number: its literal; string: decoded UTF-8
  std::vector<std::unique_ptr<Json>> items;                       // array
  std::vector<std::pair<std::string, std::unique_ptr<Json>>> members;  // object, in order

  const Json* get(std::string_view key) const {
    for (auto& [k, v] : members)
      if (k == key) return v.get();
    return nullptr;
  }
};

class JsonParser {
 public:
  explicit JsonParser(std::string_view s) : s_(s) {}

  // nullptr and error() on any deviation.
  std::unique_ptr<Json> parse() {
    auto v = value(0);
    if (!v) return nullptr;
    ws();
    if (i_ != s_.size()) return fail("text after the value");
    return v;
  }
  const std::string& error() const { return err_; }
  size_t offset() const { return i_; }

 private:
  std::unique_ptr<Json> fail(const char* why) {
    if (err_.empty()) err_ = std::string(why) + " at byte " + std::to_string(i_);
    return nullptr;
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool lit(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  std::unique_ptr<Json> value(int depth) {
    if (depth > 64) return fail("nested too deep");
    ws();
    if (i_ >= s_.size()) return fail("unexpected end");
    auto v = std::make_unique<Json>();
    char c = s_[i_];
    if (c == '{') {
      v->kind = Json::kObject;
      ++i_;
      ws();
      if (i_ < s_.size() && s_[i_] == '}') return ++i_, std::move(v);
      std::set<std::string> keys;
      for (;;) {
        ws();
        if (i_ >= s_.size() || s_[i_] != '"') return fail("expected a key");
        std::string k;
        if (!string(&k)) return nullptr;
        if (!keys.insert(k).second) return fail("duplicate key");
        ws();
        if (i_ >= s_.size() || s_[i_] != ':') return fail("expected ':'");
        ++i_;
        auto m = value(depth + 1);
        if (!m) return nullptr;
        v->members.emplace_back(std::move(k), std::move(m));
        ws();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == '}') return ++i_, std::move(v);
        return fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v->kind = Json::kArray;
      ++i_;
      ws();
      if (i_ < s_.size() && s_[i_] == ']') return ++i_, std::move(v);
      for (;;) {
        auto m = value(depth + 1);
        if (!m) return nullptr;
        v->items.push_back(std::move(m));
        ws();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == ']') return ++i_, std::move(v);
        return fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v->kind = Json::kString;
      if (!string(&v->text)) return nullptr;
      return v;
    }
    if (lit("true")) return v->kind = Json::kBool, v->b = true, std::move(v);
    if (lit("false")) return v->kind = Json::kBool, std::move(v);
    if (lit("null")) return v;
    v->kind = Json::kNumber;
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else if (i_ < s_.size() && s_[i_] >= '1' && s_[i_] <= '9') {
      while (i_ < s_.size() && isdigit(s_[i_])) ++i_;
    } else {
      return fail("not a value");
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (i_ >= s_.size() || !isdigit(s_[i_])) return fail("digit expected after '.'");
      while (i_ < s_.size() && isdigit(s_[i_])) ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (i_ >= s_.size() || !isdigit(s_[i_])) return fail("digit expected in exponent");
      while (i_ < s_.size() && isdigit(s_[i_])) ++i_;
    }
    v->text = std::string(s_.substr(start, i_ - start));
    return v;
  }
  static bool isdigit(char c) { return c >= '0' && c <= '9'; }
  static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(uint32_t* out) {
    if (i_ + 4 > s_.size()) return fail("short \\u escape"), false;
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      int h = hexval(s_[i_ + k]);
      if (h < 0) return fail("bad \\u escape"), false;
      v = v * 16 + static_cast<uint32_t>(h);
    }
    i_ += 4;
    *out = v;
    return true;
  }
  static void put_utf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | cp >> 6));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | cp >> 12));
      out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | cp >> 18));
      out->push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }
  bool string(std::string* out) {
    ++i_;  // the opening quote
    for (;;) {
      if (i_ >= s_.size()) return fail("unterminated string"), false;
      unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return fail("raw control character in a string"), false;
      if (c == '\\') {
        ++i_;
        if (i_ >= s_.size()) return fail("unterminated escape"), false;
        char e = s_[i_++];
        switch (e) {
          case '"': out->push_back('"'); break;
          case '\\': out->push_back('\\'); break;
          case '/': out->push_back('/'); break;
          case 'b': out->push_back('\b'); break;
          case 'f': out->push_back('\f'); break;
          case 'n': out->push_back('\n'); break;
          case 'r': out->push_back('\r'); break;
          case 't': out->push_back('\t'); break;
          case 'u': {
            uint32_t cp;
            if (!hex4(&cp)) return false;
            if (cp >= 0xd800 && cp < 0xdc00) {
              uint32_t lo;
              if (!lit("\\u") || !hex4(&lo) || lo < 0xdc00 || lo >= 0xe000)
                return fail("lone high surrogate"), false;
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
              return fail("lone low surrogate"), false;
            }
            put_utf8(out, cp);
            break;
          }
          default: return fail("bad escape"), false;
        }
        continue;
      }
      size_t n = utf8_len(s_, i_);
      if (n == 0) return fail("invalid UTF-8 in a string"), false;
      out->append(s_.substr(i_, n));
      i_ += n;
    }
  }

 public:
  // Length of the well-formed UTF-8 sequence at s[i] (Unicode table 3-7), or 0.
  static size_t utf8_len(std::string_view s, size_t i) {
    auto at = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0; };
    unsigned char c = at(0);
    auto cont = [&](size_t k) { return (at(k) & 0xc0) == 0x80; };
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
    if (c == 0xe0) return at(1) >= 0xa0 && at(1) <= 0xbf && cont(2) ? 3 : 0;
    if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) return cont(1) && cont(2) ? 3 : 0;
    if (c == 0xed) return at(1) >= 0x80 && at(1) <= 0x9f && cont(2) ? 3 : 0;
    if (c == 0xf0) return at(1) >= 0x90 && at(1) <= 0xbf && cont(2) && cont(3) ? 4 : 0;
    if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
    if (c == 0xf4) return at(1) >= 0x80 && at(1) <= 0x8f && cont(2) && cont(3) ? 4 : 0;
    return 0;
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
  std::string err_;
};

inline bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = JsonParser::utf8_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// ------------------------------------------------------------ Prometheus --

struct PromSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // decoded values
  double value;
  std::string value_text;
};

struct PromResult {
  std::string error;  // empty: valid
  std::vector<PromSample> samples;
  std::map<std::string, std::string> types;  // family name -> type
  std::map<std::string, std::string> help;   // family name -> decoded help
};

namespace detail {

inline bool metric_name(std::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

inline bool label_name(std::string_view n) {
  if (n.empty() || n.substr(0, 2) == "__") return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Go's strconv.ParseFloat forms Prometheus accepts, without hex floats and
// underscores (which prometheus_client rejects).
inline bool float_value(std::string_view v, double* out) {
  if (v == "NaN") return *out = NAN, true;
  if (v == "+Inf" || v == "Inf") return *out = INFINITY, true;
  if (v == "-Inf") return *out = -INFINITY, true;
  size_t i = 0;
  if (i < v.size() && (v[i] == '+' || v[i] == '-')) ++i;
  size_t digits = 0;
  while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i, ++digits;
  if (i < v.size() && v[i] == '.') {
    ++i;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    ++i;
    if (i < v.size() && (v[i] == '+' || v[i] == '-')) ++i;
    size_t e = 0;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i, ++e;
    if (e == 0) return false;
  }
  if (i != v.size()) return false;
  *out = strtod(std::string(v).c_str(), nullptr);
  return true;
}

}  // namespace detail

inline PromResult check_prometheus(std::string_view text) {
  PromResult r;
  auto fail = [&](size_t line_no, const std::string& why, std::string_view line) {
    r.error = "line " + std::to_string(line_no) + ": " + why + ": \"" +
              std::string(line.substr(0, 120)) + "\"";
    return r;
  };
  if (text.empty()) return fail(0, "empty exposition", "");
  if (text.back() != '\n') return fail(0, "does not end with a newline", "");
  if (!valid_utf8(text)) return fail(0, "invalid UTF-8", "");
  std::set<std::string> families_done;  // families whose samples have ended
  std::string current;                  // family of the previous sample
  std::set<std::string> series;
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (line.empty()) continue;  // the format allows blank lines
    if (line[0] == '#') {
      // "# HELP name text" / "# TYPE name type"; other comments are free text.
      std::string_view rest = line.substr(1);
      size_t k = 0;
      while (k < rest.size() && (rest[k] == ' ' || rest[k] == '\t')) ++k;
      rest = rest.substr(k);
      bool is_help = rest.substr(0, 5) == "HELP " || rest == "HELP";
      bool is_type = rest.substr(0, 5) == "TYPE " || rest == "TYPE";
      if (!is_help && !is_type) continue;
      rest = rest.substr(4);
      k = 0;
      while (k < rest.size() && (rest[k] == ' ' || rest[k] == '\t')) ++k;
      rest = rest.substr(k);
      size_t sp = rest.find_first_of(" \t");
      std::string name(rest.substr(0, sp));
      std::string_view arg = sp == std::string_view::npos ? "" : rest.substr(sp + 1);
      if (!detail::metric_name(name)) return fail(line_no, "bad metric name", line);
      if (families_done.count(name)) return fail(line_no, "HELP/TYPE after the family ended", line);
      if (is_help) {
        if (r.help.count(name)) return fail(line_no, "second HELP", line);
        std::string decoded;
        for (size_t j = 0; j < arg.size(); ++j) {
          if (arg[j] != '\\') {
            decoded.push_back(arg[j]);
            continue;
          }
          if (j + 1 >= arg.size()) return fail(line_no, "dangling backslash in HELP", line);
          char e = arg[++j];
          if (e == '\\') decoded.push_back('\\');
          else if (e == 'n') decoded.push_back('\n');
          else return fail(line_no, "bad escape in HELP", line);
        }
        r.help[name] = decoded;
      } else {
        while (!arg.empty() && (arg.back() == ' ' || arg.back() == '\t')) arg.remove_suffix(1);
        if (arg != "counter" && arg != "gauge" && arg != "histogram" && arg != "summary" &&
            arg != "untyped")
          return fail(line_no, "bad TYPE", line);
        if (r.types.count(name)) return fail(line_no, "second TYPE", line);
        if (current == name) return fail(line_no, "TYPE after the family's samples", line);
        r.types[name] = std::string(arg);
      }
      continue;
    }
    // A sample: name[{labels}] value [timestamp]
    PromSample s;
    size_t j = 0;
    while (j < line.size() && line[j] != '{' && line[j] != ' ' && line[j] != '\t') ++j;
    s.name = std::string(line.substr(0, j));
    if (!detail::metric_name(s.name)) return fail(line_no, "bad metric name", line);
    if (j < line.size() && line[j] == '{') {
      ++j;
      std::set<std::string> seen;
      for (;;) {
        if (j < line.size() && line[j] == '}') {
          ++j;
          break;
        }
        size_t start = j;
        while (j < line.size() && line[j] != '=') ++j;
        std::string lname(line.substr(start, j - start));
        if (!detail::label_name(lname)) return fail(line_no, "bad label name", line);
        if (!seen.insert(lname).second) return fail(line_no, "duplicate label", line);
        if (j + 1 >= line.size() || line[j + 1] != '"') return fail(line_no, "label value not quoted", line);
        j += 2;
        std::string val;
        for (;;) {
          if (j >= line.size()) return fail(line_no, "unterminated label value", line);
          char c = line[j++];
          if (c == '"') break;
          if (c == '\\') {
            if (j >= line.size()) return fail(line_no, "dangling backslash", line);
            char e = line[j++];
            if (e == '\\') val.push_back('\\');
            else if (e == '"') val.push_back('"');
            else if (e == 'n') val.push_back('\n');
            else return fail(line_no, "bad escape in a label value", line);
            continue;
          }
          val.push_back(c);
        }
        s.labels.emplace_back(lname, val);
        if (j < line.size() && line[j] == ',') {
          ++j;
          continue;
        }
        if (j < line.size() && line[j] == '}') {
          ++j;
          break;
        }
        return fail(line_no, "expected ',' or '}' after a label", line);
      }
    }
    if (j >= line.size() || (line[j] != ' ' && line[j] != '\t'))
      return fail(line_no, "no space before the value", line);
    while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
    size_t vstart = j;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    s.value_text = std::string(line.substr(vstart, j - vstart));
    if (!detail::float_value(s.value_text, &s.value)) return fail(line_no, "bad value", line);
    while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
    if (j < line.size()) {  // a timestamp: an integer of milliseconds
      size_t t = j;
      if (line[t] == '-') ++t;
      if (t >= line.size()) return fail(line_no, "bad timestamp", line);
      for (; t < line.size(); ++t)
        if (line[t] < '0' || line[t] > '9') return fail(line_no, "bad timestamp", line);
    }
    // The family: the sample's own name (slabby writes counters and gauges only).
    if (s.name != current) {
      if (!current.empty()) families_done.insert(current);
      if (families_done.count(s.name)) return fail(line_no, "family's samples not together", line);
      current = s.name;
    }
    auto type = r.types.find(s.name);
    if (type != r.types.end() && type->second == "counter" && !(s.value >= 0))
      return fail(line_no, "negative or NaN counter", line);
    std::string key = s.name;
    auto sorted = s.labels;
    std::sort(sorted.begin(), sorted.end());
    for (auto& [k, v] : sorted) key += "\x01" + k + "\x02" + v;
    if (!series.insert(key).second) return fail(line_no, "duplicate series", line);
    r.samples.push_back(std::move(s));
  }
  return r;
}

}  // namespace fuzzcheck

#pragma clang attribute pop

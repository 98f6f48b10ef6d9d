#include "common/writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace slabby {

size_t expand_pid_pattern(const char* pattern, char* out, size_t cap) {
  size_t n = 0;
  for (const char* s = pattern; *s != '\0' && n < cap - 24; ++s) {
    if (s[0] == '%' && s[1] == 'p') {
      n += format_u64(static_cast<uint64_t>(getpid()), out + n);
      ++s;
    } else {
      out[n++] = *s;
    }
  }
  out[n] = '\0';
  return n;
}

size_t format_u64(uint64_t v, char* out) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

void Writer::flush() {
  int saved = errno;
  size_t off = 0;
  while (off < len_) {
    ssize_t w = ::write(fd_, buf_ + off, len_ - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (error_ == 0) error_ = w < 0 ? errno : ENOSPC;
      break;
    }
    off += static_cast<size_t>(w);
  }
  len_ = 0;
  errno = saved;
}

Writer& Writer::str(const char* s, size_t n) {
  while (n > 0) {
    if (len_ == kCapacity) flush();
    size_t take = kCapacity - len_ < n ? kCapacity - len_ : n;
    memcpy(buf_ + len_, s, take);
    len_ += take;
    s += take;
    n -= take;
  }
  return *this;
}

Writer& Writer::str(const char* s) { return str(s, strlen(s)); }

Writer& Writer::errno_text(int e) {
  const char* text = strerrordesc_np(e);
  if (text != nullptr) return str(text);
  return str("error ").u64(static_cast<uint64_t>(e));
}

void report_file_error(const char* what, const char* path, int err, int fd) {
  Writer w(fd);
  w.str("slabby: cannot ").str(what).str(" ").str(path).str(": ").errno_text(err).ch('\n');
}
Writer& Writer::ch(char c) { return str(&c, 1); }

Writer& Writer::u64(uint64_t v) {
  char tmp[24];
  return str(tmp, format_u64(v, tmp));
}

Writer& Writer::i64(int64_t v) {
  if (v < 0) {
    ch('-');
    return u64(~static_cast<uint64_t>(v) + 1);
  }
  return u64(static_cast<uint64_t>(v));
}

Writer& Writer::hex(uint64_t v) {
  char tmp[18];
  size_t n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  str("0x");
  for (size_t i = 0; i < n; ++i) ch(tmp[n - 1 - i]);
  return *this;
}

Writer& Writer::u64_pad(uint64_t v, int width) {
  char tmp[24];
  size_t n = format_u64(v, tmp);
  for (int i = static_cast<int>(n); i < width; ++i) ch(' ');
  return str(tmp, n);
}

Writer& Writer::str_pad(const char* s, int width) {
  size_t n = strlen(s);
  str(s, n);
  for (int i = static_cast<int>(n); i < width; ++i) ch(' ');
  return *this;
}

Writer& Writer::fixed(uint64_t v, int decimals) {
  uint64_t scale = 1;
  for (int i = 0; i < decimals; ++i) scale *= 10;
  u64(v / scale);
  if (decimals > 0) {
    ch('.');
    uint64_t frac = v % scale;
    char tmp[24];
    size_t n = format_u64(frac, tmp);
    for (int i = static_cast<int>(n); i < decimals; ++i) ch('0');
    str(tmp, n);
  }
  return *this;
}

Writer& Writer::bytes(uint64_t v) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  uint64_t tenths = v * 10;
  uint64_t div = 1;
  while (unit < 4 && v / div >= 1024) {
    div *= 1024;
    ++unit;
  }
  tenths = (v * 10 + div / 2) / div;
  if (unit == 0) return u64(v).str(" B");
  fixed(tenths, 1).ch(' ');
  return str(kUnits[unit]);
}

}  // namespace slabby

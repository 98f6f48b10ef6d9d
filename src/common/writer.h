// slabby: text output without allocating.
//
// The allocator must never call printf or iostream (they allocate, and may
// call back into malloc). Writer formats into a fixed buffer on the caller's
// stack and writes it to a file descriptor with write(2), preserving errno.
#pragma once

#include <cstddef>
#include <cstdint>

namespace slabby {

class Writer {
 public:
  explicit Writer(int fd) : fd_(fd) {}
  ~Writer() { flush(); }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  Writer& str(const char* s);
  Writer& str(const char* s, size_t n);
  Writer& ch(char c);
  Writer& u64(uint64_t v);
  Writer& i64(int64_t v);
  Writer& hex(uint64_t v);  // 0x-prefixed
  // Unsigned number right-aligned in `width` columns.
  Writer& u64_pad(uint64_t v, int width);
  // Text left-aligned in `width` columns.
  Writer& str_pad(const char* s, int width);
  // Bytes with a binary unit: "12.3 MiB".
  Writer& bytes(uint64_t v);
  // Fixed-point: v / 10^decimals.
  Writer& fixed(uint64_t v, int decimals);
  // The text of an errno value ("No space left on device"), without
  // strerror (which may allocate for its locale).
  Writer& errno_text(int e);
  void flush();
  // The errno of the first write that failed (0: none did).
  int error() const { return error_; }

 private:
  static constexpr size_t kCapacity = 1024;
  int fd_;
  int error_ = 0;
  size_t len_ = 0;
  char buf_[kCapacity];
};

// Formats an unsigned number into out (no terminator); returns digits written.
size_t format_u64(uint64_t v, char* out);

// Copies a path pattern into out with each "%p" replaced by the process id
// (SLABBY_STATS_FILE, SLABBY_LOG), NUL-terminated. Stops 24 bytes short of
// cap, leaving room for a pid and a suffix such as ".tmp". Returns the length.
size_t expand_pid_pattern(const char* pattern, char* out, size_t cap);

// Writes "slabby: cannot <what> <path>: <errno text>\n" to fd, stderr or
// slabby's duplicate of it (one line for a file slabby cannot open or write:
// config, stats, log, profile).
void report_file_error(const char* what, const char* path, int err, int fd = 2);

}  // namespace slabby

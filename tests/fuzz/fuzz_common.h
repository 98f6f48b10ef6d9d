// Helpers shared by the fuzz targets.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace fuzzcheck {

// A failed property: print what and where, then abort (libFuzzer saves the
// input as a crash).
[[noreturn]] inline void fail(const char* target, const std::string& what) {
  fprintf(stderr, "%s: PROPERTY FAILED: %s\n", target, what.c_str());
  fflush(stderr);
  abort();
}

// An in-memory file to hand to code that writes to a file descriptor.
class MemFile {
 public:
  MemFile() {
    fd_ = memfd_create("fuzz-out", MFD_CLOEXEC);
    if (fd_ < 0) abort();
  }
  ~MemFile() { close(fd_); }
  int fd() const { return fd_; }
  void clear() {
    if (ftruncate(fd_, 0) != 0 || lseek(fd_, 0, SEEK_SET) != 0) abort();
  }
  std::string contents() const {
    std::string out;
    char buf[65536];
    off_t off = 0;
    for (;;) {
      ssize_t n = pread(fd_, buf, sizeof(buf), off);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
      off += n;
    }
    return out;
  }

 private:
  int fd_;
};

// Where a target should dump what it wrote (SLABBY_FUZZ_DUMP=DIR), for
// tests/fuzz/check_outputs.py; nullptr when not asked.
inline const char* dump_dir() {
  static const char* dir = getenv("SLABBY_FUZZ_DUMP");
  return dir != nullptr && dir[0] != '\0' ? dir : nullptr;
}

inline void dump(const std::string& name, const std::string& text) {
  const char* dir = dump_dir();
  if (dir == nullptr) return;
  std::string path = std::string(dir) + "/" + name;
  FILE* f = fopen(path.c_str(), "wb");
  if (f == nullptr) return;
  fwrite(text.data(), 1, text.size(), f);
  fclose(f);
}

}  // namespace fuzzcheck

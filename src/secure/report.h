// slabby: the one-line reports of the checked paths. Each detection writes
// one "slabby: ..." line to stderr and aborts (SIGABRT); nothing allocates.
#pragma once

#include <cstdint>

#include "common/base.h"
#include "common/writer.h"

namespace slabby {

class Report {
 public:
  Report() : w_(2) { w_.str("slabby: "); }
  Report& str(const char* s) {
    w_.str(s);
    return *this;
  }
  Report& u64(uint64_t v) {
    w_.u64(v);
    return *this;
  }
  Report& ptr(const void* p) {
    w_.hex(reinterpret_cast<uintptr_t>(p));
    return *this;
  }
  Report& ptr(uintptr_t p) {
    w_.hex(p);
    return *this;
  }
  // " (size class 5, 64-byte blocks)", or " (large block of 40960 bytes)"
  // for class 0 or a medium class, with the usable size (0: not named).
  Report& where(unsigned cls, uint64_t large_usable = 0);
  // Ends the line and aborts the process with SIGABRT.
  [[noreturn]] SLABBY_COLD void abort_now();
  // Ends the line and writes it (warnings that do not abort).
  void emit();

 private:
  Writer w_;
};

}  // namespace slabby

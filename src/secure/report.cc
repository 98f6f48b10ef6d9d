#include "secure/report.h"

#include <cstdlib>

#include "common/size_class.h"

namespace slabby {

Report& Report::where(unsigned cls, uint64_t large_usable) {
  // A medium block is a large one to the program: its own size, not its class's.
  if (cls == 0 || is_medium_class(cls)) {
    w_.str(" (large block");
    if (large_usable != 0) w_.str(" of ").u64(large_usable).str(" bytes");
    w_.str(")");
  } else {
    w_.str(" (size class ").u64(cls).str(", ").u64(class_size(cls)).str("-byte blocks)");
  }
  return *this;
}

void Report::abort_now() {
  w_.ch('\n');
  w_.flush();
  // glibc's abort() takes no stdio locks and allocates nothing; it raises
  // SIGABRT even when the program blocked or caught it.
  abort();
}

void Report::emit() {
  w_.ch('\n');
  w_.flush();
}

}  // namespace slabby

#include "heap/region.h"

#include "os/os.h"

namespace slabby {

bool Region::reserve(size_t bytes, size_t align, size_t step, bool readable) {
  void* p = os::reserve(bytes, align, readable);
  if (p == nullptr) return false;
  base_ = static_cast<char*>(p);
  reserved_ = bytes;
  committed_ = 0;
  step_ = step;
  return true;
}

bool Region::ensure(size_t bytes) {
  if (bytes <= committed_) return true;
  if (bytes > reserved_) return false;
  size_t target = round_up(bytes, step_);
  if (target > reserved_) target = reserved_;
  if (!os::commit(base_ + committed_, target - committed_)) return false;
  committed_ = target;
  return true;
}

}  // namespace slabby

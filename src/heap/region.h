// slabby: a reservation whose prefix is committed on demand (the page
// heap's arena and its two maps).
#pragma once

#include <cstddef>

#include "common/base.h"

namespace slabby {

class Region {
 public:
  // `step`: commit granularity (a multiple of the page size). `readable`:
  // the part not committed yet reads as zeros (os::reserve).
  bool reserve(size_t bytes, size_t align, size_t step, bool readable = false);
  // Commits at least [base, base + bytes). False if the OS refuses.
  bool ensure(size_t bytes);
  char* base() const { return base_; }
  size_t reserved() const { return reserved_; }
  size_t committed() const { return committed_; }

 private:
  char* base_ = nullptr;
  size_t reserved_ = 0;
  size_t committed_ = 0;
  size_t step_ = kPageSize;
};

}  // namespace slabby

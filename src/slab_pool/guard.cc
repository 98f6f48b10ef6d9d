// The slab region: mapping, guard pages and the canary secret (region.h).
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "slab_pool/fault_report.h"
#include "slab_pool/region.h"

namespace slabby::slab_pool {
namespace {

size_t align_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

uint64_t random_secret() {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, GRND_NONBLOCK) != sizeof s) {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s = uint64_t(ts.tv_nsec) * 0x9e3779b97f4a7c15ull ^ reinterpret_cast<uintptr_t>(&s);
  }
  return s | 1;  // never zero: a zeroed (secure) canary must not match
}

}  // namespace

absl::Status Region::map(size_t slab, uint32_t capacity, size_t cache_line, bool guard_pages,
                         bool bit_guard) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t canary = bit_guard ? kCanaryBytes : 0;
  size_t data = 0;
  if (guard_pages) {
    data = align_up(slab + canary, page);
    stride_ = data + page;
    first_ = page + data - slab;
    canary_offset_ = -static_cast<ptrdiff_t>(kCanaryBytes);
    map_bytes_ = page + size_t{capacity} * stride_;
  } else {
    stride_ = align_up(slab + canary, cache_line);
    first_ = 0;
    canary_offset_ = static_cast<ptrdiff_t>(slab);
    map_bytes_ = align_up(size_t{capacity} * stride_, page);
  }
  if (map_bytes_ / stride_ < capacity)  // overflow
    return absl::InvalidArgumentError("slabby: pool too large for the address space");

  // MAP_NORESERVE: pages are charged as touched, like slabby's arena.
  void* p = mmap(nullptr, map_bytes_, guard_pages ? PROT_NONE : PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return absl::ResourceExhaustedError(
        absl::StrCat("slabby: out of memory: cannot map ", map_bytes_, " bytes for the pool"));
  base_ = static_cast<std::byte*>(p);
  if (guard_pages) {
    // One mapping per slab (the kernel splits the VMA): vm.max_map_count
    // (65530 by default) bounds the capacity with guard pages.
    for (uint32_t i = 0; i < capacity; ++i) {
      if (mprotect(base_ + page + size_t{i} * stride_, data, PROT_READ | PROT_WRITE) != 0) {
        int err = errno;
        unmap();
        return absl::ResourceExhaustedError(absl::StrCat(
            "slabby: out of memory: guard pages for slab ", i, " of ", capacity, " refused (errno ",
            err, "; each guarded slab is one mapping, see vm.max_map_count)"));
      }
    }
  }
  if (guard_pages) {
    guarded_ = true;
    register_guarded({reinterpret_cast<uintptr_t>(base_),
                      reinterpret_cast<uintptr_t>(base_) + map_bytes_, page, stride_, data, slab});
  }
  secret_ = random_secret();
  if (bit_guard)
    for (uint32_t i = 0; i < capacity; ++i) arm_canary(i);
  return absl::OkStatus();
}

void Region::unmap() {
  if (guarded_) unregister_guarded(reinterpret_cast<uintptr_t>(base_));
  guarded_ = false;
  if (base_ != nullptr) munmap(base_, map_bytes_);
  base_ = nullptr;
}

}  // namespace slabby::slab_pool

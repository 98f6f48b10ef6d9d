// slabby::Pool's slab region: one mapping holding every slab, with optional
// PROT_NONE guard pages and canaries (Options::guard_pages, bit_guard).
//
// Layout without guard pages: slot i at base + i * stride; the slab first,
// then (bit guard) a 16-byte canary; stride = slab (+ canary) rounded up to
// the cache line, so every slab is cache-line aligned.
//
// With guard pages: [guard][data 0][guard][data 1][guard] ... where each data
// range is whole pages and the slab sits at its END, so the first byte past a
// slab is in a PROT_NONE page and a one-byte overflow faults. The canary then
// sits just before the slab (catching underflows the guard page cannot).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/status/status.h"

namespace slabby::slab_pool {

inline constexpr size_t kCanaryBytes = 16;
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "canary_word places its bytes so");

class Region {
 public:
  // Computes the layout and maps it. slab is already cache-line aligned.
  absl::Status map(size_t slab, uint32_t capacity, size_t cache_line, bool guard_pages,
                   bool bit_guard);
  void unmap();

  std::byte* slab(uint32_t i) const { return base_ + first_ + size_t{i} * stride_; }
  size_t stride() const { return stride_; }
  size_t mapped_bytes() const { return map_bytes_; }
  bool mapped() const { return base_ != nullptr; }

  // Canary of slot i: 16 bytes derived from a per-pool secret and i, so a
  // slab copied over its neighbour does not carry a valid canary along. The
  // byte next to the slab on either side (the first, after a slab; the last,
  // before one) is never 0x00, 0xff or ASCII, so a one-byte overflow or
  // underflow of a string, a terminator or a fill is always caught (with a
  // random byte there, 1 in 256 were missed; a test writing 7 failed so).
  void arm_canary(uint32_t i) const {
    uint64_t v[2] = {canary_word(i), ~canary_word(i)};
    std::memcpy(slab(i) + canary_offset_, v, sizeof v);
  }
  bool canary_intact(uint32_t i) const {
    uint64_t v[2];
    std::memcpy(v, slab(i) + canary_offset_, sizeof v);
    return v[0] == canary_word(i) && v[1] == ~canary_word(i);
  }

 private:
  // Little-endian: byte 0 (after the slab) in 0x80..0xfe, byte 7 in
  // 0x01..0x7f, so byte 15 of the canary, ~byte 7 (before a guarded slab),
  // in 0x80..0xfe.
  uint64_t canary_word(uint32_t i) const {
    uint64_t x = secret_ ^ (uint64_t{i} * 0x9e3779b97f4a7c15ull);
    return (x & 0x00ffffffffffff00ull) | (0x80 | (x & 0x7e)) | ((((x >> 56) & 0x7e) | 1) << 56);
  }

  std::byte* base_ = nullptr;
  size_t map_bytes_ = 0;
  size_t first_ = 0;             // offset of slab 0 from base_
  size_t stride_ = 0;            // from one slab to the next
  ptrdiff_t canary_offset_ = 0;  // from a slab's start
  uint64_t secret_ = 0;
  bool guarded_ = false;  // registered for fault reports (fault_report.h)
};

}  // namespace slabby::slab_pool

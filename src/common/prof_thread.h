// slabby: a thread's heap-profile sampling state (telemetry/heap_profile.h),
// kept in its thread cache so that the sampler needs no TLS of its own.
#pragma once

#include <cstdint>

namespace slabby {

struct ProfThread {
  int64_t bytes_left;  // bytes to the next sample point of large requests
  uint64_t rng;        // xorshift state (0: not seeded yet)
};

}  // namespace slabby

// The seeds' quick start in C++: a pool of 1000 4 KiB slabs, secure and
// health-checked; allocate, use, release, read the stats.
#include <cstdio>
#include <cstring>

#include "slabby/pool.hpp"

int main() {
  slabby::Options options;
  options.secure = true;         // zero slabs on release
  options.health_checks = true;  // latency sampling and health metrics
  auto pool = slabby::Pool::Create(4096, 1000, options);
  if (!pool.ok()) {
    std::fprintf(stderr, "create: %s\n", pool.status().ToString().c_str());
    return 1;
  }

  {
    absl::StatusOr<slabby::SlabRef> ref = (*pool)->Allocate();
    if (!ref.ok()) {
      std::fprintf(stderr, "allocate: %s\n", ref.status().ToString().c_str());
      return 1;
    }
    std::span<std::byte> data = ref->bytes();
    static const char kHello[] = "Hello, Slabby!";
    std::memcpy(data.data(), kHello, sizeof kHello);
    std::printf("Allocated %zu bytes: %s\n", data.size(), reinterpret_cast<char*>(data.data()));
  }  // the reference releases its slab here (the Go version's defer ref.Release())

  slabby::PoolStats stats = (*pool)->Stats();
  std::printf("Total allocations: %llu\n",
              static_cast<unsigned long long>(stats.total_allocations));
  std::printf("Memory utilization: %.2f%%\n", stats.memory_utilization * 100);
  if (stats.total_allocations != 1 || stats.used_slabs != 0) return 1;
  return (*pool)->Close().ok() ? 0 : 1;
}

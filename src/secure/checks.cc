#include "secure/checks.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <ctime>

#include "config/config.h"
#include "secure/guard_fault.h"

namespace slabby {

constinit Checks g_checks = {};

namespace {

uint64_t random_secret() {
  uint64_t v = 0;
  // getrandom(2) straight, no libc wrapper state; GRND_NONBLOCK (1): early
  // boot must not block a malloc.
  if (syscall(SYS_getrandom, &v, sizeof v, 1) == static_cast<long>(sizeof v) && v != 0) return v;
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  v = static_cast<uint64_t>(ts.tv_nsec) * 0x9e3779b97f4a7c15ULL ^ reinterpret_cast<uintptr_t>(&v);
  return v | 1;
}

}  // namespace

void checks_init(const Config& cfg) {
  Checks c = {};
  bool secure = cfg.secure;
  c.zero_free = (cfg.zero & 1) != 0 || secure;
  c.zero_alloc = (cfg.zero & 2) != 0;
  // The hardened library checks on its inline paths: the bit guard is
  // always on there (config/config.cc refuses SLABBY_BITGUARD=0 there).
  c.bitguard = cfg.bitguard || secure || kHardenedBuild;
  c.tags = c.zero_free || c.bitguard;
  c.guard_large = cfg.guard_pages;
  c.guard_sample = static_cast<uint32_t>(cfg.guard_sample);
  c.quarantine = cfg.quarantine;
  c.leak_check = cfg.leak_check;
  c.leak_sample = static_cast<uint32_t>(cfg.leak_sample == 0 ? 1 : cfg.leak_sample);
  c.small = c.zero_free || c.zero_alloc || c.bitguard || c.guard_sample != 0 || c.quarantine != 0 ||
            c.leak_check;
  c.extras = c.zero_alloc || c.guard_sample != 0 || c.leak_check || c.quarantine != 0;
  c.inline_bins = kHardenedBuild && c.bitguard && !c.zero_free && !c.extras;
  c.on = c.zero_free || c.zero_alloc || c.bitguard || c.guard_large || c.guard_sample != 0 ||
         c.quarantine != 0 || c.leak_check;
  if (c.on) {
    // splitmix64 steps from one random seed: four unrelated keys.
    uint64_t x = random_secret();
    uint64_t* keys[] = {&c.key_live, &c.key_freed, &c.key_fresh, &c.key_link};
    for (uint64_t* k : keys) {
      x += 0x9e3779b97f4a7c15ULL;
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      *k = z ^ (z >> 31);
    }
  }
  uint64_t never = c.inline_bins ? 0 : uint64_t{1} << 63;
  c.inline_key_live = c.key_live ^ never;
  c.inline_key_link = c.key_link ^ never;
  g_checks = c;
  if (c.guard_large || c.guard_sample != 0) guard_fault_install();
}

}  // namespace slabby

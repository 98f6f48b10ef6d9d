// Test helper: the kernel's flags for a mapping (/proc/self/smaps VmFlags),
// for tests that check which pages slabby marked for transparent huge pages
// (tests/unit/huge_slabs_test.cc, tests/lifecycle/huge_slabs.cc).
#ifndef SLABBY_TESTS_COMMON_VM_FLAGS_H
#define SLABBY_TESTS_COMMON_VM_FLAGS_H

#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace slabby_test {

// The VmFlags of the mapping holding p ("hg": MADV_HUGEPAGE, "nh":
// MADV_NOHUGEPAGE); empty if not found.
inline std::string vm_flags(uintptr_t p) {
  FILE* f = fopen("/proc/self/smaps", "r");
  if (f == nullptr) return "";
  char line[512];
  bool inside = false;
  std::string flags;
  while (fgets(line, sizeof line, f) != nullptr) {
    unsigned long a, b;
    char dash;
    if (sscanf(line, "%lx%c%lx ", &a, &dash, &b) == 3 && dash == '-') {
      inside = p >= a && p < b;
    } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
      flags = line + 8;
      break;
    }
  }
  fclose(f);
  return flags;
}

inline bool marked_huge(uintptr_t p) { return vm_flags(p).find(" hg") != std::string::npos; }

// Whether this kernel shows MADV_HUGEPAGE marks at all (a kernel without
// transparent huge pages, or an emulator, refuses or ignores them): a fresh
// mapping marked here is looked at.
inline bool kernel_shows_huge_marks() {
  const size_t bytes = size_t{4} << 20;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  bool ok = madvise(p, bytes, MADV_HUGEPAGE) == 0 && marked_huge(reinterpret_cast<uintptr_t>(p));
  munmap(p, bytes);
  return ok;
}

}  // namespace slabby_test

#endif  // SLABBY_TESTS_COMMON_VM_FLAGS_H

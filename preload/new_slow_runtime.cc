// slabby: new_slow for libslabby_malloc.so (new_slow.h), without linking a
// C++ runtime.
//
// Linking libstdc++ would load it, and libm with it, into every process
// slabby runs in: 1.4 MiB of resident memory in a small C program, more
// than slabby's own footprint (docs/benchmarks.md, "Footprint: a small
// program"). Only this cold path
// needs the runtime, and whoever calls operator new has one loaded already:
// a C++ program globally, a C program's C++ plugin locally (dlopen). So the
// runtime is found by name with RTLD_NOLOAD (never loaded), libstdc++ or
// libc++, and used through three of its symbols:
// - get_new_handler, for the standard's loop;
// - __throw_bad_alloc, which throws std::bad_alloc from inside the runtime;
// - its own nothrow operator new, which calls the throwing one (slabby's:
//   the global definition) in a try block and returns nullptr on any
//   exception. The nothrow forms delegate to it, so nothing here catches:
//   this file has no landing pad, and the library needs neither a
//   personality routine nor _Unwind_Resume. Exceptions pass through these
//   frames by their unwind tables.
// A failed throwing operator new with no runtime found (which a program
// cannot arrange short of calling the mangled symbol from C) is reported in
// one line and aborts: there is nothing to throw with.
#include <dlfcn.h>
#include <errno.h>

#include <new>

#include "frontend/allocator.h"
#include "new_slow.h"
#include "secure/report.h"

namespace slabby {
namespace {

struct CxxRuntime {
  std::new_handler (*get_new_handler)();
  void (*throw_bad_alloc)();  // throws; never returns
  void* (*nothrow_new)(size_t, const std::nothrow_t&) noexcept;
  void* (*nothrow_new_aligned)(size_t, std::align_val_t, const std::nothrow_t&) noexcept;
};

template <typename F>
bool find(void* lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  return *out != nullptr;
}

// The runtime already in the process, or false. dlsym on the library's
// handle finds its own definitions (its nothrow operator new, not slabby's).
// errno is left as it was.
bool find_runtime(CxxRuntime* rt) noexcept {
  struct Names {
    const char* lib;
    const char* throw_bad_alloc;
  };
  static constexpr Names kRuntimes[] = {
      {"libstdc++.so.6", "_ZSt17__throw_bad_allocv"},
      {"libc++.so.1", "_ZNSt3__117__throw_bad_allocEv"},
  };
  int saved = errno;
  bool found = false;
  for (const Names& r : kRuntimes) {
    void* lib = dlopen(r.lib, RTLD_LAZY | RTLD_NOLOAD);
    if (lib == nullptr) continue;
    found = find(lib, "_ZSt15get_new_handlerv", &rt->get_new_handler) &&
            find(lib, r.throw_bad_alloc, &rt->throw_bad_alloc) &&
            find(lib, "_ZnwmRKSt9nothrow_t", &rt->nothrow_new) &&
            find(lib, "_ZnwmSt11align_val_tRKSt9nothrow_t", &rt->nothrow_new_aligned);
    // The handle stays open when found: the runtime is in use anyway.
    if (found) break;
    dlclose(lib);
  }
  dlerror();  // a failed NOLOAD leaves an error string: not the program's
  errno = saved;
  return found;
}

[[noreturn]] SLABBY_COLD void no_runtime(size_t n) {
  Report r;
  r.str("operator new(").u64(n).str(") failed and no C++ runtime (libstdc++.so.6, libc++.so.1) ");
  r.str("is loaded to throw std::bad_alloc");
  r.abort_now();
}

}  // namespace

void* new_slow(size_t n, size_t align) {
  CxxRuntime rt;
  if (!find_runtime(&rt)) no_runtime(n);
  for (;;) {
    std::new_handler h = rt.get_new_handler();
    if (h == nullptr) {
      rt.throw_bad_alloc();
      __builtin_trap();  // it throws
    }
    h();
    void* p = align > kMinAlign ? aligned_alloc_impl(align, n) : malloc_fast(n);
    if (p != nullptr) return p;
  }
}

// The runtime's nothrow form runs the loop through slabby's throwing
// operator new and catches what it throws. Its nothrow_t argument is only a
// tag (std::nothrow itself would be a reference to libstdc++).
void* new_slow_nothrow(size_t n, size_t align) noexcept {
  static constexpr std::nothrow_t kNothrow{};
  CxxRuntime rt;
  if (!find_runtime(&rt)) return nullptr;
  if (align > kMinAlign) return rt.nothrow_new_aligned(n, std::align_val_t(align), kNothrow);
  return rt.nothrow_new(n, kNothrow);
}

}  // namespace slabby

// Loaded by cxx_plugin (a C program) with RTLD_LOCAL, so libstdc++ comes in
// as this module's dependency, outside the global scope. Its operator new
// binds to slabby's (the global scope first), and slabby's failure path must
// find this locally loaded runtime (preload/new_slow_runtime.cc): throw
// std::bad_alloc, run the new_handler loop, and return nullptr from the
// nothrow forms, a throwing handler included. Not linked with slabby.
#include <cstdint>
#include <cstdio>
#include <new>

namespace {

int g_calls;
struct HandlerError {};
void uninstall_after_two() {
  if (++g_calls == 2) std::set_new_handler(nullptr);
}
void throwing_handler() { throw HandlerError{}; }

void* volatile g_sink;
size_t huge() {
  volatile size_t n = SIZE_MAX / 2;
  return n;
}

#define CHECK(cond)                                              \
  do {                                                           \
    if (!(cond)) {                                               \
      std::fprintf(stderr, "cxx_plugin_lib: failed: %s\n", #cond); \
      return 1;                                                  \
    }                                                            \
  } while (0)

}  // namespace

extern "C" int plugin_check() {
  // An ordinary new/delete.
  int* v = new int[100];
  v[99] = 7;
  CHECK(v[99] == 7);
  delete[] v;

  bool thrown = false;
  try {
    g_sink = ::operator new(huge());
  } catch (const std::bad_alloc&) {
    thrown = true;
  }
  CHECK(thrown);
  thrown = false;
  try {
    g_sink = ::operator new[](huge(), std::align_val_t(4096));
  } catch (const std::bad_alloc&) {
    thrown = true;
  }
  CHECK(thrown);
  CHECK(::operator new(huge(), std::nothrow) == nullptr);
  CHECK(::operator new(huge(), std::align_val_t(256), std::nothrow) == nullptr);

  // The handler loop: called until it uninstalls itself, then bad_alloc.
  std::set_new_handler(uninstall_after_two);
  thrown = false;
  try {
    g_sink = ::operator new(huge());
  } catch (const std::bad_alloc&) {
    thrown = true;
  }
  CHECK(thrown);
  CHECK(g_calls == 2);

  // A handler's own exception propagates from the throwing forms, and
  // makes the nothrow ones return nullptr.
  std::set_new_handler(throwing_handler);
  thrown = false;
  try {
    g_sink = ::operator new(huge());
  } catch (const HandlerError&) {
    thrown = true;
  }
  CHECK(thrown);
  CHECK(::operator new[](huge(), std::nothrow) == nullptr);
  std::set_new_handler(nullptr);
  return 0;
}

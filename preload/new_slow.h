// slabby: the C++ operators' failure path (operator new could not allocate).
// The standard's loop: call the new_handler until memory comes or there is
// none; then throw std::bad_alloc, or return nullptr for the nothrow forms
// (a handler that throws makes them return nullptr too).
//
// Two implementations, one per library, chosen by the build:
//   new_slow_runtime.cc  libslabby_malloc.so: finds the C++ runtime the
//                        program already has, so the library links none
//   new_slow_linked.cc   libslabby_malloc.a: uses libstdc++ directly (a
//                        program linking the archive links libstdc++ too)
#pragma once

#include <cstddef>

namespace slabby {

// align: 0 (or at most the minimum alignment) for the plain forms. The
// nothrow forms' path is noexcept itself, so that the noexcept operators
// calling it need no terminate handler (a landing pad, and with it the C++
// runtime's personality routine).
__attribute__((noinline, cold)) void* new_slow(size_t n, size_t align);
__attribute__((noinline, cold)) void* new_slow_nothrow(size_t n, size_t align) noexcept;

}  // namespace slabby

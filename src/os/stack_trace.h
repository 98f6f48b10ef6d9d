// slabby: the program's call stack at an allocation, for the heap profile
// and the leak report. glibc's backtrace (libgcc's unwinder: works without
// frame pointers), with slabby's own frames taken off the top.
//
// backtrace loads libgcc_s and allocates the first time it runs, so
// stack_trace_start runs it once, outside every lock, before the first
// capture; a capture that re-enters malloc on the same thread (it should
// not once primed) returns 0 frames instead of recursing.
#pragma once

namespace slabby::os {

// Primes the unwinder and finds slabby's own module. Idempotent; call after
// init, outside any allocator lock.
void stack_trace_start() noexcept;

// Up to max return addresses of the calling thread's stack, innermost first,
// without slabby's frames (when slabby is linked into the main program, where
// its frames cannot be told apart by module, a fixed count is skipped).
// 0 when called from inside another capture on this thread.
int stack_trace_capture(void** out, int max) noexcept;

}  // namespace slabby::os

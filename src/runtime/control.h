// slabby: runtime control (slabby_set_option, slabby_flush_thread_cache,
// slabby_dump_profile): what may change in a running process, and how each
// change reaches the layers below. Called from the exported C API only.
#pragma once

#include <cstddef>

namespace slabby {

// slabby_set_option: SLABBY_OK or an SLABBY_ERR_* code (include/slabby/slabby.h).
int control_set_option(const char* name, const char* value) noexcept;
// The calling thread's cached blocks (or its CPU's) back to the pools.
size_t control_flush_thread_cache() noexcept;
// slabby_dump_profile.
int control_dump_profile(const char* path) noexcept;

}  // namespace slabby

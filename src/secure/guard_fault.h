// slabby: the SIGSEGV handler of the guard pages. A fault on a slabby guard
// page (or on a guarded block waiting in quarantine) is counted, named in one
// line, and re-raised with the default action, so the process still dies of
// SIGSEGV with its core dump. Faults elsewhere go to the handler installed
// before slabby's, or to the default action.
#pragma once

#include <atomic>
#include <cstdint>

namespace slabby {

void guard_fault_install();
// Faults on slabby's guards so far (GuardPageViolations).
extern std::atomic<uint64_t> g_guard_violations;
// Guarded blocks live now and ever (secure/checked_large.cc).
extern std::atomic<uint64_t> g_live_guarded;
extern std::atomic<uint64_t> g_guarded_total;

}  // namespace slabby

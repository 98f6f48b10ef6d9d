// slabby: statistics, gathered on demand from the thread caches, the central
// pools and the page heap. Nothing is counted twice on the fast path: each
// bin counts its own allocations and frees; everything else is read here.
#pragma once

#include "slabby/slabby.h"

namespace slabby {

// Fills every field of *out (which must have the current layout).
void collect_stats(slabby_stats* out);

// The text report of SLABBY_STATS=1; every line starts with "slabby:".
void print_report(int fd);

enum class StatsOutput { kText = 0, kJson = 1, kPrometheus = 2 };
// The stats in the given format (stats_export.cc).
void write_stats(int fd, StatsOutput format);

}  // namespace slabby

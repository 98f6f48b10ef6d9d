// slabby: statistics, gathered on demand from the thread caches, the central
// pools and the page heap. Nothing is counted twice on the fast path: each
// bin counts its own allocations and frees; everything else is read here.
#pragma once

#include "slabby/slabby.h"

namespace slabby {

struct Config;
// At init, after the configuration is read: the event log, latency sampling
// and the circuit breaker (telemetry/health.cc).
void telemetry_init(const Config& c);

// Fills every field of *out (which must have the current layout).
void collect_stats(slabby_stats* out);

// The text report of SLABBY_STATS=1; every line starts with "slabby:".
void print_report(int fd);
// JSON or Prometheus text of a given snapshot (the fuzz target feeds it
// arbitrary values; stats_export.cc).
enum class StatsOutput;
void write_stats_snapshot(int fd, StatsOutput format, const slabby_stats& s,
                          const slabby_health& h);

// Derives the health figures from stats just collected; each call is one
// sample for error_rate and recent_trend (telemetry/health.cc).
void collect_health(const slabby_stats& s, slabby_health* out);
const char* trend_name(uint32_t trend);
// Stats and health in one go (slabby_get_health).
void get_health(slabby_health* out);
// slabby_get_config: NAME=value lines, snprintf-like.
size_t config_text(char* buf, size_t size);

enum class StatsOutput { kText = 0, kJson = 1, kPrometheus = 2 };
// The stats in the given format (stats_export.cc).
void write_stats(int fd, StatsOutput format);

// One field by its JSON report name ("live_bytes", "health.health_score",
// "classes.3.live_blocks"); false when there is no such field.
bool stat_by_name(const char* name, double* out);

}  // namespace slabby

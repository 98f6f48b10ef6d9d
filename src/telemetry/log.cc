#include "telemetry/log.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/writer.h"
#include "config/config.h"

namespace slabby {

int g_log_max_level = -1;

namespace {

int g_log_fd = -1;
bool g_log_json = false;

constexpr const char* kLevelNames[] = {"error", "warn", "info", "debug"};
constexpr const char* kEventNames[] = {
    "breaker_open", "breaker_half_open", "breaker_closed", "slow_allocation", "heap_fallback",
    "heap_limit",   "heap_exhausted",    "purge",          "log_suppressed",
};
static_assert(sizeof(kEventNames) / sizeof(kEventNames[0]) == size_t(LogEvent::kCount));

// Rate limit per event kind, as a generic cell rate algorithm: one atomic
// "theoretical arrival time" per kind. A line may go when that time is at
// most (burst - 1) intervals ahead of now; each line pushes it one interval.
constexpr uint64_t kIntervalMs = 100;
constexpr uint64_t kBurst = 10;
std::atomic<uint64_t> g_tat_ms[size_t(LogEvent::kCount)] = {};
std::atomic<uint64_t> g_dropped[size_t(LogEvent::kCount)] = {};  // not yet reported
std::atomic<uint64_t> g_lines{0};
std::atomic<uint64_t> g_suppressed{0};  // ever

uint64_t monotonic_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

bool take_token(LogEvent e) {
  uint64_t now = monotonic_ms() + kIntervalMs * kBurst;  // never 0, so a zero tat is "long ago"
  std::atomic<uint64_t>& tat = g_tat_ms[size_t(e)];
  uint64_t t = tat.load(std::memory_order_relaxed);
  for (;;) {
    if (t > now + (kBurst - 1) * kIntervalMs) return false;
    uint64_t next = (t > now ? t : now) + kIntervalMs;
    if (tat.compare_exchange_weak(t, next, std::memory_order_relaxed)) return true;
  }
}

// A close-on-exec descriptor numbered high, so the program's own open()
// calls still get the low numbers they expect.
int high_fd(int fd) {
  if (fd < 0) return fd;
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 1000);
  if (dup < 0) return fd;
  close(fd);
  return dup;
}

}  // namespace

const char* log_event_name(LogEvent e) noexcept { return kEventNames[size_t(e)]; }

void log_init_fd(int fd, int level, bool json) noexcept {
  g_log_fd = fd;
  g_log_json = json;
  g_log_max_level = fd < 0 ? -1 : level;
}

void log_set_level(int level) noexcept {
  if (g_log_fd >= 0) g_log_max_level = level;
}

void log_init(const Config& c) noexcept {
  if (c.log_file[0] == '\0') return;
  int saved = errno;
  int fd;
  if (strcmp(c.log_file, "stderr") == 0) {
    // A duplicate: some programs close fd 2 in their atexit handlers.
    fd = fcntl(2, F_DUPFD_CLOEXEC, 1000);
    if (fd < 0) fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
  } else {
    char path[300];
    expand_pid_pattern(c.log_file, path, sizeof(path));
    fd = high_fd(open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (fd < 0) {
      Writer w(2);
      w.str("slabby: cannot open SLABBY_LOG=").str(path).str(" for appending; no event log\n");
    }
  }
  errno = saved;
  log_init_fd(fd, static_cast<int>(c.log_level), c.log_format == 1);
}

LogLine::LogLine(LogEvent event, LogLevel level) noexcept
    : ok_(log_enabled(level) && g_log_fd >= 0) {
  if (!ok_) return;
  if (!take_token(event)) {
    ok_ = false;
    g_dropped[size_t(event)].fetch_add(1, std::memory_order_relaxed);
    g_suppressed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  int saved = errno;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  errno = saved;
  char num[24];
  char ms[4] = {'.', 0, 0, 0};
  uint64_t millis = static_cast<uint64_t>(ts.tv_nsec) / 1000000;
  ms[1] = static_cast<char>('0' + millis / 100);
  ms[2] = static_cast<char>('0' + millis / 10 % 10);
  ms[3] = static_cast<char>('0' + millis % 10);
  const char* lvl = kLevelNames[static_cast<int>(level)];
  const char* ev = kEventNames[size_t(event)];
  if (g_log_json) {
    raw("{\"ts\":");
    raw(num, format_u64(static_cast<uint64_t>(ts.tv_sec), num));
    raw(ms, 4);
    raw(",\"level\":\"");
    raw(lvl);
    raw("\",\"event\":\"");
    raw(ev);
    raw("\"");
  } else {
    raw("slabby: ");
    raw(num, format_u64(static_cast<uint64_t>(ts.tv_sec), num));
    raw(ms, 4);
    raw(" ");
    raw(lvl);
    raw(" ");
    raw(ev);
  }
  u64("pid", static_cast<uint64_t>(getpid()));
  uint64_t dropped = g_dropped[size_t(event)].exchange(0, std::memory_order_relaxed);
  if (dropped != 0) u64("suppressed", dropped);
}

LogLine::~LogLine() {
  if (!ok_) return;
  if (g_log_json) raw("}");
  // Room for the newline is kept by raw().
  buf_[len_++] = '\n';
  int saved = errno;
  size_t off = 0;
  while (off < len_) {
    ssize_t w = ::write(g_log_fd, buf_ + off, len_ - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += static_cast<size_t>(w);
  }
  errno = saved;
  g_lines.fetch_add(1, std::memory_order_relaxed);
}

void LogLine::raw(const char* s, size_t n) noexcept {
  // Keeps two bytes for the closing brace and the newline.
  for (size_t i = 0; i < n && len_ < sizeof(buf_) - 2; ++i) buf_[len_++] = s[i];
}
void LogLine::raw(const char* s) noexcept { raw(s, strlen(s)); }

void LogLine::key(const char* k) noexcept {
  if (g_log_json) {
    raw(",\"");
    raw(k);
    raw("\":");
  } else {
    raw(" ");
    raw(k);
    raw("=");
  }
}

LogLine& LogLine::u64(const char* k, uint64_t v) noexcept {
  if (!ok_) return *this;
  key(k);
  char num[24];
  raw(num, format_u64(v, num));
  return *this;
}

LogLine& LogLine::str(const char* k, const char* v) noexcept {
  if (!ok_) return *this;
  key(k);
  if (!g_log_json) {
    raw(v);
    return *this;
  }
  raw("\"");
  for (; *v != '\0'; ++v) {
    unsigned char c = static_cast<unsigned char>(*v);
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', static_cast<char>(c)};
      raw(esc, 2);
    } else if (c < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]};
      raw(esc, 6);
    } else {
      raw(v, 1);
    }
  }
  raw("\"");
  return *this;
}

LogStats log_stats() noexcept {
  return {g_lines.load(std::memory_order_relaxed), g_suppressed.load(std::memory_order_relaxed)};
}

void log_report_suppressed() noexcept {
  if (g_log_fd < 0) return;
  for (size_t e = 0; e < size_t(LogEvent::kCount); ++e) {
    uint64_t n = g_dropped[e].exchange(0, std::memory_order_relaxed);
    if (n == 0) continue;
    // Written whatever the limit: one line per kind, at exit.
    g_tat_ms[size_t(LogEvent::kSuppressed)].store(0, std::memory_order_relaxed);
    LogLine line(LogEvent::kSuppressed, LogLevel::kError);
    line.str("of", kEventNames[e]).u64("lines", n);
  }
}

namespace {
// After the atexit handlers, like the stats report.
__attribute__((destructor)) void report_suppressed_at_exit() { log_report_suppressed(); }
}  // namespace

}  // namespace slabby

#!/usr/bin/env python3
"""Health figures, latency percentiles, the event log and scripts/slabby-stats on real programs.

- python3 under the preload with SLABBY_LATENCY_SAMPLE=1: P50 <= P95 <= P99, non-zero, in
  every format (JSON, Prometheus, text); every seeds' HealthMetrics key is present.
- SLABBY_LOG=FILE, SLABBY_LOG_FORMAT=json: every line parses with json and has ts, level, event;
  10000+ heap fallbacks give a bounded number of lines and a suppressed count.
- scripts/slabby-stats pretty-prints a real program's JSON stats and writes a PNG.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

from prometheus_client.parser import text_string_to_metric_families

LIB = None
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
WORKLOAD = ("d = {str(i): [i] * (i % 7) for i in range(200000)}\n"
            "big = [bytearray(50000 + i * 1000) for i in range(300)]\n"
            "print(len(d))")
HEALTH_KEYS = ["alloc_latency_p50", "alloc_latency_p95", "alloc_latency_p99", "health_score",
               "fragmentation_score", "memory_pressure", "error_rate", "cache_efficiency",
               "circuit_breaker_open", "recent_trend", "last_gc_duration"]


def run(env_extra, code=WORKLOAD, timeout=180):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLABBY_")}
    env.update(env_extra, LD_PRELOAD=LIB, PYTHONMALLOC="malloc")
    return subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env,
                          timeout=timeout)


class Health(unittest.TestCase):
    def test_latency_percentiles_are_ordered_and_non_zero_in_json(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s.json")
            r = run({"SLABBY_STATS": "json", "SLABBY_STATS_FILE": path,
                     "SLABBY_LATENCY_SAMPLE": "1"})
            self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "200000\n", ""))
            with open(path) as f:
                d = json.load(f)
        h = d["health"]
        for k in HEALTH_KEYS:
            self.assertIn(k, h)
        self.assertGreater(h["latency_samples"], 100, h)
        self.assertGreater(h["alloc_latency_p50"], 0, h)
        self.assertLessEqual(h["alloc_latency_p50"], h["alloc_latency_p95"], h)
        self.assertLessEqual(h["alloc_latency_p95"], h["alloc_latency_p99"], h)
        self.assertLessEqual(h["alloc_latency_p99"], h["alloc_latency_max"], h)
        for k in ("fragmentation_score", "memory_pressure", "error_rate", "cache_efficiency",
                  "health_score"):
            self.assertGreaterEqual(h[k], 0.0, k)
            self.assertLessEqual(h[k], 1.0, k)
        self.assertEqual(h["error_rate"], 0.0)
        self.assertIn(h["recent_trend"], ("improving", "stable", "degrading"))
        self.assertIs(h["circuit_breaker_open"], False)
        self.assertEqual(d["breaker_state"], "closed")
        self.assertEqual(d["config"]["SLABBY_LATENCY_SAMPLE"], "1")
        self.assertEqual(d["config"]["SLABBY_ARENA_SIZE"], "64G")

    def test_sampling_off_gives_zero_latency_and_no_samples(self):
        r = run({"SLABBY_STATS": "json"})
        d = json.loads(r.stderr)
        self.assertEqual(d["health"]["latency_samples"], 0)
        self.assertEqual(d["health"]["alloc_latency_p99"], 0)

    def test_prometheus_health_gauges_parse(self):
        r = run({"SLABBY_STATS": "prometheus", "SLABBY_LATENCY_SAMPLE": "1"})
        self.assertEqual(r.returncode, 0, r.stderr)
        samples = {}
        for fam in text_string_to_metric_families(r.stderr):
            self.assertTrue(fam.name.startswith("slabby_"), fam.name)
            for s in fam.samples:
                samples[s.name] = s.value
        p50, p95, p99 = (samples[f"slabby_alloc_latency_p{q}_ns"] for q in (50, 95, 99))
        self.assertGreater(p50, 0)
        self.assertTrue(p50 <= p95 <= p99, (p50, p95, p99))
        self.assertTrue(0 <= samples["slabby_health_score"] <= 1)
        self.assertEqual(samples["slabby_breaker_state"], 0)
        self.assertEqual(samples["slabby_circuit_breaker_open"], 0)

    def test_text_report_has_the_health_section(self):
        r = run({"SLABBY_STATS": "1", "SLABBY_LATENCY_SAMPLE": "1"})
        self.assertIn("slabby: health\n", r.stderr)
        self.assertRegex(r.stderr, r"slabby:   alloc_latency_p99 +[1-9]\d*\n")
        self.assertRegex(r.stderr, r"slabby: circuit breaker closed \(off\)")

    def test_slow_allocations_are_counted_and_logged(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "log")
            r = run({"SLABBY_STATS": "json", "SLABBY_LATENCY_SAMPLE": "1",
                     "SLABBY_MAX_ALLOC_LATENCY_NS": "1", "SLABBY_LOG": log,
                     "SLABBY_LOG_FORMAT": "json"})
            self.assertEqual(r.returncode, 0, r.stderr)
            d = json.loads(r.stderr)
            with open(log) as f:
                events = [json.loads(line) for line in f]
        self.assertGreater(d["health"]["slow_allocations"], 0)
        slow = [e for e in events if e["event"] == "slow_allocation"]
        self.assertGreater(len(slow), 0)
        self.assertEqual(slow[0]["threshold_ns"], 1)
        self.assertGreater(slow[0]["latency_ns"], 0)


class Log(unittest.TestCase):
    FALLBACKS = ("import ctypes\n"
                 "libc = ctypes.CDLL(None)\n"
                 "libc.malloc.restype = ctypes.c_void_p\n"
                 "libc.free.argtypes = [ctypes.c_void_p]\n"
                 "ps = [libc.malloc(100000) for i in range(12000)]\n"
                 "for p in ps: libc.free(p)\n"
                 "print('ok')")

    def test_json_lines_parse_and_the_rate_limit_holds(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "slabby-%p.log")
            t0 = time.monotonic()
            r = run({"SLABBY_LOG": log, "SLABBY_LOG_FORMAT": "json", "SLABBY_LOG_LEVEL": "info",
                     "SLABBY_MAX_HEAP": "1M", "SLABBY_STATS": "json"}, code=self.FALLBACKS)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, "ok\n")
            d = json.loads(r.stderr)
            files = os.listdir(tmp)
            self.assertEqual(len(files), 1, files)
            self.assertRegex(files[0], r"^slabby-\d+\.log$")
            with open(os.path.join(tmp, files[0])) as f:
                lines = f.read().splitlines()
        self.assertGreaterEqual(d["heap_fallbacks"], 10000)
        events = [json.loads(line) for line in lines]
        for e in events:
            self.assertIsInstance(e["ts"], float)
            self.assertIn(e["level"], ("error", "warn", "info", "debug"))
            self.assertIsInstance(e["event"], str)
            self.assertIsInstance(e["pid"], int)
        fallbacks = [e for e in events if e["event"] == "heap_fallback"]
        self.assertGreaterEqual(len(fallbacks), 10)
        # Per kind: a burst of 10, then one line per 100 ms while the program ran, and at
        # most one log_suppressed line at exit.
        elapsed = time.monotonic() - t0
        kinds = {e["event"] for e in events if e["event"] != "log_suppressed"}
        bound = len(kinds) * (10 + 10 * (elapsed + 1)) + len(kinds)
        self.assertLessEqual(len(lines), bound, (elapsed, kinds))
        self.assertLess(len(lines), d["heap_fallbacks"] // 20)
        summary = [e for e in events if e["event"] == "log_suppressed" and e["of"] == "heap_fallback"]
        self.assertEqual(len(summary), 1, events[-5:])
        dropped = summary[0]["lines"] + sum(e.get("suppressed", 0) for e in fallbacks)
        self.assertEqual(len(fallbacks) + dropped, d["heap_fallbacks"])
        # Every kind's drops are in the stats (the report runs before the summary lines).
        all_dropped = sum(e["lines"] for e in events if e["event"] == "log_suppressed")
        all_dropped += sum(e.get("suppressed", 0) for e in events)
        self.assertEqual(d["health"]["log_suppressed"], all_dropped)
        self.assertGreater(d["health"]["error_rate"], 0.5)
        self.assertTrue(any(e["event"] == "heap_limit" for e in events))

    def test_text_lines_to_stderr(self):
        r = run({"SLABBY_LOG": "stderr", "SLABBY_LOG_LEVEL": "warn", "SLABBY_MAX_HEAP": "1M"},
                code=self.FALLBACKS)
        self.assertEqual((r.returncode, r.stdout), (0, "ok\n"))
        lines = r.stderr.splitlines()
        self.assertGreater(len(lines), 0)
        for line in lines:
            self.assertRegex(line, r"^slabby: \d+\.\d{3} (error|warn) \w+ pid=\d+")
        self.assertFalse(any(" heap_fallback " in l for l in lines), "info lines at warn level")

    def test_no_log_by_default(self):
        r = run({"SLABBY_MAX_HEAP": "1M"}, code=self.FALLBACKS)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "ok\n", ""))


class StatsTool(unittest.TestCase):
    def test_pretty_print_and_png(self):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest("python3-matplotlib is not installed (scripts/setup-debian)")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s.json")
            png = os.path.join(tmp, "classes.png")
            r = run({"SLABBY_STATS": "json", "SLABBY_STATS_FILE": path,
                     "SLABBY_LATENCY_SAMPLE": "1"})
            self.assertEqual(r.returncode, 0, r.stderr)
            env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
            t = subprocess.run([PY, os.path.join(ROOT, "scripts", "slabby-stats"), path,
                                "--png", png], capture_output=True, text=True, env=env,
                               timeout=120)
            self.assertEqual(t.returncode, 0, t.stderr)
            for word in ("total_allocations", "health_score", "alloc_latency_p99", "block"):
                self.assertIn(word, t.stdout)
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    LIB = os.path.abspath(sys.argv.pop(1))
    unittest.main()

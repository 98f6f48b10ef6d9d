#!/usr/bin/env python3
"""SLABBY_* variables read by a real program under LD_PRELOAD.

Each bad value prints exactly one line naming the variable, the value and
what is accepted, and the program's own output is unchanged; strict mode
aborts naming the variable; verbose prints the effective configuration; a
clean run prints nothing at all.
"""
import os
import re
import signal
import subprocess
import sys
import unittest

LIB = None
# A program whose output we can compare: sort a few lines.
PROG = ["sort"]
INPUT = "pear\napple\nfig\n"


def run(extra_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLABBY_")}
    env.update(extra_env)
    env["LD_PRELOAD"] = LIB
    env["LC_ALL"] = "C"
    return subprocess.run(PROG, input=INPUT, capture_output=True, text=True, env=env, timeout=60)


class ConfigEnv(unittest.TestCase):
    def test_clean_run_prints_nothing(self):
        r = run({})
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "apple\nfig\npear\n")
        self.assertEqual(r.stderr, "")

    def test_each_bad_value_gives_one_line_and_output_is_unchanged(self):
        cases = {
            "SLABBY_ARENA_SIZE": ["garbage", "-1", "99999999999999999999999", "", "1X", "1M"],
            "SLABBY_RETAIN_MAX": ["lots", "-5", "18446744073709551616"],
            "SLABBY_THREAD_CACHE_BYTES": ["x", "17T"],
            "SLABBY_PERCPU_GROW_BYTES": ["lots", "1G", "-1"],
            "SLABBY_MEDIUM_GROW_BYTES": ["lots", "2G", "-1"],
            "SLABBY_STATS": ["maybe", "2", ""],
            "SLABBY_VERBOSE": ["yess", "-1"],
            "SLABBY_ZERO": ["yes", "2", ""],
            "SLABBY_BITGUARD": ["maybe"],
            "SLABBY_GUARD_SAMPLE": ["-1", "x", "99999999999"],
            "SLABBY_QUARANTINE": ["lots", "2G"],
            "SLABBY_LEAK_SAMPLE": ["0"],
        }
        for var, values in cases.items():
            for value in values:
                with self.subTest(var=var, value=value):
                    r = run({var: value})
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(r.stdout, "apple\nfig\npear\n")
                    lines = r.stderr.splitlines()
                    self.assertEqual(len(lines), 1, r.stderr)
                    self.assertTrue(lines[0].startswith(f'slabby: invalid {var}="{value}": expected '),
                                    lines[0])
                    self.assertIn("using the default", lines[0])

    def test_unknown_name_is_warned_with_a_suggestion(self):
        r = run({"SLABBY_STAT": "1"})
        self.assertEqual(r.stdout, "apple\nfig\npear\n")
        self.assertEqual(r.stderr,
                         "slabby: unknown variable SLABBY_STAT (ignored); did you mean SLABBY_STATS?\n")

    def test_strict_mode_aborts_naming_the_variable(self):
        for env in ({"SLABBY_RETAIN_MAX": "lots"}, {"SLABBY_VERBOSSE": "1"}):
            with self.subTest(env=env):
                env = dict(env, SLABBY_STRICT="1")
                r = run(env)
                self.assertEqual(r.returncode, -signal.SIGABRT, r.stderr)
                name = next(k for k in env if k != "SLABBY_STRICT")
                self.assertIn(f"slabby: SLABBY_STRICT=1: aborting on {name}", r.stderr)
                self.assertEqual(r.stdout, "")

    def test_strict_mode_with_a_clean_configuration_runs(self):
        r = run({"SLABBY_STRICT": "1", "SLABBY_ARENA_SIZE": "1G"})
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "apple\nfig\npear\n", ""))

    def test_verbose_prints_mode_and_every_setting_with_its_source(self):
        r = run({"SLABBY_VERBOSE": "1", "SLABBY_RETAIN_MAX": "8M"})
        self.assertEqual(r.stdout, "apple\nfig\npear\n")
        self.assertRegex(r.stderr, r"slabby: slabby \S+ active in pid \d+: "
                         r"(per-CPU caches (from \d+ live threads )?\(rseq area: (glibc|own)\)|"
                         r"per-thread caches \([^)]+\)), \d+ shards, arena ")
        self.assertIn("slabby:   SLABBY_RETAIN_MAX=8M (environment)", r.stderr)
        self.assertIn("slabby:   SLABBY_ARENA_SIZE=64G (default)", r.stderr)

    def test_caching_mode_follows_slabby_percpu_and_glibc_rseq(self):
        r = run({"SLABBY_VERBOSE": "1", "SLABBY_PERCPU": "0"})
        self.assertRegex(r.stderr, r"active in pid \d+: "
                         r"per-thread caches \(SLABBY_PERCPU=0\), ")
        self.assertIn("SLABBY_PERCPU=0 (environment)", r.stderr)
        # The security modes keep the per-CPU caches (their checks run around them).
        r = run({"SLABBY_VERBOSE": "1", "SLABBY_SECURE": "1"})
        self.assertRegex(r.stderr, r"active in pid \d+: (per-CPU caches (from \d+ live threads )?"
                         r"\(rseq area: (glibc|own)\)|"
                         r"per-thread caches \(no rseq on this system\)), ")
        # glibc's rseq off: slabby registers its own area where the kernel has rseq.
        r = run({"SLABBY_VERBOSE": "1", "GLIBC_TUNABLES": "glibc.pthread.rseq=0"})
        self.assertRegex(r.stderr, r"active in pid \d+: (per-CPU caches (from \d+ live threads )?"
                         r"\(rseq area: own\)|"
                         r"per-thread caches \(no rseq on this system\)), ")
        r = run({"SLABBY_STATS": "1", "SLABBY_PERCPU": "0"})
        self.assertIn("per-thread caches)", r.stderr.splitlines()[0])
        # The report's first line says from how many threads the CPUs' caches serve.
        r = run({"SLABBY_STATS": "1", "SLABBY_PERCPU_THREADS": "5"})
        self.assertRegex(r.stderr.splitlines()[0],
                         r"\(slabby [^,]+, (per-CPU caches from 5 live threads|"
                         r"per-thread caches)\)$")
        # Threads move to the per-CPU caches from SLABBY_PERCPU_THREADS live
        # threads: by default 0, four per CPU this process may use (its
        # affinity, or fewer under a cgroup CPU quota) plus two; 1 is every
        # thread from its start.
        r = run({"SLABBY_VERBOSE": "1", "SLABBY_PERCPU_THREADS": "5"})
        self.assertRegex(r.stderr, r"active in pid \d+: (per-CPU caches from 5 live threads|"
                         r"per-thread caches \(no rseq on this system\))")
        self.assertIn("SLABBY_PERCPU_THREADS=5 (environment)", r.stderr)
        r = run({"SLABBY_VERBOSE": "1", "SLABBY_PERCPU_THREADS": "1"})
        self.assertRegex(r.stderr, r"active in pid \d+: (per-CPU caches \(rseq area|"
                         r"per-thread caches \(no rseq on this system\))")
        for env in ({"SLABBY_VERBOSE": "1"}, {"SLABBY_VERBOSE": "1", "SLABBY_PERCPU_THREADS": "0"}):
            r = run(env)
            m = re.search(r"per-CPU caches from (\d+) live threads", r.stderr)
            if m:
                n = int(m.group(1))
                self.assertTrue(6 <= n <= 4 * len(os.sched_getaffinity(0)) + 2 and n % 4 == 2,
                                m.group(0))
            else:
                self.assertIn("per-thread caches (no rseq on this system)", r.stderr)

    def test_shards_and_cache_line(self):
        r = run({"SLABBY_VERBOSE": "1", "SLABBY_SHARDS": "3", "SLABBY_CACHE_LINE": "256"})
        self.assertIn(", 3 shards, ", r.stderr)
        self.assertIn("SLABBY_CACHE_LINE=256 (environment)", r.stderr)
        for bad in ({"SLABBY_CACHE_LINE": "100"}, {"SLABBY_SHARDS": "65"}, {"SLABBY_SHARDS": "-1"},
                    {"SLABBY_PERCPU": "maybe"}, {"SLABBY_PERCPU_THREADS": "many"}):
            with self.subTest(env=bad):
                r = run(bad)
                self.assertEqual(r.stdout, "apple\nfig\npear\n")
                self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
                self.assertIn("slabby: invalid " + next(iter(bad)), r.stderr)

    def test_footprint_options(self):
        r = run({"SLABBY_VERBOSE": "1", "SLABBY_DECAY_MS": "2s", "SLABBY_BACKGROUND": "off",
                 "SLABBY_THP": "always"})
        self.assertEqual(r.stdout, "apple\nfig\npear\n")
        self.assertIn("SLABBY_DECAY_MS=2000ms (environment)", r.stderr)
        self.assertIn("SLABBY_BACKGROUND=0 (environment)", r.stderr)
        self.assertIn("SLABBY_THP=always (environment)", r.stderr)
        r = run({"SLABBY_VERBOSE": "1"})
        self.assertIn("SLABBY_THP=dense (default)", r.stderr)
        r = run({"SLABBY_VERBOSE": "1", "SLABBY_THP": "never"})
        self.assertEqual(r.stdout, "apple\nfig\npear\n")
        self.assertIn("SLABBY_THP=never (environment)", r.stderr)
        self.assertIn("SLABBY_DECAY_MS=1000ms (default)", r.stderr)
        for bad in ({"SLABBY_DECAY_MS": "soon"}, {"SLABBY_DECAY_MS": "-5"}, {"SLABBY_DECAY_MS": "2h"},
                    {"SLABBY_THP": "sometimes"}, {"SLABBY_BACKGROUND": "2"}):
            with self.subTest(env=bad):
                r = run(bad)
                self.assertEqual(r.stdout, "apple\nfig\npear\n")
                self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
                self.assertIn("slabby: invalid " + next(iter(bad)), r.stderr)

    # The observability variables: each bad value (garbage, negative, overflowing, empty,
    # misspelt) is one line naming the variable, the value and what is accepted.
    OBS_BAD = {
        "SLABBY_LATENCY_SAMPLE": (["often", "-1", "99999999999999999999999", "", "1000000001",
                                   "10x"], "a whole number from 0 to 1000000000"),
        "SLABBY_MAX_ALLOC_LATENCY_NS": (["slow", "-100", "18446744073709551616", "", "1000000000001",
                                         "100us"], "a whole number from 0 to 1000000000000"),
        "SLABBY_BREAKER_THRESHOLD": (["many", "-3", "99999999999999999999", "", "1000001", "5e2"],
                                     "a whole number from 0 to 1000000"),
        "SLABBY_BREAKER_TIMEOUT_MS": (["later", "-1", "99999999999999999999", "", "0", "2h",
                                       "1000mss"],
                                      "a duration in ms, or with an ms, s or m suffix up to 1 hour"
                                      ", at least 1ms"),
        "SLABBY_LOG": (["", "/" + "x" * 300], "a file path of 1 to 255 bytes"),
        "SLABBY_LOG_LEVEL": (["loud", "-1", "", "warning", "99999999999999999999"],
                             "one of error, warn, info or debug"),
        "SLABBY_LOG_FORMAT": (["xml", "-1", "", "jsn", "99999999999999999999"],
                              "one of text or json"),
        "SLABBY_PROF": (["sometimes", "2", "", "-1"], "1, 0, true, false, yes, no, on or off"),
        "SLABBY_PROF_SAMPLE": (["often", "0", "-1", "", "2T", "512Q"],
                               "a byte count with an optional K, M, G or T suffix between 1 and 1T"),
        "SLABBY_PROF_FILE": (["", "/" + "x" * 300], "a file path of 1 to 255 bytes"),
        "SLABBY_PROF_INTERVAL_MS": (["later", "-1", "", "2h"],
                                    "a duration in ms, or with an ms, s or m suffix up to 1 hour"),
        "SLABBY_PROF_SIGNAL": (["USR2", "-1", "", "65"], "a whole number from 0 to 64"),
    }

    def test_observability_variables_bad_values_one_line_each(self):
        for var, (values, accepted) in self.OBS_BAD.items():
            for value in values:
                with self.subTest(var=var, value=value):
                    r = run({var: value})
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(r.stdout, "apple\nfig\npear\n")
                    # A value is echoed up to 64 bytes, then "..." (one line whatever it is).
                    shown = value if len(value) <= 64 else value[:64] + "..."
                    self.assertEqual(r.stderr, f'slabby: invalid {var}="{shown}": expected '
                                               f"{accepted}; using the default\n")

    def test_observability_variables_misspelt_names_and_strict_mode(self):
        for wrong, right in (("SLABBY_LATENCY_SAMPEL", "SLABBY_LATENCY_SAMPLE"),
                             ("SLABBY_MAX_ALLOC_LATENCY", "SLABBY_MAX_ALLOC_LATENCY_NS"),
                             ("SLABBY_BREAKER_TRESHOLD", "SLABBY_BREAKER_THRESHOLD"),
                             ("SLABBY_BREAKER_TIMEOUT", "SLABBY_BREAKER_TIMEOUT_MS"),
                             ("SLABBY_LGO", "SLABBY_LOG"),
                             ("SLABBY_LOG_LEVLE", "SLABBY_LOG_LEVEL"),
                             ("SLABBY_LOG_FROMAT", "SLABBY_LOG_FORMAT"),
                             ("SLABBY_PROF_SMPLE", "SLABBY_PROF_SAMPLE"),
                             ("SLABBY_PROF_SIGNL", "SLABBY_PROF_SIGNAL")):
            with self.subTest(name=wrong):
                r = run({wrong: "1"})
                self.assertEqual((r.returncode, r.stdout), (0, "apple\nfig\npear\n"))
                self.assertEqual(r.stderr, f"slabby: unknown variable {wrong} (ignored); "
                                           f"did you mean {right}?\n")
        for var, (values, _) in self.OBS_BAD.items():
            with self.subTest(strict=var):
                r = run({var: values[0], "SLABBY_STRICT": "1"})
                self.assertEqual(r.returncode, -signal.SIGABRT, r.stderr)
                self.assertIn(f"slabby: SLABBY_STRICT=1: aborting on {var}", r.stderr)
                self.assertEqual(r.stdout, "")

    def test_observability_variables_good_values_apply(self):
        r = run({"SLABBY_VERBOSE": "1", "SLABBY_LATENCY_SAMPLE": "100",
                 "SLABBY_MAX_ALLOC_LATENCY_NS": "50000", "SLABBY_BREAKER_THRESHOLD": "5",
                 "SLABBY_BREAKER_TIMEOUT_MS": "2s", "SLABBY_LOG_LEVEL": "DEBUG",
                 "SLABBY_LOG_FORMAT": "json"})
        self.assertEqual(r.stdout, "apple\nfig\npear\n")
        for want in ("SLABBY_LATENCY_SAMPLE=100 (environment)",
                     "SLABBY_MAX_ALLOC_LATENCY_NS=50000 (environment)",
                     "SLABBY_BREAKER_THRESHOLD=5 (environment)",
                     "SLABBY_BREAKER_TIMEOUT_MS=2000ms (environment)",
                     "SLABBY_LOG_LEVEL=debug (environment)", "SLABBY_LOG_FORMAT=json (environment)",
                     "SLABBY_LOG= (default)", "SLABBY_LATENCY_SAMPLE=100 (environment)"):
            self.assertIn("slabby:   " + want, r.stderr)

    def test_profile_variables_good_values_apply(self):
        r = run({"SLABBY_VERBOSE": "1", "SLABBY_PROF_SAMPLE": "1M", "SLABBY_PROF_INTERVAL_MS": "2s",
                 "SLABBY_PROF_SIGNAL": "12", "SLABBY_PROF_FILE": "/tmp/x.%p.%n.heap"})
        self.assertEqual(r.stdout, "apple\nfig\npear\n")
        for want in ("SLABBY_PROF=0 (default)", "SLABBY_PROF_SAMPLE=1M (environment)",
                     "SLABBY_PROF_INTERVAL_MS=2000ms (environment)",
                     "SLABBY_PROF_SIGNAL=12 (environment)",
                     "SLABBY_PROF_FILE=/tmp/x.%p.%n.heap (environment)"):
            self.assertIn("slabby:   " + want, r.stderr)

    def test_unwritable_stats_file_is_one_line_saying_why(self):
        r = run({"SLABBY_STATS": "json", "SLABBY_STATS_FILE": "/nonexistent-dir/stats.json"})
        self.assertEqual((r.returncode, r.stdout), (0, "apple\nfig\npear\n"))
        self.assertEqual(r.stderr, "slabby: cannot write SLABBY_STATS_FILE "
                                   "/nonexistent-dir/stats.json.tmp: No such file or directory\n")

    def test_unreadable_config_file_says_why(self):
        for path, why in (("/nonexistent-dir/slabby.conf", "No such file or directory"),
                          ("/", "Is a directory")):
            with self.subTest(path=path):
                r = run({"SLABBY_CONFIG": path})
                self.assertEqual((r.returncode, r.stdout), (0, "apple\nfig\npear\n"))
                self.assertEqual(r.stderr, f"slabby: cannot read SLABBY_CONFIG={path} ({why}); "
                                           "using the environment and defaults\n")

    def test_unopenable_log_file_is_one_warning(self):
        r = run({"SLABBY_LOG": "/nonexistent-dir/slabby.log"})
        self.assertEqual((r.returncode, r.stdout), (0, "apple\nfig\npear\n"))
        self.assertEqual(r.stderr, "slabby: cannot open SLABBY_LOG=/nonexistent-dir/slabby.log "
                                   "for appending; no event log\n")

    def test_config_file_with_environment_override_and_sources(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("# profile\nretain_max = 8M\nSHARDS = 3\n")
        try:
            r = run({"SLABBY_CONFIG": f.name, "SLABBY_SHARDS": "2", "SLABBY_VERBOSE": "1"})
            self.assertEqual(r.stdout, "apple\nfig\npear\n")
            self.assertIn("SLABBY_RETAIN_MAX=8M (file)", r.stderr)
            self.assertIn("SLABBY_SHARDS=2 (environment)", r.stderr)
            self.assertIn(", 2 shards, ", r.stderr)
            r = run({"SLABBY_CONFIG": f.name})
            self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "apple\nfig\npear\n", ""))
        finally:
            os.unlink(f.name)

    def test_config_file_problems_warn_and_strict_aborts_naming_the_key(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("DECAY = 5\n")
        try:
            r = run({"SLABBY_CONFIG": f.name})
            self.assertEqual(r.stdout, "apple\nfig\npear\n")
            self.assertEqual(r.stderr, f"slabby: {f.name}:1: unknown key DECAY (ignored); "
                                       "did you mean DECAY_MS?\n")
            r = run({"SLABBY_CONFIG": f.name, "SLABBY_STRICT": "1"})
            self.assertEqual(r.returncode, -signal.SIGABRT)
            self.assertIn("slabby: SLABBY_STRICT=1: aborting on DECAY", r.stderr)
        finally:
            os.unlink(f.name)

    def test_every_shipped_profile_loads_cleanly_in_strict_mode(self):
        profiles = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "config")
        confs = sorted(p for p in os.listdir(profiles) if p.endswith(".conf"))
        self.assertGreaterEqual(len(confs), 4)
        for name in confs:
            with self.subTest(profile=name):
                r = run({"SLABBY_CONFIG": os.path.join(profiles, name), "SLABBY_STRICT": "1"})
                # A profile with SLABBY_LEAK_CHECK reports live blocks at exit.
                other = [l for l in r.stderr.splitlines()
                         if not re.match(r"slabby: (leak check: |  )", l)]
                self.assertEqual((r.returncode, r.stdout, other), (0, "apple\nfig\npear\n", []),
                                 r.stderr)

    def test_arena_size_applies(self):
        r = run({"SLABBY_VERBOSE": "1", "SLABBY_ARENA_SIZE": "1G"})
        self.assertIn("arena 1.0 GiB reserved", r.stderr)

    def test_stats_report_at_exit(self):
        r = run({"SLABBY_STATS": "1"})
        self.assertEqual(r.stdout, "apple\nfig\npear\n")
        self.assertRegex(r.stderr, r"(?m)^slabby:\s+total_allocations\s+[1-9]\d*$")
        for line in r.stderr.splitlines():
            self.assertTrue(line.startswith("slabby:"), line)

    def test_thread_caches_off_still_works(self):
        r = run({"SLABBY_THREAD_CACHE_BYTES": "0", "SLABBY_STATS": "1"})
        self.assertEqual(r.stdout, "apple\nfig\npear\n")
        self.assertRegex(r.stderr, r"(?m)^slabby:\s+total_allocations\s+[1-9]\d*$")


if __name__ == "__main__":
    LIB = sys.argv.pop(1)
    unittest.main(verbosity=2)

#!/usr/bin/env python3
"""slabby's machine-readable stats from real programs under LD_PRELOAD.

JSON parses with a real JSON parser and adds up; Prometheus output parses
with prometheus_client's exposition-format parser; SLABBY_STATS_FILE expands
%p; SLABBY_STATS_INTERVAL_MS rewrites the file while the program runs.
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
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
# A dict- and string-heavy program with every object through malloc.
WORKLOAD = "d = {str(i): [i] * (i % 7) for i in range(200000)}; print(len(d))"


def run(env_extra, code=WORKLOAD, timeout=120):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLABBY_")}
    env.update(env_extra, LD_PRELOAD=LIB, PYTHONMALLOC="malloc")
    return subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env,
                          timeout=timeout)


class StatsFormats(unittest.TestCase):
    def test_json_of_a_real_program_parses_and_adds_up(self):
        with tempfile.TemporaryDirectory() as tmp:
            r = run({"SLABBY_STATS": "json", "SLABBY_STATS_FILE": os.path.join(tmp, "s.json")})
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, "200000\n")
            self.assertEqual(r.stderr, "", "the report goes to the file, not stderr")
            with open(os.path.join(tmp, "s.json")) as f:
                d = json.load(f)
        self.assertGreater(d["total_allocations"], 200000)
        self.assertEqual(d["total_allocations"] - d["total_deallocations"],
                         d["current_allocations"])
        classes = d["classes"]
        self.assertEqual(len(classes), 60)  # 40 small and 20 medium classes
        self.assertEqual(sum(c["allocations"] for c in classes) + d["large_allocations"],
                         d["total_allocations"])
        self.assertEqual(sum(c["frees"] for c in classes) + d["large_frees"],
                         d["total_deallocations"])
        self.assertEqual(sum(c["live_bytes"] for c in classes) + d["large_live_bytes"],
                         d["live_bytes"])
        for c in classes:
            self.assertEqual(c["allocations"] - c["frees"], c["live_blocks"], c)
            self.assertEqual(c["live_blocks"] * c["block_size"], c["live_bytes"], c)
            self.assertEqual(c["slabs"] * c["slab_bytes"], c["mapped_bytes"], c)
            self.assertLessEqual(c["resident_bytes"], c["mapped_bytes"], c)
        self.assertEqual(sum(c["pcpu_cache_hits"] for c in classes), d["pcpu_cache_hits"])
        self.assertEqual(sum(c["lock_free_hits"] for c in classes), d["lock_free_hits"])
        self.assertIn(d["cache_mode"], ("per-cpu", "per-thread"))

    def test_prometheus_output_parses_with_a_real_exposition_parser(self):
        r = run({"SLABBY_STATS": "prometheus"})
        self.assertEqual(r.returncode, 0, r.stderr)
        families = {f.name: f for f in text_string_to_metric_families(r.stderr)}
        self.assertIn("slabby_allocations", families)  # the parser drops _total from counters
        self.assertEqual(families["slabby_allocations"].type, "counter")
        self.assertGreater(families["slabby_allocations"].samples[0].value, 200000)
        self.assertEqual(families["slabby_resident_bytes"].type, "gauge")
        per_class = families["slabby_class_allocations"].samples
        self.assertEqual(len(per_class), 60)
        self.assertEqual({s.labels["class"] for s in per_class}, {str(i) for i in range(1, 61)})
        self.assertTrue(all(n.startswith("slabby_") for n in families))

    def test_stats_file_name_expands_the_pid(self):
        with tempfile.TemporaryDirectory() as tmp:
            pattern = os.path.join(tmp, "stats-%p.txt")
            p = subprocess.Popen([PY, "-c", "print(1)"], stdout=subprocess.DEVNULL,
                                 env=dict(os.environ, LD_PRELOAD=LIB, SLABBY_STATS="1",
                                          SLABBY_STATS_FILE=pattern))
            p.wait(timeout=60)
            path = os.path.join(tmp, f"stats-{p.pid}.txt")
            self.assertTrue(os.path.exists(path), os.listdir(tmp))
            with open(path) as f:
                self.assertRegex(f.read(), r"(?m)^slabby:\s+total_allocations\s+\d+$")

    def test_interval_rewrites_the_file_while_the_program_runs(self):
        code = ("import time\nkeep = []\nfor i in range(30):\n"
                "    keep.append([str(j) for j in range(20000)])\n    time.sleep(0.05)\n"
                "time.sleep(0.8)\nprint('done')")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "live.json")
            env = {k: v for k, v in os.environ.items() if not k.startswith("SLABBY_")}
            env.update(LD_PRELOAD=LIB, PYTHONMALLOC="malloc", SLABBY_STATS="json",
                       SLABBY_STATS_FILE=path, SLABBY_STATS_INTERVAL_MS="100")
            p = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
            seen = []
            deadline = time.monotonic() + 60
            while p.poll() is None and time.monotonic() < deadline:
                if os.path.exists(path):
                    with open(path) as f:
                        seen.append(json.load(f)["total_allocations"])  # never half-written
                time.sleep(0.1)
            p.wait(timeout=60)
            self.assertEqual(p.stdout.read(), "done\n")
            self.assertGreaterEqual(len(seen), 3, "the file was not written while running")
            self.assertLess(seen[0], seen[-1], "the file was not rewritten as the program ran")


if __name__ == "__main__":
    LIB = sys.argv.pop(1)
    unittest.main(verbosity=2)

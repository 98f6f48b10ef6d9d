"""The program whose allocations bench/workloads/trace_replay.c replays.

Run by scripts/bench-compare --record-trace under bench/tools/alloc_tracer.c
with PYTHONMALLOC=malloc, so every Python object is a malloc call. A small
"log analytics" job: generate log lines, parse them with a regex, aggregate
into dicts, round-trip JSON, sort and format a report. Deterministic (a
seeded PRNG, no hash-order dependence in what is printed).

Usage: python3 trace_program.py [LINES]   (default 20000)
"""

import json
import random
import re
import sys

LINE = re.compile(r"(\d+\.\d+\.\d+\.\d+) \[(\w+)\] (GET|POST|PUT) (/[\w/]+) (\d{3}) (\d+)ms")


def generate(rng, n):
    paths = ["/api/v1/" + "/".join(rng.choice("abcdefgh") * rng.randint(1, 6)
                                   for _ in range(rng.randint(1, 4))) for _ in range(300)]
    levels = ["INFO", "WARN", "ERROR", "DEBUG"]
    for _ in range(n):
        ip = ".".join(str(rng.randint(1, 254)) for _ in range(4))
        yield (f"{ip} [{rng.choice(levels)}] {rng.choice(['GET', 'POST', 'PUT'])} "
               f"{rng.choice(paths)} {rng.choice([200, 200, 200, 404, 500])} {rng.randint(1, 900)}ms")


class Stat:
    __slots__ = ("count", "total_ms", "codes", "ips")

    def __init__(self):
        self.count = 0
        self.total_ms = 0
        self.codes = {}
        self.ips = set()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rng = random.Random(20261121)
    stats = {}
    window = []
    for line in generate(rng, n):
        m = LINE.match(line)
        if not m:
            continue
        ip, level, method, path, code, ms = m.groups()
        key = (method, path)
        s = stats.get(key)
        if s is None:
            s = stats[key] = Stat()
        s.count += 1
        s.total_ms += int(ms)
        s.codes[code] = s.codes.get(code, 0) + 1
        s.ips.add(ip)
        window.append({"ip": ip, "level": level, "path": path.split("/"), "ms": int(ms)})
        if len(window) >= 500:
            blob = json.dumps(window)
            back = json.loads(blob)
            window = [r for r in back if r["ms"] > 450][:50]
    report = []
    for (method, path), s in sorted(stats.items(), key=lambda kv: (-kv[1].count, kv[0])):
        report.append("%-6s %-50s %6d %8.1f %s" % (method, path, s.count, s.total_ms / s.count,
                                                   ",".join(f"{c}:{k}" for c, k in
                                                            sorted(s.codes.items()))))
    text = "\n".join(report)
    words = {}
    for w in text.replace("/", " ").split():
        words[w] = words.get(w, 0) + 1
    print(len(report), len(words), sum(len(s.ips) for s in stats.values()))


if __name__ == "__main__":
    main()

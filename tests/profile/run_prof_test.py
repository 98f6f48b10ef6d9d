#!/usr/bin/env python3
"""The heap profile end to end: prof_program under slabby with SLABBY_PROF=1,
its dumps read by scripts/slabby-prof's parser and symbolizer and by Debian's
google-pprof. Usage: run_prof_test.py LIB PROGRAM SCRIPTS_DIR"""
import glob
import importlib.machinery
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

lib, program, scripts, leak_program = sys.argv[1:5]
prof = importlib.machinery.SourceFileLoader("slabby_prof", os.path.join(scripts, "slabby-prof")).load_module()
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def shares(path, key):
    """Estimated bytes per site (site_a, site_b, site_churn, other) in a dump."""
    entries, maps = prof.parse_profile(path)
    sym = prof.Symbolizer(maps)
    out = {"site_a": 0, "site_b": 0, "site_churn": 0, "other": 0}
    for e in entries:
        names = [f for f, _ in sym.resolve(e["stack"])]
        site = next((n for n in names if n in out), "other")
        out[site] += e[key]
    return out


with tempfile.TemporaryDirectory() as tmp:
    d1, d2 = os.path.join(tmp, "one.heap"), os.path.join(tmp, "two.heap")
    sample = 64 << 10  # SLABBY_PROF_SAMPLE, which prof_program's variances also use
    env = dict(os.environ, LD_PRELOAD=lib, SLABBY_PROF="1", SLABBY_PROF_SAMPLE=str(sample),
               SLABBY_PROF_SIGNAL="12", SLABBY_PROF_FILE=os.path.join(tmp, "auto.%p.%n.heap"),
               SLABBY_STATS="json", SLABBY_STATS_FILE=os.path.join(tmp, "stats.json"))
    r = subprocess.run([program, d1, d2, "160", str(sample)], env=env, capture_output=True, text=True,
                       timeout=300)
    print(r.stderr, end="")
    check(r.returncode == 0, f"prof_program exits 0 (got {r.returncode})")
    asked = {k: float(v) for k, v in (line.split() for line in r.stdout.split("\n") if line)}
    A, B, C = asked["site_a"], asked["site_b"], asked["site_churn"]
    want_a = A / (A + B)
    # The estimates are sampled: a share may miss by its own sampling error.
    # sigma from the variances prof_program computed from its sizes (first
    # order: share = A / (A + B)); 5 sigma, so that a sound profile fails
    # about once in a million runs while a misattributed site still fails.
    sigma_a = math.sqrt(B * B * asked["var_a"] + A * A * asked["var_b"]) / (A + B) ** 2
    sigma_c = math.sqrt((A + B) ** 2 * asked["var_churn"] + C * C * (asked["var_a"] + asked["var_b"])) / (A + B + C) ** 2
    tol_a, tol_c = 5 * sigma_a, 5 * sigma_c
    print(f"sampling error (sigma) of site_a's share {sigma_a:.4f}, of site_churn's {sigma_c:.4f}")

    s1 = shares(d1, "live_bytes")
    live1 = s1["site_a"] + s1["site_b"]
    print(f"dump 1, live bytes by site: {s1}; site_a asked for {want_a:.3f} of a+b")
    check(live1 > 0 and abs(s1["site_a"] / live1 - want_a) < tol_a,
          f"live: site_a's share {s1['site_a'] / max(live1, 1):.3f} within {tol_a:.3f} (5 sigma) of {want_a:.3f}")
    check(s1["site_churn"] < 0.02 * live1, "live: freed blocks (site_churn) are not in the live profile")
    est = (s1["site_a"] + s1["site_b"]) / (asked["site_a"] + asked["site_b"])
    check(0.85 < est < 1.35, f"live: estimated bytes / asked bytes = {est:.3f} (class rounding: >= 1)")

    s2 = shares(d2, "live_bytes")
    t2 = shares(d2, "total_bytes")
    print(f"dump 2, live: {s2}; since start: {t2}")
    check(s2["site_a"] < 0.02 * max(s2["site_b"], 1), "live after free: site_a's blocks left the profile")
    tot = t2["site_a"] + t2["site_b"]
    check(tot > 0 and abs(t2["site_a"] / tot - want_a) < tol_a,
          f"since start: site_a's share {t2['site_a'] / max(tot, 1):.3f} within {tol_a:.3f} (5 sigma) of {want_a:.3f}")
    want_c = C / (A + B + C)
    got_c = t2["site_churn"] / max(sum(t2[k] for k in ("site_a", "site_b", "site_churn")), 1)
    check(abs(got_c - want_c) < tol_c,
          f"since start: site_churn's share {got_c:.3f} within {tol_c:.3f} (5 sigma) of {want_c:.3f}")

    autos = sorted(glob.glob(os.path.join(tmp, "auto.*.heap")))
    check(len(autos) >= 2, f"the signal's dump and the exit dump were written ({len(autos)} files)")

    with open(os.path.join(tmp, "stats.json")) as f:
        st = json.load(f)
    # The at-exit stats come before the exit dump: dumps 1 and 2 and the signal's.
    check(st["prof_samples"] > 200 and st["prof_dumps"] >= 3,
          f"stats: prof_samples {st['prof_samples']}, prof_dumps {st['prof_dumps']}")

    svg = os.path.join(tmp, "flame.svg")
    r = subprocess.run([os.path.join(scripts, "slabby-prof"), "--svg", svg, d1], capture_output=True, text=True)
    check(r.returncode == 0 and "site_a" in open(svg).read(), "slabby-prof --svg draws site_a")
    r = subprocess.run([os.path.join(scripts, "slabby-prof"), d1], capture_output=True, text=True)
    print(r.stdout)
    top = [line for line in r.stdout.split("\n") if "site_" in line]
    check(len(top) >= 2 and "site_a" in top[0] and "prof_program.c:" in top[0],
          "slabby-prof: site_a first, with its file and line")

    pprof = shutil.which("google-pprof") or shutil.which("pprof")
    check(pprof is not None, "google-pprof is installed (Debian package google-perftools)")
    if pprof:
        r = subprocess.run([pprof, "--text", program, d1], capture_output=True, text=True, timeout=120)
        print(r.stdout[:1500])
        check("site_a" in r.stdout and "site_b" in r.stdout, "google-pprof --text names site_a and site_b")
        r = subprocess.run([pprof, "--callgrind", program, d1], capture_output=True, text=True, timeout=120)
        check("fn=" in r.stdout and "site_a" in r.stdout, "google-pprof --callgrind writes site_a's costs")

# The leak report, symbolized by the same path: function and file:line.
with tempfile.TemporaryDirectory() as tmp:
    env = dict(os.environ, LD_PRELOAD=lib, SLABBY_LEAK_CHECK="1", SLABBY_LEAK_SAMPLE="1")
    r = subprocess.run([leak_program, "0"], env=env, capture_output=True, text=True, timeout=120)
    report = os.path.join(tmp, "leaks.txt")
    with open(report, "w") as f:
        f.write(r.stderr)
    r = subprocess.run([os.path.join(scripts, "slabby-prof"), "--leaks", report, "--program", leak_program],
                       capture_output=True, text=True)
    print(r.stdout[:1200])
    lines = [line for line in r.stdout.split("\n") if "leaky_site" in line]
    check(len(lines) > 0 and "leak_program.c:" in lines[0],
          "slabby-prof --leaks: the leak report's frame names leaky_site with its file and line")

    # Periodic dumps: SLABBY_PROF_INTERVAL_MS=100 over a program that lingers 900 ms.
    env = dict(os.environ, LD_PRELOAD=lib, SLABBY_PROF="1", SLABBY_PROF_INTERVAL_MS="100",
               SLABBY_PROF_FILE=os.path.join(tmp, "tick.%n.heap"))
    r = subprocess.run([leak_program, "900"], env=env, capture_output=True, text=True, timeout=120)
    ticks = glob.glob(os.path.join(tmp, "tick.*.heap"))
    check(r.returncode == 0 and len(ticks) >= 4,
          f"SLABBY_PROF_INTERVAL_MS=100 over 0.9 s: {len(ticks)} dumps (periodic and at exit)")

    # A dump file that cannot be written: one line saying which and why, the program unharmed.
    env = dict(os.environ, LD_PRELOAD=lib, SLABBY_PROF="1",
               SLABBY_PROF_FILE="/nonexistent-dir/p.%n.heap")
    r = subprocess.run([leak_program, "0"], env=env, capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and r.stderr == "slabby: cannot write the heap profile "
          "/nonexistent-dir/p.0.heap: No such file or directory\n", f"unwritable dump: {r.stderr!r}")

sys.exit(1 if failures else 0)

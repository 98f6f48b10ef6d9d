#!/usr/bin/env python3
"""Runs one case of tests/security/bugs.cc under LD_PRELOAD=libslabby_malloc.so.

A bug case runs twice:
  - with its check on: the process must die of the expected signal after
    exactly one "slabby: ..." line matching the expected message, before the
    program gets to print "survived";
  - with every check off: that message must not appear (slabby's default mode
    does not look for the bug; the program may or may not survive it).
An outcome case (zeroing, calloc overflow, leaks) checks the program's own
output and slabby's lines.

  security_test.py --list
  security_test.py --lib build/lib/libslabby_malloc.so --bugs build/bin/security_bugs CASE
  security_test.py --hardened --lib build/lib/libslabby_malloc_hardened.so ... CASE
    (the hardened library always checks: the checked runs only)
  security_test.py --per-thread ... CASE
    (every run with SLABBY_PERCPU=0: the per-thread caches' paths)
  security_test.py --percpu ... CASE
    (every run with SLABBY_PERCPU_THREADS=1: every thread on the per-CPU
    caches from its start; by default a single thread stays on its bins)
  (cross builds add --emulator scripts/qemu-aarch64 --fault-kind access --timeout-scale 4)
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

H = r"0x[0-9a-f]+"
CLS = r"\(size class \d+, \d+-byte blocks\)"
LARGE = r"\(large block( of \d+ bytes)?\)"
BITGUARD = {"SLABBY_BITGUARD": "1"}
# config/hardened.conf: the bit guard through a profile, as a user would turn it on.
HARDENED = {"SLABBY_CONFIG": os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                          "config", "hardened.conf")}
GUARDS = {"SLABBY_GUARD_PAGES": "1"}

# name: (mode, env with the check on, signal, message regex)
BUGS = {
    "double_free_small": ("double_free_small", BITGUARD, signal.SIGABRT,
                          rf"slabby: double free of {H} {CLS}"),
    "double_free_large": ("double_free_large", BITGUARD, signal.SIGABRT,
                          rf"slabby: double free of {H} {LARGE}"),
    "double_free_delayed": ("double_free_delayed", BITGUARD, signal.SIGABRT,
                            rf"slabby: double free of {H} {CLS}"),
    "double_free_quarantined": ("double_free_small",
                                dict(BITGUARD, SLABBY_QUARANTINE="64K"), signal.SIGABRT,
                                rf"slabby: double free of {H} {CLS}"),
    "double_free_secure": ("double_free_small", {"SLABBY_SECURE": "1"}, signal.SIGABRT,
                           rf"slabby: double free of {H} {CLS}"),
    "double_free_hardened_profile": ("double_free_small", HARDENED, signal.SIGABRT,
                                     rf"slabby: double free of {H} {CLS}"),
    # malloc(40) takes the 48-byte class: its 8 bytes of slack hold the canary.
    "overflow_1_small": ("overflow_1_small", BITGUARD, signal.SIGABRT,
                         rf"slabby: heap overflow past the 40 usable bytes of {H} {CLS}: "
                         r"canary byte 0 changed \(found by free\)"),
    "overflow_1_small_hardened_profile": ("overflow_1_small", HARDENED, signal.SIGABRT,
                                          rf"slabby: heap overflow past the 40 usable bytes of "
                                          rf"{H} {CLS}: canary byte 0 changed \(found by free\)"),
    "overflow_8_small": ("overflow_8_small", BITGUARD, signal.SIGABRT,
                         rf"slabby: heap overflow past the 40 usable bytes of {H} {CLS}: "
                         r"canary byte 0 changed \(found by free\)"),
    "overflow_1_large": ("overflow_1_large", BITGUARD, signal.SIGABRT,
                         rf"slabby: heap overflow past the 100000 usable bytes of {H} "
                         r"\(large block of 100000 bytes\): canary byte 0 changed \(found by free\)"),
    "overflow_8_large": ("overflow_8_large", BITGUARD, signal.SIGABRT,
                         rf"slabby: heap overflow past the 100000 usable bytes of {H} "
                         r"\(large block of 100000 bytes\): canary byte 0 changed \(found by free\)"),
    "overflow_1_large_guard": ("overflow_1_large", GUARDS, signal.SIGSEGV,
                               rf"slabby: guard page hit: write at {H} is 1 byte past the end "
                               rf"of the 100000-byte block at {H} \(SIGSEGV\)"),
    "overflow_8_large_guard": ("overflow_8_large", GUARDS, signal.SIGSEGV,
                               rf"slabby: guard page hit: write at {H} is 1 byte past the end "
                               rf"of the 100000-byte block at {H} \(SIGSEGV\)"),
    "overflow_1_small_guard": ("overflow_1_small", {"SLABBY_GUARD_SAMPLE": "1"}, signal.SIGSEGV,
                               rf"slabby: guard page hit: write at {H} is 1 byte past the end "
                               rf"of the 48-byte block at {H} \(SIGSEGV\)"),
    # Large blocks resized by realloc (the checked realloc: keep if it fits, else move): the
    # guard page and the canary follow the usable size of the result.
    "overflow_realloc_grown_guard": ("overflow_realloc_grown", GUARDS, signal.SIGSEGV,
                                     rf"slabby: guard page hit: write at {H} is 1 byte past the "
                                     rf"end of the 5242880-byte block at {H} \(SIGSEGV\)"),
    "overflow_realloc_shrunk_guard": ("overflow_realloc_shrunk", GUARDS, signal.SIGSEGV,
                                      rf"slabby: guard page hit: write at {H} is 1 byte past the "
                                      rf"end of the 2097152-byte block at {H} \(SIGSEGV\)"),
    "overflow_realloc_kept_guard": ("overflow_realloc_kept", GUARDS, signal.SIGSEGV,
                                    rf"slabby: guard page hit: write at {H} is 1 byte past the "
                                    rf"end of the 5242880-byte block at {H} \(SIGSEGV\)"),
    "overflow_realloc_grown_bitguard": ("overflow_realloc_grown", BITGUARD, signal.SIGABRT,
                                        rf"slabby: heap overflow past the 5242880 usable bytes of "
                                        rf"{H} \(large block of 5242880 bytes\): canary byte 0 "
                                        r"changed \(found by free\)"),
    "overflow_realloc_shrunk_bitguard": ("overflow_realloc_shrunk", BITGUARD, signal.SIGABRT,
                                         rf"slabby: heap overflow past the 2097152 usable bytes of "
                                         rf"{H} \(large block of 2097152 bytes\): canary byte 0 "
                                         r"changed \(found by free\)"),
    "overflow_realloc_kept_bitguard": ("overflow_realloc_kept", BITGUARD, signal.SIGABRT,
                                       rf"slabby: heap overflow past the 5242880 usable bytes of "
                                       rf"{H} \(large block of 5242880 bytes\): canary byte 0 "
                                       r"changed \(found by free\)"),
    "write_after_free_small": ("write_after_free_small", {"SLABBY_ZERO": "free"}, signal.SIGABRT,
                               rf"slabby: write after free of {H} {CLS}: byte 10 changed after "
                               r"it was freed \(found by malloc\)"),
    "write_after_free_small_quarantine": (
        "write_after_free_small", {"SLABBY_SECURE": "1", "SLABBY_QUARANTINE": "1K"},
        signal.SIGABRT,
        rf"slabby: write after free of {H} {CLS}: byte 10 changed after it was freed "
        r"\(found by quarantine\)"),
    "write_after_free_large": ("write_after_free_large",
                               {"SLABBY_ZERO": "free", "SLABBY_QUARANTINE": "256K"},
                               signal.SIGABRT,
                               rf"slabby: write after free of {H} \(large block of 100000 bytes\): "
                               r"byte 10 changed while it was in quarantine"),
    "write_after_free_large_guard": ("write_after_free_large",
                                     {"SLABBY_GUARD_PAGES": "1", "SLABBY_QUARANTINE": "256K"},
                                     signal.SIGSEGV,
                                     rf"slabby: use after free: write at {H} is 10 bytes into the "
                                     rf"freed 100000-byte block at {H} \(SIGSEGV\)"),
    # 100 KB: a medium size class in the default mode, a page span in the checked ones.
    # SLABBY_ZERO=free alone (no quarantine). Fails on 6aad316: a freed block above 32 KiB is
    # released at once, neither zeroed nor checked when reused (checked_free_large zeroes only
    # on the way into the quarantine), although docs/security.md says freed blocks are zeroed.
    "write_after_free_medium": ("write_after_free_medium", {"SLABBY_ZERO": "free"}, signal.SIGABRT,
                                rf"slabby: write after free of {H} ({CLS}|{LARGE}): byte 10 "
                                r"changed (after it was freed \(found by malloc\)|while it was "
                                r"in quarantine)"),
    # A big block used only at its start, freed back to the OS: the write faults a page in.
    "write_after_free_sparse": ("write_after_free_sparse", {"SLABBY_SECURE": "1"}, signal.SIGABRT,
                                rf"slabby: write after free of {H} \(large block of 4194304 "
                                r"bytes\): byte 1048586 changed after it was freed \(found by "
                                r"malloc\)"),
    # The block a growing realloc moved away from.
    "write_after_free_realloced": ("write_after_free_realloced",
                                   {"SLABBY_ZERO": "free", "SLABBY_QUARANTINE": "256K"},
                                   signal.SIGABRT,
                                   rf"slabby: write after free of {H} \(large block of 100000 "
                                   r"bytes\): byte 10 changed while it was in quarantine"),
    "corrupt_free_list": ("corrupt_free_list", BITGUARD, signal.SIGABRT,
                          rf"slabby: corrupted free list {CLS}: the free block {H} links to {H}, "
                          r"not a block of its class \(a write after free\)"),
    "free_interior": ("free_interior", BITGUARD, signal.SIGABRT,
                      rf"slabby: free of interior pointer {H}: 16 bytes into the block at {H} {CLS}"),
    "free_unaligned": ("free_unaligned", BITGUARD, signal.SIGABRT,
                       rf"slabby: free of unaligned pointer {H}: 3 bytes into the block at {H} {CLS}"),
    "free_never_used": ("free_never_used", dict(BITGUARD, SLABBY_THREAD_CACHE_BYTES="0"),
                        signal.SIGABRT, rf"slabby: free of {H}, a block never handed out {CLS}"),
    "realloc_freed": ("realloc_freed", BITGUARD, signal.SIGABRT,
                      rf"slabby: realloc of freed pointer {H} {CLS}"),
    "sized_delete_mismatch": ("sized_delete_mismatch", BITGUARD, signal.SIGABRT,
                              rf"slabby: sized delete of {H} with size 200, but it was allocated "
                              rf"with a different size {CLS}"),
    "free_sized_mismatch": ("free_sized_mismatch", BITGUARD, signal.SIGABRT,
                            rf"slabby: free_sized of {H} with size 200, but it was allocated "
                            rf"with a different size {CLS}"),
}

OUTCOMES = ["calloc_overflow", "huge_malloc", "zero_on_free", "zero_on_alloc",
            "zero_after_realloc_growth", "calloc_recycled_large", "leak_report", "leak_report_off",
            "clean_run_secure", "stats_exact", "stats_exact_secure", "bitguard_off",
            "free_sized_exact"]


def run(args, mode, extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SLABBY_") and k not in ("GLIBC_TUNABLES",)}
    if args.per_thread:
        env["SLABBY_PERCPU"] = "0"
    if args.percpu:
        env["SLABBY_PERCPU_THREADS"] = "1"
    env.update(extra)
    cmd = [args.bugs, mode]
    if args.emulator:
        # qemu-user (scripts/qemu-aarch64): the preload is the emulated program's alone.
        env["QEMU_SET_ENV"] = "LD_PRELOAD=" + args.lib
        cmd = [args.emulator] + cmd
    else:
        env["LD_PRELOAD"] = args.lib
    return subprocess.run(cmd, capture_output=True, text=True, env=env,
                          timeout=50 * args.timeout_scale)


def slabby_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("slabby:")]


def check_bug(args, name):
    mode, env, sig, message = BUGS[name]
    # Where the signal frame does not tell reads from writes (qemu's aarch64 emulation).
    message = message.replace("write at ", args.fault_kind + " at ")
    r = run(args, mode, env)
    lines = slabby_lines(r.stderr)
    errors = []
    if r.returncode != -sig:
        errors.append("checked run: exit %d, expected death by %s" % (r.returncode, sig.name))
    if len(lines) != 1 or not re.fullmatch(message, lines[0]):
        errors.append("checked run: expected one line matching\n  %s\ngot:\n%s" % (message, r.stderr))
    if "survived" in r.stdout:
        errors.append("checked run: the program went on past the bug")
    if args.hardened:
        return errors, "checked: %s" % lines
    off = run(args, mode, {k: v for k, v in env.items() if not k.startswith("SLABBY_") or
                           k == "SLABBY_THREAD_CACHE_BYTES"})
    if any(re.fullmatch(message, l) for l in slabby_lines(off.stderr)):
        errors.append("unchecked run reported it anyway:\n" + off.stderr)
    return errors, "checked: %s\nunchecked: exit %d, %r" % (lines, off.returncode,
                                                             slabby_lines(off.stderr))


def clean_in_each(args, name, envs, stdout_re):
    """Runs mode `name` under each environment: each must exit 0 with stdout matching stdout_re
    whole and no slabby line."""
    errors, out = [], ""
    for env in envs:
        r = run(args, name, env)
        out += "%r: %s" % (env, r.stdout)
        if r.returncode != 0 or not re.fullmatch(stdout_re, r.stdout) or slabby_lines(r.stderr):
            errors.append("%r: exit %d, stdout %r, stderr %r" % (env, r.returncode, r.stdout,
                                                               r.stderr))
    return errors, out


def check_outcome(args, name):
    errors = []
    if name in ("calloc_overflow", "huge_malloc"):
        what = "calloc" if name == "calloc_overflow" else "malloc"
        expect_line = (r"slabby: calloc\(\d+, 4\) overflows the size: returning NULL with ENOMEM"
                       if what == "calloc" else
                       r"slabby: allocation of \d+ bytes can never succeed: returning NULL with ENOMEM")
        on = run(args, name, BITGUARD)
        runs = [("checked", on, [expect_line])]
        if not args.hardened:
            runs.append(("unchecked", run(args, name, {}), []))
        for label, r, want in runs:
            if r.returncode != 0 or r.stdout != "%s NULL ENOMEM\n" % what:
                errors.append("%s run: exit %d, stdout %r" % (label, r.returncode, r.stdout))
            got = slabby_lines(r.stderr)
            if len(got) != len(want) or not all(re.fullmatch(w, g) for w, g in zip(want, got)):
                errors.append("%s run: slabby lines %r, expected %r" % (label, got, want))
        return errors, on.stderr
    if name == "zero_on_free":
        r = run(args, name, {"SLABBY_ZERO": "free"})
        if r.returncode != 0 or r.stdout != "reused 1 freed-nonzero 0 reused-nonzero 0\n":
            errors.append("exit %d, stdout %r, stderr %r" % (r.returncode, r.stdout, r.stderr))
        if args.hardened:
            return errors, r.stdout
        off = run(args, name, {})
        if "freed-nonzero 0 " in off.stdout:
            errors.append("without SLABBY_ZERO the freed bytes were zero too: the test proves nothing")
        return errors, r.stdout + off.stdout
    if name == "zero_on_alloc":
        r = run(args, name, {"SLABBY_ZERO": "alloc"})
        if r.returncode != 0 or r.stdout != "nonzero 0\n" or r.stderr:
            errors.append("exit %d, stdout %r, stderr %r" % (r.returncode, r.stdout, r.stderr))
        if args.hardened:
            return errors, r.stdout
        off = run(args, name, {})
        if off.stdout == "nonzero 0\n":
            errors.append("without SLABBY_ZERO blocks came back zero too: the test proves nothing")
        return errors, r.stdout + off.stdout
    if name == "zero_after_realloc_growth":
        # No background thread: its start would take a slab from the dirty span the default
        # mode's realloc is to grow into, and then the unchecked run would prove nothing.
        quiet = {"SLABBY_BACKGROUND": "0"}
        r = run(args, name, dict(quiet, SLABBY_ZERO="alloc"))
        if r.returncode != 0 or r.stdout != "lost 0 nonzero 0\n" or r.stderr:
            errors.append("exit %d, stdout %r, stderr %r" % (r.returncode, r.stdout, r.stderr))
        if args.hardened:
            return errors, r.stdout
        off = run(args, name, quiet)
        if off.returncode != 0 or not off.stdout.startswith("lost 0 "):
            errors.append("unchecked run: exit %d, stdout %r" % (off.returncode, off.stdout))
        if off.stdout == "lost 0 nonzero 0\n":
            errors.append("without SLABBY_ZERO the grown bytes were zero too: "
                          "the test proves nothing")
        return errors, r.stdout + off.stdout
    if name == "calloc_recycled_large":
        # calloc is zero in every mode, checked or not.
        envs = [{"SLABBY_ZERO": "alloc"}, {}, {"SLABBY_ZERO": "free"}, BITGUARD, GUARDS,
                {"SLABBY_SECURE": "1", "SLABBY_QUARANTINE": "256K"}]
        return clean_in_each(args, name, envs, r"nonzero 0\n")
    if name in ("leak_report", "leak_report_off"):
        env = {"SLABBY_LEAK_CHECK": "1", "SLABBY_LEAK_SAMPLE": "1"} if name == "leak_report" else {}
        r = run(args, "leak", env)
        lines = slabby_lines(r.stderr)
        if r.returncode != 0:
            errors.append("exit %d" % r.returncode)
        if name == "leak_report_off":
            if lines:
                errors.append("report without SLABBY_LEAK_CHECK: %r" % lines)
            return errors, r.stderr
        if not lines or not re.fullmatch(r"slabby: leak check: \d+ blocks \(.+\) still live at exit; "
                                         r"traced 1 in 1 allocations", lines[0]):
            errors.append("no leak summary line:\n" + r.stderr)
        # The three 1000-byte blocks share one site, in the program's own code.
        site = [i for i, l in enumerate(lines) if re.fullmatch(r"slabby:   3 traced blocks, .*", l)]
        if not site:
            errors.append("no site with the 3 leaked blocks:\n" + r.stderr)
        else:
            frames = lines[site[0] + 1:site[0] + 4]
            if not any("security_bugs" in f for f in frames):
                errors.append("the site's first frames are not in the program:\n" + r.stderr)
        # The block grown by realloc, at its new size (200000 bytes).
        if not any(re.fullmatch(r"slabby:   1 traced blocks, 195\.3 KiB, allocated at:", l)
                   for l in lines):
            errors.append("no site with the grown block at its new size:\n" + r.stderr)
        return errors, r.stderr
    if name in ("stats_exact", "stats_exact_secure"):
        # The exit report counts every block, the CPU caches' hits included
        # (counted by the regions, and by the checked paths under a divert).
        # 40 bytes take the 48-byte class, canary or not; the program and
        # libc may add a few blocks of their own.
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "stats.json")
            env = {"SLABBY_STATS": "json", "SLABBY_STATS_FILE": out}
            if name == "stats_exact_secure":
                env["SLABBY_SECURE"] = "1"
            r = run(args, "counted", env)
            if r.returncode != 0 or r.stdout != "kept 1000\n" or slabby_lines(r.stderr):
                errors.append("exit %d, stdout %r, stderr %r" % (r.returncode, r.stdout, r.stderr))
                return errors, ""
            with open(out) as f:
                c = [c for c in json.load(f)["classes"] if c["block_size"] == 48][0]
        if not 101000 <= c["allocations"] <= 101020:
            errors.append("48-byte class: %d allocations, expected 101000 (+ a few)" % c["allocations"])
        if not 1000 <= c["live_blocks"] <= 1020:
            errors.append("48-byte class: %d live blocks, expected 1000 (+ a few)" % c["live_blocks"])
        return errors, "%r" % c
    if name == "bitguard_off":
        # SLABBY_BITGUARD=0: the default library's default, one line from the
        # hardened library, which keeps the bit guard on.
        r = run(args, "counted", {"SLABBY_BITGUARD": "0"})
        want = ([r'slabby: SLABBY_BITGUARD="0": the hardened library always keeps the bit guard '
                 r'on \(its fast paths check every block\); libslabby_malloc\.so runs without it']
                if args.hardened else [])
        got = slabby_lines(r.stderr)
        if r.returncode != 0 or r.stdout != "kept 1000\n":
            errors.append("exit %d, stdout %r" % (r.returncode, r.stdout))
        if len(got) != len(want) or not all(re.fullmatch(w, g) for w, g in zip(want, got)):
            errors.append("slabby lines %r, expected %r" % (got, want))
        return errors, r.stderr
    if name == "free_sized_exact":
        # C23's free_sized with the sizes asked (malloc, calloc, realloc grown
        # and shrunk): no false report in any checked mode, nor unchecked.
        envs = [BITGUARD, {"SLABBY_SECURE": "1"}, dict(BITGUARD, SLABBY_GUARD_SAMPLE="3"), GUARDS] + \
            ([] if args.hardened else [{}])
        return clean_in_each(args, name, envs, r"freed \d+\n")
    if name == "clean_run_secure":
        # Every mode on, no bug: nothing reported, output as without slabby.
        env = {"SLABBY_CONFIG": os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                             "config", "paranoid.conf"), "SLABBY_LEAK_CHECK": "0"}
        for mode in ("zero_on_alloc",):
            r = run(args, mode, env)
            if r.returncode != 0 or slabby_lines(r.stderr):
                errors.append("exit %d, stderr %r" % (r.returncode, r.stderr))
        return errors, ""
    raise SystemExit("unknown case " + name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--lib")
    ap.add_argument("--bugs")
    ap.add_argument("--emulator", help="run the program under this qemu-user wrapper")
    ap.add_argument("--fault-kind", default="write",
                    help="what a guard page hit by a write is called (access: the kind is unknown)")
    ap.add_argument("--timeout-scale", type=int, default=1)
    ap.add_argument("--hardened", action="store_true",
                    help="the library always checks (libslabby_malloc_hardened.so): no unchecked runs")
    ap.add_argument("--per-thread", action="store_true",
                    help="run with SLABBY_PERCPU=0: the threads use per-thread caches")
    ap.add_argument("--percpu", action="store_true",
                    help="run with SLABBY_PERCPU_THREADS=1: every thread on the per-CPU caches")
    ap.add_argument("case", nargs="?")
    args = ap.parse_args()
    if args.list:
        print("\n".join(list(BUGS) + OUTCOMES))
        return 0
    if not args.lib or not args.bugs or not args.case:
        ap.error("--lib, --bugs and CASE are required")
    errors, detail = (check_bug if args.case in BUGS else check_outcome)(args, args.case)
    print(detail)
    for e in errors:
        print("FAIL:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

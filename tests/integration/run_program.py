#!/usr/bin/env python3
"""Integration runner: run a real program on glibc and on slabby, compare.

For one scenario (one ctest entry each):
  1. run the scenario's steps once without preload ("plain"): env cleaned of
     LD_PRELOAD, SLABBY_*, MALLOC_*, GLIBC_TUNABLES;
  2. run them again in a fresh temporary directory with
     LD_PRELOAD=<lib> SLABBY_STATS=1 ("preload");
  3. for every step compare exit status and stdout exactly; compare stderr
     exactly after removing the slabby: report lines from the preloaded run
     (unless the scenario marks that step's stderr as nondeterministic);
     compare the scenario's artefacts (hashes of files the steps produced);
  4. unless --no-preload-check: every preloaded step must have printed at least
     one slabby report (one per process; children under LD_PRELOAD print their
     own) and the largest total_allocations must reach the scenario's minimum;
  5. a step that runs too long is killed (its whole process group) and the
     test fails: --timeout (120 s) for plain steps; for a preloaded step
     --slowdown (10) times its plain time, at least --min-timeout (30 s) and
     at most --timeout, so a hang fails fast;
  6. the preloaded run stops at its first failing step.
The temporary directories are removed afterwards (--keep-temp keeps them).

Exit status: 0 pass, 1 fail, 2 usage error, 77 a required tool is missing
(registered as SKIP_RETURN_CODE in CMake).

Examples:
  run_program.py --lib build/lib/libslabby_malloc.so python
  run_program.py --lib build/lib/libslabby_malloc.so threaded --exe build/bin/threaded_workload
  run_program.py --lib /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 --no-preload-check sort
"""

import argparse
import difflib
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, HERE)
import slabby_report  # noqa: E402

SKIP = 77
DIFF_LINES = 80  # lines of unified diff shown per mismatch


class Skip(Exception):
    pass


# --------------------------------------------------------------------------
# Scenario description


class Step:
    """One command run in the work directory. `check_stderr` False means the
    step's stderr is not compared (it is still shown on failure)."""

    def __init__(self, name, argv, env=None, check_stderr=True, cwd=None):
        self.name = name
        self.argv = argv
        self.env = env or {}
        self.check_stderr = check_stderr
        self.cwd = cwd  # relative to the work directory; None = the work dir


class Action:
    """Runner-side Python between steps (not timed, never preloaded)."""

    def __init__(self, name, fn):
        self.name = name
        self.fn = fn  # fn(workdir)


class Scenario:
    def __init__(self, name, steps, min_allocations, env=None, setup=None, artefacts=None,
                 note=""):
        self.name = name
        self.steps = steps                      # list of Step / Action
        self.min_allocations = min_allocations  # max total_allocations must reach it
        self.env = env or {}                    # for both runs, every step; a value
                                                # of None means "the run's work dir"
        self.setup = setup                      # setup(workdir) before the steps
        self.artefacts = artefacts              # artefacts(workdir) -> {name: str}
        self.note = note                        # shown when the stats check fails


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def which_or_skip(tool):
    path = shutil.which(tool)
    if not path:
        raise Skip("%s is not installed" % tool)
    return path


def default_python():
    # A real interpreter binary, not a wrapper script (a pyenv shim is a bash
    # script that would run, and report, under LD_PRELOAD too).
    if os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"
    return os.path.realpath(sys.executable)


def python_env(extra):
    env = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
    env.update(extra)
    return env


# --------------------------------------------------------------------------
# Scenarios. Minimums are about a fifth of what a counting malloc shim
# measured on glibc (see README.md in this folder), so they prove the program
# ran on slabby without depending on slabby's exact accounting.


def scenario_python(args, pymalloc_env):
    py = args.python or default_python()
    script = os.path.join(HERE, "dict_string_workload.py")
    if pymalloc_env:
        # Every object goes through malloc: ~25M allocations at scale 0.5.
        return Scenario("python_malloc", [
            Step("python3 dict_string_workload.py (PYTHONMALLOC=malloc)",
                 [py, "-s", script, "0.5"])],
            min_allocations=5000000,
            env=python_env({"PYTHONMALLOC": "malloc"}))
    # Default pymalloc: small objects live in mmap'ed arenas, so only buffers
    # above 512 bytes and interpreter internals reach malloc (~7k at scale 0.7).
    return Scenario("python", [
        Step("python3 dict_string_workload.py", [py, "-s", script, "0.7"])],
        min_allocations=1500,
        env=python_env({}))


def scenario_threaded(args):
    exe = args.exe
    if not exe or not os.access(exe, os.X_OK):
        raise SystemExit("threaded: --exe must name the built threaded_workload (got %r)" % exe)
    # ~4.8M allocations at 60 rounds.
    return Scenario("threaded", [Step("threaded_workload", [exe, "60"])],
                    min_allocations=1000000)


def scenario_gxx(args):
    gxx = which_or_skip(args.gxx)
    src = os.path.join(HERE, "gxx_input.cc")

    def setup(wd):
        shutil.copy(src, os.path.join(wd, "gxx_input.cc"))

    def artefacts(wd):
        return {"gxx_input.o sha256": sha256_file(os.path.join(wd, "gxx_input.o")),
                "prog sha256": sha256_file(os.path.join(wd, "prog"))}

    common = ["-fno-diagnostics-color", "-std=c++17"]
    # The built program runs under the same mode as the compiler (its
    # allocations are few; what is compared is its stdout).
    return Scenario("gxx", [
        Step("g++ -O1 -c", [gxx] + common + ["-O1", "-c", "gxx_input.cc", "-o", "gxx_input.o"]),
        Step("g++ link", [gxx, "gxx_input.o", "-o", "prog"]),
        Step("./prog", ["./prog"]),
    ], min_allocations=500000,   # cc1plus: ~2.7M
        env={"LC_ALL": "C", "TMPDIR": None},  # TMPDIR set per run (work dir)
        setup=setup, artefacts=artefacts,
        note="g++ runs cc1plus, as, collect2 and ld as children under LD_PRELOAD; "
             "cc1plus's report is the large one.")


def generate_sort_input(path, n_lines):
    rng = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 12)))
             for _ in range(50000)]
    chunk = 50000
    with open(path, "w", encoding="ascii") as f:
        for _ in range(n_lines // chunk):
            f.write("".join(" ".join(rng.choices(vocab, k=4)) + "\n" for _ in range(chunk)))


def scenario_sort(args):
    sort = which_or_skip("sort")
    shared = {}

    def setup(wd):
        # Generated once (about 3 s), read by both runs.
        if "input" not in shared:
            shared["input"] = os.path.join(args.shared_dir, "words.txt")
            generate_sort_input(shared["input"], 2000000)
        os.mkdir(os.path.join(wd, "tmp"))

    def artefacts(wd):
        out = {}
        for name in ("sorted_whole.txt", "sorted_keys.txt"):
            p = os.path.join(wd, name)
            out[name + " sha256"] = sha256_file(p)
            out[name + " bytes"] = str(os.path.getsize(p))
        return out

    def inp():
        return shared["input"]

    # argv is built when the step runs (the input path is known after setup).
    return Scenario("sort", [
        # Whole file in one buffer: a few very large allocations.
        Step("sort (in memory)", lambda: [sort, inp(), "-o", "sorted_whole.txt"]),
        # Small buffer: external merge through temporary files, 2 threads.
        Step("sort -S 8M -k2,2 -k1,1r (external merge)",
             lambda: [sort, "-S", "8M", "-T", "tmp", "--parallel=2", "-k2,2", "-k1,1r",
                      inp(), "-o", "sorted_keys.txt"]),
    ], min_allocations=50,  # the external merge: ~230 (the in-memory sort: ~12)
        env={"LC_ALL": "C"}, setup=setup, artefacts=artefacts,
        note="GNU sort closes stdout AND stderr at exit (gnulib close_stdout), before "
             "atexit handlers registered earlier and before ELF destructors run: a report "
             "written to fd 2 at exit is lost. slabby must write its report on a "
             "descriptor it dup()ed from fd 2 at startup to be seen here.")


GIT_IDENT = {
    "GIT_AUTHOR_NAME": "Slabby Tester", "GIT_AUTHOR_EMAIL": "tester@slabby.invalid",
    "GIT_AUTHOR_DATE": "2024-06-11T12:00:00+0000",
    "GIT_COMMITTER_NAME": "Slabby Tester", "GIT_COMMITTER_EMAIL": "tester@slabby.invalid",
    "GIT_COMMITTER_DATE": "2024-06-11T12:00:00+0000",
}


def generate_tree(root, n_dirs=20, files_per_dir=15, seed=7):
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
             for _ in range(3000)]
    for d in range(n_dirs):
        dpath = os.path.join(root, "dir%02d" % d, "sub%d" % (d % 4))
        os.makedirs(dpath, exist_ok=True)
        for i in range(files_per_dir):
            n_lines = rng.randint(5, 400)
            lines = [" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(n_lines)]
            with open(os.path.join(dpath, "file%03d.txt" % i), "w", encoding="ascii") as f:
                f.write("\n".join(lines) + "\n")
        with open(os.path.join(dpath, "blob.bin"), "wb") as f:
            f.write(bytes(rng.getrandbits(8) for _ in range(rng.randint(1000, 60000))))


def modify_tree(root, rnd):
    """Round rnd (1..): edits some files, removes one per touched directory."""
    rng = random.Random(1000 + rnd)
    for d in range(rnd % 3, 20, 3):
        dpath = os.path.join(root, "dir%02d" % d, "sub%d" % (d % 4))
        for i in range(0, 15, 4):
            p = os.path.join(dpath, "file%03d.txt" % i)
            with open(p, encoding="ascii") as f:
                lines = f.read().splitlines()
            for _ in range(10):
                lines.insert(rng.randrange(len(lines) + 1), "changed %d" % rng.getrandbits(30))
            with open(p, "w", encoding="ascii") as f:
                f.write("\n".join(lines) + "\n")
        gone = os.path.join(dpath, "file%03d.txt" % (14 - rnd))
        if os.path.exists(gone):
            os.remove(gone)


def scenario_git(args):
    git = which_or_skip("git")
    g = [git, "-c", "maintenance.auto=false", "-c", "gc.auto=0", "-c", "core.autocrlf=false",
         "-c", "core.fsync=none", "-c", "advice.detachedHead=false"]
    env = dict(GIT_IDENT)
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                "HOME": None, "LC_ALL": "C", "GIT_PAGER": "cat", "PAGER": "cat",
                "GIT_TERMINAL_PROMPT": "0", "TZ": "UTC"})

    def setup(wd):
        generate_tree(os.path.join(wd, "repo"))

    steps = [
        Step("git init", g + ["init", "-q", "-b", "main", "repo"]),
        Step("git add", g + ["add", "-A"], cwd="repo"),
        Step("git commit", g + ["commit", "-q", "-m", "generated tree"], cwd="repo"),
    ]
    for rnd in range(1, 5):
        steps += [
            Action("modify tree %d" % rnd,
                   lambda wd, rnd=rnd: modify_tree(os.path.join(wd, "repo"), rnd)),
            Step("git commit -a %d" % rnd, g + ["commit", "-q", "-a", "-m", "edit %d" % rnd],
                 cwd="repo"),
        ]
    steps += [
        Step("git log --format=%H", g + ["log", "--format=%H"], cwd="repo"),
        Step("git ls-tree -r HEAD", g + ["ls-tree", "-r", "HEAD"], cwd="repo"),
        Step("git diff --stat", g + ["diff", "--stat", "HEAD~4", "HEAD"], cwd="repo"),
        Step("git log -p", g + ["log", "-p", "--format=%H %s"], cwd="repo"),
        Step("git blame", g + ["blame", "-s", "dir00/sub0/file000.txt"], cwd="repo"),
        Step("git grep", g + ["grep", "-c", "changed", "HEAD"], cwd="repo"),
        Step("git gc", g + ["gc", "-q"], cwd="repo"),
        Step("git fsck", g + ["fsck", "--no-progress", "--strict"], cwd="repo"),
        Step("git rev-list --objects", g + ["rev-list", "--objects", "--all"], cwd="repo"),
    ]
    # Largest single report: git log -p, ~21k allocations.
    return Scenario("git", steps, min_allocations=5000, env=env, setup=setup,
                    note="each git command prints its own report (git gc runs pack-objects "
                         "etc. as children).")


def scenario_quiet(args):
    # Without SLABBY_* variables slabby must print nothing at all.
    py = args.python or default_python()
    return Scenario("quiet", [
        Step("python3 -c (no SLABBY_STATS)",
             [py, "-s", "-c", "import json; print(json.dumps({str(i): [i] * 3 for i in range(20000)})[-40:])"]),
    ], min_allocations=0, env=python_env({"PYTHONMALLOC": "malloc"}))


SCENARIOS = {
    "python": lambda a: scenario_python(a, False),
    "python_malloc": lambda a: scenario_python(a, True),
    "threaded": scenario_threaded,
    "gxx": scenario_gxx,
    "sort": scenario_sort,
    "git": scenario_git,
    "quiet": scenario_quiet,
}


# --------------------------------------------------------------------------
# Running


class Result:
    def __init__(self, step, rc, out, err, seconds, timed_out=False):
        self.step = step
        self.rc = rc
        self.out = out
        self.err = err
        self.seconds = seconds
        self.timed_out = timed_out


def clean_base_env():
    env = dict(os.environ)
    for k in list(env):
        if (k == "LD_PRELOAD" or k.startswith("SLABBY_") or k.startswith("MALLOC_")
                or k == "GLIBC_TUNABLES" or k.startswith("PYTHONMALLOC")):
            del env[k]
    return env


def describe_rc(rc):
    if rc is None:
        return "no exit status"
    if rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit status %d" % rc


def run_step(step, workdir, env, timeout):
    argv = step.argv() if callable(step.argv) else step.argv
    cwd = os.path.join(workdir, step.cwd) if step.cwd else workdir
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    timed_out = False
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
    return Result(step, p.returncode, out.decode("utf-8", "replace"),
                  err.decode("utf-8", "replace"), time.monotonic() - t0, timed_out)


def step_timeout(args, reference):
    """Timeout of a preloaded step: --timeout, or less when the plain run was
    quick (--slowdown x its time, at least --min-timeout), so a hang fails
    fast."""
    if reference is None:
        return args.timeout
    return min(args.timeout, max(args.min_timeout, args.slowdown * reference.seconds))


def run_mode(scn, mode, args, tmp_root, reference=None):
    """Runs every step of the scenario in a fresh work dir; stops at the first
    step that times out or fails (a preloaded step that fails would only make
    the later ones fail too: the plain run of every step succeeded).
    reference: the plain run's results, to size the preloaded steps' timeouts."""
    workdir = tempfile.mkdtemp(prefix="%s-%s-" % (scn.name, mode), dir=tmp_root)
    env = clean_base_env()
    for k, v in scn.env.items():
        if v is None:  # "set it to the work dir"
            env[k] = workdir
        else:
            env[k] = v
    if mode == "preload" and scn.name != "quiet":
        env["SLABBY_STATS"] = "1"
    if mode == "preload":
        env["LD_PRELOAD"] = args.lib
        for kv in args.env:
            k, _, v = kv.partition("=")
            env[k] = v
    if scn.setup:
        scn.setup(workdir)
    results = []
    for step in scn.steps:
        if isinstance(step, Action):
            step.fn(workdir)
            continue
        ref = reference[len(results)] if reference and len(results) < len(reference) else None
        r = run_step(step, workdir, env, step_timeout(args, ref))
        # Paths of the two work dirs differ: normalise them away.
        for s in {workdir, os.path.realpath(workdir)}:
            r.out = r.out.replace(s, "<WORKDIR>")
            r.err = r.err.replace(s, "<WORKDIR>")
        r.timeout = step_timeout(args, ref)
        results.append(r)
        print("  %-9s %-52s %6.2f s  %s" % ("[" + mode + "]", step.name, r.seconds,
                                            "TIMEOUT" if r.timed_out else describe_rc(r.rc)))
        if r.timed_out or r.rc != 0:
            break
    arts = scn.artefacts(workdir) if scn.artefacts and len(results) == len(
        [s for s in scn.steps if isinstance(s, Step)]) else {}
    return results, arts, workdir


def show_diff(label, a, b):
    lines = list(difflib.unified_diff(a.splitlines(), b.splitlines(), "plain " + label,
                                      "preload " + label, lineterm="", n=2))
    shown = lines[:DIFF_LINES]
    more = len(lines) - len(shown)
    return "\n".join(shown) + ("\n... (%d more diff lines)" % more if more > 0 else "")


def show_text(title, text):
    return "----- %s (%d bytes) -----\n%s%s----- end of %s -----" % (
        title, len(text), text, "" if text.endswith("\n") or not text else "\n", title)


def check(scn, plain, preload, args):
    failures = []
    p_results, p_arts, _ = plain
    l_results, l_arts, _ = preload

    # The plain run is the reference: it must complete and succeed.
    for r in p_results:
        if r.timed_out:
            failures.append("plain run: step '%s' timed out after %ss (the workload is too "
                            "big or the tool hangs without slabby: test setup problem)"
                            % (r.step.name, args.timeout))
        elif r.rc != 0:
            failures.append("plain run: step '%s' failed (%s): test setup problem\n%s\n%s" % (
                r.step.name, describe_rc(r.rc), show_text("stdout", r.out[-4000:]),
                show_text("stderr", r.err[-4000:])))
        if slabby_report.report_lines(r.err):
            failures.append("plain run: step '%s' printed slabby: lines without LD_PRELOAD\n%s"
                            % (r.step.name, show_text("stderr", r.err)))
    if failures:
        return failures

    for i, p in enumerate(p_results):
        name = p.step.name
        if i >= len(l_results):
            failures.append("preload run: steps from '%s' on were not run (an earlier step "
                            "failed)" % name)
            break
        l = l_results[i]
        if l.timed_out:
            failures.append("preload run: step '%s' TIMED OUT after %.0fs (plain run took %.1fs): "
                            "hang under slabby\n%s\n%s" % (
                                name, l.timeout, p.seconds, show_text("stdout", l.out[-4000:]),
                                show_text("stderr", l.err[-8000:])))
            continue
        if l.rc != p.rc:
            failures.append("step '%s': %s under slabby, %s on glibc\n%s" % (
                name, describe_rc(l.rc), describe_rc(p.rc), show_text("preload stderr", l.err)))
        if l.out != p.out:
            failures.append("step '%s': stdout differs (%d bytes plain, %d bytes preload)\n%s" % (
                name, len(p.out), len(l.out), show_diff("stdout", p.out, l.out)))
        l_err = l.err if scn.name == "quiet" else slabby_report.strip_report(l.err)
        if p.step.check_stderr and l_err != p.err:
            failures.append("step '%s': stderr differs (slabby: lines removed)\n%s" % (
                name, show_diff("stderr", p.err, l_err)))

    if len(l_results) == len(p_results) and not any(r.timed_out for r in l_results):
        for k in sorted(set(p_arts) | set(l_arts)):
            if p_arts.get(k) != l_arts.get(k):
                failures.append("artefact '%s' differs: plain %s, preload %s" % (
                    k, p_arts.get(k), l_arts.get(k)))

    if scn.name == "quiet":
        for l in l_results:
            if l.err:
                failures.append("step '%s': slabby printed to stderr without any SLABBY_* "
                                "variable\n%s" % (l.step.name, show_text("stderr", l.err)))
        return failures

    if args.no_preload_check:
        print("  (--no-preload-check: slabby report not required)")
        return failures
    if (any(l.timed_out for l in l_results) or len(l_results) < len(p_results)
            or any(l.rc != p.rc for l, p in zip(l_results, p_results))):
        return failures  # already failed; a crashed or killed process prints no report

    best = 0
    for l in l_results:
        if l.timed_out:
            continue
        totals = slabby_report.total_allocations(l.err)
        reports = slabby_report.parse_reports(l.err)
        print("  [preload] %-52s reports: %d  total_allocations: %s" % (
            l.step.name, len(reports), totals))
        if not totals:
            failures.append(
                "step '%s': no slabby report in the preloaded run's stderr (expected a line "
                "matching %r: is LD_PRELOAD=%s effective and SLABBY_STATS=1 honoured?)%s\n%s" % (
                    l.step.name, slabby_report.TOTAL_ALLOCATIONS_RE.pattern, args.lib,
                    "\nnote: " + scn.note if scn.note else "", show_text("whole stderr", l.err)))
        best = max([best] + totals)
    missing = any(f.startswith("step '") and "no slabby report" in f for f in failures)
    if best < scn.min_allocations and missing:
        failures.append("largest total_allocations over all reports is %d, below this "
                        "scenario's minimum %d" % (best, scn.min_allocations))
    elif best < scn.min_allocations:
        failures.append(
            "largest total_allocations over all reports is %d, below this scenario's minimum "
            "%d: the program did not really run on slabby%s\n%s" % (
                best, scn.min_allocations, "\nnote: " + scn.note if scn.note else "",
                "\n".join(show_text("whole stderr of '%s'" % l.step.name, l.err)
                          for l in l_results)))
    return failures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--lib", required=True, help="the preload library (libslabby_malloc.so)")
    ap.add_argument("--exe", help="program for the threaded scenario")
    ap.add_argument("--python", help="python3 binary for the python scenarios "
                    "(default /usr/bin/python3, else this interpreter)")
    ap.add_argument("--gxx", default="g++", help="compiler driver for the gxx scenario")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds one step may run before it is killed (default 120)")
    ap.add_argument("--slowdown", type=float, default=10.0,
                    help="a preloaded step may take this many times its plain run's time "
                         "(default 10), but at least --min-timeout and at most --timeout")
    ap.add_argument("--min-timeout", type=float, default=30.0,
                    help="see --slowdown (default 30 s)")
    ap.add_argument("--no-preload-check", action="store_true",
                    help="do not require a slabby report (to exercise the runner with "
                         "another malloc, e.g. libjemalloc.so.2)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra variable for the preloaded run (e.g. SLABBY_SECURE=1)")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temporary directories")
    args = ap.parse_args(argv)

    args.lib = os.path.abspath(args.lib)
    if not os.path.isfile(args.lib):
        print("FAIL: preload library %s does not exist" % args.lib)
        return 1

    tmp_root = tempfile.mkdtemp(prefix="slabby-integration-")
    args.shared_dir = tempfile.mkdtemp(prefix="shared-", dir=tmp_root)
    t0 = time.monotonic()
    try:
        try:
            scn = SCENARIOS[args.scenario](args)
        except Skip as e:
            print("SKIP %s: %s" % (args.scenario, e))
            return SKIP
        print("scenario %s, lib %s, timeout %gs per step (preloaded: %g x plain, %g..%gs)" % (
            scn.name, args.lib, args.timeout, args.slowdown, args.min_timeout, args.timeout))
        plain = run_mode(scn, "plain", args, tmp_root)
        if any(r.timed_out or r.rc != 0 for r in plain[0]):
            preload = ([], {}, None)
        else:
            preload = run_mode(scn, "preload", args, tmp_root, reference=plain[0])
        failures = check(scn, plain, preload, args)
    finally:
        if args.keep_temp:
            print("temporary files kept in %s" % tmp_root)
        else:
            shutil.rmtree(tmp_root, ignore_errors=True)
    elapsed = time.monotonic() - t0
    if failures:
        print("\nFAIL %s (%.1f s): %d problem(s)" % (args.scenario, elapsed, len(failures)))
        for i, f in enumerate(failures, 1):
            print("\n[%d] %s" % (i, f))
        return 1
    print("PASS %s (%.1f s)" % (args.scenario, elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())

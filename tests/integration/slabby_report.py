"""Parse the report slabby prints to stderr at exit when SLABBY_STATS=1.

Contract (the only thing this module relies on):
  * every line of the report starts with "slabby:";
  * process totals appear as "slabby:<spaces><name><spaces><integer>", e.g.
        slabby:   total_allocations    12345
        slabby:   total_deallocations  12000
  * each process prints its own report, so the stderr of a program that runs
    children under LD_PRELOAD (g++ -> cc1plus, as, collect2, ld; git -> git)
    holds one report per process, one after the other.

A new report starts at a header line "slabby: stats ..." (the library's
current format: "slabby: stats for pid 123 (slabby 0.1.0, ...)"; the pid is kept
in Report.pid) or at a "total_allocations" line when the current report
already has one; lines before the first header/total belong to the first
report. If a name repeats inside a
report (e.g. a per-size-class table printed as name/value lines) the first
value is kept in the dict and every value is kept in Report.all_values.

Standard library only; importable by other tests:
    import slabby_report
    reports = slabby_report.parse_reports(stderr_text)
    reports[0]["total_allocations"]
Command line: python3 slabby_report.py < stderr.txt   (prints JSON)
"""

import json
import re
import sys

PREFIX = "slabby:"
TOTAL_ALLOCATIONS_RE = re.compile(r"^slabby:\s+total_allocations\s+(\d+)", re.MULTILINE)
_HEADER_RE = re.compile(r"^slabby:\s*stats\b(?:.*?\bpid\s+(\d+))?")
_KV_RE = re.compile(r"^slabby:\s+([A-Za-z_][A-Za-z0-9_]*)[ \t]+(\d+)(?![\w.])")


class Report(dict):
    """name -> int (first value seen). Extra attributes:
    lines: every raw slabby: line of this report, in order;
    all_values: name -> list of every value seen for that name;
    pid: from the header line, or None."""

    def __init__(self):
        super().__init__()
        self.lines = []
        self.all_values = {}
        self.pid = None


def is_report_line(line):
    return line.startswith(PREFIX)


def report_lines(text):
    """The slabby: lines of a stderr text, in order (without newlines)."""
    return [l for l in text.splitlines() if is_report_line(l)]


def strip_report(text):
    """The stderr text with every slabby: line removed (other lines intact,
    including their newlines)."""
    return "".join(l for l in text.splitlines(keepends=True) if not is_report_line(l))


def total_allocations(text):
    """Every total_allocations value in the text, one per report, in order."""
    return [int(m.group(1)) for m in TOTAL_ALLOCATIONS_RE.finditer(text)]


def parse_reports(text):
    """All reports in a stderr text, as a list of Report dicts (may be empty)."""
    reports = []
    current = None
    for line in report_lines(text):
        m = _KV_RE.match(line)
        h = _HEADER_RE.match(line)
        if h:
            starts_new = current is None or "total_allocations" in current
        else:
            starts_new = m is not None and m.group(1) == "total_allocations" and (
                current is None or "total_allocations" in current)
        if current is None or starts_new:
            current = Report()
            reports.append(current)
        if h and h.group(1) and current.pid is None:
            current.pid = int(h.group(1))
        current.lines.append(line)
        if m:
            name, value = m.group(1), int(m.group(2))
            current.all_values.setdefault(name, []).append(value)
            current.setdefault(name, value)
    return reports


def parse_report(text):
    """The first report in the text as a dict (empty dict if there is none)."""
    reports = parse_reports(text)
    return reports[0] if reports else Report()


def main():
    reports = parse_reports(sys.stdin.read())
    json.dump([dict(r) for r in reports], sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0 if reports else 1


if __name__ == "__main__":
    sys.exit(main())

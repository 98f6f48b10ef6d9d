"""Unit test of slabby_report.py on hand-written stderr samples (no slabby
needed). Registered as ctest entry integration.report_parser."""

import os
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slabby_report  # noqa: E402

ONE = """\
some program output on stderr
slabby: statistics at exit
slabby:   total_allocations    12345
slabby:   total_deallocations  12000
slabby:   current_allocations  345
slabby:   live_bytes           8192 (8.0 KiB)
slabby:   version 0.1.0
slabby:   class  block   allocs   frees
slabby:   0      16      100      90
warning: trailing program line
"""

TWO = """\
slabby:   total_allocations    2700000
slabby:   total_deallocations  2690000
slabby:   heap_fallbacks       3
cc1plus: note: something
slabby:   total_allocations    5000
slabby:   total_deallocations  4000
"""

# Shape of the library's report as of 0.1.0 (two processes, shortened).
REAL = """\
hi
slabby: stats for pid 31167 (slabby 0.1.0, per-thread caches)
slabby:   total_allocations                 1200
slabby:   total_deallocations               1176
slabby:   live_bytes                      473648  (462.5 KiB)
slabby:   arena_reserved_bytes       68719476736  (64.0 GiB)
slabby:   purged_bytes                         0  (0 B)
slabby: class   block      allocs       frees        live   cached  slabs      mapped    resident
slabby:     1      16          56          53           3       25      1       16384        4096
slabby:    39   28672           1           1           0        2      1      229376       32768
slabby: stats for pid 31168 (slabby 0.1.0, per-thread caches)
slabby:   total_allocations                   77
slabby: class   block      allocs       frees        live   cached  slabs      mapped    resident
slabby:     1      16          56          53           3       25      1       16384        4096
"""


class ReportTest(unittest.TestCase):
    def test_library_format(self):
        reports = slabby_report.parse_reports(REAL)
        self.assertEqual(len(reports), 2)
        a, b = reports
        self.assertEqual((a.pid, b.pid), (31167, 31168))
        self.assertEqual(a["total_allocations"], 1200)
        self.assertEqual(a["live_bytes"], 473648)
        self.assertEqual(a["arena_reserved_bytes"], 68719476736)
        self.assertEqual(a["purged_bytes"], 0)
        self.assertEqual(len(a.lines), 9)
        self.assertTrue(b.lines[0].startswith("slabby: stats for pid 31168"))
        self.assertEqual(dict(b), {"total_allocations": 77})
        self.assertEqual(slabby_report.total_allocations(REAL), [1200, 77])
        self.assertEqual(slabby_report.strip_report(REAL), "hi\n")

    def test_single_report(self):
        reports = slabby_report.parse_reports(ONE)
        self.assertEqual(len(reports), 1)
        r = reports[0]
        self.assertEqual(r["total_allocations"], 12345)
        self.assertEqual(r["total_deallocations"], 12000)
        self.assertEqual(r["current_allocations"], 345)
        self.assertEqual(r["live_bytes"], 8192)
        self.assertNotIn("version", r)  # "0.1.0" is not an integer
        self.assertNotIn("class", r)
        self.assertEqual(len(r.lines), 8)
        self.assertEqual(slabby_report.parse_report(ONE), r)

    def test_strip(self):
        self.assertEqual(slabby_report.strip_report(ONE),
                         "some program output on stderr\nwarning: trailing program line\n")
        self.assertEqual(slabby_report.strip_report("no newline at end"), "no newline at end")
        self.assertEqual(slabby_report.strip_report(""), "")

    def test_several_processes(self):
        reports = slabby_report.parse_reports(TWO)
        self.assertEqual([r["total_allocations"] for r in reports], [2700000, 5000])
        self.assertEqual(reports[0]["heap_fallbacks"], 3)
        self.assertNotIn("heap_fallbacks", reports[1])
        self.assertEqual(slabby_report.total_allocations(TWO), [2700000, 5000])
        self.assertEqual(slabby_report.strip_report(TWO), "cc1plus: note: something\n")

    def test_none(self):
        self.assertEqual(slabby_report.parse_reports("plain stderr\n"), [])
        self.assertEqual(slabby_report.parse_report(""), {})
        self.assertEqual(slabby_report.total_allocations("x slabby:   total_allocations 5\n"), [])

    def test_repeated_name_keeps_first(self):
        text = ("slabby:   total_allocations 10\nslabby:   allocations 4\n"
                "slabby:   allocations 6\n")
        r = slabby_report.parse_report(text)
        self.assertEqual(r["allocations"], 4)
        self.assertEqual(r.all_values["allocations"], [4, 6])


if __name__ == "__main__":
    unittest.main(verbosity=2)

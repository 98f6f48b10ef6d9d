#!/bin/sh
# page_size_refused.sh EMULATOR PROGRAM PAGE_SIZE SLABBY_PAGE_SIZE: runs PROGRAM (a slabby built for
# SLABBY_PAGE_SIZE-byte pages) under the emulator with PAGE_SIZE-byte pages. Expected: exactly one
# "slabby:" line on stderr, saying why slabby steps aside, and the program's own checks pass.
set -u
emulator=$1 program=$2 page=$3 built=$4
err=$(mktemp)
trap 'rm -f "$err"' EXIT
# qemu 7.2 with -p and its default CPU (SVE) faults on reads of some of the loader's data: a CPU
# without SVE unless the caller chose one.
out=$(QEMU_PAGESIZE=$page QEMU_CPU=${QEMU_CPU:-neoverse-n1} "$emulator" "$program" 2>"$err")
status=$?
expected="slabby: this system's pages are $page bytes, larger than the $built this slabby was built for (SLABBY_PAGE_SIZE); glibc malloc serves every allocation"
lines=$(grep -c '^slabby:' "$err")
ok=1
[ "$status" -eq 0 ] || { echo "exit status $status"; ok=0; }
[ "$lines" -eq 1 ] || { echo "expected one slabby: line, got $lines"; ok=0; }
grep -qxF "$expected" "$err" || { echo "expected the line: $expected"; ok=0; }
echo "$out"
echo "stderr:"; cat "$err"
[ "$ok" -eq 1 ] && echo "page_size_refused: the $built-byte build stepped aside on $page-byte pages"
[ "$ok" -eq 1 ]

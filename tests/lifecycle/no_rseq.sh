#!/bin/sh
# no_rseq.sh QEMU PROGRAM: runs PROGRAM (a test program linked with slabby) under qemu's user-mode
# emulation of its own architecture, which has no rseq system call (glibc's registration fails,
# and so does slabby's). slabby must notice and keep per-thread caches, as under valgrind, and the
# program's own checks must pass.
set -u
out=$(env -u SLABBY_PERCPU SLABBY_VERBOSE=1 "$1" "$2" 2>&1)
status=$?
echo "$out" | grep -v '^slabby:   '  # the banner and the program's lines, not every setting
[ "$status" -eq 0 ] || { echo "exit status $status"; exit 1; }
echo "$out" | grep -q '^slabby: slabby .* active in pid [0-9]*: per-thread caches (no rseq on this system), ' ||
  { echo "expected: per-thread caches (no rseq on this system)"; exit 1; }
echo "no_rseq: per-thread caches, as expected without rseq"

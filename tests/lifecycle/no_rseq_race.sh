#!/bin/sh
# no_rseq_race.sh QEMU PROGRAM ROUNDS: runs PROGRAM (thread_churn) under qemu's user-mode emulation
# (no rseq: per-thread caches) twice at once, ROUNDS times, and fails if any run fails. Two at
# once on a 2-core machine is what exposed a block put back twice by the central pool when a
# released slab's Span was reused for another shard's slab within one give
# (CentralPool::give_array_to_shards): about 1 run in 20 failed, with a SIGSEGV or "free of
# invalid pointer". A single run rarely shows it.
set -u
qemu=$1 prog=$2 rounds=$3
r=1
while [ "$r" -le "$rounds" ]; do
  env -u SLABBY_PERCPU "$qemu" "$prog" > /dev/null 2>&1 & a=$!
  env -u SLABBY_PERCPU "$qemu" "$prog" > /dev/null 2>&1 & b=$!
  wait $a; sa=$?
  wait $b; sb=$?
  if [ "$sa" -ne 0 ] || [ "$sb" -ne 0 ]; then
    echo "round $r: exit statuses $sa and $sb (0 expected)"
    exit 1
  fi
  r=$((r + 1))
done
echo "no_rseq_race: $((rounds * 2)) runs of $prog, two at a time, all passed"

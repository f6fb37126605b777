#!/bin/bash
# 7 rounds, alternating provider order each round, pinned to CPU 1.
cd /tmp/provbench
for r in 1 2 3 4 5 6 7; do
  if [ $((r % 2)) = 1 ]; then order="ring aws"; else order="aws ring"; fi
  for b in $order; do
    echo "# round $r $b load=$(cut -d' ' -f1-3 /proc/loadavg)"
    taskset -c 1 ./bench-$b all
  done
done

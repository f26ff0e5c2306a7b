#!/usr/bin/env bash
# The foundation's figures: composing 1,000,000 personalised ~5 KB messages (one core) and
# importing a 1,000,000-row recipient list, each run several times; prints every run and the median.
#
#   bench/foundation.sh [runs]      (after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "compose (build/bench/compose_bench 1000000), $runs runs:"
rates=()
for _ in $(seq "$runs"); do
  line=$(taskset -c 0 build/bench/compose_bench 1000000)
  echo "  $line"
  rates+=("$(sed -E 's/.*: ([0-9]+) messages\/s.*/\1/' <<<"$line")")
done
echo "  median: $(printf '%s\n' "${rates[@]}" | median) messages/s (target: 200000 on one core)"

echo "import (build/bench/import_bench 1000000), $runs runs:"
rates=(); peaks=()
for _ in $(seq "$runs"); do
  line=$(build/bench/import_bench 1000000)
  echo "  $line"
  rates+=("$(sed -E 's/.* = ([0-9]+) rows\/s.*/\1/' <<<"$line")")
  peaks+=("$(sed -E 's/.*peak RSS ([0-9.]+) MB.*/\1/' <<<"$line")")
done
echo "  median: $(printf '%s\n' "${rates[@]}" | median) rows/s, peak RSS $(printf '%s\n' "${peaks[@]}" | median) MB (target: under 100 MB)"

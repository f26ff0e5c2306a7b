#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang, AddressSanitizer and UndefinedBehaviorSanitizer
# into build-fuzz/ and runs each for a bounded time, one after the other. Fails when any target
# finds a crash, a leak, a sanitizer report, a timeout or a broken property; the input that did it
# is kept in build-fuzz/artifacts/<target>/ and the log in build-fuzz/logs/<target>.log.
#
#   scripts/fuzz.sh [SECONDS [TARGET...]]   SECONDS per target (default 15: under two minutes for
#                                           all); TARGETs: reply dot_stuffer csv template address
#                                           config header (default: all)
#
# Each run starts from the seed corpus in fuzz/corpus/<target>/ and from what earlier runs added in
# build-fuzz/corpus/<target>/ (never written into the repository). To reproduce a finding:
# build-fuzz/fuzz/fuzz_<target> build-fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(reply dot_stuffer csv template address config header)

scripts/setup.sh fuzz
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DHERALD_FUZZ=ON -DHERALD_SANITIZE=address,undefined -DHERALD_BUILD_TESTS=OFF -DHERALD_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzzers

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
failed=()
summary=()
for target in "${targets[@]}"; do
  binary=build-fuzz/fuzz/fuzz_$target
  [ -x "$binary" ] || { echo "fuzz.sh: no target '$target'" >&2; exit 2; }
  mkdir -p "build-fuzz/corpus/$target" "build-fuzz/artifacts/$target" build-fuzz/logs
  options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
           -artifact_prefix="build-fuzz/artifacts/$target/")
  [ -f "fuzz/$target.dict" ] && options+=(-dict="fuzz/$target.dict")
  log=build-fuzz/logs/$target.log
  echo "fuzz.sh: $target for ${seconds}s"
  if "$binary" "${options[@]}" "build-fuzz/corpus/$target" "fuzz/corpus/$target" >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$target")
    grep -v '^#' "$log" | tail -n 40 >&2
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  summary+=("$(printf '%-12s %-7s %12s executions' "$target" "$status" "${runs:-?}")")
done
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: findings in: ${failed[*]} (inputs in build-fuzz/artifacts/, logs in build-fuzz/logs/)" >&2
  exit 1
fi

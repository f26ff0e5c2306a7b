#!/usr/bin/env bash
# Runs the tests under the sanitizers, each build in a directory of its own:
#   asan  build-asan/: AddressSanitizer (with LeakSanitizer) + UndefinedBehaviorSanitizer, every
#         test, unit and integration, as scripts/test.sh runs them;
#   tsan  build-tsan/: ThreadSanitizer, the SMTP and engine tests (unit, and against real servers).
# Every finding ends the program (no recovery, halt_on_error), so it fails its test; the script
# exits non-zero when any test fails.
#
#   scripts/sanitize.sh [asan] [tsan]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(asan tsan)

scripts/setup.sh test
# Stack traces name files and lines (llvm-symbolizer when installed, else the runtimes' own).
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

configure() {  # configure DIR SANITIZERS
  # -O1 as the sanitizers' documentation advises; -g1 (line tables) is all a stack trace needs and
  # keeps these second and third builds of everything cheaper on two cores. Assertions stay on.
  cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
    -DHERALD_SANITIZE="$2" -DHERALD_BUILD_BENCH=OFF >/dev/null
}

for stage in "${stages[@]}"; do
  case "$stage" in
    asan)
      configure build-asan address,undefined
      cmake --build build-asan -j "$(nproc)"
      # Slower than the plain build: twice the test timeout of scripts/test.sh.
      ctest --test-dir build-asan --output-on-failure --timeout 1200 -j "$(nproc)"
      ;;
    tsan)
      configure build-tsan thread
      # The test binaries of the SMTP client and the engine that exist in this checkout.
      targets=()
      available=$(cmake --build build-tsan --target help)
      for target in smtp_test smtp_real_servers_test direct_delivery_test engine_test engine_real_servers_test; do
        grep -q "^$target:" <<< "$available" && targets+=("$target")
      done
      cmake --build build-tsan -j "$(nproc)" --target "${targets[@]}"
      failed=()
      for target in "${targets[@]}"; do
        binary=$(find build-tsan/tests -name "$target" -type f -perm -u+x | head -n 1)
        echo "sanitize.sh: $target under ThreadSanitizer"
        timeout 1800 "$binary" --gtest_brief=1 || failed+=("$target")
      done
      if [ ${#failed[@]} -gt 0 ]; then
        echo "sanitize.sh: failed under ThreadSanitizer: ${failed[*]}" >&2
        exit 1
      fi
      ;;
    *) echo "sanitize.sh: unknown stage '$stage' (expected: asan, tsan)" >&2; exit 2 ;;
  esac
done

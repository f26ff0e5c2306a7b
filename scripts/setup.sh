#!/usr/bin/env bash
# Installs what herald needs from Debian's packages. Idempotent: installs only what is missing and
# runs `apt-get update` at most once. Works as root on a fresh machine (uses sudo otherwise).
#
#   scripts/setup.sh            build dependencies (compiler, libraries)
#   scripts/setup.sh test       + what the tests use (real mail servers, Python's email parser)
#   scripts/setup.sh bench      + what the benchmarks use
set -euo pipefail

build_packages=(
  g++ cmake ninja-build ccache pkg-config
  libasio-dev libssl-dev libsqlite3-dev libtomlplusplus-dev libcli11-dev
  libfmt-dev libspdlog-dev libidn2-dev nlohmann-json3-dev
)
test_packages=(libgtest-dev libgmock-dev python3 openssl)
bench_packages=(libbenchmark-dev python3)

wanted=("${build_packages[@]}")
for group in "$@"; do
  case "$group" in
    test) wanted+=("${test_packages[@]}") ;;
    bench) wanted+=("${bench_packages[@]}") ;;
    *) echo "setup.sh: unknown group '$group' (expected: test, bench)" >&2; exit 2 ;;
  esac
done

missing=()
for package in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

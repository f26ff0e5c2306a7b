#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh, with the given groups) and builds herald, its tests
# and benchmarks into build/ (Ninja, ccache).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh "$@"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build

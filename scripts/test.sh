#!/usr/bin/env bash
# Builds herald and runs every test (unit and integration; the integration tests start and stop
# their own servers on 127.0.0.1). Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh test
ctest --test-dir build --output-on-failure --timeout 600 -j "$(nproc)"

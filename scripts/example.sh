#!/usr/bin/env bash
# The main job: builds herald and sends the example mailing (examples/newsletter) from a fresh
# start, then shows where the messages went.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
example=examples/newsletter
rm -rf "$example/out"
build/src/herald check "$example/task.toml"
status=0
build/src/herald send "$example/task.toml" || status=$?
echo
echo "The messages are in $example/out/pickup, copies in $example/out/backup;"
echo "'build/src/herald status $example/task.toml' counts the recipients by status."
exit "$status"

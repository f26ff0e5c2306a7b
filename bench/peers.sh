#!/usr/bin/env bash
# The peer table (README.md, "Performance"): herald beside the senders a user would pick instead —
# Postfix's smtp-source, nodemailer (pool: true) and Postfix itself relaying — each sending the same
# personalised messages (~5 KB and ~100 KB; 1, 4, 16 and 64 connections) to the same smtp-sink on
# 127.0.0.1: messages/s, CPU seconds per 1,000 messages, peak memory, medians of several runs, and
# herald ÷ each peer against the targets. bench/smtp_bench.cc does the measuring and says what is
# measured for whom.
#
#   bench/peers.sh [smtp_bench options, e.g. --messages 2000 --runs 1]     (as root)
#
# Installs what the peers need first: Debian's postfix (and Node.js with npm where there is none,
# scripts/setup.sh test bench), nodemailer from the npm registry into bench/peers/node_modules (npm ci,
# the version in bench/peers/package-lock.json); then builds smtp_bench into $BUILD_DIR (default
# build/). Every server and sender it starts is stopped by the benchmark (by process id); nothing
# is sent anywhere but 127.0.0.1. A benchmark, not a test: CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}

# smtp_bench starts its servers with the integration tests' harness: it is built with the tests.
scripts/setup.sh test bench

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "peers.sh: nodemailer $(node -p 'require("./bench/peers/package.json").dependencies.nodemailer') needs Node.js 20 or newer; this is $(node --version)" >&2
  exit 1
fi
(cd bench/peers && npm ci --no-audit --no-fund --loglevel=error)

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERALD_BUILD_TESTS=ON >/dev/null
cmake --build "$build" --target smtp_bench

exec "$build/bench/smtp_bench" --peers all --sizes 5k,100k --connections 1,4,16,64 --messages 2500 --runs 3 "$@"

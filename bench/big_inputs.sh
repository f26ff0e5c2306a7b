#!/usr/bin/env bash
# Big inputs: a 1,000,000-row recipient list with a 10 MB attachment, through an SMTP account with
# max_message_size = "25MB", to Postfix's smtp-sink on 127.0.0.1. The run imports the whole list
# and sends the first MESSAGES of it (the task's sending.limit; every message carries the 13.7 MB
# of base64); herald's peak RSS shows whether memory stays bounded (the attachment encoded once and
# shared, not once per recipient or connection; the list read a page at a time). Then the same
# task with a 20 MB attachment (27.3 MB encoded): herald must refuse it before sending anything,
# with the sizes, and exit 3.
#
#   bench/big_inputs.sh [MESSAGES]   (default 500; after scripts/build.sh; as root, for smtp-sink)
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-500}
herald=$PWD/build/src/herald
[ -x "$herald" ] || { echo "big_inputs.sh: build first (scripts/build.sh)" >&2; exit 2; }
command -v smtp-sink >/dev/null || { echo "big_inputs.sh: needs smtp-sink (scripts/setup.sh test)" >&2; exit 2; }

work=$(mktemp -d /tmp/herald-big-XXXXXX)
sink_pid=
cleanup() {
  [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The list: 1,000,000 rows of four columns.
python3 - "$work/recipients.csv" <<'EOF'
import sys
with open(sys.argv[1], "w") as out:
    out.write("email,firstname,lastname,city\n")
    for i in range(1_000_000):
        out.write(f"member{i}@example.com,First{i},Last{i},City{i % 1000}\n")
EOF
head -c 10000000 /dev/urandom >"$work/report-10MB.bin"
head -c 20000000 /dev/urandom >"$work/report-20MB.bin"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sink_user=()
[ "$(id -u)" = 0 ] && sink_user=(-u postfix)
smtp-sink "${sink_user[@]}" -c "127.0.0.1:$port" 64 >"$work/sink.log" 2>&1 &
sink_pid=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

cat >"$work/accounts.toml" <<EOF
[[account]]
name = "relay"
kind = "smtp"
host = "127.0.0.1"
port = $port
security = "none"
helo_name = "bench.herald.example"
max_connections = 4
max_message_size = "25MB"
EOF
task() {  # task ID ATTACHMENT LIMIT
  cat <<EOF
id = "$1"
accounts = "accounts.toml"
store = "herald-$1.db"
[message]
from = "News <news@herald.example>"
subject = "{%firstname%}, your report"
text = "Dear {%firstname%} {%lastname%} of {%city%},\nyour report is attached.\n"
attachments = ["$2"]
[recipients]
file = "recipients.csv"
[sending]
concurrency = 4
limit = $3
EOF
}

run() {  # run LABEL TASK: herald send, its last lines, exit code, peak RSS, time and CPU
  set +e
  /usr/bin/time -f '%M %e %U %S' -o "$work/time" "$herald" send -q "$2" >"$work/out" 2>&1
  local code=$?
  set -e
  grep -E 'imported|this run|limit of' "$work/out" | sed 's/^ */  | /'
  # GNU time puts "Command exited with non-zero status N" first.
  read -r rss_kb elapsed user system < <(tail -n 1 "$work/time")
  awk -v l="$1" -v c="$code" -v rss="$rss_kb" -v e="$elapsed" -v u="$user" -v s="$system" 'BEGIN {
    printf "  %s: exit code %d, peak RSS %.1f MB, %.1f s, CPU %.1f s user + %.1f s system\n", l, c, rss / 1024, e, u, s
  }'
}

echo "big_inputs.sh: 1,000,000 recipients, a 10 MB attachment (13.7 MB encoded), max_message_size 25MB"
task big report-10MB.bin 1 >"$work/big.toml"
run "import + 1 message" "$work/big.toml"
task big report-10MB.bin "$messages" >"$work/big.toml"
run "$messages messages, 4 connections" "$work/big.toml"
awk -v e="$elapsed" -v n="$messages" 'BEGIN { printf "  %.1f messages/s, %.0f MB/s of mail\n", n / e, n * 13.68 / e }'
# smtp-sink -c prints "sess=N quit=N mesg=N" after each session.
echo "  smtp-sink counted $(grep -o 'mesg=[0-9]*' "$work/sink.log" | tail -n 1 | cut -d= -f2) messages"

echo "big_inputs.sh: the same task with a 20 MB attachment (27.4 MB encoded)"
task too-big report-20MB.bin "$messages" >"$work/too-big.toml"
set +e
"$herald" send -q "$work/too-big.toml" >"$work/out" 2>&1
code=$?
set -e
sed 's/^/  | /' "$work/out"
echo "  exit code $code (3 expected: nothing sent)"

#!/usr/bin/env bash
# The main job: builds herald and sends the example mailing (examples/newsletter) over SMTP —
# STARTTLS and authentication — to a local submission server (python3-aiosmtpd) that this script
# starts on 127.0.0.1 and stops again, then shows the result per recipient.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh example
example=examples/newsletter
out=$example/out
rm -rf "$out"
mkdir -p "$out/tls"

# A private CA and a certificate for the local server, so that herald verifies it as it would a
# real one (the account names the CA file; nothing is trusted blindly).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=herald example CA" \
  -keyout "$out/tls/ca.key" -out "$out/tls/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$out/tls/server.key" -out "$out/tls/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$out/tls/san.ext"
openssl x509 -req -in "$out/tls/server.csr" -CA "$out/tls/ca.pem" -CAkey "$out/tls/ca.key" -CAcreateserial \
  -days 2 -extfile "$out/tls/san.ext" -out "$out/tls/server.pem" 2>/dev/null

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HERALD_EXAMPLE_PASSWORD=$(openssl rand -hex 16)
export HERALD_EXAMPLE_PASSWORD
/usr/bin/python3 scripts/local_smtp_server.py --port "$port" --cert "$out/tls/server.pem" \
  --key "$out/tls/server.key" --user news@example.org --password-env HERALD_EXAMPLE_PASSWORD \
  --folder "$out/received" >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q '^ready' "$out/server.log" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$out/server.log"; exit 1; }
  sleep 0.1
done

cat >"$out/accounts.toml" <<TOML
# Written by scripts/example.sh: the local submission server it started.
[[account]]
name = "relay"
kind = "smtp"
host = "127.0.0.1"
port = $port
security = "starttls"
ca_file = "tls/ca.pem"
username = "news@example.org"
password_env = "HERALD_EXAMPLE_PASSWORD"
max_connections = 2
TOML

echo "== herald test-account (the SMTP dialogue, secrets hidden)"
build/src/herald test-account "$out/accounts.toml" relay --from news@example.org --to office@example.org
echo
echo "== herald check"
build/src/herald check "$example/task.toml" --accounts "$out/accounts.toml"
echo
echo "== herald send"
status=0
build/src/herald send "$example/task.toml" --accounts "$out/accounts.toml" || status=$?
echo
echo "== the result per recipient (herald status --list)"
build/src/herald status "$example/task.toml" --list
echo
echo "The server stored $(ls "$out/received" | wc -l) messages in $out/received; herald's copies are in $out/backup."
exit "$status"
